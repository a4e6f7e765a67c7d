//! [`MemoryStore`]: the chain in memory, with a model of what a crash keeps, for the
//! deterministic simulator and the storage tests.
//!
//! Durability follows [`Store`](super::Store)'s: every write but
//! [`ChainStore::put_uncommitted`] and a commit that is not [`BlockWrite::durable`] is synced,
//! and a synced write also makes durable the unsynced writes before it (RocksDB's single WAL,
//! replayed in order). [`MemoryStore::crash`] keeps exactly that, and, like a process's memory,
//! loses the state-tree nodes the overlay held unwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};

use hotledger_consensus::Block;
use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::{
    account_key_hash, decode_account, Account, AccountReader, LedgerError, MemoryTree, NodeOverlay,
    StaleSet,
};
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Version};

use super::tree::rebuild;
use super::{
    BlockWrite, ChainStore, CommitTip, RestoreAnchor, SnapshotManifest, StorageError, StoredBlock,
    TxRecord,
};
use hotledger_ledger::SnapshotChunk;

/// An in-memory [`ChainStore`]. Clones share one state.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

/// A body's place: height, then id (the order of `bodies` in RocksDB).
type BodyKey = (u64, Digest);

#[derive(Clone, Debug, Default)]
struct State {
    genesis: Option<Digest>,
    genesis_root: Option<Digest>,
    tip: Option<CommitTip>,
    /// Committed bodies, and uncommitted ones above the tip.
    bodies: BTreeMap<BodyKey, Block>,
    /// Committed heights: block id and state root after it.
    blocks: BTreeMap<u64, (Digest, Digest)>,
    block_ids: BTreeMap<Digest, u64>,
    txs: BTreeMap<Digest, TxRecord>,
    /// The written tree: every version's values, and the nodes of written versions.
    tree: MemoryTree,
    overlay: NodeOverlay,
    /// Bodies stored since the last synced write: a crash loses them.
    unsynced: BTreeSet<BodyKey>,
    /// The lowest height not pruned (0: never pruned, i.e. 1).
    earliest: u64,
    snapshots: BTreeMap<u64, SnapshotManifest>,
    chunks: BTreeMap<(u64, u32), SnapshotChunk>,
    restore: Option<RestoreAnchor>,
    history: BTreeMap<u64, Block>,
    /// What each committed version made stale in `tree` (see [`StaleSet`]).
    stale: BTreeMap<u64, StaleSet>,
    /// The state as of the last synced write, kept while commits written unsynced
    /// ([`BlockWrite::durable`] false) follow it: a crash returns to it.
    durable: Option<Box<State>>,
}

impl State {
    /// Deletes the snapshot at `height`: its manifest and its chunks.
    fn remove_snapshot(&mut self, height: u64) {
        self.snapshots.remove(&height);
        let held: Vec<(u64, u32)> = self
            .chunks
            .range((height, 0)..=(height, u32::MAX))
            .map(|(k, _)| *k)
            .collect();
        for key in held {
            self.chunks.remove(&key);
        }
    }

    fn committed_height(&self) -> u64 {
        self.tip.as_ref().map_or(0, |t| t.block.height)
    }

    /// The keys of the uncommitted bodies from the tip up to `height` (all of them: `u64::MAX`).
    fn uncommitted_up_to(&self, height: u64) -> Vec<BodyKey> {
        let first = (self.committed_height().saturating_add(1), Digest([0; 32]));
        let last = (height, Digest([0xff; 32]));
        if first > last {
            return Vec::new();
        }
        self.bodies.range(first..=last).map(|(k, _)| *k).collect()
    }

    /// A synced write: every earlier write is now durable.
    fn synced(&mut self) {
        self.unsynced.clear();
        self.durable = None;
    }

    /// Writes the tree of `version`'s unwritten nodes (`pending`: its batch, not held yet).
    fn write_tree(
        &mut self,
        version: Version,
        pending: Option<&jmt::storage::NodeBatch>,
    ) -> Result<(), StorageError> {
        let State { tree, overlay, .. } = self;
        for (key, node) in overlay.reachable(version, pending)? {
            tree.put_node(key, node.clone())?;
        }
        Ok(())
    }
}

