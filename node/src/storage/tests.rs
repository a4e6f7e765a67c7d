//! The shared suite on both stores, and what only the RocksDB store has: refusals on open, its
//! layout on disk and damage behind its back.

use std::cell::Cell;
use std::collections::BTreeSet;

use hotledger_crypto::{Digest, KeyPair};
use hotledger_ledger::{compute_state_root, decode_node_key, TREE_WRITE_EVERY};
use rocksdb::{Options, DB};
use tempfile::TempDir;

use super::chain::body_key;
use super::suite::{self, block_at, chain, commit, commit_empty, commit_tree_blocks, tree_keys};
use super::{ChainStore, MemoryStore, StorageError, Store, SCHEMA_VERSION};

/// Fresh stores in folders under `dir`.
fn rocks(dir: &TempDir) -> impl Fn() -> Store + '_ {
    let n = Cell::new(0u32);
    move || {
        n.set(n.get() + 1);
        Store::open(&dir.path().join(n.get().to_string()), &chain()).unwrap()
    }
}

/// A crash of a RocksDB store: dropped without a flush (the nodes held in memory are lost) and
/// reopened.
fn reopen(store: Store) -> Store {
    let path = store.path().to_path_buf();
    drop(store);
    Store::open(&path, &chain()).unwrap()
}

#[test]
fn the_suite_passes_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    suite::suite(rocks(&dir), reopen);
}

#[test]
fn the_suite_passes_in_memory() {
    suite::suite(MemoryStore::new, |store: MemoryStore| store.crash());
}

/// A RocksDB store in a fresh folder, initialised with the suite's genesis state.
fn genesis_store() -> (TempDir, Store, super::CommitTip) {
    let dir = tempfile::tempdir().unwrap();
    let (store, tip) = suite::genesis_store(&|| Store::open(dir.path(), &chain()).unwrap());
    (dir, store, tip)
}

#[test]
fn a_database_of_another_chain_is_refused() {
    let (dir, store, _) = genesis_store();
    drop(store);
    let other = Digest::of(b"chain b");
    let err = Store::open(dir.path(), &other).unwrap_err();
    assert_eq!(
        err,
        StorageError::GenesisMismatch {
            found: hex::encode(chain().as_bytes()),
            expected: other,
        }
    );
}

#[test]
fn a_corrupt_tip_is_refused_not_rewritten() {
    let (dir, store, _) = genesis_store();
    store
        .db
        .put_cf(store.cf("meta").unwrap(), b"tip", [0xff; 3])
        .unwrap();
    drop(store);
    let err = Store::open(dir.path(), &chain()).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Undecodable {
                cf: "meta",
                what: "commit tip",
                ..
            }
        ),
        "{err}"
    );
    let store = Store::open(dir.path(), &chain());
    assert!(store.is_err(), "still refused: nothing was rewritten");
}

#[test]
fn a_database_without_its_tip_or_with_the_tree_ahead_is_refused() {
    let (dir, store, _) = genesis_store();
    let meta = store.cf("meta").unwrap();
    store
        .db
        .put_cf(meta, b"tree_version", postcard::to_allocvec(&5u64).unwrap())
        .unwrap();
    drop(store);
    let err = Store::open(dir.path(), &chain()).unwrap_err();
    assert_eq!(err, StorageError::TreeAhead { written: 5, tip: 0 });
    {
        let db = DB::open_cf(&Options::default(), dir.path(), super::CFS).unwrap();
        db.delete_cf(db.cf_handle("meta").unwrap(), b"tip").unwrap();
    }
    let err = Store::open(dir.path(), &chain()).unwrap_err();
    assert_eq!(err, StorageError::MissingTip);
}

#[test]
fn blocks_without_a_genesis_record_are_refused() {
    let (dir, store, tip) = genesis_store();
    commit_empty(&store, &block_at(1, 1, &tip), &tip);
    store
        .db
        .delete_cf(store.cf("meta").unwrap(), b"genesis")
        .unwrap();
    drop(store);
    let err = Store::open(dir.path(), &chain()).unwrap_err();
    assert_eq!(err, StorageError::HoldsBlocksWithoutGenesis);
}

#[test]
fn databases_of_earlier_schemas_are_refused_by_their_version() {
    for version in [1u32, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
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
            db.put_cf(meta, b"genesis", chain().as_bytes()).unwrap();
            db.put_cf(meta, b"schema", postcard::to_allocvec(&version).unwrap())
                .unwrap();
        }
        let err = Store::open(dir.path(), &chain()).unwrap_err();
        let expected = StorageError::SchemaMismatch {
            found: version,
            expected: SCHEMA_VERSION,
        };
        assert_eq!(err, expected);
        // What the operator reads: the version found and what to do.
        let message = crate::NodeError::Database {
            path: dir.path().to_path_buf(),
            source: err,
        }
        .to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("move the folder aside"), "{message}");
    }
}

#[test]
fn a_folder_that_cannot_be_a_database_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a database").unwrap();
    let err = Store::open(&file, &chain()).unwrap_err();
    assert!(
        matches!(err, StorageError::Open { ref path, .. } if *path == file),
        "{err}"
    );
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
fn uncommitted_bodies_are_known_after_reopen_and_deleted_by_commits() {
    let (dir, store, tip) = genesis_store();
    let blocks: Vec<_> = [(1, 1), (1, 2), (2, 3), (3, 4)]
        .into_iter()
        .map(|(height, tag)| block_at(height, tag, &tip))
        .collect();
    for block in &blocks {
        store.put_uncommitted(block).unwrap();
    }
    drop(store);
    // The keys written before the restart are known to the reopened store.
    let store = Store::open(dir.path(), &chain()).unwrap();
    commit_empty(&store, &blocks[2], &tip);
    let expected = vec![body_key(2, &blocks[2].id), body_key(3, &blocks[3].id)];
    assert_eq!(body_keys(&store), expected);
}

