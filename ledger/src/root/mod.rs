//! The authenticated account state: a Jellyfish Merkle tree (jmt, SHA-256) over all accounts.
//!
//! # Keys, values and versions
//!
//! An account lives at `KeyHash = SHA-256(public key bytes)` ([`account_key_hash`]) with value
//! `postcard(Account)` ([`encode_account`], never empty). The tree version is the block height:
//! genesis is version 0 and the block at height `h` is applied as version `h` on top of version
//! `h - 1`, so heights must be applied consecutively. Accounts are never deleted.
//!
//! # Storing the tree in a key-value store
//!
//! [`compute_state_root`] returns a [`TreeUpdateBatch`] and writes nothing; its `node_batch`
//! holds the version's new values and new nodes. The values must be written in the same atomic
//! write batch as the block. The nodes can be rebuilt from the values, so a store may write them
//! later. This module owns that policy, and a store only maps it onto its own writes:
//!
//! * a [`NodeOverlay`] holds each committed version's nodes in memory until they are written;
//!   [`NodeOverlay::must_write`] says which commit writes them (every [`TREE_WRITE_EVERY`]th, or
//!   sooner once [`TREE_WRITE_NODES`] are held), and [`NodeOverlay::reachable`] lists the nodes
//!   that write must contain: those of the newest tree not written yet, without the ones a later
//!   version replaced in between;
//! * after a crash, the versions neither written nor held ([`NodeOverlay::behind`]) are
//!   recomputed one by one with [`rebuild_version`] from the committed values, and each root must
//!   equal the one its commit stored ([`LedgerError::RootMismatch`]).
//!
//! The node's RocksDB store and its in-memory store (`node/src/storage/`) both work this way and
//! read the tree through jmt's [`TreeReader`]. [`StateTree`] over a [`TreeStore`] such as
//! [`MemoryTreeStore`] instead writes every version's nodes at once; the ledger's tests use it as
//! the reference the overlay's roots must match.
//!
//! The layout (two column families):
//!
//! | what | key | value |
//! |---|---|---|
//! | nodes | [`encode_node_key`]: `version (u64 BE) ‖ postcard(nibble path)` | [`encode_node`]: `postcard(Node)` |
//! | values | [`encode_value_key`]: `key hash (32) ‖ version (u64 BE)` | the value bytes; empty for a deletion |
//!
//! `TreeReader::get_node_option` is a point lookup, decoded with [`decode_node`].
//! `TreeReader::get_value_option(max_version, key_hash)` is a reverse seek from
//! `encode_value_key(key_hash, max_version)`: the first entry whose first 32 bytes are the key
//! hash is the latest value at or below `max_version`. `get_rightmost_leaf` is only used by
//! jmt's state restore and may return `Ok(None)`. Nodes listed in `stale_node_index_batch` may be
//! deleted once no reader needs versions below their `stale_since_version`.

mod memory;
mod overlay;
mod proof;
mod rebuild;
mod snapshot;
mod stale;

pub use memory::{MemoryTree, MemoryTreeStore, StateTree};
pub use overlay::{NodeOverlay, TREE_WRITE_EVERY, TREE_WRITE_NODES};
pub use proof::{prove_account, verify_account_proof, AccountProof};
pub use rebuild::rebuild_version;
pub use snapshot::{
    build_snapshot, chunk_depth, chunk_of, snapshot_tree, subtree, verify_chunk, SnapshotChunk,
    Subtree, MAX_CHUNK_BYTES, MAX_CHUNK_DEPTH, TARGET_CHUNK_ACCOUNTS,
};
pub use stale::StaleSet;

use std::collections::BTreeMap;

use hotledger_crypto::{Digest, PublicKey};
use jmt::storage::{LeafNode, NibblePath, Node, NodeBatch, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Sha256Jmt, Version};

use crate::{Account, LedgerError};

/// Where an account lives in the tree: `SHA-256(public key bytes)`.
pub fn account_key_hash(key: &PublicKey) -> KeyHash {
    KeyHash::with::<sha2::Sha256>(key.as_bytes())
}

/// The tree value of an account: `postcard(Account)` (two varints, at least 2 bytes).
pub fn encode_account(account: &Account) -> Result<Vec<u8>, LedgerError> {
    postcard::to_allocvec(account).map_err(LedgerError::encode("account"))
}

/// Decodes [`encode_account`]'s output, rejecting trailing bytes.
pub fn decode_account(bytes: &[u8]) -> Result<Account, LedgerError> {
    decode_exact(bytes, "account")
}

/// `bytes` decoded as a `what`, with nothing left over.
fn decode_exact<'de, T: serde::Deserialize<'de>>(
    bytes: &'de [u8],
    what: &'static str,
) -> Result<T, LedgerError> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(LedgerError::decode(what))?;
    if !rest.is_empty() {
        return Err(LedgerError::TrailingBytes { count: rest.len() });
    }
    Ok(value)
}

