//! RocksDB storage: blocks, transactions, accounts, the state tree, the consensus safety state
//! and metadata.
//!
//! * Each committed block is applied in **one atomic, synced write batch**: its height index,
//!   its transactions' records, the state-tree values (the accounts) and the new commit tip. The
//!   block's body is written once, when the node first stores it (uncommitted); the commit's
//!   synced write also makes that earlier write durable (one WAL, replayed in order), and a body
//!   not stored before is written in the commit's batch.
//! * The state tree's **nodes** are derived data: they are kept in memory and written with every
//!   [`TREE_WRITE_EVERY`]th commit (and on shutdown), in that commit's batch with the version they
//!   complete (`meta/tree_version`). Nodes that a later block replaced before that write are never
//!   written. After a crash, [`Store::rebuild_tree`] recomputes the missing versions from the
//!   committed values and checks each root against the one its commit stored.
//! * The safety state is written with `sync = true` before the node sends any vote, timeout or
//!   proposal that depends on it (`Action::PersistSafety` comes first).
//! * The database remembers the genesis hash it was created for and refuses to open for another;
//!   a database whose metadata is missing or undecodable is refused, never rewritten.
//!
//! Column families:
//!
//! | cf | key | value |
//! |---|---|---|
//! | `meta` | `genesis`, `safety`, `tip`, `schema`, `tree_version` | genesis hash, `SafetyData`, `CommitTip`, version, the newest tree version whose nodes are all written (absent: the tip's) |
//! | `bodies` | height (u64 BE) ‖ block id | `Block`: committed ones, and uncommitted ones above the commit tip (restart recovery) |
//! | `blocks` | height (u64 BE) | `CommittedBlock`: the id of the committed block and the state root after it |
//! | `block_ids` | block id | height (u64 BE) |
//! | `txs` | tx hash | `TxRecord` |
//! | `tree_nodes`, `tree_values` | see `hotledger_ledger::root` | state tree |
//!
//! Schema 4. Schema 3 held blocks without the failed leaders leader reputation reads; schema 2
//! held blocks whose ids did not cover their QC's signers, and safety data and
//! timeouts of the earlier consensus formats, which this build does not decode; schema 1 (before
//! `bodies`) wrote each block twice, uncommitted in `pending` and again in `blocks`, and kept an
//! unused `accounts` family. A database of another schema is refused with its version named.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hotledger_consensus::{Block, BlockInfo, QuorumCert, SafetyData};
use hotledger_crypto::cache::ShardedCache;
use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::{
    account_key_hash, compute_state_root, decode_account, decode_node, encode_node,
    encode_node_key, encode_value_key, Account, AccountReader, LedgerError, TxOutcome,
};

use jmt::storage::{Node, NodeBatch, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Version};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::NodeError;

const SCHEMA_VERSION: u32 = 4;
const CFS: [&str; 7] = [
    "meta",
    "bodies",
    "blocks",
    "block_ids",
    "txs",
    "tree_nodes",
    "tree_values",
];

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

/// A height's entry in `blocks`; the body is in `bodies` under `height ‖ id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CommittedBlock {
    id: Digest,
    state_root: Digest,
}

/// The `bodies` key of a block: its height (big-endian, so bodies sort by height) and id.
fn body_key(height: u64, id: &Digest) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + Digest::LEN);
    key.extend_from_slice(&height.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
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
    /// Its nodes are kept in memory after the write (see [`Store::commit_block`]), hence owned.
    pub tree: TreeUpdateBatch,
    pub tip: &'a CommitTip,
}

/// The node's database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Arc<DB>,
    path: PathBuf,
    /// Committed accounts in front of the state tree's values: every admission, execution and
    /// mempool clean-up reads them.
    accounts: Arc<ShardedCache<PublicKey, Account>>,
    /// `bodies` keys of the uncommitted blocks (above the commit tip), so a commit knows whether
    /// its body is stored already and deletes the ones it makes uncommittable one by one. (A
    /// range deletion per block would leave thousands of range tombstones in the memtable, and
    /// RocksDB rebuilds its tombstone list on every one: time and memory grow quadratically.)
    uncommitted: Arc<Mutex<BTreeSet<Vec<u8>>>>,
    /// Height of the commit tip: a body at or below it is never stored as uncommitted.
    committed_height: Arc<AtomicU64>,
    /// State-tree nodes held in memory: those not written yet, and the last written version's.
    tree: Arc<Mutex<TreeOverlay>>,
}

/// Commits between two writes of the state tree's nodes. Between writes, a busy node's blocks
/// replace most of each other's nodes (every block rewrites the paths of the accounts it
/// touches), so the nodes a write skips are bytes RocksDB never inserts, logs or flushes; a crash
/// costs fewer than this many blocks' roots recomputed at the next start.
pub const TREE_WRITE_EVERY: u64 = 8;

/// Nodes held unwritten before a write is forced, whatever the count of commits: a bound on the
/// memory a run of very large blocks can take (about 100 MiB, estimating ~400 bytes for a held
/// node with its map entry).
const TREE_WRITE_NODES: usize = 262_144;

/// The state-tree nodes the store holds in memory. A node key names one immutable node (it
/// contains the version), so a node found here is exactly what `tree_nodes` holds or will hold.
#[derive(Debug, Default)]
struct TreeOverlay {
    /// Node batches by version: every version above `written`, and `written`'s own (the next
    /// block's root reads mostly those, and an in-memory lookup costs a fraction of a RocksDB
    /// read and decode).
    batches: BTreeMap<Version, Arc<NodeBatch>>,
    /// Every node the tree of this version reaches is in `tree_nodes`.
    written: Version,
    /// Nodes in the batches above `written`.
    unwritten: usize,
}