#[test]
fn a_commit_does_not_write_again_a_body_stored_before_it() {
    let (_dir, store, genesis) = genesis_store();
    let block = block_at(1, 1, &genesis);
    store.put_uncommitted(&block).unwrap();
    // Removed behind the store's back: only a commit that writes the body again would bring it
    // back.
    store
        .db
        .delete_cf(store.cf("bodies").unwrap(), body_key(1, &block.id))
        .unwrap();
    commit_empty(&store, &block, &genesis);
    assert!(body_keys(&store).is_empty());
    let missing = StorageError::MissingBody {
        height: 1,
        id: block.id,
    };
    assert_eq!(store.block_by_height(1).unwrap_err(), missing);
    assert_eq!(store.block_by_id(&block.id).unwrap_err(), missing);
}

#[test]
fn a_committed_block_without_its_block_entry_stops_the_rebuild() {
    let (dir, store, tip) = genesis_store();
    let (_, roots) = commit_tree_blocks(&store, tip, &tree_keys(), 1..=2);
    store
        .db
        .delete_cf(store.cf("blocks").unwrap(), 2u64.to_be_bytes())
        .unwrap();
    drop(store);
    let store = Store::open(dir.path(), &chain()).unwrap();
    let err = store.rebuild_tree(|_| Ok(tree_keys())).unwrap_err();
    assert_eq!(err, StorageError::MissingBlock { height: 2 });
    assert_eq!(
        store.block_by_height(1).unwrap().unwrap().state_root,
        roots[0]
    );
}

/// Versions of the nodes in `tree_nodes`, and of the roots among them.
fn written_versions(store: &Store) -> (BTreeSet<u64>, BTreeSet<u64>, usize) {
    let keys: Vec<_> = store
        .db
        .iterator_cf(
            store.cf("tree_nodes").unwrap(),
            rocksdb::IteratorMode::Start,
        )
        .map(|item| decode_node_key(&item.unwrap().0).unwrap())
        .collect();
    let versions = keys.iter().map(|k| k.version()).collect();
    let roots = keys
        .iter()
        .filter(|k| k.nibble_path().is_empty())
        .map(|k| k.version())
        .collect();
    (versions, roots, keys.len())
}

#[test]
fn tree_nodes_are_written_every_few_commits_without_the_ones_replaced_in_between() {
    let (_dir, store, tip) = genesis_store();
    let keys = tree_keys();
    let (tip, _) = commit_tree_blocks(&store, tip, &keys, 1..=TREE_WRITE_EVERY - 1);
    assert_eq!(written_versions(&store).0, BTreeSet::from([0]));
    let updates = suite::tree_updates(&keys, TREE_WRITE_EVERY);
    let (root, tree) = compute_state_root(&store, TREE_WRITE_EVERY, &updates).unwrap();
    let newest = tree.node_batch.nodes().len();
    let block = block_at(TREE_WRITE_EVERY, 99, &tip);
    commit(&store, &block, root, &[], &updates, tree, &tip);
    let (versions, roots, count) = written_versions(&store);
    assert!(versions.contains(&TREE_WRITE_EVERY), "{versions:?}");
    // Every block replaces the root, so no root of the versions in between is written, and the
    // write holds more nodes than the newest block made.
    assert_eq!(roots, BTreeSet::from([0, TREE_WRITE_EVERY]));
    assert!(count > newest);
    let version: Option<u64> = store.get("meta", b"tree_version", "tree version").unwrap();
    assert_eq!(version, Some(TREE_WRITE_EVERY));
}

#[test]
fn a_missing_state_tree_value_reads_as_absent() {
    use jmt::storage::TreeReader;
    let (_dir, store, _) = genesis_store();
    let present = hotledger_ledger::account_key_hash(&suite::genesis_account().0);
    assert!(store.get_value_option(0, present).unwrap().is_some());
    let absent = hotledger_ledger::account_key_hash(&KeyPair::from_seed([9; 32]).public());
    assert_eq!(store.get_value_option(5, absent).unwrap(), None);
}

#[test]
fn a_poisoned_lock_is_an_error_never_skipped() {
    let (_dir, store, tip) = genesis_store();
    let holder = store.clone();
    let panicked = std::thread::spawn(move || {
        let _guard = holder.tree.lock();
        panic!("poisoning the overlay");
    })
    .join();
    assert!(panicked.is_err());
    let poisoned = StorageError::Poisoned {
        what: "state-tree overlay",
    };
    assert_eq!(store.tree_behind().unwrap_err(), poisoned);
    let block = block_at(1, 1, &tip);
    let err = store
        .commit_block(super::BlockWrite {
            durable: true,
            write_tree: false,
            block: &block,
            state_root: tip.state_root,
            records: &[],
            accounts: &Default::default(),
            tree: Default::default(),
            tip: &tip,
        })
        .unwrap_err();
    assert_eq!(err, poisoned);
    assert_eq!(store.flush().unwrap_err(), poisoned);
}