/// Store key of a tree node: `version (u64 BE) ‖ postcard(nibble path)` (sorted by version, which
/// makes pruning old versions a range delete).
pub fn encode_node_key(key: &NodeKey) -> Result<Vec<u8>, LedgerError> {
    let version = key.version().to_be_bytes().to_vec();
    postcard::to_extend(key.nibble_path(), version).map_err(LedgerError::encode("node key"))
}

/// Inverse of [`encode_node_key`].
pub fn decode_node_key(bytes: &[u8]) -> Result<NodeKey, LedgerError> {
    let (version, path) = bytes
        .split_first_chunk::<8>()
        .ok_or(LedgerError::ShortNodeKey { len: bytes.len() })?;
    let path: NibblePath = decode_exact(path, "node key path")?;
    Ok(NodeKey::new(u64::from_be_bytes(*version), path))
}

/// Store value of a tree node: `postcard(Node)`.
pub fn encode_node(node: &Node) -> Result<Vec<u8>, LedgerError> {
    postcard::to_allocvec(node).map_err(LedgerError::encode("node"))
}

/// Inverse of [`encode_node`].
pub fn decode_node(bytes: &[u8]) -> Result<Node, LedgerError> {
    decode_exact(bytes, "node")
}

/// Store key of a value: `key hash (32) ‖ version (u64 BE)`.
pub fn encode_value_key(key_hash: &KeyHash, version: Version) -> [u8; 40] {
    let version = version.to_be_bytes();
    let mut out = [0u8; 40];
    for (dst, src) in out.iter_mut().zip(key_hash.0.iter().chain(&version)) {
        *dst = *src;
    }
    out
}

/// A tree store for [`StateTree`]: jmt's reader plus a fallible batch write of every node and
/// value of a version. [`MemoryTreeStore`] implements it in memory. The node's stores do not:
/// they write values with each commit and nodes through a [`NodeOverlay`].
pub trait TreeStore: TreeReader {
    /// Writes `batch`'s nodes and values, all or nothing.
    fn write_node_batch(&self, batch: &NodeBatch) -> Result<(), LedgerError>;
}

/// Computes the root after applying `updates` as version `height` on top of version
/// `height - 1` (read through `reader`), and the node batch to persist. Writes nothing.
/// Fails with [`LedgerError::MissingVersion`] if version `height - 1` is not in the store.
pub fn compute_state_root<R: TreeReader>(
    reader: &R,
    height: u64,
    updates: &BTreeMap<PublicKey, Account>,
) -> Result<(Digest, TreeUpdateBatch), LedgerError> {
    let mut set: Vec<(KeyHash, OwnedValue)> = Vec::with_capacity(updates.len());
    for (key, account) in updates {
        set.push((account_key_hash(key), encode_account(account)?));
    }
    let tree = Sha256Jmt::new(reader);
    // jmt treats a missing previous root as an empty tree: refuse to skip a height instead.
    if let Some(previous) = height.checked_sub(1) {
        if tree
            .get_root_hash_option(previous)
            .map_err(LedgerError::tree)?
            .is_none()
        {
            return Err(LedgerError::MissingVersion { version: previous });
        }
    }
    let (root, batch) = if set.is_empty() {
        // Nothing changed: jmt still writes the previous root again under this version.
        // (`batch_put_value_sets` refuses an empty set.)
        tree.put_value_set([], height).map_err(LedgerError::tree)?
    } else {
        // One pass over the sorted keys: every new node is built and hashed once. The per-key
        // `put_value_set` rebuilds and rehashes the whole path for each key, so an internal node
        // would be hashed once per changed key below it.
        let (roots, batch) = tree
            .batch_put_value_sets(vec![set], None, height)
            .map_err(LedgerError::tree)?;
        let root = roots.first().copied().ok_or(LedgerError::Tree {
            reason: "jmt returned no root for the block".into(),
        })?;
        (root, batch)
    };
    Ok((Digest(root.0), batch))
}

/// The genesis accounts (nonce 0). Rejects a key listed twice and a total supply above `u64::MAX`
/// (which also makes balance overflow impossible afterwards).
pub fn genesis_accounts(
    accounts: &[(PublicKey, u64)],
) -> Result<BTreeMap<PublicKey, Account>, LedgerError> {
    let mut map = BTreeMap::new();
    let mut supply: u64 = 0;
    for (key, balance) in accounts {
        supply = supply
            .checked_add(*balance)
            .ok_or(LedgerError::SupplyOverflow)?;
        let account = Account {
            balance: *balance,
            nonce: 0,
        };
        if map.insert(*key, account).is_some() {
            return Err(LedgerError::DuplicateGenesisAccount { key: *key });
        }
    }
    Ok(map)
}

/// The state root of the genesis accounts, as version 0 of an empty tree.
pub fn genesis_state_root(
    accounts: &[(PublicKey, u64)],
) -> Result<(Digest, TreeUpdateBatch), LedgerError> {
    compute_state_root(&EmptyTree, 0, &genesis_accounts(accounts)?)
}

/// A reader of the empty tree (nothing is stored before genesis).
struct EmptyTree;

impl TreeReader for EmptyTree {
    fn get_node_option(&self, _: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(None)
    }
    fn get_value_option(&self, _: Version, _: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        Ok(None)
    }
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(None)
    }
}
