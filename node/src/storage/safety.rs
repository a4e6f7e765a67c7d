//! The safety record: what this validator signed, kept apart from the chain data.
//!
//! The double-sign guard ([`SafetyData`]) must outlive the chain: an operator who deletes
//! `data/`, a `hotledger init --force`, or a state sync of a validator's home must never let it
//! sign below a round it already signed in. So the record is not in the RocksDB database but in
//! its own folder (`<home>/safety/` by default), one record per chain, and every write is synced
//! before [`SafetyStore::put`] returns.
//!
//! # On disk
//!
//! Two slot files per chain, `<genesis hash>.0` and `<genesis hash>.1`, written alternately:
//!
//! ```text
//!   magic "HLSAFE01" (8) ‖ sequence (u64 BE) ‖ length (u32 BE) ‖ SHA-256 of the previous three
//!   fields and the body (32) ‖ body: postcard(Record { chain, validator, data })
//! ```
//!
//! A write goes to the slot that does not hold the newest record, in place, followed by one
//! `fdatasync`, so a crash in the middle of a write (a torn slot, which fails its digest) leaves
//! the other slot's record intact. That older record is the right one to restart from: nothing
//! that depended on the torn write left the node, since messages are sent only after the write
//! returns. Opening picks the valid slot with the higher sequence. A folder with a written slot
//! that does not verify and none that does is refused, never taken for a fresh record: a torn
//! first write cannot be told from a record damaged on disk.
//!
//! The record names the chain (genesis hash) and the validator key it belongs to; opening it for
//! another key is refused, so a replaced key file is noticed rather than silently guarded by
//! another key's rounds.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use hotledger_consensus::SafetyData;
use hotledger_crypto::{Digest, PublicKey};
use serde::{Deserialize, Serialize};

use super::StorageError;

/// Where a validator's safety record is kept. Every error is fatal.
pub trait SafetyStore: Send + Sync + std::fmt::Debug {
    /// Stores `data` durably: synced to disk when this returns `Ok`.
    fn put(&self, data: &SafetyData) -> Result<(), StorageError>;
    /// The record last put (`None`: this validator never signed on this chain).
    fn get(&self) -> Result<Option<SafetyData>, StorageError>;
}

const MAGIC: &[u8; 8] = b"HLSAFE01";
const HEADER: usize = 8 + 8 + 4 + 32;
/// Most bytes of a record's body (a record holds a vote, a timeout, a QC and a TC: a few KiB
/// for a hundred validators).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A slot's content.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    chain: Digest,
    validator: PublicKey,
    data: SafetyData,
}

/// The record in its two slot files.
#[derive(Debug)]
pub struct SafetyFile {
    chain: Digest,
    validator: PublicKey,
    paths: [PathBuf; 2],
    state: Mutex<Slots>,
}

#[derive(Debug)]
struct Slots {
    files: [File; 2],
    /// The slot the next write goes to.
    next: usize,
    /// The sequence number of the newest record (0: none yet).
    seq: u64,
    data: Option<SafetyData>,
}

/// What a slot file held when opened.
enum Slot {
    Empty,
    Torn,
    Valid(u64, Record),
}

