//! The error type of the ledger crate (payload decoding, signatures, the state tree and its store).
//!
//! Per-transaction execution failures are not errors: they are [`crate::TxError`]s recorded in the
//! block's outcomes. Mempool refusals are [`crate::Rejection`]s.

use hotledger_crypto::{Digest, PublicKey};
use jmt::storage::NodeKey;

/// Everything that can go wrong in this crate outside of a single transaction's execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Bytes that are not a valid postcard encoding of the expected type.
    #[error("undecodable {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// What postcard reported.
        #[source]
        source: postcard::Error,
    },
    /// A node key too short to hold its version (8 bytes).
    #[error("a node key of {len} bytes")]
    ShortNodeKey {
        /// Its length.
        len: usize,
    },
    /// A value that could not be encoded (never expected for this crate's types).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// What postcard reported.
        #[source]
        source: postcard::Error,
    },
    /// A block payload longer than the local bound; rejected before decoding.
    #[error("payload too large: {got} bytes, max {max}")]
    PayloadTooLarge {
        /// The payload's length in bytes.
        got: usize,
        /// The local bound.
        max: usize,
    },
    /// A block payload announcing more transactions than the local bound.
    #[error("too many transactions: {got}, max {max}")]
    TooManyTxs {
        /// The count the payload announces.
        got: usize,
        /// The local bound.
        max: usize,
    },
    /// The payload decodes, but is not its canonical encoding (postcard also reads over-long
    /// varints): one payload has one encoding, so one block has one id.
    #[error("payload is not canonically encoded ({got} bytes, canonical {canonical})")]
    NonCanonical {
        /// The length received.
        got: usize,
        /// The length of the canonical encoding.
        canonical: usize,
    },
    /// Bytes left over after a complete payload.
    #[error("{count} trailing bytes after the payload")]
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
    },
    /// The payload's `txs_root` is not the Merkle root of its transaction hashes.
    #[error("txs root mismatch: payload says {claimed}, transactions give {computed}")]
    TxsRootMismatch {
        /// The root the payload carries.
        claimed: Digest,
        /// The root of its transactions.
        computed: Digest,
    },
    /// The same transaction twice in one payload.
    #[error("duplicate transaction {hash} in payload")]
    DuplicateTx {
        /// The transaction's hash.
        hash: Digest,
    },
    /// The transaction at `index` (of the verified slice) has an invalid signature.
    #[error("bad signature on transaction {index}")]
    BadSignature {
        /// Its position in the verified slice.
        index: usize,
    },
    /// A genesis document listing one account twice.
    #[error("account {key} listed twice in genesis")]
    DuplicateGenesisAccount {
        /// The account listed twice.
        key: PublicKey,
    },
    /// Genesis balances whose sum does not fit in a `u64`.
    #[error("total genesis supply overflows u64")]
    SupplyOverflow,
    /// A tree version (block height) that would overflow.
    #[error("tree version overflow after height {height}")]
    VersionOverflow {
        /// The last height.
        height: u64,
    },
    /// The tree has no root at this version (a height was skipped, or the store is behind).
    #[error("state tree has no version {version}")]
    MissingVersion {
        /// The version without a root.
        version: u64,
    },
    /// A version of the state tree recomputed from its committed values whose root is not the one
    /// its commit stored: the stored values or the accounts listed for the rebuild are wrong.
    #[error(
        "the state tree rebuilt at height {height} has root {rebuilt}, its commit stored {stored}"
    )]
    RootMismatch {
        /// The version rebuilt.
        height: u64,
        /// The root recomputed.
        rebuilt: Digest,
        /// The root the commit stored.
        stored: Digest,
    },
    /// A node the write of a tree version needs is neither stored nor held in memory.
    #[error("state-tree node {key:?} is not held")]
    NodeNotHeld {
        /// The node's key.
        key: NodeKey,
    },
    /// A node key written again with other content (a node key names one immutable node).
    #[error("conflicting state-tree node {key:?}")]
    ConflictingNode {
        /// The node's key.
        key: NodeKey,
    },
    /// A lock around in-memory state was poisoned (a thread panicked holding it).
    #[error("the {what} lock is poisoned")]
    Poisoned {
        /// What the lock guards.
        what: &'static str,
    },
    /// The Jellyfish Merkle tree failed (missing node, missing root for a version, bad proof).
    #[error("state tree error: {reason}")]
    Tree {
        /// jmt's error, with its context chain.
        reason: String,
    },
    /// A snapshot chunk depth above [`crate::root::MAX_CHUNK_DEPTH`].
    #[error("a snapshot chunk depth of {depth} bits is above the limit")]
    ChunkDepth {
        /// The depth asked for.
        depth: u8,
    },
    /// Accounts handed to a snapshot out of key order or repeated.
    #[error("snapshot accounts out of key order at {key}")]
    UnsortedAccounts {
        /// The first key out of order.
        key: Digest,
    },
    /// A snapshot chunk would hold more bytes than a chunk may.
    #[error("snapshot chunk {index} would hold {bytes} bytes, at most {max}")]
    ChunkTooLarge {
        /// The chunk.
        index: u32,
        /// Its bytes of keys and values.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A snapshot chunk that does not verify.
    #[error("snapshot chunk {index} is refused: {reason}")]
    BadChunk {
        /// The chunk.
        index: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The backing store failed.
    #[error("store error: {reason}")]
    Store {
        /// The store's error.
        reason: String,
    },
}

impl LedgerError {
    /// A postcard decoding error of a `what`, for `map_err`.
    pub(crate) fn decode(what: &'static str) -> impl Fn(postcard::Error) -> LedgerError {
        move |source| LedgerError::Decode { what, source }
    }

    /// A postcard encoding error of a `what`, for `map_err`.
    pub(crate) fn encode(what: &'static str) -> impl Fn(postcard::Error) -> LedgerError {
        move |source| LedgerError::Encode { what, source }
    }

    /// A jmt error, with its whole context chain.
    pub(crate) fn tree(err: anyhow::Error) -> LedgerError {
        LedgerError::Tree {
            reason: format!("{err:#}"),
        }
    }
}
