//! The admission log: the transactions this node acknowledged to clients, appended before the
//! acknowledgement leaves, replayed into the mempool at start. The mempool lives in memory, so
//! without it a transfer acknowledged and not yet gossiped or proposed would be lost with the
//! process.
//!
//! What survives what: an append is a `write` to the file, which the operating system keeps
//! when the process is killed; with `sync` each append is also `fdatasync`ed, so it survives
//! power loss too, at the cost of one disk sync per submission call.
//!
//! Layout: a header (magic, the chain's genesis hash), then records, each one batch of
//! transactions: length (`u32`, little endian), the first 4 bytes of the body's SHA-256, and
//! the body (postcard `Vec<SignedTransaction>`). Reading stops at the first record that is
//! torn or fails its digest (an append cut short by a crash: nothing was acknowledged for it).
//! The log is rewritten from the mempool's content (compacted) at start and whenever it grows
//! past its byte bound, so it holds what is pending, not the history.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use hotledger_crypto::Digest;
use hotledger_ledger::SignedTransaction;

use super::StorageError;

const MAGIC: &[u8; 8] = b"HLADMIT1";
const HEADER_BYTES: usize = MAGIC.len() + 32;
/// Largest record read back (a batch of the RPC's largest, 10,000 transactions of at most
/// 1 KiB, is about 10 MiB).
const MAX_RECORD_BYTES: usize = 64 << 20;
/// Transactions per record when the log is rewritten.
const REWRITE_BATCH: usize = 10_000;

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Every logged transaction, in log order (repeats and committed ones included: the
    /// mempool's admission sorts them out).
    pub txs: Vec<SignedTransaction>,
    /// A record cut short or failing its digest ended the reading (bytes after it ignored).
    pub torn_tail: bool,
    /// The file belonged to another chain and was ignored.
    pub other_chain: bool,
}

/// The open log.
#[derive(Debug)]
pub struct AdmissionLog {
    path: PathBuf,
    genesis: Digest,
    sync: bool,
    max_bytes: u64,
    file: Mutex<Open>,
}

#[derive(Debug)]
struct Open {
    file: File,
    bytes: u64,
}

impl AdmissionLog {
    /// Opens the log at `path` (creating its folder and the file), and returns what it holds.
    /// The file is left whole for appends: a torn tail is cut off, and a file of another chain
    /// (or none) starts again with just the header. The caller admits the replayed
    /// transactions and then calls [`AdmissionLog::rewrite`] with what the mempool holds, so
    /// the log does not keep growing across restarts.
    pub fn open(
        path: &Path,
        genesis: Digest,
        sync: bool,
        max_bytes: u64,
    ) -> Result<(AdmissionLog, Replay), StorageError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error(dir, "create the folder of"))?;
        }
        let (replay, whole) = match std::fs::read(path) {
            Ok(bytes) => read_log(&bytes, &genesis),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Replay::default(), 0),
            Err(e) => return Err(io_error(path, "read")(e)),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error(path, "open"))?;
        if whole < HEADER_BYTES {
            file.set_len(0).map_err(io_error(path, "truncate"))?;
            let mut header = Vec::with_capacity(HEADER_BYTES);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(genesis.as_bytes());
            file.write_all(&header).map_err(io_error(path, "write"))?;
        } else if replay.torn_tail {
            file.set_len(whole as u64)
                .map_err(io_error(path, "truncate"))?;
        }
        let bytes = file.metadata().map_err(io_error(path, "stat"))?.len();
        let log = AdmissionLog {
            path: path.to_path_buf(),
            genesis,
            sync,
            max_bytes,
            file: Mutex::new(Open { file, bytes }),
        };
        Ok((log, replay))
    }

    /// Appends `txs` (one record), synced when the log was opened so; returns once written.
    pub fn append(&self, txs: &[SignedTransaction]) -> Result<(), StorageError> {
        if txs.is_empty() {
            return Ok(());
        }
        let record = encode_record(txs)?;
        let mut open = self.lock()?;
        open.file
            .write_all(&record)
            .map_err(io_error(&self.path, "append to"))?;
        if self.sync {
            open.file
                .sync_data()
                .map_err(io_error(&self.path, "sync"))?;
        }
        open.bytes = open.bytes.saturating_add(record.len() as u64);
        Ok(())
    }

    /// Whether the log grew past its bound and should be rewritten.
    pub fn oversized(&self) -> Result<bool, StorageError> {
        Ok(self.lock()?.bytes > self.max_bytes)
    }

    /// Replaces the log with `pending` (the mempool's content), written to a new file that is
    /// synced and renamed over the old one, so a crash leaves one or the other whole.
    /// `pending` is called with the log's lock held: an append that comes after it lands in the
    /// new file, and a transaction admitted before it is in the mempool it lists.
    pub fn rewrite(
        &self,
        pending: impl FnOnce() -> Result<Vec<SignedTransaction>, StorageError>,
    ) -> Result<usize, StorageError> {
        let mut open = self.lock()?;
        let txs = pending()?;
        let tmp = self.path.with_extension("rewrite");
        let mut bytes = Vec::with_capacity(HEADER_BYTES);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(self.genesis.as_bytes());
        for chunk in txs.chunks(REWRITE_BATCH) {
            bytes.extend_from_slice(&encode_record(chunk)?);
        }
        {
            let mut file = File::create(&tmp).map_err(io_error(&tmp, "create"))?;
            file.write_all(&bytes).map_err(io_error(&tmp, "write"))?;
            file.sync_all().map_err(io_error(&tmp, "sync"))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io_error(&self.path, "replace"))?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_error(&self.path, "open"))?;
        *open = Open {
            file,
            bytes: bytes.len() as u64,
        };
        Ok(txs.len())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Open>, StorageError> {
        self.file.lock().map_err(|_| StorageError::Poisoned {
            what: "admission log",
        })
    }
}

