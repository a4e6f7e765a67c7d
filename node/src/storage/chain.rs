//! The chain in RocksDB: genesis, committed blocks and their transactions, uncommitted bodies,
//! and the commit tip.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

use hotledger_consensus::{Block, BlockInfo, QuorumCert, SafetyData};
use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::{
    account_key_hash, decode_account, encode_node, encode_node_key, Account, StaleSet, TxOutcome,
};
use jmt::storage::TreeUpdateBatch;
use jmt::Version;
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::snapshot::chunk_key;
use super::{
    decode, encode, ChainStore, RestoreAnchor, SnapshotManifest, StorageError, Store,
    SCHEMA_VERSION,
};
use hotledger_ledger::SnapshotChunk;

/// The `meta` key prefix of snapshot manifests (then the height, big-endian).
const SNAPSHOT_PREFIX: &[u8] = b"snap";

fn manifest_key(height: u64) -> Vec<u8> {
    let mut key = SNAPSHOT_PREFIX.to_vec();
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// The last committed block and what a restart needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitTip {
    pub block: BlockInfo,
    /// Certifies `block` or its child (the recovery QC of the consensus core).
    pub qc: QuorumCert,
    pub state_root: Digest,
    pub committed_txs: u64,
}

/// A committed block and the state root after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlock {
    pub block: Block,
    /// State root after applying this block.
    pub state_root: Digest,
}

/// Where a committed transaction is and what it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    pub height: u64,
    pub index: u32,
    pub outcome: TxOutcome,
}

/// Everything one committed block writes.
#[derive(Debug)]
pub struct BlockWrite<'a> {
    pub block: &'a Block,
    /// State root after applying `block`.
    pub state_root: Digest,
    /// Records of the block's transactions (a transaction already committed earlier keeps its
    /// first record and is not listed again).
    pub records: &'a [(Digest, TxRecord)],
    pub accounts: &'a std::collections::BTreeMap<PublicKey, Account>,
    /// Its nodes are held in memory after the write (see [`ChainStore::commit_block`]), hence owned.
    pub tree: TreeUpdateBatch,
    pub tip: &'a CommitTip,
    /// Synced before returning (every commit by consensus). A forward sync writes the blocks of
    /// a proven range unsynced and syncs the last: a crash before that loses a suffix of them
    /// (one write-ahead log, replayed in order, so the tip stays that of a whole block), and they
    /// are fetched again.
    pub durable: bool,
    /// Write this version's state tree in full whatever the write policy says: a snapshot is
    /// made of it (see [`super::snapshot`]).
    pub write_tree: bool,
}

/// A height's entry in `blocks`; the body is in `bodies` under `height ‖ id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CommittedBlock {
    id: Digest,
    state_root: Digest,
}

