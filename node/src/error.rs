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
    /// RocksDB failed; storage errors are fatal.
    #[error("storage at {path}: {reason}")]
    Storage { path: PathBuf, reason: String },
    /// The database belongs to another chain, or is damaged: refuse to start.
    #[error("database at {path} cannot be used: {reason}")]
    Database { path: PathBuf, reason: String },
    #[error("home {path}: {reason}")]
    Home { path: PathBuf, reason: String },
    #[error("network: {0}")]
    Network(String),
    #[error("rpc: {0}")]
    Rpc(String),
}