fn encode_record(txs: &[SignedTransaction]) -> Result<Vec<u8>, StorageError> {
    let body = postcard::to_allocvec(txs).map_err(|source| StorageError::Unencodable {
        what: "admission log record",
        source,
    })?;
    let len = u32::try_from(body.len())
        .map_err(|_| StorageError::AdmissionRecordTooLarge { len: body.len() })?;
    let mut record = Vec::with_capacity(8 + body.len());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&Digest::of(&body).as_bytes()[..4]);
    record.extend_from_slice(&body);
    Ok(record)
}

/// The transactions of a log's bytes, up to the first record that does not verify, and how
/// many bytes from the start are whole (0 when the header is not this chain's).
fn read_log(bytes: &[u8], genesis: &Digest) -> (Replay, usize) {
    let mut replay = Replay::default();
    if bytes.is_empty() {
        return (replay, 0);
    }
    if bytes.len() < HEADER_BYTES
        || &bytes[..MAGIC.len()] != MAGIC
        || &bytes[MAGIC.len()..HEADER_BYTES] != genesis.as_bytes()
    {
        replay.other_chain = true;
        return (replay, 0);
    }
    let mut rest = &bytes[HEADER_BYTES..];
    while !rest.is_empty() {
        match next_record(&mut rest) {
            Some(txs) => replay.txs.extend(txs),
            None => {
                replay.torn_tail = true;
                break;
            }
        }
    }
    let whole = bytes.len().saturating_sub(if replay.torn_tail {
        // `rest` still starts at the record that failed.
        rest.len()
    } else {
        0
    });
    (replay, whole)
}

/// The next record of `rest`, advancing past it; `None` if it is cut short or damaged.
/// The next record of `rest`, advancing past it; `None` (and `rest` unchanged) if it is cut
/// short or damaged.
fn next_record(rest: &mut &[u8]) -> Option<Vec<SignedTransaction>> {
    let mut cursor = *rest;
    let mut head = [0u8; 8];
    cursor.read_exact(&mut head).ok()?;
    let len = usize::try_from(u32::from_le_bytes([head[0], head[1], head[2], head[3]])).ok()?;
    if len > MAX_RECORD_BYTES || cursor.len() < len {
        return None;
    }
    let (body, after) = cursor.split_at(len);
    if Digest::of(body).as_bytes()[..4] != head[4..8] {
        return None;
    }
    let (txs, trailing) = postcard::take_from_bytes::<Vec<SignedTransaction>>(body).ok()?;
    if !trailing.is_empty() {
        return None;
    }
    *rest = after;
    Some(txs)
}