/// The `bodies` key of a block: its height (big-endian, so bodies sort by height) and id.
pub(super) fn body_key(height: u64, id: &Digest) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + Digest::LEN);
    key.extend_from_slice(&height.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

impl Store {
    /// The safety state of a database written by a build that kept it in `meta/safety`, to be
    /// moved into the [`super::SafetyFile`] once (newer builds never write it here).
    pub fn legacy_safety(&self) -> Result<Option<SafetyData>, StorageError> {
        self.get("meta", b"safety", "safety data")
    }

    /// Puts into `batch` what a commit writes for its block: the body if `with_body`, the
    /// height and id indexes, the transaction records, the tree values and the tip.
    fn put_block(
        &self,
        batch: &mut WriteBatch,
        w: &BlockWrite<'_>,
        with_body: bool,
    ) -> Result<(), StorageError> {
        let b = w.block;
        let height = b.height.to_be_bytes();
        if with_body {
            batch.put_cf(
                self.cf("bodies")?,
                body_key(b.height, &b.id),
                encode(b, "block")?,
            );
        }
        let entry = CommittedBlock {
            id: b.id,
            state_root: w.state_root,
        };
        batch.put_cf(
            self.cf("blocks")?,
            height,
            encode(&entry, "committed block")?,
        );
        batch.put_cf(self.cf("block_ids")?, b.id.as_bytes(), height);
        let txs = self.cf("txs")?;
        // In key order: RocksDB's memtable reuses its position from one insert to the next, so
        // sorted keys cost far fewer comparisons than the block's (random) hash order. The
        // accounts and tree batches below are sorted maps already.
        let mut records: Vec<&(Digest, TxRecord)> = w.records.iter().collect();
        records.sort_unstable_by_key(|r| r.0);
        for (hash, record) in records {
            batch.put_cf(txs, hash.as_bytes(), encode(record, "transaction record")?);
        }
        // Accounts are not written separately: the state tree's values are the committed
        // accounts, and `account` reads them from there.
        self.put_values(batch, &w.tree)?;
        batch.put_cf(self.cf("meta")?, b"tip", encode(w.tip, "commit tip")?);
        Ok(())
    }

    /// Puts into `batch` the deletion of the snapshot at `height`: its chunks and manifest.
    fn put_snapshot_deletes(
        &self,
        batch: &mut WriteBatch,
        height: u64,
    ) -> Result<(), StorageError> {
        batch.delete_range_cf(
            self.cf("snapshots")?,
            chunk_key(height, 0),
            chunk_key(height.saturating_add(1), 0),
        );
        batch.delete_cf(self.cf("meta")?, manifest_key(height));
        Ok(())
    }

    /// The `bodies` above the commit tip, in key order.
    fn uncommitted_bodies(
        &self,
    ) -> Result<rocksdb::DBIteratorWithThreadMode<'_, rocksdb::DB>, StorageError> {
        let first = self
            .committed_height
            .load(Ordering::Relaxed)
            .saturating_add(1)
            .to_be_bytes();
        Ok(self.db.iterator_cf(
            self.cf("bodies")?,
            rocksdb::IteratorMode::From(&first, rocksdb::Direction::Forward),
        ))
    }

    /// Loads the keys of the uncommitted bodies stored (on open).
    pub(super) fn load_uncommitted_keys(&self) -> Result<(), StorageError> {
        let mut keys = BTreeSet::new();
        for item in self.uncommitted_bodies()? {
            let (key, _) = item.map_err(StorageError::io("bodies"))?;
            if key.len() != 8 + Digest::LEN {
                return Err(StorageError::UndecodableKey {
                    cf: "bodies",
                    len: key.len(),
                });
            }
            keys.insert(key.to_vec());
        }
        *self.uncommitted_keys()? = keys;
        Ok(())
    }

    /// The keys of the uncommitted bodies at or below `height`.
    fn uncommitted_up_to(&self, height: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        let above = height.saturating_add(1).to_be_bytes();
        Ok(self
            .uncommitted_keys()?
            .range(..above.to_vec())
            .cloned()
            .collect())
    }

    /// The keys of the uncommitted bodies stored.
    fn uncommitted_keys(&self) -> Result<MutexGuard<'_, BTreeSet<Vec<u8>>>, StorageError> {
        self.uncommitted.lock().map_err(|_| StorageError::Poisoned {
            what: "uncommitted-block index",
        })
    }

    /// The body of a committed block; missing means the database is damaged.
    fn body(&self, height: u64, id: &Digest) -> Result<Block, StorageError> {
        self.get("bodies", &body_key(height, id), "block")?
            .ok_or(StorageError::MissingBody { height, id: *id })
    }

    /// The height of the committed block `id`.
    pub fn height_of(&self, id: &Digest) -> Result<Option<u64>, StorageError> {
        self.get_raw("block_ids", id.as_bytes())?
            .map(|b| {
                <[u8; 8]>::try_from(b.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StorageError::BadLength {
                        cf: "block_ids",
                        what: "block height",
                        len: b.len(),
                    })
            })
            .transpose()
    }

    /// A committed account: from the cache, or the newest state-tree value.
    pub fn account(&self, key: &PublicKey) -> Result<Option<Account>, StorageError> {
        self.accounts.get_or_load(key, || {
            let value = self.value(Version::MAX, account_key_hash(key))?;
            Ok(value.as_deref().map(decode_account).transpose()?)
        })
    }
}

impl ChainStore for Store {
    /// True when the genesis state has not been written yet.
    fn is_fresh(&self) -> Result<bool, StorageError> {
        Ok(self.get_raw("meta", b"genesis")?.is_none())
    }

    /// Writes the genesis state: the tree (version 0, whose values are the accounts), tip and
    /// genesis hash; one synced batch.
    fn init_genesis(
        &self,
        genesis_hash: &Digest,
        tree: &TreeUpdateBatch,
        tip: &CommitTip,
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.put_values(&mut batch, tree)?;
        let nodes = self.cf("tree_nodes")?;
        for (key, node) in tree.node_batch.nodes() {
            batch.put_cf(nodes, encode_node_key(key)?, encode_node(node)?);
        }
        let meta = self.cf("meta")?;
        batch.put_cf(meta, b"tree_version", encode(&0u64, "tree version")?);
        batch.put_cf(meta, b"tip", encode(tip, "commit tip")?);
        batch.put_cf(meta, b"schema", encode(&SCHEMA_VERSION, "schema version")?);
        batch.put_cf(meta, b"genesis_root", tip.state_root.as_bytes());
        batch.put_cf(meta, b"genesis", genesis_hash.as_bytes());
        self.sync_write(batch)
    }

