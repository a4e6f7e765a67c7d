//! Storage: blocks, transactions, accounts, the state tree and metadata, behind the
//! [`ChainStore`] trait the node host uses. [`Store`] keeps them in RocksDB; [`MemoryStore`]
//! keeps them in memory and models what a crash keeps, for the simulator. The consensus safety
//! state is kept apart from the chain, behind [`SafetyStore`] ([`SafetyFile`] on disk,
//! [`MemorySafety`] in memory), so that losing or replacing the chain data never resets it.
//!
//! # Failure policy
//!
//! Every storage failure is fatal: a method returns a [`StorageError`] and the host stops the
//! node, whatever the failure (I/O, an undecodable record, a damaged database, a rebuilt state
//! root that differs from the stored one). A poisoned lock (a thread panicked while holding it)
//! is [`StorageError::Poisoned`], never skipped. Nothing read from disk is trusted to decode: an
//! undecodable record is an error, never a panic, and the database is never rewritten to repair
//! it.
//!
//! # Durability
//!
//! * Each committed block is applied in **one atomic, synced write batch**: its height index,
//!   its transactions' records, the state-tree values (the accounts) and the new commit tip. The
//!   block's body is written once, when the node first stores it (uncommitted, not synced); the
//!   next synced write also makes that earlier write durable (one WAL, replayed in order), and a
//!   body not stored before is written in the commit's batch.
//! * The state tree's **nodes** are derived data: a [`NodeOverlay`] holds them in memory, and
//!   the commit its write policy names ([`NodeOverlay::must_write`]: every
//!   [`TREE_WRITE_EVERY`](hotledger_ledger::TREE_WRITE_EVERY)th) writes those of its tree not
//!   written yet, in its batch, with the version they complete (`meta/tree_version`); nodes a
//!   later block replaced before that write are never written. [`ChainStore::flush`] writes them on
//!   shutdown. After a crash, [`ChainStore::rebuild_tree`] recomputes the missing versions from
//!   the committed values and checks each root against the one its commit stored.
//! * The safety state is written synced, in its own files ([`SafetyFile`]), before the node
//!   sends any vote, timeout or proposal that depends on it (`Action::PersistSafety` comes
//!   first); the host syncs the chain's unsynced blocks ([`ChainStore::sync`]) just before, so a
//!   block is durable before any vote for it leaves.
//! * The database remembers the genesis hash it was created for and refuses to open for another;
//!   a database whose metadata is missing or undecodable is refused, never rewritten.
//!
//! # Layout
//!
//! | cf | key | value |
//! |---|---|---|
//! | `meta` | `genesis`, `genesis_root`, `tip`, `schema`, `tree_version`, `earliest` | genesis hash, state root at genesis, `CommitTip`, version, the newest tree version whose nodes are all written (absent: the tip's), the lowest height not pruned (absent: 1); `safety`, the safety state of builds that kept it here, is only read once, to move it to the [`SafetyFile`] |
//! | `bodies` | height (u64 BE) ‖ block id | `Block`: committed ones, and uncommitted ones above the commit tip (restart recovery) |
//! | `blocks` | height (u64 BE) | `CommittedBlock`: the id of the committed block and the state root after it |
//! | `block_ids` | block id | height (u64 BE) |
//! | `txs` | tx hash | `TxRecord` |
//! | `tree_nodes`, `tree_values` | see `hotledger_ledger::root` | state tree |
//! | `snapshots` | height (u64 BE) ‖ chunk index (u32 BE) | `SnapshotChunk` of a snapshot (see [`snapshot`]) |
//! | `history` | height (u64 BE) | `Block`: committed blocks below a restored snapshot, for leader reputation |
//!
//! `meta` also holds each snapshot's `SnapshotManifest` under `snap` ‖ height (u64 BE), and the
//! state sync in progress (`RestoreAnchor`) under `restore`.
//!
//! Schema 4. A database of another schema is refused with its version named (the earlier ones
//! are described in `docs/decisions/0100-storage-schema-history.md`).

mod admission_log;
mod chain;
mod error;
mod memory;
mod safety;
pub mod snapshot;
mod tree;

#[cfg(test)]
mod suite;
#[cfg(test)]
mod tests;

pub use admission_log::{AdmissionLog, Replay};
pub use chain::{BlockWrite, CommitTip, StoredBlock, TxRecord};
pub use error::StorageError;
pub use memory::MemoryStore;
pub use safety::{MemorySafety, SafetyFile, SafetyStore};
pub use snapshot::{RestoreAnchor, SnapshotManifest};

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hotledger_consensus::Block;
use hotledger_crypto::cache::ShardedCache;
use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::{Account, AccountReader, NodeOverlay, SnapshotChunk};
use jmt::storage::{TreeReader, TreeUpdateBatch};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Serialize};