fn io_error<'a>(path: &'a Path, op: &'static str) -> impl Fn(std::io::Error) -> StorageError + 'a {
    move |e| StorageError::AdmissionLogIo {
        path: path.to_path_buf(),
        op,
        kind: e.kind(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use hotledger_crypto::KeyPair;
    use hotledger_ledger::Transfer;

    use super::*;

    fn tx(nonce: u64) -> SignedTransaction {
        let key = KeyPair::from_seed([7; 32]);
        Transfer {
            from: key.public(),
            to: KeyPair::from_seed([8; 32]).public(),
            amount: 1,
            nonce,
        }
        .sign(&key, "admission-log-test")
    }

    fn genesis() -> Digest {
        Digest::of(b"admission log test genesis")
    }

    #[test]
    fn appended_batches_come_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mempool/admitted.log");
        let (log, replay) = AdmissionLog::open(&path, genesis(), false, 1 << 20).unwrap();
        assert!(replay.txs.is_empty() && !replay.torn_tail && !replay.other_chain);
        log.append(&[tx(0), tx(1)]).unwrap();
        log.append(&[]).unwrap();
        log.append(&[tx(2)]).unwrap();
        drop(log);
        let (_, replay) = AdmissionLog::open(&path, genesis(), true, 1 << 20).unwrap();
        assert_eq!(replay.txs, vec![tx(0), tx(1), tx(2)]);
        assert!(!replay.torn_tail);
    }

    /// An append cut short by a crash (or bytes damaged after it) ends the reading there;
    /// every whole record before it is kept.
    #[test]
    fn a_torn_or_damaged_tail_keeps_the_records_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admitted.log");
        let (log, _) = AdmissionLog::open(&path, genesis(), false, 1 << 20).unwrap();
        log.rewrite(|| Ok(Vec::new())).unwrap();
        log.append(&[tx(0)]).unwrap();
        log.append(&[tx(1)]).unwrap();
        drop(log);
        let whole = std::fs::read(&path).unwrap();
        for cut in [whole.len() - 1, whole.len() - 20] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let (_, replay) = AdmissionLog::open(&path, genesis(), false, 1 << 20).unwrap();
            assert_eq!(replay.txs, vec![tx(0)], "cut at {cut}");
            assert!(replay.torn_tail);
        }
        // Appends after a torn tail (cut off at open) are read back.
        std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
        let (log, _) = AdmissionLog::open(&path, genesis(), false, 1 << 20).unwrap();
        log.append(&[tx(2)]).unwrap();
        drop(log);
        let (_, replay) = AdmissionLog::open(&path, genesis(), false, 1 << 20).unwrap();
        assert_eq!(replay.txs, vec![tx(0), tx(2)]);
        assert!(!replay.torn_tail);
        let mut damaged = whole.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        let (_, replay) = AdmissionLog::open(&path, genesis(), false, 1 << 20).unwrap();
        assert_eq!(replay.txs, vec![tx(0)]);
        assert!(replay.torn_tail);
    }

    #[test]
    fn a_log_of_another_chain_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admitted.log");
        let (log, _) = AdmissionLog::open(&path, genesis(), false, 1 << 20).unwrap();
        log.rewrite(|| Ok(Vec::new())).unwrap();
        log.append(&[tx(0)]).unwrap();
        drop(log);
        let other = Digest::of(b"another chain");
        let (_, replay) = AdmissionLog::open(&path, other, false, 1 << 20).unwrap();
        assert!(replay.other_chain);
        assert!(replay.txs.is_empty());
    }

    /// A rewrite keeps only what it is given, and the log is small again.
    #[test]
    fn a_rewrite_replaces_the_history_with_the_pending_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admitted.log");
        let (log, _) = AdmissionLog::open(&path, genesis(), false, 400).unwrap();
        log.rewrite(|| Ok(Vec::new())).unwrap();
        for n in 0..10 {
            log.append(&[tx(n)]).unwrap();
        }
        assert!(log.oversized().unwrap());
        assert_eq!(log.rewrite(|| Ok(vec![tx(8), tx(9)])).unwrap(), 2);
        assert!(!log.oversized().unwrap());
        log.append(&[tx(10)]).unwrap();
        drop(log);
        let (_, replay) = AdmissionLog::open(&path, genesis(), false, 400).unwrap();
        assert_eq!(replay.txs, vec![tx(8), tx(9), tx(10)]);
    }
}
