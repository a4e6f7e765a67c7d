//! The tree in memory: [`MemoryTree`] (plain maps), [`MemoryTreeStore`] (a [`TreeStore`] over
//! one) and [`StateTree`] (the state at one height of a [`TreeStore`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard};

use hotledger_crypto::{Digest, PublicKey};
use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, Sha256Jmt, Version};

use super::{
    account_key_hash, compute_state_root, decode_account, genesis_state_root, prove_account,
    AccountProof, TreeStore,
};
use crate::{Account, AccountReader, LedgerError};

/// A tree's written nodes and values in plain maps, with the lookups [`TreeReader`] needs. No
/// lock: [`MemoryTreeStore`] and the node's in-memory store wrap it in theirs.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    nodes: HashMap<NodeKey, Node>,
    values: BTreeMap<(KeyHash, Version), Option<OwnedValue>>,
}

impl MemoryTree {
    /// The node stored under `key`.
    pub fn node(&self, key: &NodeKey) -> Option<&Node> {
        self.nodes.get(key)
    }

    /// The latest value of `key_hash` at or below `max_version` (`None`: absent or deleted).
    pub fn value(&self, max_version: Version, key_hash: KeyHash) -> Option<&OwnedValue> {
        self.values
            .range((key_hash, 0)..=(key_hash, max_version))
            .next_back()
            .and_then(|(_, value)| value.as_ref())
    }

    /// The leaf with the greatest key hash, over all versions.
    pub fn rightmost_leaf(&self) -> Option<(NodeKey, LeafNode)> {
        self.nodes
            .iter()
            .filter_map(|(key, node)| match node {
                Node::Leaf(leaf) => Some((key.clone(), leaf.clone())),
                _ => None,
            })
            .max_by_key(|(_, leaf)| leaf.key_hash())
    }

    /// Number of stored nodes (all versions).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of stored values (all versions).
    pub fn value_count(&self) -> usize {
        self.values.len()
    }

    /// Deletes the node stored under `key`, if any (pruning: see [`super::StaleSet`]).
    pub fn remove_node(&mut self, key: &NodeKey) {
        self.nodes.remove(key);
    }

    /// Deletes the newest value of `key_hash` below `version`, if any: the one a value written
    /// at `version` replaced (pruning: see [`super::StaleSet`]; older ones went with the
    /// versions that replaced them).
    pub fn remove_value_below(&mut self, key_hash: KeyHash, version: Version) {
        let Some(end) = version.checked_sub(1) else {
            return;
        };
        let old = self
            .values
            .range((key_hash, 0)..=(key_hash, end))
            .next_back()
            .map(|(k, _)| *k);
        if let Some(old) = old {
            self.values.remove(&old);
        }
    }

    /// Stores `batch`'s values (not its nodes).
    pub fn put_values(&mut self, batch: &NodeBatch) {
        for ((version, key_hash), value) in batch.values() {
            self.values.insert((*key_hash, *version), value.clone());
        }
    }

    /// Stores one node. A node key names one immutable node, so rewriting it with other content
    /// is [`LedgerError::ConflictingNode`], and nothing is stored.
    pub fn put_node(&mut self, key: NodeKey, node: Node) -> Result<(), LedgerError> {
        self.check_node(&key, &node)?;
        self.nodes.insert(key, node);
        Ok(())
    }

    fn check_node(&self, key: &NodeKey, node: &Node) -> Result<(), LedgerError> {
        match self.nodes.get(key) {
            Some(old) if old != node => Err(LedgerError::ConflictingNode { key: key.clone() }),
            _ => Ok(()),
        }
    }

    /// Stores `batch`'s nodes and values, all or nothing (see [`MemoryTree::put_node`]).
    pub fn put_batch(&mut self, batch: &NodeBatch) -> Result<(), LedgerError> {
        for (key, node) in batch.nodes() {
            self.check_node(key, node)?;
        }
        for (key, node) in batch.nodes() {
            self.nodes.insert(key.clone(), node.clone());
        }
        self.put_values(batch);
        Ok(())
    }
}

impl TreeReader for MemoryTree {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.node(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.value(max_version, key_hash).cloned())
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(self.rightmost_leaf())
    }
}