impl SafetyFile {
    /// Opens (creating if absent) the record of `validator` on the chain `chain` in `dir`.
    /// Refuses a record of another validator key, and a folder whose record is damaged.
    pub fn open(dir: &Path, chain: &Digest, validator: PublicKey) -> Result<Self, StorageError> {
        create_dir(dir)?;
        let paths = [0, 1].map(|i| dir.join(format!("{chain}.{i}")));
        let mut created = false;
        let mut open = |path: &Path| -> Result<File, StorageError> {
            created |= !path.exists();
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io_error(path, "open"))
        };
        let files = [open(&paths[0])?, open(&paths[1])?];
        if created {
            // The new files' names must survive a crash too.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(dir, "sync"))?;
        }
        let slots = [
            read_slot(&files[0], &paths[0])?,
            read_slot(&files[1], &paths[1])?,
        ];
        let mut newest: Option<(usize, u64, Record)> = None;
        for (i, slot) in slots.iter().enumerate() {
            if let Slot::Valid(seq, record) = slot {
                if newest.as_ref().is_none_or(|(_, s, _)| seq > s) {
                    newest = Some((i, *seq, record.clone()));
                }
            }
        }
        let (next, seq, data) = match newest {
            Some((i, seq, record)) => {
                if record.chain != *chain {
                    return Err(StorageError::SafetyRecordMismatch {
                        path: paths[i].clone(),
                        what: "chain",
                        found: record.chain.to_string(),
                        expected: chain.to_string(),
                    });
                }
                if record.validator != validator {
                    return Err(StorageError::SafetyRecordMismatch {
                        path: paths[i].clone(),
                        what: "validator key",
                        found: record.validator.to_string(),
                        expected: validator.to_string(),
                    });
                }
                (1 - i, seq, Some(record.data))
            }
            // A slot that does not verify and none that does: the first write torn, or a
            // record damaged on disk; the two cannot be told apart, so it is refused.
            None if slots.iter().any(|s| matches!(s, Slot::Torn)) => {
                return Err(StorageError::SafetyRecordDamaged {
                    dir: dir.to_path_buf(),
                })
            }
            // Nothing was ever written.
            None => (0, 0, None),
        };
        Ok(SafetyFile {
            chain: *chain,
            validator,
            paths,
            state: Mutex::new(Slots {
                files,
                next,
                seq,
                data,
            }),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Slots>, StorageError> {
        self.state.lock().map_err(|_| StorageError::Poisoned {
            what: "safety record",
        })
    }
}

impl SafetyStore for SafetyFile {
    fn put(&self, data: &SafetyData) -> Result<(), StorageError> {
        let mut slots = self.lock()?;
        let seq = slots.seq.saturating_add(1);
        let record = Record {
            chain: self.chain,
            validator: self.validator,
            data: data.clone(),
        };
        let bytes = encode_slot(seq, &record)?;
        let i = slots.next;
        let path = &self.paths[i];
        let file = &slots.files[i];
        file.write_all_at(&bytes, 0)
            .map_err(io_error(path, "write"))?;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        file.set_len(len).map_err(io_error(path, "truncate"))?;
        file.sync_data().map_err(io_error(path, "sync"))?;
        slots.next = 1 - i;
        slots.seq = seq;
        slots.data = Some(data.clone());
        Ok(())
    }

    fn get(&self) -> Result<Option<SafetyData>, StorageError> {
        Ok(self.lock()?.data.clone())
    }
}

/// The safety record in memory, for the simulator and tests: every put is durable at once, so
/// it survives a simulated crash, and a simulated wipe of the chain data leaves it alone.
/// Clones share one record.
#[derive(Clone, Debug, Default)]
pub struct MemorySafety {
    data: Arc<Mutex<Option<SafetyData>>>,
}

impl MemorySafety {
    pub fn new() -> Self {
        Self::default()
    }
}

impl MemorySafety {
    fn lock(&self) -> Result<MutexGuard<'_, Option<SafetyData>>, StorageError> {
        self.data.lock().map_err(|_| StorageError::Poisoned {
            what: "safety record",
        })
    }
}

impl SafetyStore for MemorySafety {
    fn put(&self, data: &SafetyData) -> Result<(), StorageError> {
        *self.lock()? = Some(data.clone());
        Ok(())
    }

    fn get(&self) -> Result<Option<SafetyData>, StorageError> {
        Ok(self.lock()?.clone())
    }
}

fn create_dir(dir: &Path) -> Result<(), StorageError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_error(dir, "create"))
}

fn io_error<'a>(path: &'a Path, op: &'static str) -> impl Fn(std::io::Error) -> StorageError + 'a {
    move |e| StorageError::SafetyIo {
        path: path.to_path_buf(),
        op,
        kind: e.kind(),
        message: e.to_string(),
    }
}

fn slot_digest(header: &[u8], body: &[u8]) -> [u8; 32] {
    let mut h = Digest::hasher();
    h.update(header).update(body);
    h.finalize().0
}

fn encode_slot(seq: u64, record: &Record) -> Result<Vec<u8>, StorageError> {
    let body = postcard::to_allocvec(record).map_err(|source| StorageError::Unencodable {
        what: "safety record",
        source,
    })?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|_| body.len() <= MAX_BODY)
        .ok_or(StorageError::SafetyRecordTooLarge { len: body.len() })?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    let digest = slot_digest(&out, &body);
    out.extend_from_slice(&digest);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads a slot: empty, torn (anything that is not a whole, verified record) or valid.
fn read_slot(file: &File, path: &Path) -> Result<Slot, StorageError> {
    let size = file.metadata().map_err(io_error(path, "stat"))?.len();
    if size == 0 {
        return Ok(Slot::Empty);
    }
    let size = match usize::try_from(size) {
        Ok(size) if size <= HEADER + MAX_BODY => size,
        _ => return Ok(Slot::Torn),
    };
    let mut bytes = vec![0u8; size];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Slot::Torn),
        Err(e) => return Err(io_error(path, "read")(e)),
    }
    Ok(decode_slot(&bytes).map_or(Slot::Torn, |(seq, record)| Slot::Valid(seq, record)))
}

fn decode_slot(bytes: &[u8]) -> Option<(u64, Record)> {
    let header = bytes.get(..20)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(header[8..16].try_into().ok()?);
    let len = usize::try_from(u32::from_be_bytes(header[16..20].try_into().ok()?)).ok()?;
    let digest = bytes.get(20..HEADER)?;
    let body = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    if slot_digest(header, body) != digest {
        return None;
    }
    let record: Record = postcard::from_bytes(body).ok()?;
    Some((seq, record))
}