/// What the node host needs from storage. Every error is fatal: the host stops the node.
pub trait ChainStore:
    AccountReader + TreeReader + Clone + Send + Sync + std::fmt::Debug + 'static
{
    /// True when the genesis state has not been written yet.
    fn is_fresh(&self) -> Result<bool, StorageError>;
    /// Writes the genesis state: the tree (version 0, whose values are the accounts, with its
    /// nodes), the tip and the genesis hash. Synced before returning.
    fn init_genesis(
        &self,
        genesis_hash: &Digest,
        tree: &TreeUpdateBatch,
        tip: &CommitTip,
    ) -> Result<(), StorageError>;
    /// Not synced: the next synced write ([`ChainStore::sync`] or a commit) makes it durable. A
    /// block at or below the commit tip is not stored (it is committed already, or can never
    /// be).
    fn put_uncommitted(&self, block: &Block) -> Result<(), StorageError>;
    /// Makes every earlier write durable (the uncommitted blocks put since the last synced
    /// write).
    fn sync(&self) -> Result<(), StorageError>;
    /// The stored uncommitted blocks above the commit tip, by height (restart recovery).
    fn uncommitted_blocks(&self) -> Result<Vec<Block>, StorageError>;
    /// One atomic, synced batch. Deletes the uncommitted blocks at or below its height.
    fn commit_block(&self, w: BlockWrite<'_>) -> Result<(), StorageError>;
    /// The last committed block and what a restart needs.
    fn tip(&self) -> Result<Option<CommitTip>, StorageError>;
    /// The state root after genesis (height 0).
    fn genesis_root(&self) -> Result<Option<Digest>, StorageError>;
    /// The committed block at `height` (genesis, height 0, has none).
    fn block_by_height(&self, height: u64) -> Result<Option<StoredBlock>, StorageError>;
    /// A committed block by id (for serving peers' block requests).
    fn block_by_id(&self, id: &Digest) -> Result<Option<Block>, StorageError>;
    /// Where a committed transaction is and what it did.
    fn tx(&self, hash: &Digest) -> Result<Option<TxRecord>, StorageError>;
    /// Committed heights whose state-tree nodes are neither written nor held in memory (a crash
    /// lost them): empty unless the store was just opened after one. Until
    /// [`ChainStore::rebuild_tree`] recomputes them, the next state root fails with a missing
    /// version.
    fn tree_behind(&self) -> Result<RangeInclusive<u64>, StorageError>;
    /// Recomputes the nodes of [`ChainStore::tree_behind`]'s heights, oldest first, and holds
    /// them. `touched(block)` lists the accounts a committed block may have changed (a superset
    /// is fine). Each root must equal the one its commit stored
    /// ([`hotledger_ledger::LedgerError::RootMismatch`]). Returns the heights rebuilt.
    fn rebuild_tree(
        &self,
        touched: impl FnMut(&Block) -> Result<Vec<PublicKey>, StorageError>,
    ) -> Result<u64, StorageError>;
    /// Writes the state-tree nodes held in memory (synced), so the next start has nothing to
    /// rebuild: on shutdown.
    fn flush(&self) -> Result<(), StorageError>;
    /// The lowest committed height whose block and transaction records are still held: 1 on a
    /// chain never pruned (height 0, genesis, has no block).
    fn earliest(&self) -> Result<u64, StorageError>;
    /// Deletes the committed blocks (bodies, height and id entries), their transactions'
    /// records and what their versions made stale in the state tree (see
    /// [`hotledger_ledger::StaleSet`]; never above the written tree), of at most `max` heights
    /// from [`ChainStore::earliest`] up to below `below`, never the tip, in one synced batch
    /// (the RocksDB store also stops once a batch holds [`PRUNE_MAX_DELETES`] deletions);
    /// returns the new earliest height. The tree from that height on is kept whole.
    fn prune(&self, below: u64, max: u64) -> Result<u64, StorageError>;
    /// The snapshots held (see [`snapshot`]): complete ones, which are served, and the one a
    /// state sync is restoring.
    fn snapshots(&self) -> Result<Vec<SnapshotManifest>, StorageError>;
    /// Writes `manifest` and some `chunks` of its snapshot in one synced batch.
    fn put_snapshot(
        &self,
        manifest: &SnapshotManifest,
        chunks: &[(u32, SnapshotChunk)],
    ) -> Result<(), StorageError>;
    /// Chunk `index` of the snapshot at `height`, if held.
    fn snapshot_chunk(
        &self,
        height: u64,
        index: u32,
    ) -> Result<Option<SnapshotChunk>, StorageError>;
    /// The indexes of the chunks held of the snapshot at `height`, in order.
    fn snapshot_chunks_held(&self, height: u64) -> Result<Vec<u32>, StorageError>;
    /// Stored state-tree nodes and values, of all versions: a full scan, for tests and
    /// diagnostics.
    fn tree_entries(&self) -> Result<(u64, u64), StorageError>;
    /// Deletes the snapshot at `height` and its chunks (synced).
    fn delete_snapshot(&self, height: u64) -> Result<(), StorageError>;
    /// The state sync in progress, if any.
    fn restore_anchor(&self) -> Result<Option<RestoreAnchor>, StorageError>;
    /// Records the state sync in progress and its manifest, not complete (synced).
    fn put_restore_anchor(&self, anchor: &RestoreAnchor) -> Result<(), StorageError>;
    /// Ends the state sync in progress without installing it, in one synced batch: its anchor,
    /// its manifest and the chunks held are deleted (another snapshot is restored instead).
    fn abandon_restore(&self) -> Result<(), StorageError>;
    /// Makes a restored snapshot the store's state, in one synced batch: the tree of its height
    /// (`tree`, from [`snapshot::restored_tree`]), its block as the commit tip and the earliest
    /// height held, its manifest complete; the state sync is over. The blocks and transaction
    /// records below its height are not held.
    fn install_snapshot(
        &self,
        anchor: &RestoreAnchor,
        tree: &TreeUpdateBatch,
    ) -> Result<(), StorageError>;
    /// Stores committed blocks below a restored snapshot, for leader reputation's history only
    /// (synced): they are not committed blocks of this store (no state root, no records, not
    /// served) and only [`ChainStore::history_block`] reads them.
    fn put_history(&self, blocks: &[Block]) -> Result<(), StorageError>;
    /// A block [`ChainStore::put_history`] stored.
    fn history_block(&self, height: u64) -> Result<Option<Block>, StorageError>;
}

/// The hashes of a committed block's transactions (none if its payload does not decode: it
/// then counted as empty when it was executed).
pub(crate) fn tx_hashes(block: &Block) -> Vec<Digest> {
    hotledger_ledger::BlockPayload::decode(&block.payload, usize::MAX, usize::MAX)
        .map(|p| p.txs.iter().map(|tx| tx.hash()).collect())
        .unwrap_or_default()
}

const SCHEMA_VERSION: u32 = 4;

/// Deletions after which one pruning batch takes no further height (a few tens of MiB of
/// batch at most; a height's own deletions are never split).
pub const PRUNE_MAX_DELETES: usize = 262_144;
const CFS: [&str; 10] = [
    "meta",
    "bodies",
    "blocks",
    "block_ids",
    "txs",
    "tree_nodes",
    "tree_values",
    "snapshots",
    "history",
    "tree_stale",
];

/// Most committed accounts kept in memory (about 20 MiB).
const ACCOUNT_CACHE: usize = 262_144;

/// The node's RocksDB database. Cheap to clone.
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
    /// RocksDB rebuilds its tombstone list on every one: time and memory would grow
    /// quadratically.)
    uncommitted: Arc<Mutex<BTreeSet<Vec<u8>>>>,
    /// Height of the commit tip: a body at or below it is never stored as uncommitted.
    committed_height: Arc<AtomicU64>,
    /// State-tree nodes held in memory: those not written yet, and the last written version's.
    tree: Arc<Mutex<NodeOverlay>>,
}

