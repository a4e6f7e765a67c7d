//! The storage error type. Every one is fatal to the node (see the module docs of
//! [`crate::storage`]).

use std::path::PathBuf;

use hotledger_crypto::Digest;
use hotledger_ledger::LedgerError;

/// What can go wrong in storage, each naming the column family, record or height at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// RocksDB could not open the folder.
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    /// A read or write failed.
    #[error("I/O on column family {cf}: {source}")]
    Io {
        cf: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    /// A synced write batch (which may span column families) failed.
    #[error("a synced write failed: {source}")]
    Write {
        #[source]
        source: rocksdb::Error,
    },
    /// Flushing the memtables failed.
    #[error("flushing the memtables failed: {source}")]
    Flush {
        #[source]
        source: rocksdb::Error,
    },
    /// A column family the schema has is not open.
    #[error("column family {cf} is missing")]
    MissingColumnFamily { cf: &'static str },
    /// A stored record that does not decode as the type its place holds.
    #[error("undecodable {what} in column family {cf}: {source}")]
    Undecodable {
        cf: &'static str,
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
    /// A stored record of a fixed size (a height, a digest) with another length.
    #[error("{what} in column family {cf} has {len} bytes")]
    BadLength {
        cf: &'static str,
        what: &'static str,
        len: usize,
    },
    /// A key that does not have the shape of its column family's keys.
    #[error("undecodable key of {len} bytes in column family {cf}")]
    UndecodableKey { cf: &'static str, len: usize },
    /// A value this build could not encode (never expected for the stored types).
    #[error("cannot encode {what}: {source}")]
    Unencodable {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
    /// A database written by a build of another schema version.
    #[error(
        "schema version {found}, this build reads {expected}; move the folder aside and start \
         again to sync the chain from the other validators"
    )]
    SchemaMismatch { found: u32, expected: u32 },
    /// A database created for another chain.
    #[error(
        "it belongs to genesis {found}, not {expected}; check the home's genesis file, or move \
         the folder aside to start this chain afresh"
    )]
    GenesisMismatch { found: String, expected: Digest },
    /// Blocks without the genesis record every initialised database has: damaged.
    #[error("it holds blocks but no genesis record; move the folder aside and start again")]
    HoldsBlocksWithoutGenesis,
    /// An initialised database without its commit tip: damaged.
    #[error("the commit tip is missing; move the folder aside and start again")]
    MissingTip,
    /// The state tree is recorded as written above the commit tip: damaged.
    #[error("the state tree is written up to height {written}, above the commit tip {tip}")]
    TreeAhead { written: u64, tip: u64 },
    /// A committed block whose body is not stored: damaged.
    #[error("committed block {id} at height {height} has no body")]
    MissingBody { height: u64, id: Digest },
    /// A committed height without its block: damaged.
    #[error("chunk {index} of the snapshot at height {height} is missing")]
    MissingChunk { height: u64, index: u32 },
    #[error("committed block at height {height} is missing")]
    MissingBlock { height: u64 },
    /// A committed block whose payload does not decode (read back to rebuild the state tree).
    #[error("committed block at height {height} has a bad payload: {source}")]
    UndecodablePayload {
        height: u64,
        #[source]
        source: LedgerError,
    },
    /// Reading or writing the safety record failed.
    #[error("cannot {op} the safety record {path}: {message}")]
    SafetyIo {
        path: PathBuf,
        op: &'static str,
        kind: std::io::ErrorKind,
        message: String,
    },
    /// Reading or writing the admission log failed.
    #[error("cannot {op} the admission log {path}: {message}")]
    AdmissionLogIo {
        path: PathBuf,
        op: &'static str,
        kind: std::io::ErrorKind,
        message: String,
    },
    /// A batch too large for one admission log record (never expected: batches are bounded).
    #[error("an admission log record of {len} bytes is too large to write")]
    AdmissionRecordTooLarge { len: usize },
    /// A safety record that belongs to another chain or validator key.
    #[error(
        "the safety record {path} is for {what} {found}, not {expected}; if the key was replaced \
         on purpose, move the record aside (the new key has signed nothing)"
    )]
    SafetyRecordMismatch {
        path: PathBuf,
        what: &'static str,
        found: String,
        expected: String,
    },
    /// Both slots of a safety record are written and neither verifies: the record is lost.
    #[error(
        "the safety record in {dir} is damaged (neither slot verifies); refusing to start, since \
         signing without it could sign twice in a round. Restore it, or move it aside only if \
         this validator is known not to have signed on this chain"
    )]
    SafetyRecordDamaged { dir: PathBuf },
    /// A safety record too large to write (never expected: a few KiB per hundred validators).
    #[error("a safety record of {len} bytes is too large to write")]
    SafetyRecordTooLarge { len: usize },
    /// A lock around in-memory state was poisoned (a thread panicked holding it).
    #[error("the {what} lock is poisoned")]
    Poisoned { what: &'static str },
    /// The state tree failed, or a rebuilt root differs from the stored one
    /// ([`LedgerError::RootMismatch`]).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl StorageError {
    /// An I/O error on column family `cf`, for `map_err`.
    pub(crate) fn io(cf: &'static str) -> impl Fn(rocksdb::Error) -> StorageError {
        move |source| StorageError::Io { cf, source }
    }
}
