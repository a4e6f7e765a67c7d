//! The state tree in RocksDB: values written with each commit, nodes through the ledger's
//! [`NodeOverlay`] (held in memory, written when its policy says), and the rebuild after a crash.

use std::collections::BTreeMap;
use std::sync::MutexGuard;

use hotledger_consensus::Block;
use hotledger_crypto::PublicKey;
use hotledger_ledger::{
    decode_node, encode_node, encode_node_key, encode_value_key, rebuild_version, Account,
    AccountReader, LedgerError, NodeOverlay, StaleSet,
};
use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Version};
use rocksdb::WriteBatch;

use super::{encode, ChainStore, StorageError, Store};

impl Store {
    /// The state-tree overlay.
    pub(super) fn overlay(&self) -> Result<MutexGuard<'_, NodeOverlay>, StorageError> {
        self.tree.lock().map_err(|_| StorageError::Poisoned {
            what: "state-tree overlay",
        })
    }

    /// Puts into `batch` the tree values of `tree` (every commit writes them).
    pub(super) fn put_values(
        &self,
        batch: &mut WriteBatch,
        tree: &TreeUpdateBatch,
    ) -> Result<(), StorageError> {
        let values = self.cf("tree_values")?;
        for ((version, key_hash), value) in tree.node_batch.values() {
            let v: &[u8] = value.as_deref().unwrap_or(&[]);
            batch.put_cf(values, encode_value_key(key_hash, *version), v);
        }
        Ok(())
    }

    /// If `force` or the overlay's policy says the commit of `height` (whose nodes are
    /// `newest`) writes the tree, puts that write into `batch` and returns true.
    pub(super) fn put_due_tree_write(
        &self,
        batch: &mut WriteBatch,
        height: Version,
        newest: &NodeBatch,
        force: bool,
    ) -> Result<bool, StorageError> {
        let tree = self.overlay()?;
        if !force && !tree.must_write(height, newest.nodes().len()) {
            return Ok(false);
        }
        self.put_tree_write(batch, &tree, height, Some(newest))?;
        Ok(true)
    }

    /// Puts into `batch` the unwritten nodes of the tree of `version` (held in `tree`, or in
    /// `pending`: that version's batch, not held yet) and `version` as the written tree version.
    fn put_tree_write(
        &self,
        batch: &mut WriteBatch,
        tree: &NodeOverlay,
        version: Version,
        pending: Option<&NodeBatch>,
    ) -> Result<(), StorageError> {
        let nodes = self.cf("tree_nodes")?;
        for (key, node) in tree.reachable(version, pending)? {
            batch.put_cf(nodes, encode_node_key(&key)?, encode_node(node)?);
        }
        batch.put_cf(
            self.cf("meta")?,
            b"tree_version",
            encode(&version, "tree version")?,
        );
        Ok(())
    }

    /// Holds version `height`'s nodes after its commit; `written`: that commit wrote the tree.
    pub(super) fn hold_tree(
        &self,
        height: Version,
        nodes: NodeBatch,
        written: bool,
    ) -> Result<(), StorageError> {
        let released = {
            let mut tree = self.overlay()?;
            tree.add(height, nodes);
            if written {
                tree.mark_written(height)
            } else {
                BTreeMap::new()
            }
        };
        // Freed after the lock is released (thousands of nodes), so a state-root reader on
        // another thread never waits for it.
        drop(released);
        Ok(())
    }

    /// Writes the held nodes of the newest version, if any are unwritten (synced).
    pub(super) fn write_held_tree(&self) -> Result<(), StorageError> {
        let released = {
            let mut tree = self.overlay()?;
            let newest = tree.newest();
            if newest <= tree.written() {
                return Ok(());
            }
            let mut batch = WriteBatch::default();
            self.put_tree_write(&mut batch, &tree, newest, None)?;
            self.sync_write(batch)?;
            tree.mark_written(newest)
        };
        drop(released);
        Ok(())
    }

    /// Puts into `batch` the deletion of what version `height` made stale (its [`StaleSet`]):
    /// the nodes it replaced, the value each account it wrote had below it, and the set itself.
    pub(super) fn put_stale_deletes(
        &self,
        batch: &mut WriteBatch,
        height: Version,
    ) -> Result<(), StorageError> {
        let cf = self.cf("tree_stale")?;
        let Some(bytes) = self.get_raw("tree_stale", &height.to_be_bytes())? else {
            return Ok(());
        };
        let stale = StaleSet::decode(&bytes)?;
        let nodes = self.cf("tree_nodes")?;
        for key in &stale.nodes {
            batch.delete_cf(nodes, encode_node_key(key)?);
        }
        if let Some(below) = height.checked_sub(1) {
            let values = self.cf("tree_values")?;
            let mut it = self.db.raw_iterator_cf(values);
            for key_hash in &stale.keys {
                it.seek_for_prev(encode_value_key(key_hash, below));
                if let Some(k) = it.key().filter(|k| k.len() == 40 && k[..32] == key_hash.0) {
                    batch.delete_cf(values, k);
                }
            }
            it.status().map_err(StorageError::io("tree_values"))?;
        }
        batch.delete_cf(cf, height.to_be_bytes());
        Ok(())
    }

    /// The latest stored value of `key_hash` at or below `max_version`: a reverse seek from
    /// `encode_value_key(key_hash, max_version)`.
    pub(super) fn value(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> Result<Option<OwnedValue>, StorageError> {
        let mut it = self.db.raw_iterator_cf(self.cf("tree_values")?);
        it.seek_for_prev(encode_value_key(&key_hash, max_version));
        if it.valid() {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                if k.len() == 40 && k[..32] == key_hash.0 {
                    return Ok(if v.is_empty() { None } else { Some(v.to_vec()) });
                }
            }
        }
        it.status().map_err(StorageError::io("tree_values"))?;
        Ok(None)
    }

    /// A node from the overlay, or else from `tree_nodes`.
    fn node(&self, node_key: &NodeKey) -> Result<Option<Node>, StorageError> {
        // The batch is shared out of the lock, so the lookup runs without it.
        let held = self.overlay()?.batch(node_key.version());
        if let Some(node) = held.as_ref().and_then(|batch| batch.get_node(node_key)) {
            return Ok(Some(node.clone()));
        }
        let stored = self.get_raw("tree_nodes", &encode_node_key(node_key)?)?;
        Ok(stored.as_deref().map(decode_node).transpose()?)
    }
}