impl Store {
    /// Opens (creating if absent) the database at `path` for the chain `genesis_hash`. Refuses a
    /// database of another chain or schema, or a damaged one.
    pub fn open(path: &Path, genesis_hash: &Digest) -> Result<Store, StorageError> {
        let store = Store {
            db: Arc::new(open_db(path)?),
            path: path.to_path_buf(),
            accounts: Arc::new(ShardedCache::new(ACCOUNT_CACHE)),
            uncommitted: Arc::default(),
            committed_height: Arc::default(),
            tree: Arc::default(),
        };
        store.check_genesis(genesis_hash)?;
        store.load_uncommitted_keys()?;
        Ok(store)
    }

    /// The folder of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the genesis record against `genesis_hash`, then the schema and the tip.
    fn check_genesis(&self, genesis_hash: &Digest) -> Result<(), StorageError> {
        match self.get_raw("meta", b"genesis")? {
            Some(bytes) if bytes.as_slice() == genesis_hash.as_bytes() => self.check_state(),
            Some(bytes) => Err(StorageError::GenesisMismatch {
                found: hex::encode(bytes),
                expected: *genesis_hash,
            }),
            None => {
                let mut blocks = self
                    .db
                    .iterator_cf(self.cf("blocks")?, rocksdb::IteratorMode::Start);
                match blocks
                    .next()
                    .transpose()
                    .map_err(StorageError::io("blocks"))?
                {
                    Some(_) => Err(StorageError::HoldsBlocksWithoutGenesis),
                    None => Ok(()),
                }
            }
        }
    }