    /// Applies one committed block atomically and durably: one synced batch.
    fn commit_block(&self, w: BlockWrite<'_>) -> Result<(), StorageError> {
        let height = w.block.height;
        let key = body_key(height, &w.block.id);
        // Uncommitted bodies at or below this height, this block's among them if it was stored
        // before (then not written again); the others can never commit now.
        let done = self.uncommitted_up_to(height)?;
        let mut batch = WriteBatch::default();
        self.put_block(&mut batch, &w, !done.contains(&key))?;
        let bodies = self.cf("bodies")?;
        for stale in done.iter().filter(|k| **k != key) {
            batch.delete_cf(bodies, stale);
        }
        // What this version made stale, for pruning to delete once the window passes it.
        let stale = StaleSet::of(&w.tree, self.overlay()?.written());
        if !stale.is_empty() {
            batch.put_cf(
                self.cf("tree_stale")?,
                height.to_be_bytes(),
                stale.encode()?,
            );
        }
        let wrote_tree =
            self.put_due_tree_write(&mut batch, height, &w.tree.node_batch, w.write_tree)?;
        if w.durable {
            self.sync_write(batch)?;
        } else {
            self.db
                .write(batch)
                .map_err(|source| StorageError::Write { source })?;
        }
        self.committed_height.store(height, Ordering::Relaxed);
        self.accounts.store(w.accounts);
        self.hold_tree(height, w.tree.node_batch, wrote_tree)?;
        let mut keys = self.uncommitted_keys()?;
        for key in &done {
            keys.remove(key);
        }
        Ok(())
    }

    /// Stores an uncommitted block's body, which its commit will not write again (not synced:
    /// the host syncs it before the safety write that precedes any vote for the block).
    /// A block at or below the commit tip can never commit (or is committed and stored), so it
    /// is not written.
    fn put_uncommitted(&self, block: &Block) -> Result<(), StorageError> {
        if block.height <= self.committed_height.load(Ordering::Relaxed) {
            return Ok(());
        }
        let key = body_key(block.height, &block.id);
        let mut keys = self.uncommitted_keys()?;
        if keys.contains(&key) {
            return Ok(());
        }
        self.db
            .put_cf(self.cf("bodies")?, &key, encode(block, "block")?)
            .map_err(StorageError::io("bodies"))?;
        keys.insert(key);
        Ok(())
    }

    /// Every stored uncommitted block, by height (for restart recovery).
    fn uncommitted_blocks(&self) -> Result<Vec<Block>, StorageError> {
        let mut out = Vec::new();
        for item in self.uncommitted_bodies()? {
            let (_, value) = item.map_err(StorageError::io("bodies"))?;
            out.push(decode("bodies", "uncommitted block", &value)?);
        }
        Ok(out)
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.db
            .flush_wal(true)
            .map_err(|source| StorageError::Write { source })
    }

    /// The state root after genesis (height 0).
    fn genesis_root(&self) -> Result<Option<Digest>, StorageError> {
        self.get_raw("meta", b"genesis_root")?
            .map(|b| {
                Digest::from_slice(&b).map_err(|_| StorageError::BadLength {
                    cf: "meta",
                    what: "genesis root",
                    len: b.len(),
                })
            })
            .transpose()
    }

    /// The last committed block and what a restart needs.
    fn tip(&self) -> Result<Option<CommitTip>, StorageError> {
        self.get("meta", b"tip", "commit tip")
    }

    /// The committed block at `height` and the state root after it.
    fn block_by_height(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        let entry: Option<CommittedBlock> =
            self.get("blocks", &height.to_be_bytes(), "committed block")?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let block = self.body(height, &entry.id)?;
        Ok(Some(StoredBlock {
            block,
            state_root: entry.state_root,
        }))
    }

    /// A committed block by id (for serving peers' block requests).
    fn block_by_id(&self, id: &Digest) -> Result<Option<Block>, StorageError> {
        match self.height_of(id)? {
            Some(h) => self.body(h, id).map(Some),
            None => Ok(None),
        }
    }

    /// Where a committed transaction is and what it did.
    fn tx(&self, hash: &Digest) -> Result<Option<TxRecord>, StorageError> {
        self.get("txs", hash.as_bytes(), "transaction record")
    }

