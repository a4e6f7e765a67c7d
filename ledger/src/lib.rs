//! The hotledger ledger: signed transfers, block payloads, deterministic execution, the
//! authenticated state root and the mempool. A pure crate: no I/O, no clock, no async.
//!
//! # Accounts and transfers
//!
//! The state maps an Ed25519 [`PublicKey`](hotledger_crypto::PublicKey) to an [`Account`]
//! `{ balance: u64, nonce: u64 }`, where `nonce` is the next nonce the account must use. An
//! account exists once it is in genesis or has received funds; there are no fees and accounts
//! are never deleted.
//!
//! A [`Transfer`] `{ from, to, amount, nonce }` is signed by `from` over the explicit 80 bytes
//! `from ‖ to ‖ amount (u64 BE) ‖ nonce (u64 BE)` under `Domain::Transaction` and the chain id
//! ([`Transfer::signing_bytes`]), so it cannot be replayed on another chain or as a consensus
//! message. Its hash is `SHA-256("hotledger/tx/v1" ‖ signing bytes)`
//! ([`SignedTransaction::hash`]); it does not cover the signature, so a malleated signature
//! never makes a second transaction out of one transfer.
//!
//! # Ledger rules and execution order
//!
//! [`execute`] applies a block's transactions strictly in payload order, each seeing the
//! effects of the ones before it. A transaction applies iff, checked in this order:
//!
//! 1. `amount > 0` ([`TxError::ZeroAmount`]) and `from != to` ([`TxError::SelfTransfer`]);
//! 2. `from` has an account ([`TxError::UnknownSender`]);
//! 3. `nonce` equals the sender's account nonce ([`TxError::BadNonce`]), so each transfer
//!    applies at most once and a sender's transfers apply in nonce order;
//! 4. `amount <= balance` ([`TxError::InsufficientBalance`]);
//! 5. neither the recipient's balance nor the sender's nonce overflows ([`TxError::Overflow`]).
//!
//! An applied transfer moves `amount` from sender to recipient (creating the recipient's
//! account with nonce 0 if needed) and increments the sender's nonce. A failing transaction
//! changes nothing at all, not even the nonce, and is recorded as [`TxOutcome::Failed`]: the
//! block stays valid, and every node records the same outcomes because execution depends only
//! on the previous state and the payload. Signatures are not checked by [`execute`]: the node
//! verifies each transaction once, on admission to its mempool or on receipt of a proposal
//! (batch-verified with [`verify_transactions`], skipping those [`Mempool::verified`] says it
//! checked before: pending with the same signature bytes, or noted from an earlier payload
//! check).
//!
//! # Supply invariant
//!
//! The total supply (sum of all balances) is fixed at genesis and never changes: an applied
//! transfer subtracts `amount` from one balance and adds the same `amount` to another, a failed
//! one changes nothing, and all arithmetic is checked. [`genesis_accounts`] rejects a genesis
//! whose supply exceeds `u64::MAX`, so with a valid genesis no balance can overflow. A property
//! test checks the invariant over random transaction sequences.
//!
//! # State root
//!
//! The state is authenticated by a Jellyfish Merkle tree ([`jmt`], SHA-256) keyed by
//! `SHA-256(public key)` with value `postcard(Account)`; its root depends only on the set of
//! accounts, not on the order or history of updates. Genesis is version 0 and the block at
//! height `h` is version `h`: [`compute_state_root`] applies an [`Execution`]'s updates on top
//! of version `h - 1` and returns the root and the batch of new values and nodes. The node writes
//! the values (the accounts) atomically with the block; the nodes are derived data, held in a
//! [`NodeOverlay`] and written every [`TREE_WRITE_EVERY`] commits, and a crash's lost versions are
//! recomputed from the values with [`rebuild_version`] ([`root`] documents the policy and the
//! key-value layout). [`prove_account`] and [`verify_account_proof`] give and
//! check account proofs for queries.
//!
//! A [`BlockPayload`] carries a *lagging* commitment: the proposer's last committed height and
//! its state root (`state_height`, `state_root`), plus `txs_root`, the
//! [`merkle_root`](hotledger_crypto::merkle_root) of the transaction hashes. A voter that has
//! executed `state_height` checks the root; [`BlockPayload::decode`] bounds the size and count
//! and rejects duplicates and a wrong `txs_root` before anything else looks at a payload.
//!
//! # Mempool admission rules
//!
//! Admission has three steps: [`Mempool::screen`] runs every check that needs no signature,
//! [`Screened::verify`] checks the signatures of the transactions that passed (one batch, and
//! needing no lock on the mempool), and [`Mempool::admit_verified`] runs the screen's checks
//! again, since the state or the mempool may have changed in between, and inserts. So a
//! transaction the mempool would refuse anyway costs no signature check.
//! [`Mempool::insert_batch`] is the three in one call. The checks, in the order they run:
//!
//! 1. its encoding is at most `max_tx_bytes` ([`Rejection::Oversized`]) and its hash is not
//!    already held ([`Rejection::Duplicate`]);
//! 2. `amount > 0` and `from != to` ([`Rejection::ZeroAmount`], [`Rejection::SelfTransfer`]);
//! 3. the mempool has room: fewer than `max_txs` held and at most `max_bytes` with this one, and
//!    a client's submission ([`Origin::Client`]) may not take the last `peer_reserve` slots,
//!    which are kept for transactions other validators gossip ([`Rejection::MempoolFull`];
//!    nothing is evicted, so a full mempool does not grow);
//! 4. the sender has a committed account ([`Rejection::UnknownSender`]),
//!    `account nonce <= nonce <= account nonce + max_nonce_gap` ([`Rejection::StaleNonce`],
//!    [`Rejection::NonceTooFarAhead`]) and `amount <= balance`
//!    ([`Rejection::InsufficientBalance`]);
//! 5. against the sender's pending transactions: none has this nonce
//!    ([`Rejection::DuplicateNonce`]), fewer than `max_per_sender` are pending
//!    ([`Rejection::SenderQueueFull`]), once no more than `ready_reserve` slots are free it can
//!    execute without a gap (its nonce is the sender's committed nonce plus its consecutive
//!    pending ones, counting the batch's earlier transactions: [`Rejection::NonceGap`], so
//!    transfers that cannot execute yet never take the whole mempool), and the committed
//!    balance covers the sum of all its pending amounts with this one
//!    ([`Rejection::InsufficientBalance`]);
//! 6. its signature is valid ([`Rejection::BadSignature`]), checked in [`Screened::verify`]
//!    unless this node already checked the same hash and signature bytes in a proposal's
//!    payload check ([`Mempool::note_verified`]).
//!
//! A failed account read refuses the transaction with [`Rejection::State`].
//!
//! [`Mempool::select`] fills a proposal in arrival order with, per sender, only consecutive
//! nonces from the committed nonce that the committed balance covers, skipping transactions
//! already in uncommitted ancestors. [`Mempool::remove_committed`] drops committed
//! transactions and those made stale (or unaffordable) by the new state.

#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub mod mempool;
pub mod payload;
pub mod root;
pub mod state;
pub mod tx;

pub use error::LedgerError;
pub use mempool::{
    Eviction, Mempool, MempoolLimits, Origin, Rejection, Screened, Verified, GAP_SWEEP_MS,
};
pub use payload::{txs_root, BlockPayload};
pub use root::{
    account_key_hash, compute_state_root, decode_account, decode_node, decode_node_key,
    encode_account, encode_node, encode_node_key, encode_value_key, genesis_accounts,
    genesis_state_root, prove_account, rebuild_version, verify_account_proof, AccountProof,
    MemoryTree, MemoryTreeStore, NodeOverlay, StaleSet, StateTree, TreeStore, TREE_WRITE_EVERY,
    TREE_WRITE_NODES,
};
pub use root::{
    build_snapshot, chunk_depth, snapshot_tree, verify_chunk, SnapshotChunk, Subtree,
    MAX_CHUNK_BYTES, MAX_CHUNK_DEPTH,
};
pub use state::{execute, Account, AccountReader, Execution, Overlay, TxError, TxOutcome};
pub use tx::{verify_transactions, SignedTransaction, Transfer};

/// The jmt crate, re-exported so the node names the same storage types.
pub use jmt;