impl MemoryStore {
    /// An empty store (fresh: [`ChainStore::is_fresh`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new store holding only what survives a process crash now: everything written by a
    /// synced write, and the unsynced writes made before the last synced one, but not those
    /// after it, nor the state-tree nodes held unwritten. Its [`ChainStore::tree_behind`] is
    /// then the versions whose nodes were lost, for [`ChainStore::rebuild_tree`] to recompute.
    ///
    /// A crash ends every thread, so a poisoned lock does not stop this one: no method panics
    /// while holding it, and the state it guards is what the crashed process last wrote.
    pub fn crash(&self) -> MemoryStore {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(synced) = state.durable.take() {
            state = *synced;
        }
        for key in std::mem::take(&mut state.unsynced) {
            state.bodies.remove(&key);
        }
        state.overlay = NodeOverlay::new(state.overlay.written());
        MemoryStore {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StorageError> {
        self.state.lock().map_err(|_| StorageError::Poisoned {
            what: "memory store",
        })
    }
}

impl ChainStore for MemoryStore {
    fn earliest(&self) -> Result<u64, StorageError> {
        Ok(self.lock()?.earliest.max(1))
    }

    fn prune(&self, below: u64, max: u64) -> Result<u64, StorageError> {
        let mut s = self.lock()?;
        let earliest = s.earliest.max(1);
        let end = below
            .min(s.committed_height())
            .min(earliest.saturating_add(max));
        if end <= earliest {
            return Ok(earliest);
        }
        let written = s.overlay.written();
        for height in earliest..end {
            if height <= written {
                if let Some(stale) = s.stale.remove(&height) {
                    for node in &stale.nodes {
                        s.tree.remove_node(node);
                    }
                    for key in &stale.keys {
                        s.tree.remove_value_below(*key, height);
                    }
                }
            }
            let Some((id, _)) = s.blocks.remove(&height) else {
                continue;
            };
            s.block_ids.remove(&id);
            if let Some(block) = s.bodies.remove(&(height, id)) {
                for hash in super::tx_hashes(&block) {
                    if s.txs.get(&hash).is_some_and(|r| r.height == height) {
                        s.txs.remove(&hash);
                    }
                }
            }
        }
        s.earliest = end;
        s.synced();
        Ok(end)
    }

    fn snapshots(&self) -> Result<Vec<SnapshotManifest>, StorageError> {
        Ok(self.lock()?.snapshots.values().copied().collect())
    }

    fn put_snapshot(
        &self,
        manifest: &SnapshotManifest,
        chunks: &[(u32, SnapshotChunk)],
    ) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        for (index, chunk) in chunks {
            s.chunks.insert((manifest.height, *index), chunk.clone());
        }
        s.snapshots.insert(manifest.height, *manifest);
        s.synced();
        Ok(())
    }

    fn snapshot_chunk(
        &self,
        height: u64,
        index: u32,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        Ok(self.lock()?.chunks.get(&(height, index)).cloned())
    }

    fn snapshot_chunks_held(&self, height: u64) -> Result<Vec<u32>, StorageError> {
        let s = self.lock()?;
        Ok(s.chunks
            .range((height, 0)..=(height, u32::MAX))
            .map(|((_, i), _)| *i)
            .collect())
    }

    fn tree_entries(&self) -> Result<(u64, u64), StorageError> {
        let s = self.lock()?;
        Ok((s.tree.node_count() as u64, s.tree.value_count() as u64))
    }

    fn delete_snapshot(&self, height: u64) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        s.remove_snapshot(height);
        s.synced();
        Ok(())
    }

    fn restore_anchor(&self) -> Result<Option<RestoreAnchor>, StorageError> {
        Ok(self.lock()?.restore.clone())
    }