#[cfg(test)]
mod tests {
    use hotledger_crypto::KeyPair;

    use super::*;

    fn data(round: u64) -> SafetyData {
        SafetyData {
            last_voted_round: round,
            locked_round: round.saturating_sub(1),
            ..SafetyData::default()
        }
    }

    fn key(seed: u8) -> PublicKey {
        KeyPair::from_seed([seed; 32]).public()
    }

    const CHAIN: Digest = Digest([7; 32]);

    #[test]
    fn a_record_survives_reopening_and_alternates_slots() {
        let dir = tempfile::tempdir().unwrap();
        let file = SafetyFile::open(dir.path(), &CHAIN, key(1)).unwrap();
        assert_eq!(file.get().unwrap(), None);
        for round in 1..=5 {
            file.put(&data(round)).unwrap();
        }
        drop(file);
        let file = SafetyFile::open(dir.path(), &CHAIN, key(1)).unwrap();
        assert_eq!(file.get().unwrap(), Some(data(5)));
        // The newest is in slot 0 (writes 1, 3, 5), so the next goes to slot 1.
        file.put(&data(6)).unwrap();
        let slot1 = std::fs::read(dir.path().join(format!("{CHAIN}.1"))).unwrap();
        assert_eq!(decode_slot(&slot1).unwrap().1.data, data(6));
    }

    #[test]
    fn a_torn_write_falls_back_to_the_previous_record() {
        let dir = tempfile::tempdir().unwrap();
        let file = SafetyFile::open(dir.path(), &CHAIN, key(1)).unwrap();
        file.put(&data(1)).unwrap();
        file.put(&data(2)).unwrap();
        drop(file);
        // Round 2 went to slot 1: cut it in the middle, as a crash during the write would.
        let path = dir.path().join(format!("{CHAIN}.1"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let file = SafetyFile::open(dir.path(), &CHAIN, key(1)).unwrap();
        assert_eq!(file.get().unwrap(), Some(data(1)));
        // A flipped bit is as torn as a short write.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        drop(file);
        let file = SafetyFile::open(dir.path(), &CHAIN, key(1)).unwrap();
        assert_eq!(file.get().unwrap(), Some(data(1)));
        // The next write replaces the torn slot, not the good one.
        file.put(&data(3)).unwrap();
        drop(file);
        let file = SafetyFile::open(dir.path(), &CHAIN, key(1)).unwrap();
        assert_eq!(file.get().unwrap(), Some(data(3)));
    }

    #[test]
    fn a_bad_slot_without_a_good_one_is_refused_never_taken_for_a_fresh_record() {
        let dir = tempfile::tempdir().unwrap();
        let file = SafetyFile::open(dir.path(), &CHAIN, key(1)).unwrap();
        assert_eq!(file.get().unwrap(), None, "empty slots: a fresh record");
        drop(file);
        std::fs::write(dir.path().join(format!("{CHAIN}.0")), b"HLSAFE01\0\0").unwrap();
        for _ in 0..2 {
            let err = SafetyFile::open(dir.path(), &CHAIN, key(1)).unwrap_err();
            assert!(
                matches!(err, StorageError::SafetyRecordDamaged { .. }),
                "{err}"
            );
            std::fs::write(dir.path().join(format!("{CHAIN}.1")), b"garbage").unwrap();
        }
    }

    #[test]
    fn another_validator_key_is_refused_and_another_chain_has_its_own_record() {
        let dir = tempfile::tempdir().unwrap();
        let file = SafetyFile::open(dir.path(), &CHAIN, key(1)).unwrap();
        file.put(&data(4)).unwrap();
        drop(file);
        let err = SafetyFile::open(dir.path(), &CHAIN, key(2)).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::SafetyRecordMismatch {
                    what: "validator key",
                    ..
                }
            ),
            "{err}"
        );
        let other = SafetyFile::open(dir.path(), &Digest([8; 32]), key(2)).unwrap();
        assert_eq!(other.get().unwrap(), None);
        // A slot copied in from another chain's files is refused too.
        std::fs::copy(
            dir.path().join(format!("{CHAIN}.0")),
            dir.path().join(format!("{}.0", Digest([8; 32]))),
        )
        .unwrap();
        drop(other);
        let err = SafetyFile::open(dir.path(), &Digest([8; 32]), key(1)).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::SafetyRecordMismatch { what: "chain", .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn memory_records_are_shared_by_clones() {
        let a = MemorySafety::new();
        let b = a.clone();
        a.put(&data(3)).unwrap();
        assert_eq!(b.get().unwrap(), Some(data(3)));
    }
}