impl TreeOverlay {
    fn node(&self, key: &NodeKey) -> Option<&Node> {
        self.batches.get(&key.version())?.get_node(key)
    }

    /// Takes in version `height`'s nodes, after its commit.
    fn add(&mut self, height: Version, nodes: NodeBatch) {
        self.unwritten = self.unwritten.saturating_add(nodes.nodes().len());
        self.batches.insert(height, Arc::new(nodes));
    }

    /// Records that the tree of `height` is written; keeps only `height`'s batch. Returns the
    /// batches let go, to be freed outside the lock.
    fn mark_written(&mut self, height: Version) -> BTreeMap<Version, Arc<NodeBatch>> {
        let keep = self.batches.split_off(&height);
        let released = std::mem::replace(&mut self.batches, keep);
        self.written = height;
        self.unwritten = 0;
        released
    }
}

/// Puts into `batch` the nodes of the tree of version `root_version` that are newer than
/// `written`: a walk from its root that stops at children of version `written` or below (those
/// are in `tree_nodes`). Nodes a later version replaced are not reached, so never written.
/// `node` finds a held node; one the walk needs but cannot find is an error.
fn put_reachable<'n>(
    batch: &mut WriteBatch,
    cf: &rocksdb::ColumnFamily,
    root_version: Version,
    written: Version,
    node: impl Fn(&NodeKey) -> Option<&'n Node>,
) -> Result<(), String> {
    let mut stack = vec![NodeKey::new(root_version, std::iter::empty().collect())];
    while let Some(key) = stack.pop() {
        let found = node(&key).ok_or_else(|| format!("state-tree node {key:?} is not held"))?;
        if let Node::Internal(internal) = found {
            for (nibble, child) in internal.children_sorted() {
                if child.version > written {
                    let path = key
                        .nibble_path()
                        .nibbles()
                        .chain(std::iter::once(nibble))
                        .collect();
                    stack.push(NodeKey::new(child.version, path));
                }
            }
        }
        let k = encode_node_key(&key).map_err(|e| e.to_string())?;
        let v = encode_node(found).map_err(|e| e.to_string())?;
        batch.put_cf(cf, k, v);
    }
    Ok(())
}

/// Most committed accounts kept in memory (about 20 MiB).
const ACCOUNT_CACHE: usize = 262_144;

