//! The genesis document: its types, file I/O, hash and accessors.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hotledger_consensus::{BlockInfo, Config, Params, Validator, ValidatorSet};
use hotledger_crypto::{Digest, PublicKey};
use serde::{Deserialize, Serialize};

use crate::error::GenesisError;

/// The genesis document (`genesis.json`): everything every node of a chain must agree on before
/// the first block. Its [`hash`](Genesis::hash) is the id of the genesis block, so two nodes
/// with different documents can never certify each other's blocks.
///
/// Deserialization rejects unknown fields and malformed keys; [`Genesis::validate`] checks
/// everything else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Binds every signature to this chain: 1 to 64 bytes of `[a-z0-9-_.]`.
    pub chain_id: String,
    /// Timestamp of the genesis block, in milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Protocol parameters; omitted fields take their defaults.
    #[serde(default)]
    pub consensus: ConsensusParams,
    /// The validator set, in leader-schedule order.
    pub validators: Vec<GenesisValidator>,
    /// Initial balances; may be omitted (no accounts).
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
}

/// Protocol parameters shared by every validator of the chain: the consensus core's
/// [`Params`] plus block limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusParams {
    /// Round timeout before any backoff, in milliseconds (1..=600000; default 1000).
    pub base_timeout_ms: u64,
    /// The timeout doubles for each round without a certificate, up to
    /// `2^max_backoff_exponent` times (0..=16; default 6).
    pub max_backoff_exponent: u32,
    /// Most transactions in one block (at least 1; default 10000).
    pub max_block_txs: u32,
    /// Largest block payload in bytes (1..=64 MiB; default 4 MiB).
    pub max_block_bytes: u64,
    /// How far (ms) a block timestamp may run ahead of a receiver's clock (1..=3600000;
    /// default 10000).
    pub max_clock_skew_ms: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            base_timeout_ms: 1_000,
            max_backoff_exponent: 6,
            max_block_txs: 10_000,
            max_block_bytes: 4 * 1024 * 1024,
            max_clock_skew_ms: 10_000,
        }
    }
}

/// One validator: its consensus identity and how to reach its node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// Human-readable, unique name (1 to 64 characters), used in logs and error messages.
    pub name: String,
    /// The consensus key that signs proposals, votes and timeouts (hex in JSON).
    pub public_key: PublicKey,
    /// Voting power, at least 1.
    pub power: u64,
    /// The libp2p `PeerId` (base58) of the node's transport key, which is a different key from
    /// `public_key`. Unique across validators.
    pub peer_id: String,
    /// libp2p multiaddrs the node listens on, e.g. `/ip4/127.0.0.1/tcp/30000`. At least one.
    pub addresses: Vec<String>,
}

/// An account funded at genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// The account's key (hex in JSON); unique across accounts.
    pub public_key: PublicKey,
    /// Initial balance.
    pub balance: u64,
}

impl Genesis {
    /// Reads and parses a genesis file. It does **not** validate it: call
    /// [`Genesis::validate`] before using the document.
    ///
    /// Errors: [`GenesisError::Io`] if the file cannot be read; [`GenesisError::Json`] (with
    /// line and column) for malformed JSON, missing or unknown fields and malformed keys.
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let bytes = fs::read(path).map_err(|source| GenesisError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Genesis::from_json(&bytes, path)
    }

    /// Parses a genesis document from JSON bytes; `path` is only used in error messages.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Genesis, GenesisError> {
        serde_json::from_slice(bytes).map_err(|e| json_error(path, &e))
    }

    /// Writes the document as pretty-printed JSON. The file is written and synced under a
    /// temporary name in the same directory, then renamed over `path`, so a reader sees either
    /// the old file or the whole new one. Does not validate.
    pub fn save(&self, path: &Path) -> Result<(), GenesisError> {
        let io_err = |source: io::Error| GenesisError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| io_err(io::Error::other(e)))?;
        json.push(b'\n');
        write_atomically(path, &json).map_err(io_err)
    }

    /// The canonical encoding: compact JSON (`serde_json::to_vec`) of the document, fields in
    /// declaration order, keys as lowercase hex, defaults filled in. A file that omits
    /// `consensus` therefore has the same hash as one that spells out the defaults, while any
    /// change to a value (including whitespace inside a name) changes it.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        match serde_json::to_vec(self) {
            Ok(bytes) => bytes,
            // The document holds only strings, integers, vectors of structs and keys that
            // serialize as hex strings: there is no map with non-string keys and no fallible
            // `Serialize` impl, so serde_json cannot fail here.
            Err(e) => unreachable!("serializing a genesis document cannot fail: {e}"),
        }
    }

    /// SHA-256 of [`Genesis::canonical_bytes`]. This is the genesis block id, so it binds the
    /// chain to every field of the document.
    pub fn hash(&self) -> Digest {
        Digest::of(&self.canonical_bytes())
    }

    /// Sum of all account balances. [`Genesis::validate`] rejects documents where this
    /// overflows; on an unvalidated document the sum saturates at `u64::MAX`.
    pub fn total_supply(&self) -> u64 {
        self.accounts
            .iter()
            .fold(0u64, |sum, a| sum.saturating_add(a.balance))
    }

    /// Validates the document, then builds the consensus validator set (in document order).
    pub fn validator_set(&self) -> Result<ValidatorSet, GenesisError> {
        self.validate()?;
        let validators = self
            .validators
            .iter()
            .map(|v| Validator {
                key: v.public_key,
                power: v.power,
            })
            .collect();
        Ok(ValidatorSet::new(validators)?)
    }

    /// The genesis block: id [`Genesis::hash`], round 0, height 0, time `genesis_time_ms`.
    pub fn genesis_block(&self) -> BlockInfo {
        Config::genesis_block(self.hash(), self.genesis_time_ms)
    }

    /// The consensus core's parameters; `max_payload_bytes` is `max_block_bytes`.
    pub fn consensus_params(&self) -> Params {
        let c = &self.consensus;
        Params {
            base_timeout_ms: c.base_timeout_ms,
            max_backoff_exponent: c.max_backoff_exponent,
            // Validation bounds this to 64 MiB; saturate rather than wrap on 16-bit targets.
            max_payload_bytes: usize::try_from(c.max_block_bytes).unwrap_or(usize::MAX),
            max_clock_skew_ms: c.max_clock_skew_ms,
        }
    }

    /// The validator whose consensus key is `key`.
    pub fn validator_by_key(&self, key: &PublicKey) -> Option<&GenesisValidator> {
        self.validators.iter().find(|v| v.public_key == *key)
    }

    /// The validator whose libp2p peer id (base58) is `peer_id`.
    pub fn validator_by_peer(&self, peer_id: &str) -> Option<&GenesisValidator> {
        self.validators.iter().find(|v| v.peer_id == peer_id)
    }
}

/// Turns a serde_json error into [`GenesisError::Json`], moving the position out of the text.
fn json_error(path: &Path, e: &serde_json::Error) -> GenesisError {
    let (line, column) = (e.line(), e.column());
    let text = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let reason = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    GenesisError::Json {
        path: path.to_path_buf(),
        line,
        column,
        reason,
    }
}

/// Writes `data` to a fresh temporary file next to `path`, syncs it and renames it over `path`.
fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let (tmp, mut file) = create_temp(path)?;
    let result = (|| {
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: do not leave the temporary file behind.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename durable. Best effort: not every platform can sync a directory.
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Creates `.<name>.tmp.<pid>.<n>` next to `path`, never reusing an existing file.
fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "genesis.json".to_owned());
    let mut attempts = 0u32;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