/// An in-memory [`TreeStore`] that writes every version's nodes: the reference for tests.
#[derive(Debug, Default)]
pub struct MemoryTreeStore {
    inner: RwLock<MemoryTree>,
}

impl MemoryTreeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored nodes (all versions).
    pub fn node_count(&self) -> Result<usize, LedgerError> {
        Ok(self.read()?.node_count())
    }

    /// Stores `batch`'s values only, as a store does with each commit before its nodes are due.
    pub fn write_values(&self, batch: &NodeBatch) -> Result<(), LedgerError> {
        self.write()?.put_values(batch);
        Ok(())
    }

    /// Stores nodes only (see [`MemoryTree::put_node`]).
    pub fn write_nodes<'n>(
        &self,
        nodes: impl IntoIterator<Item = (NodeKey, &'n Node)>,
    ) -> Result<(), LedgerError> {
        let mut inner = self.write()?;
        for (key, node) in nodes {
            inner.put_node(key, node.clone())?;
        }
        Ok(())
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, MemoryTree>, LedgerError> {
        self.inner.read().map_err(|_| LedgerError::Poisoned {
            what: "memory tree store",
        })
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, MemoryTree>, LedgerError> {
        self.inner.write().map_err(|_| LedgerError::Poisoned {
            what: "memory tree store",
        })
    }
}

impl TreeReader for MemoryTreeStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.read()?.node(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.read()?.value(max_version, key_hash).cloned())
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(self.read()?.rightmost_leaf())
    }
}

impl TreeStore for MemoryTreeStore {
    /// Writes all or nothing; rewriting a node with different content is
    /// [`LedgerError::ConflictingNode`].
    fn write_node_batch(&self, batch: &NodeBatch) -> Result<(), LedgerError> {
        self.write()?.put_batch(batch)
    }
}

/// The state at one committed height of a [`TreeStore`]: reads accounts, proves them, and
/// applies the next height.
#[derive(Debug)]
pub struct StateTree<'a, S> {
    store: &'a S,
    height: u64,
}

impl<'a, S: TreeStore> StateTree<'a, S> {
    /// The state at `height` (which must have been written to `store`).
    pub fn open(store: &'a S, height: u64) -> Self {
        StateTree { store, height }
    }

    /// Writes the genesis accounts as version 0 and returns the tree at height 0 and its root.
    pub fn genesis(
        store: &'a S,
        accounts: &[(PublicKey, u64)],
    ) -> Result<(Self, Digest), LedgerError> {
        let (root, batch) = genesis_state_root(accounts)?;
        store.write_node_batch(&batch.node_batch)?;
        Ok((StateTree { store, height: 0 }, root))
    }

    /// The height (tree version) this state is at.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The root at this height.
    pub fn root(&self) -> Result<Digest, LedgerError> {
        let root = Sha256Jmt::new(self.store)
            .get_root_hash(self.height)
            .map_err(LedgerError::tree)?;
        Ok(Digest(root.0))
    }

    /// Applies `updates` as the next height, writes the nodes and returns the new root.
    pub fn apply(&mut self, updates: &BTreeMap<PublicKey, Account>) -> Result<Digest, LedgerError> {
        let next = self
            .height
            .checked_add(1)
            .ok_or(LedgerError::VersionOverflow {
                height: self.height,
            })?;
        let (root, batch) = compute_state_root(self.store, next, updates)?;
        self.store.write_node_batch(&batch.node_batch)?;
        self.height = next;
        Ok(root)
    }

    /// [`prove_account`] at this height.
    pub fn prove(&self, key: &PublicKey) -> Result<(Option<Account>, AccountProof), LedgerError> {
        prove_account(self.store, self.height, key)
    }
}

impl<S: TreeStore> AccountReader for StateTree<'_, S> {
    fn account(&self, key: &PublicKey) -> Result<Option<Account>, LedgerError> {
        let value = self
            .store
            .get_value_option(self.height, account_key_hash(key))
            .map_err(LedgerError::tree)?;
        value.as_deref().map(decode_account).transpose()
    }
}