impl Store {
    /// Opens (creating if absent) the database at `path` for the chain `genesis_hash`.
    pub fn open(path: &Path, genesis_hash: &Digest) -> Result<Store, NodeError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(512);
        opts.set_compression_type(rocksdb::DBCompressionType::None);
        // Every family the folder has, known or not, so a database of another schema opens far
        // enough to be refused by its version rather than by RocksDB's "column families not
        // opened".
        let mut names: Vec<String> = CFS.iter().map(|n| n.to_string()).collect();
        for existing in DB::list_cf(&opts, path).unwrap_or_default() {
            if existing != "default" && !names.contains(&existing) {
                names.push(existing);
            }
        }
        let cfs = names.iter().map(|name| {
            let mut cf = Options::default();
            // Hashes, keys and signatures barely compress, so compressing flushes and
            // compactions would cost CPU for little space.
            cf.set_compression_type(rocksdb::DBCompressionType::None);
            // Memtables of 16 MiB (not 64): every committed block inserts thousands of random
            // keys (transaction hashes, account keys), and a smaller skip list keeps those
            // inserts in cache. Flushes come more often but write the same bytes in all.
            cf.set_write_buffer_size(16 * 1024 * 1024);
            ColumnFamilyDescriptor::new(name, cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| NodeError::Database {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let store = Store {
            db: Arc::new(db),
            path: path.to_path_buf(),
            accounts: Arc::new(ShardedCache::new(ACCOUNT_CACHE)),
            uncommitted: Arc::default(),
            committed_height: Arc::default(),
            tree: Arc::default(),
        };
        match store.get_raw("meta", b"genesis")? {
            Some(bytes) if bytes.as_slice() == genesis_hash.as_bytes() => {
                let schema: u32 = store.get("meta", b"schema")?.unwrap_or(0);
                if schema != SCHEMA_VERSION {
                    return Err(store.refuse(format!(
                        "schema version {schema}, this build reads {SCHEMA_VERSION}; move the \
                         folder aside and start again to sync the chain from the other validators"
                    )));
                }
                let Some(tip) = store.tip()? else {
                    return Err(store.refuse("commit tip is missing".into()));
                };
                let height = tip.block.height;
                // Absent in a database whose every commit wrote its nodes.
                let written: u64 = store.get("meta", b"tree_version")?.unwrap_or(height);
                if written > height {
                    return Err(store.refuse(format!(
                        "the state tree is written up to height {written}, above the commit tip \
                         {height}"
                    )));
                }
                store.committed_height.store(height, Ordering::Relaxed);
                store.overlay()?.written = written;
            }
            Some(bytes) => {
                return Err(store.refuse(format!(
                    "it belongs to genesis {}, not {}",
                    hex::encode(bytes),
                    genesis_hash
                )))
            }
            None => {
                if store
                    .db
                    .iterator_cf(store.cf("blocks")?, rocksdb::IteratorMode::Start)
                    .next()
                    .is_some()
                {
                    return Err(store.refuse("it holds blocks but no genesis record".into()));
                }
            }
        }
        let mut keys = BTreeSet::new();
        for item in store.uncommitted_bodies()? {
            let (key, _) = item.map_err(|e| store.err(e))?;
            keys.insert(key.to_vec());
        }
        *store.uncommitted_keys()? = keys;
        Ok(store)
    }

    /// The `bodies` above the commit tip, in key order.
    fn uncommitted_bodies(&self) -> Result<rocksdb::DBIteratorWithThreadMode<'_, DB>, NodeError> {
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

    fn refuse(&self, reason: String) -> NodeError {
        NodeError::Database {
            path: self.path.clone(),
            reason,
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> NodeError {
        NodeError::Storage {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, NodeError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| self.refuse(format!("column family {name} is missing")))
    }

    fn get_raw(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, NodeError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(|e| self.err(e))
    }

    fn get<T: DeserializeOwned>(&self, cf: &str, key: &[u8]) -> Result<Option<T>, NodeError> {
        match self.get_raw(cf, key)? {
            None => Ok(None),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| self.refuse(format!("undecodable record in {cf}: {e}"))),
        }
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, NodeError> {
        postcard::to_allocvec(value).map_err(|e| self.err(e))
    }

    fn sync_write(&self, batch: WriteBatch) -> Result<(), NodeError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.err(e))
    }

    /// True when the genesis state has not been written yet.
    pub fn is_fresh(&self) -> Result<bool, NodeError> {
        Ok(self.get_raw("meta", b"genesis")?.is_none())
    }

    /// Writes the genesis state: the tree (version 0, whose values are the accounts), tip and
    /// genesis hash; one synced batch.
    pub fn init_genesis(
        &self,
        genesis_hash: &Digest,
        tree: &TreeUpdateBatch,
        tip: &CommitTip,
    ) -> Result<(), NodeError> {
        let mut batch = WriteBatch::default();
        self.put_values(&mut batch, tree)?;
        let nodes = self.cf("tree_nodes")?;
        for (key, node) in tree.node_batch.nodes() {
            batch.put_cf(nodes, encode_node_key(key)?, encode_node(node)?);
        }
        batch.put_cf(self.cf("meta")?, b"tree_version", self.encode(&0u64)?);
        batch.put_cf(self.cf("meta")?, b"tip", self.encode(tip)?);
        batch.put_cf(self.cf("meta")?, b"schema", self.encode(&SCHEMA_VERSION)?);
        batch.put_cf(self.cf("meta")?, b"genesis_root", tip.state_root.as_bytes());
        batch.put_cf(self.cf("meta")?, b"genesis", genesis_hash.as_bytes());
        self.sync_write(batch)
    }

    fn put_values(&self, batch: &mut WriteBatch, tree: &TreeUpdateBatch) -> Result<(), NodeError> {
        let values = self.cf("tree_values")?;
        for ((version, key_hash), value) in tree.node_batch.values() {
            let v: &[u8] = value.as_deref().unwrap_or(&[]);
            batch.put_cf(values, encode_value_key(key_hash, *version), v);
        }
        Ok(())
    }

    /// Applies one committed block atomically and durably.
    pub fn commit_block(&self, w: BlockWrite<'_>) -> Result<(), NodeError> {
        let b = w.block;
        let height = b.height.to_be_bytes();
        let key = body_key(b.height, &b.id);
        // Uncommitted bodies at or below this height, this block's among them if it was stored
        // before (then not written again); the others can never commit now.
        let above = b.height.saturating_add(1).to_be_bytes();
        let done: Vec<Vec<u8>> = self
            .uncommitted_keys()?
            .range(..above.to_vec())
            .cloned()
            .collect();
        let mut batch = WriteBatch::default();
        if !done.contains(&key) {
            batch.put_cf(self.cf("bodies")?, &key, self.encode(b)?);
        }
        let entry = CommittedBlock {
            id: b.id,
            state_root: w.state_root,
        };
        batch.put_cf(self.cf("blocks")?, height, self.encode(&entry)?);
        batch.put_cf(self.cf("block_ids")?, b.id.as_bytes(), height);
        let txs = self.cf("txs")?;
        // In key order: RocksDB's memtable reuses its position from one insert to the next, so
        // sorted keys cost far fewer comparisons than the block's (random) hash order. The
        // accounts and tree batches below are sorted maps already.
        let mut records: Vec<&(Digest, TxRecord)> = w.records.iter().collect();
        records.sort_unstable_by_key(|r| r.0);
        for (hash, record) in records {
            batch.put_cf(txs, hash.as_bytes(), self.encode(record)?);
        }
        // Accounts are not written separately: the state tree's values are the committed
        // accounts, and `account` reads them from there.
        self.put_values(&mut batch, &w.tree)?;
        batch.put_cf(self.cf("meta")?, b"tip", self.encode(w.tip)?);
        let bodies = self.cf("bodies")?;
        for stale in done.iter().filter(|k| **k != key) {
            batch.delete_cf(bodies, stale);
        }
        // The tree's nodes every `TREE_WRITE_EVERY` commits: those of this block's tree that
        // are not written yet (nodes replaced in between are not part of it).
        let write_nodes = {
            let tree = self.overlay()?;
            let newest = &w.tree.node_batch;
            let due = b.height.saturating_sub(tree.written) >= TREE_WRITE_EVERY
                || tree.unwritten.saturating_add(newest.nodes().len()) >= TREE_WRITE_NODES;
            if due {
                self.put_tree_write(&mut batch, &tree, b.height, Some(newest))?;
            }
            due
        };
        self.sync_write(batch)?;
        self.committed_height.store(b.height, Ordering::Relaxed);
        self.accounts.store(w.accounts);
        let released = {
            let mut tree = self.overlay()?;
            tree.add(b.height, w.tree.node_batch);
            if write_nodes {
                tree.mark_written(b.height)
            } else {
                BTreeMap::new()
            }
        };
        // Freed after the lock is released (thousands of nodes), so a state-root reader on
        // another thread never waits for it.
        drop(released);
        let mut keys = self.uncommitted_keys()?;
        for key in &done {
            keys.remove(key);
        }
        Ok(())
    }

    /// Stores an uncommitted block's body, which its commit will not write again (not synced:
    /// the next safety write's sync covers it, and that write precedes any vote for the block).
    /// A block at or below the commit tip can never commit (or is committed and stored), so it
    /// is not written.
    pub fn put_pending(&self, block: &Block) -> Result<(), NodeError> {
        if block.height <= self.committed_height.load(Ordering::Relaxed) {
            return Ok(());
        }
        let key = body_key(block.height, &block.id);
        let mut keys = self.uncommitted_keys()?;
        if keys.contains(&key) {
            return Ok(());
        }
        self.db
            .put_cf(self.cf("bodies")?, &key, self.encode(block)?)
            .map_err(|e| self.err(e))?;
        keys.insert(key);
        Ok(())
    }

    /// Every stored uncommitted block (for restart recovery).
    pub fn pending_blocks(&self) -> Result<Vec<Block>, NodeError> {
        let mut out = Vec::new();
        for item in self.uncommitted_bodies()? {
            let (_, value) = item.map_err(|e| self.err(e))?;
            out.push(
                postcard::from_bytes(&value)
                    .map_err(|e| self.refuse(format!("undecodable pending block: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Durably stores the safety state (fsync) before the caller sends what depends on it.
    pub fn put_safety(&self, data: &SafetyData) -> Result<(), NodeError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf("meta")?, b"safety", self.encode(data)?);
        self.sync_write(batch)
    }

    pub fn safety(&self) -> Result<Option<SafetyData>, NodeError> {
        self.get("meta", b"safety")
    }

    /// The state root after genesis (height 0).
    pub fn genesis_root(&self) -> Result<Option<Digest>, NodeError> {
        Ok(self
            .get_raw("meta", b"genesis_root")?
            .and_then(|b| Digest::from_slice(&b).ok()))
    }

    pub fn tip(&self) -> Result<Option<CommitTip>, NodeError> {
        self.get("meta", b"tip")
    }

    pub fn block_by_height(&self, height: u64) -> Result<Option<StoredBlock>, NodeError> {
        let Some(entry) = self.get::<CommittedBlock>("blocks", &height.to_be_bytes())? else {
            return Ok(None);
        };
        let block = self.body(height, &entry.id)?;
        Ok(Some(StoredBlock {
            block,
            state_root: entry.state_root,
        }))
    }

    /// The body of a committed block; missing means the database is damaged.
    fn body(&self, height: u64, id: &Digest) -> Result<Block, NodeError> {
        self.get("bodies", &body_key(height, id))?.ok_or_else(|| {
            self.refuse(format!(
                "committed block {} at height {height} has no body",
                id.short()
            ))
        })
    }

    pub fn height_of(&self, id: &Digest) -> Result<Option<u64>, NodeError> {
        Ok(self
            .get_raw("block_ids", id.as_bytes())?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    /// A committed block by id (for serving peers' block requests).
    pub fn block_by_id(&self, id: &Digest) -> Result<Option<Block>, NodeError> {
        match self.height_of(id)? {
            Some(h) => self.body(h, id).map(Some),
            None => Ok(None),
        }
    }

    pub fn tx(&self, hash: &Digest) -> Result<Option<TxRecord>, NodeError> {
        self.get("txs", hash.as_bytes())
    }

    pub fn account(&self, key: &PublicKey) -> Result<Option<Account>, NodeError> {
        self.accounts.get_or_load(key, || {
            let value = self
                .get_value_option(Version::MAX, account_key_hash(key))
                .map_err(|e| self.err(format!("reading account {key}: {e:#}")))?;
            value
                .map(|bytes| {
                    decode_account(&bytes)
                        .map_err(|e| self.refuse(format!("undecodable account {key}: {e}")))
                })
                .transpose()
        })
    }

    /// The state-tree overlay. Like every storage failure, a poisoned lock (a thread panicked
    /// while holding it) is an error the node stops on, never skipped.
    fn overlay(&self) -> Result<std::sync::MutexGuard<'_, TreeOverlay>, NodeError> {
        self.tree
            .lock()
            .map_err(|_| self.err("the state-tree overlay is poisoned"))
    }

    /// The keys of the uncommitted bodies stored (poisoned: an error, as [`Store::overlay`]).
    fn uncommitted_keys(&self) -> Result<std::sync::MutexGuard<'_, BTreeSet<Vec<u8>>>, NodeError> {
        self.uncommitted
            .lock()
            .map_err(|_| self.err("the uncommitted-block index is poisoned"))
    }

    /// Puts into `batch` the unwritten nodes of the tree of `version` (held in `tree`, or in
    /// `newest`: that version's batch, not held yet) and `version` as the written tree version.
    fn put_tree_write(
        &self,
        batch: &mut WriteBatch,
        tree: &TreeOverlay,
        version: Version,
        newest: Option<&NodeBatch>,
    ) -> Result<(), NodeError> {
        put_reachable(
            batch,
            self.cf("tree_nodes")?,
            version,
            tree.written,
            |key| match newest {
                Some(b) if key.version() == version => b.get_node(key),
                _ => tree.node(key),
            },
        )
        .map_err(|e| self.err(e))?;
        batch.put_cf(self.cf("meta")?, b"tree_version", self.encode(&version)?);
        Ok(())
    }

    /// Writes the state-tree nodes held in memory (synced) and flushes the memtables: on
    /// shutdown, so the next start has nothing to rebuild.
    pub fn flush(&self) -> Result<(), NodeError> {
        let written = {
            let tree = self.overlay()?;
            let newest = tree.batches.last_key_value().map_or(0, |(v, _)| *v);
            if newest > tree.written {
                let mut batch = WriteBatch::default();
                self.put_tree_write(&mut batch, &tree, newest, None)?;
                self.sync_write(batch)?;
                Some(newest)
            } else {
                None
            }
        };
        if let Some(height) = written {
            let released = self.overlay()?.mark_written(height);
            drop(released);
        }
        self.db.flush().map_err(|e| self.err(e))
    }

    /// Committed heights whose state-tree nodes are neither written nor held in memory (a crash
    /// lost them): empty unless the store was just opened after one. [`Store::rebuild_tree`]
    /// recomputes them; until then the next state root fails with a missing version.
    pub fn tree_behind(&self) -> Result<RangeInclusive<u64>, NodeError> {
        let tip = self.committed_height.load(Ordering::Relaxed);
        let t = self.overlay()?;
        let have = t
            .batches
            .last_key_value()
            .map_or(t.written, |(v, _)| (*v).max(t.written));
        Ok(have.saturating_add(1)..=tip)
    }

    /// Recomputes, in memory, the state-tree nodes of [`Store::tree_behind`]'s heights, oldest
    /// first. `touched(block)` lists the accounts a committed block may have changed (a superset
    /// is fine: an account holding the same value leaves the root as it was); their values at
    /// that height come from `tree_values`, which every commit writes. Each height's root must
    /// equal the one its commit stored, or the database is refused. Returns the heights rebuilt.
    pub fn rebuild_tree(
        &self,
        mut touched: impl FnMut(&Block) -> Result<Vec<PublicKey>, NodeError>,
    ) -> Result<u64, NodeError> {
        let heights = self.tree_behind()?;
        let mut rebuilt = 0u64;
        for height in heights {
            let Some(stored) = self.block_by_height(height)? else {
                return Err(self.refuse(format!("committed block at height {height} is missing")));
            };
            let mut accounts = BTreeMap::new();
            for key in touched(&stored.block)? {
                let value = self
                    .get_value_option(height, account_key_hash(&key))
                    .map_err(|e| self.err(format!("reading account {key}: {e:#}")))?;
                if let Some(bytes) = value {
                    let account = decode_account(&bytes)
                        .map_err(|e| self.refuse(format!("undecodable account {key}: {e}")))?;
                    accounts.insert(key, account);
                }
            }
            let (root, tree) = compute_state_root(self, height, &accounts).map_err(|e| {
                self.refuse(format!("rebuilding the state tree at height {height}: {e}"))
            })?;
            if root != stored.state_root {
                return Err(self.refuse(format!(
                    "the state tree rebuilt at height {height} has root {root}, its commit \
                     stored {}",
                    stored.state_root
                )));
            }
            self.overlay()?.add(height, tree.node_batch);
            rebuilt = rebuilt.saturating_add(1);
        }
        Ok(rebuilt)
    }
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
        let held = self.overlay()?.batches.get(&node_key.version()).cloned();
        if let Some(node) = held.as_ref().and_then(|batch| batch.get_node(node_key)) {
            return Ok(Some(node.clone()));
        }
        let key = encode_node_key(node_key)?;
        match self.db.get_cf(self.cf("tree_nodes")?, key)? {
            Some(bytes) => Ok(Some(decode_node(&bytes)?)),
            None => Ok(None),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let mut it = self.db.raw_iterator_cf(self.cf("tree_values")?);
        it.seek_for_prev(encode_value_key(&key_hash, max_version));
        if it.valid() {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                if k.len() == 40 && k[..32] == key_hash.0 {
                    return Ok(if v.is_empty() { None } else { Some(v.to_vec()) });
                }
            }
        }
        it.status()?;
        Ok(None)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, jmt::storage::LeafNode)>> {
        Ok(None) // only used by jmt's state restore, which hotledger does not use
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotledger_consensus::Config;
    use hotledger_crypto::KeyPair;
    use hotledger_ledger::genesis_state_root;

    fn genesis_tip(hash: Digest) -> (Vec<(PublicKey, Account)>, TreeUpdateBatch, CommitTip) {
        let key = KeyPair::from_seed([7; 32]).public();
        let (root, tree) = genesis_state_root(&[(key, 100)]).unwrap();
        let block = Config::genesis_block(hash, 0);
        let tip = CommitTip {
            block,
            qc: QuorumCert::genesis(block),
            state_root: root,
            committed_txs: 0,
        };
        (
            vec![(
                key,
                Account {
                    balance: 100,
                    nonce: 0,
                },
            )],
            tree,
            tip,
        )
    }

    /// A store in a fresh folder, initialised with [`genesis_tip`]'s state for `chain a`: the
    /// folder (kept alive), the genesis hash, the store, the genesis accounts and the tip.
    fn genesis_store() -> (
        tempfile::TempDir,
        Digest,
        Store,
        Vec<(PublicKey, Account)>,
        CommitTip,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let g = Digest::of(b"chain a");
        let store = Store::open(dir.path(), &g).unwrap();
        assert!(store.is_fresh().unwrap());
        let (accounts, tree, tip) = genesis_tip(g);
        store.init_genesis(&g, &tree, &tip).unwrap();
        (dir, g, store, accounts, tip)
    }

    #[test]
    fn genesis_state_and_safety_survive_reopen() {
        let (dir, g, store, accounts, tip) = genesis_store();
        let safety = SafetyData {
            last_voted_round: 9,
            ..SafetyData::default()
        };
        store.put_safety(&safety).unwrap();
        drop(store);
        let store = Store::open(dir.path(), &g).unwrap();
        assert!(!store.is_fresh().unwrap());
        assert_eq!(store.tip().unwrap(), Some(tip.clone()));
        assert_eq!(store.safety().unwrap(), Some(safety));
        assert_eq!(store.genesis_root().unwrap(), Some(tip.state_root));
        assert_eq!(store.account(&accounts[0].0).unwrap(), Some(accounts[0].1));
    }

    #[test]
    fn a_database_of_another_chain_is_refused() {
        let (dir, _, store, _, _) = genesis_store();
        drop(store);
        let err = Store::open(dir.path(), &Digest::of(b"chain b")).unwrap_err();
        assert!(matches!(err, NodeError::Database { .. }), "{err}");
        assert!(err.to_string().contains("belongs to genesis"), "{err}");
    }

    #[test]
    fn a_corrupt_tip_is_refused_not_rewritten() {
        let (dir, a, store, _, _) = genesis_store();
        store
            .db
            .put_cf(store.cf("meta").unwrap(), b"tip", [0xff; 3])
            .unwrap();
        drop(store);
        let err = Store::open(dir.path(), &a).unwrap_err();
        assert!(err.to_string().contains("undecodable"), "{err}");
    }

    fn block_at(height: u64, tag: u8, parent: &CommitTip) -> Block {
        Block {
            id: Digest::of(&[tag]),
            round: height,
            height,
            timestamp_ms: 0,
            author: KeyPair::from_seed([7; 32]).public(),
            qc: parent.qc.clone(),
            failed_leaders: Vec::new(),
            payload: Vec::new(),
            signature: hotledger_crypto::Signature([0; 64]),
        }
    }

    /// Commits `block` (no transactions) with these account updates and tree batch, and returns
    /// the new tip.
    fn commit(
        store: &Store,
        block: &Block,
        state_root: Digest,
        accounts: &std::collections::BTreeMap<PublicKey, Account>,
        tree: TreeUpdateBatch,
        parent: &CommitTip,
    ) -> CommitTip {
        let tip = CommitTip {
            block: block.info(),
            state_root,
            ..parent.clone()
        };
        store
            .commit_block(BlockWrite {
                block,
                state_root,
                records: &[],
                accounts,
                tree,
                tip: &tip,
            })
            .unwrap();
        tip
    }

    /// [`commit`] with no account changes and no tree nodes.
    fn commit_empty(
        store: &Store,
        block: &Block,
        state_root: Digest,
        parent: &CommitTip,
    ) -> CommitTip {
        commit(
            store,
            block,
            state_root,
            &std::collections::BTreeMap::new(),
            TreeUpdateBatch::default(),
            parent,
        )
    }

    #[test]
    fn commits_delete_pending_blocks_at_or_below_their_height_even_after_reopen() {
        let (dir, g, store, _, tip) = genesis_store();
        for (height, tag) in [(1, 1), (1, 2), (2, 3), (3, 4)] {
            store.put_pending(&block_at(height, tag, &tip)).unwrap();
        }
        drop(store);
        // The keys written before the restart are known to the reopened store.
        let store = Store::open(dir.path(), &g).unwrap();
        commit(
            &store,
            &block_at(2, 3, &tip),
            tip.state_root,
            &std::collections::BTreeMap::new(),
            TreeUpdateBatch::default(),
            &tip,
        );
        let left: Vec<u64> = store
            .pending_blocks()
            .unwrap()
            .iter()
            .map(|b| b.height)
            .collect();
        assert_eq!(left, vec![3]);
        drop(store);
        let store = Store::open(dir.path(), &g).unwrap();
        assert_eq!(store.pending_blocks().unwrap().len(), 1);
    }

    /// The `bodies` keys present, in order.
    fn body_keys(store: &Store) -> Vec<Vec<u8>> {
        store
            .db
            .iterator_cf(store.cf("bodies").unwrap(), rocksdb::IteratorMode::Start)
            .map(|item| item.unwrap().0.to_vec())
            .collect()
    }

    #[test]
    fn a_commit_does_not_write_again_a_body_stored_before_it() {
        let (_dir, _, store, _, genesis) = genesis_store();
        let block = block_at(1, 1, &genesis);
        store.put_pending(&block).unwrap();
        // Removed behind the store's back: only a commit that writes the body again would
        // bring it back.
        store
            .db
            .delete_cf(store.cf("bodies").unwrap(), body_key(1, &block.id))
            .unwrap();
        commit_empty(&store, &block, genesis.state_root, &genesis);
        assert!(body_keys(&store).is_empty());
        assert!(store.block_by_height(1).is_err());
    }

    #[test]
    fn a_body_is_served_whether_stored_before_its_commit_or_by_it() {
        let (dir, g, store, _, genesis) = genesis_store();
        let stored_first = block_at(1, 1, &genesis);
        let fork = block_at(1, 2, &genesis);
        store.put_pending(&stored_first).unwrap();
        store.put_pending(&fork).unwrap();
        let tip = commit_empty(&store, &stored_first, genesis.state_root, &genesis);
        // Never stored before its commit (as after a restart that lost nothing but an
        // unsynced write): the commit writes it.
        let unseen = block_at(2, 3, &tip);
        let tip = commit_empty(&store, &unseen, genesis.state_root, &tip);
        // A block at a committed height can never commit: not stored.
        store.put_pending(&block_at(2, 4, &tip)).unwrap();
        let expected = vec![body_key(1, &stored_first.id), body_key(2, &unseen.id)];
        assert_eq!(body_keys(&store), expected, "the fork's body is deleted");
        drop(store);
        let store = Store::open(dir.path(), &g).unwrap();
        assert_eq!(body_keys(&store), expected);
        for block in [&stored_first, &unseen] {
            let served = store.block_by_height(block.height).unwrap().unwrap();
            assert_eq!(&served.block, block);
            assert_eq!(served.state_root, genesis.state_root);
            assert_eq!(store.block_by_id(&block.id).unwrap().as_ref(), Some(block));
        }
        assert_eq!(store.block_by_id(&fork.id).unwrap(), None);
        assert_eq!(store.block_by_height(3).unwrap(), None);
        assert!(store.pending_blocks().unwrap().is_empty());
    }

    #[test]
    fn a_committed_block_without_its_body_is_an_error_not_an_absence() {
        let (_dir, _, store, _, genesis) = genesis_store();
        let block = block_at(1, 1, &genesis);
        commit_empty(&store, &block, genesis.state_root, &genesis);
        store
            .db
            .delete_cf(store.cf("bodies").unwrap(), body_key(1, &block.id))
            .unwrap();
        let err = store.block_by_height(1).unwrap_err();
        assert!(err.to_string().contains("has no body"), "{err}");
        assert!(store.block_by_id(&block.id).is_err());
    }

    #[test]
    fn databases_of_earlier_schemas_are_refused_by_their_version() {
        for version in [1u32, 2, 3] {
            refused_by_version(version);
        }
    }

    fn refused_by_version(version: u32) {
        let dir = tempfile::tempdir().unwrap();
        let g = Digest::of(b"chain a");
        {
            // Schema 1's families, "pending" and "accounts" among them.
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let names = [
                "meta",
                "pending",
                "blocks",
                "block_ids",
                "txs",
                "accounts",
                "tree_nodes",
                "tree_values",
            ];
            let db = DB::open_cf(&opts, dir.path(), names).unwrap();
            let meta = db.cf_handle("meta").unwrap();
            db.put_cf(meta, b"genesis", g.as_bytes()).unwrap();
            db.put_cf(meta, b"schema", postcard::to_allocvec(&version).unwrap())
                .unwrap();
        }
        let err = Store::open(dir.path(), &g).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("schema version {version}")),
            "{err}"
        );
    }

    #[test]
    fn accounts_read_the_latest_committed_tree_value_even_after_reopen() {
        let (dir, g, store, accounts, tip) = genesis_store();
        let (key, _) = accounts[0];
        let other = KeyPair::from_seed([8; 32]).public();
        assert_eq!(store.account(&other).unwrap(), None);
        let mut tip = tip;
        for height in 1..=3u64 {
            let updates = std::collections::BTreeMap::from([
                (
                    key,
                    Account {
                        balance: 100 - height,
                        nonce: height,
                    },
                ),
                (
                    other,
                    Account {
                        balance: height,
                        nonce: 0,
                    },
                ),
            ]);
            let (root, tree) =
                hotledger_ledger::compute_state_root(&store, height, &updates).unwrap();
            let block = block_at(height, u8::try_from(height).unwrap(), &tip);
            tip = commit(&store, &block, root, &updates, tree, &tip);
            assert_eq!(store.account(&key).unwrap(), updates.get(&key).copied());
        }
        drop(store);
        // Reopened, the cache is empty: the values come from the newest tree version.
        let store = Store::open(dir.path(), &g).unwrap();
        assert_eq!(
            store.account(&key).unwrap(),
            Some(Account {
                balance: 97,
                nonce: 3
            })
        );
        assert_eq!(
            store.account(&other).unwrap(),
            Some(Account {
                balance: 3,
                nonce: 0
            })
        );
    }

    /// Overlapping account sets, so each block rewrites paths of the one before.
    fn tree_updates(
        keys: &[PublicKey],
        height: u64,
    ) -> std::collections::BTreeMap<PublicKey, Account> {
        keys.iter()
            .enumerate()
            .filter(|(i, _)| !(*i as u64 + height).is_multiple_of(3))
            .map(|(i, k)| {
                (
                    *k,
                    Account {
                        balance: height * 1000 + i as u64,
                        nonce: height,
                    },
                )
            })
            .collect()
    }

    fn tree_keys() -> Vec<PublicKey> {
        (20..60u8)
            .map(|i| KeyPair::from_seed([i; 32]).public())
            .collect()
    }

    /// Commits heights `1..=last` with [`tree_updates`]; returns the tip and each height's root.
    fn commit_tree_blocks(
        store: &Store,
        tip: CommitTip,
        keys: &[PublicKey],
        last: u64,
    ) -> (CommitTip, Vec<Digest>) {
        let mut tip = tip;
        let mut roots = Vec::new();
        for height in 1..=last {
            let updates = tree_updates(keys, height);
            let (root, tree) =
                hotledger_ledger::compute_state_root(store, height, &updates).unwrap();
            let block = block_at(height, u8::try_from(height).unwrap(), &tip);
            tip = commit(store, &block, root, &updates, tree, &tip);
            roots.push(root);
        }
        (tip, roots)
    }

    /// Versions of the nodes in `tree_nodes`.
    fn written_versions(store: &Store) -> BTreeSet<u64> {
        store
            .db
            .iterator_cf(
                store.cf("tree_nodes").unwrap(),
                rocksdb::IteratorMode::Start,
            )
            .map(|item| {
                let (key, _) = item.unwrap();
                u64::from_be_bytes(key[..8].try_into().unwrap())
            })
            .collect()
    }

    #[test]
    fn tree_nodes_are_written_every_few_commits_without_the_ones_replaced_in_between() {
        let (_dir, _, store, _, tip) = genesis_store();
        let keys = tree_keys();
        let (tip, _) = commit_tree_blocks(&store, tip, &keys, TREE_WRITE_EVERY - 1);
        assert_eq!(written_versions(&store), BTreeSet::from([0]));
        assert!(store.tree_behind().unwrap().is_empty()); // held in memory, not behind
        let updates = tree_updates(&keys, TREE_WRITE_EVERY);
        let (root, tree) =
            hotledger_ledger::compute_state_root(&store, TREE_WRITE_EVERY, &updates).unwrap();
        let newest = tree.node_batch.nodes().len();
        let block = block_at(TREE_WRITE_EVERY, 99, &tip);
        commit(&store, &block, root, &updates, tree, &tip);
        let versions = written_versions(&store);
        assert!(versions.contains(&TREE_WRITE_EVERY), "{versions:?}");
        // Every block replaces the root, so no root of the versions in between is written, and
        // the write holds fewer nodes than all the blocks made.
        let root_versions: BTreeSet<u64> = store
            .db
            .iterator_cf(
                store.cf("tree_nodes").unwrap(),
                rocksdb::IteratorMode::Start,
            )
            .map(|item| hotledger_ledger::decode_node_key(&item.unwrap().0).unwrap())
            .filter(|key| key.nibble_path().is_empty())
            .map(|key| key.version())
            .collect();
        assert_eq!(root_versions, BTreeSet::from([0, TREE_WRITE_EVERY]));
        let count = store
            .db
            .iterator_cf(
                store.cf("tree_nodes").unwrap(),
                rocksdb::IteratorMode::Start,
            )
            .count();
        assert!(count > newest);
        let version: u64 = store.get("meta", b"tree_version").unwrap().unwrap();
        assert_eq!(version, TREE_WRITE_EVERY);
    }

    #[test]
    fn after_a_crash_the_tree_is_rebuilt_from_the_committed_values_to_the_same_roots() {
        let (dir, g, store, _, tip) = genesis_store();
        let keys = tree_keys();
        let last = TREE_WRITE_EVERY + 3;
        let (_, roots) = commit_tree_blocks(&store, tip, &keys, last);
        let next = tree_updates(&keys, last + 1);
        let before = hotledger_ledger::compute_state_root(&store, last + 1, &next).unwrap();
        // A crash: the store is dropped without `flush`, so versions above the last write are
        // lost with the process's memory.
        drop(store);
        let store = Store::open(dir.path(), &g).unwrap();
        assert_eq!(store.tree_behind().unwrap(), TREE_WRITE_EVERY + 1..=last);
        assert!(hotledger_ledger::compute_state_root(&store, last + 1, &next).is_err());
        let mut seen = Vec::new();
        let rebuilt = store
            .rebuild_tree(|block| {
                seen.push(block.height);
                Ok(keys.clone()) // a superset of what each block changed
            })
            .unwrap();
        assert_eq!(rebuilt, 3);
        assert_eq!(seen, vec![TREE_WRITE_EVERY + 1, TREE_WRITE_EVERY + 2, last]);
        assert!(store.tree_behind().unwrap().is_empty());
        let after = hotledger_ledger::compute_state_root(&store, last + 1, &next).unwrap();
        assert_eq!(after.0, before.0);
        assert_eq!(after.1.node_batch.nodes(), before.1.node_batch.nodes());
        assert_ne!(after.0, roots[roots.len() - 1]);
    }

    #[test]
    fn a_rebuild_that_misses_a_changed_account_is_refused_by_the_stored_root() {
        let (dir, g, store, _, tip) = genesis_store();
        let keys = tree_keys();
        commit_tree_blocks(&store, tip, &keys, 2);
        drop(store);
        let store = Store::open(dir.path(), &g).unwrap();
        let err = store.rebuild_tree(|_| Ok(keys[1..].to_vec())).unwrap_err();
        assert!(err.to_string().contains("rebuilt at height 1"), "{err}");
    }

    #[test]
    fn a_clean_shutdown_writes_the_tree_so_nothing_is_rebuilt() {
        let (dir, g, store, _, tip) = genesis_store();
        let keys = tree_keys();
        commit_tree_blocks(&store, tip, &keys, 3);
        let next = tree_updates(&keys, 4);
        let before = hotledger_ledger::compute_state_root(&store, 4, &next).unwrap();
        store.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path(), &g).unwrap();
        assert!(store.tree_behind().unwrap().is_empty());
        let after = hotledger_ledger::compute_state_root(&store, 4, &next).unwrap();
        assert_eq!(after.0, before.0);
        assert_eq!(after.1.node_batch.nodes(), before.1.node_batch.nodes());
    }

    #[test]
    fn a_missing_state_tree_value_reads_as_absent() {
        let (_dir, _, store, accounts, _) = genesis_store();
        let present = hotledger_ledger::account_key_hash(&accounts[0].0);
        assert!(store.get_value_option(0, present).unwrap().is_some());
        let absent = hotledger_ledger::account_key_hash(&KeyPair::from_seed([9; 32]).public());
        assert_eq!(store.get_value_option(5, absent).unwrap(), None);
    }
}