/// The rebuild loop of every [`ChainStore`]: for each height of `tree_behind`, the committed
/// block, the accounts it touched, [`rebuild_version`] against the stored root, and `hold` of
/// the nodes. Returns the heights rebuilt.
pub(super) fn rebuild<S: ChainStore>(
    store: &S,
    mut touched: impl FnMut(&Block) -> Result<Vec<PublicKey>, StorageError>,
    hold: impl Fn(Version, NodeBatch) -> Result<(), StorageError>,
) -> Result<u64, StorageError> {
    let mut rebuilt = 0u64;
    for height in store.tree_behind()? {
        let stored = store
            .block_by_height(height)?
            .ok_or(StorageError::MissingBlock { height })?;
        let keys = touched(&stored.block)?;
        let nodes = rebuild_version(store, height, &keys, &stored.state_root)?;
        hold(height, nodes)?;
        rebuilt = rebuilt.saturating_add(1);
    }
    Ok(rebuilt)
}

impl AccountReader for Store {
    fn account(&self, key: &PublicKey) -> Result<Option<Account>, LedgerError> {
        Store::account(self, key).map_err(|e| LedgerError::Store {
            reason: e.to_string(),
        })
    }
}

impl TreeReader for Store {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.node(node_key)?)
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.value(max_version, key_hash)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(None) // only used by jmt's state restore, which hotledger does not use
    }
}