    /// Checks the schema version, the tip and the tree version of an initialised database, and
    /// loads the commit height and the written tree version.
    fn check_state(&self) -> Result<(), StorageError> {
        let found: u32 = self.get("meta", b"schema", "schema version")?.unwrap_or(0);
        if found != SCHEMA_VERSION {
            return Err(StorageError::SchemaMismatch {
                found,
                expected: SCHEMA_VERSION,
            });
        }
        let tip = self.tip()?.ok_or(StorageError::MissingTip)?;
        let height = tip.block.height;
        // Absent in a database whose every commit wrote its nodes.
        let written: u64 = self
            .get("meta", b"tree_version", "tree version")?
            .unwrap_or(height);
        if written > height {
            return Err(StorageError::TreeAhead {
                written,
                tip: height,
            });
        }
        self.committed_height.store(height, Ordering::Relaxed);
        *self.overlay()? = NodeOverlay::new(written);
        Ok(())
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db
            .cf_handle(name)
            .ok_or(StorageError::MissingColumnFamily { cf: name })
    }

    fn get_raw(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get_cf(self.cf(cf)?, key)
            .map_err(StorageError::io(cf))
    }

    /// The record under `key`, decoded as a `what`.
    fn get<T: DeserializeOwned>(
        &self,
        cf: &'static str,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, StorageError> {
        self.get_raw(cf, key)?
            .map(|bytes| decode(cf, what, &bytes))
            .transpose()
    }

    fn sync_write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .write_opt(batch, &wo)
            .map_err(|source| StorageError::Write { source })
    }
}

/// A record decoded as a `what` from column family `cf`.
fn decode<T: DeserializeOwned>(
    cf: &'static str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|source| StorageError::Undecodable { cf, what, source })
}

/// `postcard(value)`, a `what`.
fn encode<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|source| StorageError::Unencodable { what, source })
}

/// Opens RocksDB with every family of the schema, and every other family the folder has.
fn open_db(path: &Path) -> Result<DB, StorageError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_open_files(512);
    opts.set_compression_type(rocksdb::DBCompressionType::None);
    // A write-ahead log file is deleted only once every family with data in it has flushed. Small
    // families (`meta`: the tip, a few hundred bytes a commit) would fill their memtables only
    // after days, pinning every log file meanwhile (1.6 GB of logs after 10 minutes at 5,000
    // tx/s); past this total RocksDB flushes the families that hold the oldest file.
    opts.set_max_total_wal_size(256 * 1024 * 1024);
    // Every family the folder has, known or not, so a database of another schema opens far
    // enough to be refused by its version rather than by RocksDB's "column families not opened".
    // A folder that is not a database yet has none to list.
    let mut names: Vec<String> = CFS.iter().map(|n| n.to_string()).collect();
    for existing in DB::list_cf(&opts, path).unwrap_or_default() {
        if existing != "default" && !names.contains(&existing) {
            names.push(existing);
        }
    }
    let cfs = names.iter().map(|name| {
        let mut cf = Options::default();
        // Hashes, keys and signatures barely compress, so compressing flushes and compactions
        // would cost CPU for little space.
        cf.set_compression_type(rocksdb::DBCompressionType::None);
        // Memtables of 16 MiB (not 64): every committed block inserts thousands of random keys
        // (transaction hashes, account keys), and a smaller skip list keeps those inserts in
        // cache. Flushes come more often but write the same bytes in all.
        cf.set_write_buffer_size(16 * 1024 * 1024);
        ColumnFamilyDescriptor::new(name, cf)
    });
    DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| StorageError::Open {
        path: path.to_path_buf(),
        source,
    })
}