    /// Writes the state-tree nodes held in memory (synced) and flushes the memtables: on
    /// shutdown, so the next start has nothing to rebuild.
    fn flush(&self) -> Result<(), StorageError> {
        self.write_held_tree()?;
        self.db
            .flush()
            .map_err(|source| StorageError::Flush { source })
    }

    fn earliest(&self) -> Result<u64, StorageError> {
        Ok(self
            .get::<u64>("meta", b"earliest", "earliest height")?
            .unwrap_or(1))
    }

    fn prune(&self, below: u64, max: u64) -> Result<u64, StorageError> {
        let earliest = self.earliest()?;
        let tip = self.committed_height.load(Ordering::Relaxed);
        let end = below.min(tip).min(earliest.saturating_add(max));
        if end <= earliest {
            return Ok(earliest);
        }
        let mut batch = WriteBatch::default();
        let written = self.overlay()?.written();
        let mut end = end;
        for height in earliest..end {
            // Heavy blocks make heavy batches: stop after the height that passes the budget.
            if batch.len() >= super::PRUNE_MAX_DELETES {
                end = height;
                break;
            }
            // Below the window no tree is read: what its versions made stale goes (never
            // above the written tree, which the next start rebuilds from).
            if height <= written {
                self.put_stale_deletes(&mut batch, height)?;
            }
            let Some(stored) = self.block_by_height(height)? else {
                continue;
            };
            let block = &stored.block;
            for hash in super::tx_hashes(block) {
                // A repeat of an earlier transaction kept the earlier record.
                if self.tx(&hash)?.is_some_and(|r| r.height == height) {
                    batch.delete_cf(self.cf("txs")?, hash.as_bytes());
                }
            }
            batch.delete_cf(self.cf("bodies")?, body_key(height, &block.id));
            batch.delete_cf(self.cf("blocks")?, height.to_be_bytes());
            batch.delete_cf(self.cf("block_ids")?, block.id.as_bytes());
        }
        batch.put_cf(
            self.cf("meta")?,
            b"earliest",
            encode(&end, "earliest height")?,
        );
        self.sync_write(batch)?;
        Ok(end)
    }