    fn put_restore_anchor(&self, anchor: &RestoreAnchor) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        let manifest = SnapshotManifest {
            complete: false,
            ..anchor.manifest
        };
        s.snapshots.insert(manifest.height, manifest);
        s.restore = Some(anchor.clone());
        s.synced();
        Ok(())
    }

    fn abandon_restore(&self) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        let Some(anchor) = s.restore.take() else {
            return Ok(());
        };
        s.remove_snapshot(anchor.manifest.height);
        s.synced();
        Ok(())
    }

    fn install_snapshot(
        &self,
        anchor: &RestoreAnchor,
        tree: &TreeUpdateBatch,
    ) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        let m = anchor.manifest;
        let block = &anchor.block;
        s.tree.put_batch(&tree.node_batch)?;
        for stale in s.uncommitted_up_to(m.height) {
            s.bodies.remove(&stale);
        }
        s.bodies.insert((m.height, block.id), block.clone());
        s.blocks.insert(m.height, (block.id, m.root));
        s.block_ids.insert(block.id, m.height);
        s.tip = Some(CommitTip {
            block: block.info(),
            qc: anchor.qc.clone(),
            state_root: m.root,
            committed_txs: 0,
        });
        s.earliest = m.height;
        s.overlay = NodeOverlay::new(m.height);
        s.snapshots.insert(
            m.height,
            SnapshotManifest {
                complete: true,
                ..m
            },
        );
        s.restore = None;
        s.synced();
        Ok(())
    }

    fn put_history(&self, blocks: &[Block]) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        for block in blocks {
            s.history.insert(block.height, block.clone());
        }
        s.synced();
        Ok(())
    }

    fn history_block(&self, height: u64) -> Result<Option<Block>, StorageError> {
        Ok(self.lock()?.history.get(&height).cloned())
    }

    fn is_fresh(&self) -> Result<bool, StorageError> {
        Ok(self.lock()?.genesis.is_none())
    }

    fn init_genesis(
        &self,
        genesis_hash: &Digest,
        tree: &TreeUpdateBatch,
        tip: &CommitTip,
    ) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        s.tree.put_batch(&tree.node_batch)?;
        s.overlay = NodeOverlay::new(0);
        s.tip = Some(tip.clone());
        s.genesis_root = Some(tip.state_root);
        s.genesis = Some(*genesis_hash);
        s.synced();
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.lock()?.synced();
        Ok(())
    }

    fn put_uncommitted(&self, block: &Block) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        let key = (block.height, block.id);
        if block.height <= s.committed_height() || s.bodies.contains_key(&key) {
            return Ok(());
        }
        s.bodies.insert(key, block.clone());
        s.unsynced.insert(key);
        Ok(())
    }

    fn uncommitted_blocks(&self) -> Result<Vec<Block>, StorageError> {
        let s = self.lock()?;
        let keys = s.uncommitted_up_to(u64::MAX);
        Ok(keys
            .iter()
            .filter_map(|k| s.bodies.get(k))
            .cloned()
            .collect())
    }

    fn commit_block(&self, w: BlockWrite<'_>) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        if !w.durable && s.durable.is_none() {
            let before = s.clone();
            s.durable = Some(Box::new(before));
        }
        let b = w.block;
        let key = (b.height, b.id);
        let stale = StaleSet::of(&w.tree, s.overlay.written());
        if !stale.is_empty() {
            s.stale.insert(b.height, stale);
        }
        let nodes = w.tree.node_batch;
        let write_tree = w.write_tree || s.overlay.must_write(b.height, nodes.nodes().len());
        if write_tree {
            s.write_tree(b.height, Some(&nodes))?;
        }
        for stale in s.uncommitted_up_to(b.height) {
            if stale != key {
                s.bodies.remove(&stale);
            }
        }
        s.bodies.entry(key).or_insert_with(|| b.clone());
        s.blocks.insert(b.height, (b.id, w.state_root));
        s.block_ids.insert(b.id, b.height);
        for (hash, record) in w.records {
            s.txs.insert(*hash, record.clone());
        }
        s.tree.put_values(&nodes);
        s.tip = Some(w.tip.clone());
        s.overlay.add(b.height, nodes);
        let released = write_tree.then(|| s.overlay.mark_written(b.height));
        if w.durable {
            s.synced();
        }
        drop(s);
        drop(released);
        Ok(())
    }

    fn tip(&self) -> Result<Option<CommitTip>, StorageError> {
        Ok(self.lock()?.tip.clone())
    }

    fn genesis_root(&self) -> Result<Option<Digest>, StorageError> {
        Ok(self.lock()?.genesis_root)
    }

    fn block_by_height(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        let s = self.lock()?;
        let Some((id, state_root)) = s.blocks.get(&height).copied() else {
            return Ok(None);
        };
        let block = s
            .bodies
            .get(&(height, id))
            .cloned()
            .ok_or(StorageError::MissingBody { height, id })?;
        Ok(Some(StoredBlock { block, state_root }))
    }

    fn block_by_id(&self, id: &Digest) -> Result<Option<Block>, StorageError> {
        let s = self.lock()?;
        let Some(height) = s.block_ids.get(id).copied() else {
            return Ok(None);
        };
        let block = s
            .bodies
            .get(&(height, *id))
            .cloned()
            .ok_or(StorageError::MissingBody { height, id: *id })?;
        Ok(Some(block))
    }

    fn tx(&self, hash: &Digest) -> Result<Option<TxRecord>, StorageError> {
        Ok(self.lock()?.txs.get(hash).cloned())
    }

    fn tree_behind(&self) -> Result<RangeInclusive<u64>, StorageError> {
        let s = self.lock()?;
        Ok(s.overlay.behind(s.committed_height()))
    }

    fn rebuild_tree(
        &self,
        touched: impl FnMut(&Block) -> Result<Vec<PublicKey>, StorageError>,
    ) -> Result<u64, StorageError> {
        rebuild(self, touched, |height, nodes| {
            self.lock()?.overlay.add(height, nodes);
            Ok(())
        })
    }

    fn flush(&self) -> Result<(), StorageError> {
        let mut s = self.lock()?;
        let newest = s.overlay.newest();
        let released = if newest > s.overlay.written() {
            s.write_tree(newest, None)?;
            s.overlay.mark_written(newest)
        } else {
            BTreeMap::new()
        };
        // RocksDB's flush makes every earlier write durable, synced or not.
        s.synced();
        drop(s);
        drop(released);
        Ok(())
    }
}

