//! The node's error type. `anyhow` is used only at the CLI's edge (`main.rs`).

use std::path::PathBuf;

/// What can go wrong in the daemon; each variant names the file, peer or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid configuration: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error(transparent)]
    Genesis(#[from] hotledger_genesis::GenesisError),
    #[error(transparent)]
    Crypto(#[from] hotledger_crypto::CryptoError),
    #[error("consensus: {0}")]
    Consensus(#[from] hotledger_consensus::ConsensusError),
    #[error("ledger: {0}")]
    Ledger(#[from] hotledger_ledger::LedgerError),
    /// Storage failed while running; fatal, the node stops.
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The database cannot be opened, belongs to another chain or schema, or is damaged: refuse
    /// to start. The message says what to do.
    #[error("database at {path} cannot be used: {source}")]
    Database {
        path: PathBuf,
        #[source]
        source: crate::storage::StorageError,
    },
    #[error("home {path}: {reason}")]
    Home { path: PathBuf, reason: String },
    #[error("network: {0}")]
    Network(String),
    /// A peer's frame that does not decode as a wire message.
    #[error("undecodable frame: {0}")]
    UndecodableFrame(postcard::Error),
    /// A peer's frame whose variant index is not written as one byte (an over-long varint).
    #[error("frame's variant index is not canonical (first byte {first:#04x})")]
    NonCanonicalFrame { first: u8 },
    /// A peer's frame with bytes after the message.
    #[error("frame has {count} bytes after the message")]
    TrailingBytes { count: usize },
    /// A consensus message from a peer that is not a validator (full nodes may only sync and
    /// send transactions).
    #[error("a consensus message from a peer that is not a validator")]
    ConsensusFromNonValidator,
    /// A frame of another kind than the queue it came in on carries.
    #[error("{got} in a {expected} frame")]
    MisroutedFrame {
        got: &'static str,
        expected: &'static str,
    },
    /// A message this node could not encode; it is not sent.
    #[error("cannot encode a {kind} message: {source}")]
    Unencodable {
        kind: &'static str,
        #[source]
        source: postcard::Error,
    },
    /// A lock whose holder panicked: the state behind it cannot be trusted, so the node stops.
    #[error("the {what} lock is poisoned (a thread panicked while holding it)")]
    Poisoned { what: &'static str },
    /// A block proven committed by a quorum's signatures that does not extend this node's
    /// committed tip: this node's chain is not the validators' (another network, or more than f
    /// Byzantine validators). It stops rather than follow either.
    #[error(
        "sync: the committed block at height {height} does not extend this node's tip {tip}; \
         this database is not on the validators' chain"
    )]
    SyncDiverged {
        height: u64,
        tip: hotledger_crypto::Digest,
    },
    #[error("rpc: {0}")]
    Rpc(String),
}