    fn snapshots(&self) -> Result<Vec<SnapshotManifest>, StorageError> {
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf("meta")?);
        it.seek(SNAPSHOT_PREFIX);
        while it.valid() {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            if !key.starts_with(SNAPSHOT_PREFIX) {
                break;
            }
            out.push(decode("meta", "snapshot manifest", value)?);
            it.next();
        }
        it.status().map_err(StorageError::io("meta"))?;
        Ok(out)
    }

    fn put_snapshot(
        &self,
        manifest: &SnapshotManifest,
        chunks: &[(u32, SnapshotChunk)],
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let cf = self.cf("snapshots")?;
        for (index, chunk) in chunks {
            batch.put_cf(
                cf,
                chunk_key(manifest.height, *index),
                encode(chunk, "snapshot chunk")?,
            );
        }
        batch.put_cf(
            self.cf("meta")?,
            manifest_key(manifest.height),
            encode(manifest, "snapshot manifest")?,
        );
        self.sync_write(batch)
    }

    fn snapshot_chunk(
        &self,
        height: u64,
        index: u32,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        self.get("snapshots", &chunk_key(height, index), "snapshot chunk")
    }

    fn snapshot_chunks_held(&self, height: u64) -> Result<Vec<u32>, StorageError> {
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf("snapshots")?);
        it.seek(chunk_key(height, 0));
        while it.valid() {
            let Some(key) = it.key() else { break };
            let Some((h, i)) = key.split_first_chunk::<8>() else {
                break;
            };
            if u64::from_be_bytes(*h) != height {
                break;
            }
            let index = <[u8; 4]>::try_from(i).map_err(|_| StorageError::UndecodableKey {
                cf: "snapshots",
                len: key.len(),
            })?;
            out.push(u32::from_be_bytes(index));
            it.next();
        }
        it.status().map_err(StorageError::io("snapshots"))?;
        Ok(out)
    }

    fn tree_entries(&self) -> Result<(u64, u64), StorageError> {
        let count = |cf: &'static str| -> Result<u64, StorageError> {
            let mut it = self.db.raw_iterator_cf(self.cf(cf)?);
            it.seek_to_first();
            let mut n = 0u64;
            while it.valid() {
                n = n.saturating_add(1);
                it.next();
            }
            it.status().map_err(StorageError::io(cf))?;
            Ok(n)
        };
        Ok((count("tree_nodes")?, count("tree_values")?))
    }

    fn delete_snapshot(&self, height: u64) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.put_snapshot_deletes(&mut batch, height)?;
        self.sync_write(batch)
    }

    fn restore_anchor(&self) -> Result<Option<RestoreAnchor>, StorageError> {
        self.get("meta", b"restore", "state sync anchor")
    }

    fn put_restore_anchor(&self, anchor: &RestoreAnchor) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let meta = self.cf("meta")?;
        batch.put_cf(meta, b"restore", encode(anchor, "state sync anchor")?);
        let manifest = SnapshotManifest {
            complete: false,
            ..anchor.manifest
        };
        batch.put_cf(
            meta,
            manifest_key(manifest.height),
            encode(&manifest, "snapshot manifest")?,
        );
        self.sync_write(batch)
    }

    fn abandon_restore(&self) -> Result<(), StorageError> {
        let Some(anchor) = self.restore_anchor()? else {
            return Ok(());
        };
        let mut batch = WriteBatch::default();
        self.put_snapshot_deletes(&mut batch, anchor.manifest.height)?;
        batch.delete_cf(self.cf("meta")?, b"restore");
        self.sync_write(batch)
    }

    fn install_snapshot(
        &self,
        anchor: &RestoreAnchor,
        tree: &TreeUpdateBatch,
    ) -> Result<(), StorageError> {
        let m = anchor.manifest;
        let height = m.height;
        let block = &anchor.block;
        let mut batch = WriteBatch::default();
        self.put_values(&mut batch, tree)?;
        let nodes = self.cf("tree_nodes")?;
        for (key, node) in tree.node_batch.nodes() {
            batch.put_cf(nodes, encode_node_key(key)?, encode_node(node)?);
        }
        let done = self.uncommitted_up_to(height)?;
        let bodies = self.cf("bodies")?;
        for stale in &done {
            batch.delete_cf(bodies, stale);
        }
        batch.put_cf(bodies, body_key(height, &block.id), encode(block, "block")?);
        let entry = CommittedBlock {
            id: block.id,
            state_root: m.root,
        };
        batch.put_cf(
            self.cf("blocks")?,
            height.to_be_bytes(),
            encode(&entry, "committed block")?,
        );
        batch.put_cf(
            self.cf("block_ids")?,
            block.id.as_bytes(),
            height.to_be_bytes(),
        );
        let tip = CommitTip {
            block: block.info(),
            qc: anchor.qc.clone(),
            state_root: m.root,
            committed_txs: 0,
        };
        let meta = self.cf("meta")?;
        batch.put_cf(meta, b"tip", encode(&tip, "commit tip")?);
        batch.put_cf(meta, b"earliest", encode(&height, "earliest height")?);
        batch.put_cf(meta, b"tree_version", encode(&height, "tree version")?);
        let manifest = SnapshotManifest {
            complete: true,
            ..m
        };
        batch.put_cf(
            meta,
            manifest_key(height),
            encode(&manifest, "snapshot manifest")?,
        );
        batch.delete_cf(meta, b"restore");
        self.sync_write(batch)?;
        self.committed_height.store(height, Ordering::Relaxed);
        *self.overlay()? = hotledger_ledger::NodeOverlay::new(height);
        // Every account read before (the genesis ones) may have changed.
        self.accounts.clear();
        let mut keys = self.uncommitted_keys()?;
        for key in &done {
            keys.remove(key);
        }
        Ok(())
    }

    fn put_history(&self, blocks: &[Block]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let cf = self.cf("history")?;
        for block in blocks {
            batch.put_cf(
                cf,
                block.height.to_be_bytes(),
                encode(block, "history block")?,
            );
        }
        self.sync_write(batch)
    }

    fn history_block(&self, height: u64) -> Result<Option<Block>, StorageError> {
        self.get("history", &height.to_be_bytes(), "history block")
    }

    /// Committed heights whose state-tree nodes are neither written nor held in memory (see
    /// [`ChainStore::tree_behind`]).
    fn tree_behind(&self) -> Result<RangeInclusive<u64>, StorageError> {
        let tip = self.committed_height.load(Ordering::Relaxed);
        Ok(self.overlay()?.behind(tip))
    }

    /// Recomputes, in memory, the nodes of [`ChainStore::tree_behind`]'s heights (see
    /// [`ChainStore::rebuild_tree`]); their values come from `tree_values`.
    fn rebuild_tree(
        &self,
        touched: impl FnMut(&Block) -> Result<Vec<PublicKey>, StorageError>,
    ) -> Result<u64, StorageError> {
        super::tree::rebuild(self, touched, |height, nodes| {
            self.overlay()?.add(height, nodes);
            Ok(())
        })
    }
}