impl AccountReader for MemoryStore {
    fn account(&self, key: &PublicKey) -> Result<Option<Account>, LedgerError> {
        let s = self.lock().map_err(|e| LedgerError::Store {
            reason: e.to_string(),
        })?;
        let value = s.tree.value(Version::MAX, account_key_hash(key));
        value.map(|bytes| decode_account(bytes)).transpose()
    }
}

impl TreeReader for MemoryStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let s = self.lock()?;
        Ok(s.overlay
            .node(node_key)
            .or_else(|| s.tree.node(node_key))
            .cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.lock()?.tree.value(max_version, key_hash).cloned())
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(None) // only used by jmt's state restore, which hotledger does not use
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::suite::{block_at, genesis_store};

    #[test]
    fn a_crash_loses_only_the_unsynced_writes_after_the_last_sync() {
        let (store, tip) = genesis_store(&MemoryStore::new);
        let before = block_at(1, 1, &tip);
        let after = block_at(1, 2, &tip);
        store.put_uncommitted(&before).unwrap();
        store.sync().unwrap();
        store.put_uncommitted(&after).unwrap();
        assert_eq!(store.uncommitted_blocks().unwrap().len(), 2);
        let crashed = store.crash();
        assert_eq!(crashed.uncommitted_blocks().unwrap(), vec![before]);
        // The store crashed from is not changed.
        assert_eq!(store.uncommitted_blocks().unwrap().len(), 2);
    }

    #[test]
    fn a_poisoned_lock_is_an_error() {
        let (store, _) = genesis_store(&MemoryStore::new);
        let holder = store.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = holder.state.lock();
            panic!("poisoning the lock");
        })
        .join();
        assert!(panicked.is_err());
        let poisoned = StorageError::Poisoned {
            what: "memory store",
        };
        assert_eq!(store.tip().unwrap_err(), poisoned);
        assert_eq!(store.tree_behind().unwrap_err(), poisoned);
        let key = hotledger_crypto::KeyPair::from_seed([7; 32]).public();
        assert!(matches!(
            store.account(&key),
            Err(LedgerError::Store { .. })
        ));
        // A crash ends the panicked thread too: the durable state is still there.
        assert!(store.crash().tip().unwrap().is_some());
    }
}
