//! The error type of the ledger crate (payload decoding, signatures, the state tree and its store).
//!
//! Per-transaction execution failures are not errors: they are [`crate::TxError`]s recorded in the
//! block's outcomes. Mempool refusals are [`crate::Rejection`]s.

use hotledger_crypto::{Digest, PublicKey};

/// Everything that can go wrong in this crate outside of a single transaction's execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Bytes that are not a valid postcard encoding of the expected type.
    #[error("decode error: {reason}")]
    Decode { reason: String },
    /// A value that could not be encoded (never expected for this crate's types).
    #[error("encode error: {reason}")]
    Encode { reason: String },
    /// A block payload longer than the local bound; rejected before decoding.
    #[error("payload too large: {got} bytes, max {max}")]
    PayloadTooLarge { got: usize, max: usize },
    /// A block payload announcing more transactions than the local bound.
    #[error("too many transactions: {got}, max {max}")]
    TooManyTxs { got: usize, max: usize },
    /// Bytes left over after a complete payload.
    #[error("{count} trailing bytes after the payload")]
    TrailingBytes { count: usize },
    /// The payload's `txs_root` is not the Merkle root of its transaction hashes.
    #[error("txs root mismatch: payload says {claimed}, transactions give {computed}")]
    TxsRootMismatch { claimed: Digest, computed: Digest },
    /// The same transaction twice in one payload.
    #[error("duplicate transaction {hash} in payload")]
    DuplicateTx { hash: Digest },
    /// The transaction at `index` (of the verified slice) has an invalid signature.
    #[error("bad signature on transaction {index}")]
    BadSignature { index: usize },
    /// A genesis document listing one account twice.
    #[error("account {key} listed twice in genesis")]
    DuplicateGenesisAccount { key: PublicKey },
    /// Genesis balances whose sum does not fit in a `u64`.
    #[error("total genesis supply overflows u64")]
    SupplyOverflow,
    /// A tree version (block height) that would overflow.
    #[error("tree version overflow after height {height}")]
    VersionOverflow { height: u64 },
    /// The tree has no root at this version (a height was skipped, or the store is behind).
    #[error("state tree has no version {version}")]
    MissingVersion { version: u64 },
    /// The Jellyfish Merkle tree failed (missing node, missing root for a version, bad proof).
    #[error("state tree error: {reason}")]
    Tree { reason: String },
    /// The backing store failed.
    #[error("store error: {reason}")]
    Store { reason: String },
}

impl LedgerError {
    pub(crate) fn decode(err: impl std::fmt::Display) -> LedgerError {
        LedgerError::Decode {
            reason: err.to_string(),
        }
    }

    /// A jmt error, with its whole context chain.
    pub(crate) fn tree(err: anyhow::Error) -> LedgerError {
        LedgerError::Tree {
            reason: format!("{err:#}"),
        }
    }
}
