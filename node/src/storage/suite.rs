//! One test suite for every [`ChainStore`]: [`suite`] runs each case against a store made by
//! `make`, and `crash` stands for a process crash and restart (for [`super::Store`]: dropped
//! without a flush and reopened; for [`MemoryStore`](super::MemoryStore): its `crash`).

use std::collections::{BTreeMap, BTreeSet};

use hotledger_consensus::{Block, Config, QuorumCert};
use hotledger_crypto::{Digest, KeyPair, PublicKey};
use hotledger_ledger::{
    compute_state_root, genesis_state_root, Account, LedgerError, TxOutcome, TREE_WRITE_EVERY,
};
use jmt::storage::TreeUpdateBatch;
use jmt::Sha256Jmt;

use super::{BlockWrite, ChainStore, CommitTip, StorageError, TxRecord};

/// The genesis hash every suite store is opened for.
pub(super) fn chain() -> Digest {
    Digest::of(b"chain a")
}

/// The genesis account: key seed 7, balance 100.
pub(super) fn genesis_account() -> (PublicKey, Account) {
    let account = Account {
        balance: 100,
        nonce: 0,
    };
    (KeyPair::from_seed([7; 32]).public(), account)
}

/// The genesis state's tree and tip for [`chain`].
pub(super) fn genesis_tip() -> (TreeUpdateBatch, CommitTip) {
    let (key, account) = genesis_account();
    let (root, tree) = genesis_state_root(&[(key, account.balance)]).unwrap();
    let block = Config::genesis_block(chain(), 0);
    let tip = CommitTip {
        block,
        qc: QuorumCert::genesis(block),
        state_root: root,
        committed_txs: 0,
    };
    (tree, tip)
}

/// A store from `make`, initialised with [`genesis_tip`]'s state; and the tip.
pub(super) fn genesis_store<S: ChainStore>(make: &impl Fn() -> S) -> (S, CommitTip) {
    let store = make();
    assert!(store.is_fresh().unwrap());
    let (tree, tip) = genesis_tip();
    store.init_genesis(&chain(), &tree, &tip).unwrap();
    (store, tip)
}

/// A block at `height` with id `Digest::of([tag])`, child of `parent`, with no transactions.
pub(super) fn block_at(height: u64, tag: u8, parent: &CommitTip) -> Block {
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

/// Commits `block` with these records, account updates and tree batch; returns the new tip.
pub(super) fn commit<S: ChainStore>(
    store: &S,
    block: &Block,
    state_root: Digest,
    records: &[(Digest, TxRecord)],
    accounts: &BTreeMap<PublicKey, Account>,
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
            durable: true,
            write_tree: false,
            block,
            state_root,
            records,
            accounts,
            tree,
            tip: &tip,
        })
        .unwrap();
    tip
}

/// [`commit`] with no transactions, no account changes and no tree nodes.
pub(super) fn commit_empty<S: ChainStore>(
    store: &S,
    block: &Block,
    parent: &CommitTip,
) -> CommitTip {
    let root = parent.state_root;
    let none = BTreeMap::new();
    commit(
        store,
        block,
        root,
        &[],
        &none,
        TreeUpdateBatch::default(),
        parent,
    )
}

/// The accounts the tree tests use.
pub(super) fn tree_keys() -> Vec<PublicKey> {
    (20..60u8)
        .map(|i| KeyPair::from_seed([i; 32]).public())
        .collect()
}

/// Overlapping account sets, so each block rewrites paths of the one before.
pub(super) fn tree_updates(keys: &[PublicKey], height: u64) -> BTreeMap<PublicKey, Account> {
    keys.iter()
        .enumerate()
        .filter(|(i, _)| !(*i as u64 + height).is_multiple_of(3))
        .map(|(i, k)| {
            let account = Account {
                balance: height * 1000 + i as u64,
                nonce: height,
            };
            (*k, account)
        })
        .collect()
}

/// Commits heights `from..=last` with [`tree_updates`]; returns the tip and each height's root.
pub(super) fn commit_tree_blocks<S: ChainStore>(
    store: &S,
    tip: CommitTip,
    keys: &[PublicKey],
    heights: std::ops::RangeInclusive<u64>,
) -> (CommitTip, Vec<Digest>) {
    let mut tip = tip;
    let mut roots = Vec::new();
    for height in heights {
        let updates = tree_updates(keys, height);
        let (root, tree) = compute_state_root(store, height, &updates).unwrap();
        let block = block_at(height, u8::try_from(height).unwrap(), &tip);
        tip = commit(store, &block, root, &[], &updates, tree, &tip);
        roots.push(root);
    }
    (tip, roots)
}

/// Every case, in turn.
pub(super) fn suite<S: ChainStore>(make: impl Fn() -> S, crash: impl Fn(S) -> S) {
    genesis_init_and_fresh_flag(&make, &crash);
    a_sync_makes_uncommitted_blocks_durable(&make, &crash);
    unsynced_commits_are_lost_only_as_a_suffix(&make, &crash);
    pruning_deletes_blocks_and_records_below_and_keeps_the_rest(&make, &crash);
    uncommitted_blocks_are_listed_and_deleted_by_commits(&make, &crash);
    commits_are_read_back_by_height_id_tx_and_account(&make, &crash);
    tree_nodes_are_written_every_few_commits_and_by_flush(&make, &crash);
    a_crash_is_rebuilt_to_every_stored_root(&make, &crash);
    a_rebuild_missing_a_changed_account_is_a_root_mismatch(&make, &crash);
    a_snapshot_is_made_and_restored_into_a_fresh_store(&make, &crash);
    pruning_deletes_the_state_made_stale_below_the_window(&make, &crash);
}

fn pruning_deletes_the_state_made_stale_below_the_window<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    let keys = tree_keys();
    let (store, tip) = genesis_store(make);
    let (twin, twin_tip) = genesis_store(make);
    commit_tree_blocks(&store, tip, &keys, 1..=40);
    commit_tree_blocks(&twin, twin_tip, &keys, 1..=40);
    let (nodes, values) = store.tree_entries().unwrap();
    assert_eq!(store.prune(33, 1_000).unwrap(), 33);
    let store = crash(store);
    let (pruned_nodes, pruned_values) = store.tree_entries().unwrap();
    assert!(
        pruned_nodes < nodes / 2,
        "{pruned_nodes} of {nodes} nodes left"
    );
    // Each account keeps its newest value below the window and every value from it on; the
    // genesis accounts, never rewritten, keep theirs.
    let writes = |i: usize, heights: std::ops::RangeInclusive<u64>| {
        heights
            .filter(|h| !(i as u64 + h).is_multiple_of(3))
            .count() as u64
    };
    let all: u64 = (0..keys.len()).map(|i| writes(i, 1..=40)).sum();
    let genesis = values - all;
    let kept: u64 = (0..keys.len())
        .map(|i| writes(i, 33..=40) + u64::from(writes(i, 1..=32) > 0))
        .sum();
    assert_eq!(pruned_values, genesis + kept);
    for key in &keys {
        assert_eq!(store.account(key).unwrap(), twin.account(key).unwrap());
    }
    // The tip's tree is whole: the next block gives the unpruned twin's root.
    let updates = tree_updates(&keys, 41);
    let (ours, _) = compute_state_root(&store, 41, &updates).unwrap();
    let (theirs, _) = compute_state_root(&twin, 41, &updates).unwrap();
    assert_eq!(ours, theirs);
}

fn a_snapshot_is_made_and_restored_into_a_fresh_store<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    use super::{snapshot, RestoreAnchor};
    let (store, tip) = genesis_store(make);
    let keys = tree_keys();
    let (tip, roots) = commit_tree_blocks(&store, tip, &keys, 1..=16);
    let made = snapshot::create(&store, 16, 18, 2).unwrap();
    assert_eq!(made.root, roots[15]);
    assert!(made.complete);
    assert_eq!(
        made.accounts,
        keys.len() as u64 + 1,
        "the genesis account too"
    );
    let store = crash(store);
    assert_eq!(store.snapshots().unwrap(), vec![made]);
    let held = store.snapshot_chunks_held(16).unwrap();
    assert_eq!(held, (0..made.chunks()).collect::<Vec<u32>>());

    // A fresh store restores it chunk by chunk, across a crash.
    let (fresh, _) = genesis_store(make);
    let restoring = super::SnapshotManifest {
        complete: false,
        ..made
    };
    let anchor = RestoreAnchor {
        manifest: restoring,
        block: store.block_by_height(16).unwrap().unwrap().block,
        qc: tip.qc.clone(),
    };
    fresh.put_restore_anchor(&anchor).unwrap();
    for index in &held {
        let chunk = store.snapshot_chunk(16, *index).unwrap().unwrap();
        hotledger_ledger::verify_chunk(&made.root, made.depth, *index, &chunk).unwrap();
        fresh.put_snapshot(&restoring, &[(*index, chunk)]).unwrap();
    }
    let fresh = crash(fresh);
    assert_eq!(fresh.restore_anchor().unwrap(), Some(anchor.clone()));
    assert_eq!(fresh.snapshot_chunks_held(16).unwrap(), held);

    // Abandoned (its snapshot gone from every peer): nothing of it is left, across a crash;
    // abandoning again does nothing.
    let (other, _) = genesis_store(make);
    other.put_restore_anchor(&anchor).unwrap();
    let chunk = store.snapshot_chunk(16, 0).unwrap().unwrap();
    other.put_snapshot(&restoring, &[(0, chunk)]).unwrap();
    other.abandon_restore().unwrap();
    let other = crash(other);
    assert_eq!(other.restore_anchor().unwrap(), None);
    assert!(other.snapshots().unwrap().is_empty());
    assert!(other.snapshot_chunks_held(16).unwrap().is_empty());
    other.abandon_restore().unwrap();
    let tree = snapshot::restored_tree(&fresh, &anchor).unwrap();
    fresh.install_snapshot(&anchor, &tree).unwrap();
    let fresh = crash(fresh);
    let restored = fresh.tip().unwrap().unwrap();
    assert_eq!(restored.block, anchor.block.info());
    assert_eq!(restored.state_root, made.root);
    assert_eq!(fresh.earliest().unwrap(), 16);
    assert_eq!(fresh.restore_anchor().unwrap(), None);
    assert_eq!(fresh.snapshots().unwrap(), vec![made]);
    assert!(fresh.tree_behind().unwrap().is_empty());
    for key in &keys {
        assert_eq!(fresh.account(key).unwrap(), store.account(key).unwrap());
    }
    // The next block gives both stores the same root.
    let updates = tree_updates(&keys, 17);
    let (ours, _) = compute_state_root(&store, 17, &updates).unwrap();
    let (theirs, _) = compute_state_root(&fresh, 17, &updates).unwrap();
    assert_eq!(ours, theirs);

    store.delete_snapshot(16).unwrap();
    assert!(store.snapshots().unwrap().is_empty());
    assert_eq!(store.snapshot_chunk(16, 0).unwrap(), None);
}

fn genesis_init_and_fresh_flag<S: ChainStore>(make: &impl Fn() -> S, crash: &impl Fn(S) -> S) {
    let (store, tip) = genesis_store(make);
    let store = crash(store);
    assert!(!store.is_fresh().unwrap());
    assert_eq!(store.tip().unwrap(), Some(tip.clone()));
    assert_eq!(store.genesis_root().unwrap(), Some(tip.state_root));
    let (key, account) = genesis_account();
    assert_eq!(store.account(&key).unwrap(), Some(account));
    let absent = KeyPair::from_seed([9; 32]).public();
    assert_eq!(store.account(&absent).unwrap(), None);
    assert!(store.tree_behind().unwrap().is_empty());
    assert_eq!(store.block_by_height(1).unwrap(), None);
    let root = Sha256Jmt::new(&store).get_root_hash(0).unwrap();
    assert_eq!(Digest(root.0), tip.state_root);
}

fn a_sync_makes_uncommitted_blocks_durable<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    let (store, genesis) = genesis_store(make);
    let first = block_at(1, 1, &genesis);
    store.put_uncommitted(&first).unwrap();
    store.sync().unwrap();
    let second = block_at(1, 2, &genesis);
    store.put_uncommitted(&second).unwrap();
    let store = crash(store);
    // The unsynced one may survive or not (RocksDB reopened in-process keeps it; a modelled
    // crash does not); the synced one must.
    let kept = store.uncommitted_blocks().unwrap();
    assert!(kept.contains(&first), "a synced block was lost");
    assert!(kept.iter().all(|b| *b == first || *b == second));
}

/// Commits written unsynced (a forward sync's range before its last block) survive a crash
/// only as a whole prefix, and a sync makes them durable.
fn unsynced_commits_are_lost_only_as_a_suffix<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    let (store, genesis) = genesis_store(make);
    let unsynced = |store: &S, block: &Block, parent: &CommitTip| -> CommitTip {
        let tip = CommitTip {
            block: block.info(),
            ..parent.clone()
        };
        store
            .commit_block(BlockWrite {
                durable: false,
                write_tree: false,
                block,
                state_root: parent.state_root,
                records: &[],
                accounts: &BTreeMap::new(),
                tree: TreeUpdateBatch::default(),
                tip: &tip,
            })
            .unwrap();
        tip
    };
    let first = block_at(1, 1, &genesis);
    let tip1 = commit_empty(&store, &first, &genesis);
    let second = block_at(2, 2, &tip1);
    let tip2 = unsynced(&store, &second, &tip1);
    let third = block_at(3, 3, &tip2);
    let tip3 = unsynced(&store, &third, &tip2);
    let store = crash(store);
    let tip = store.tip().unwrap().unwrap();
    // Whatever survived is a prefix: the tip's block and every one below it, nothing above.
    for height in 1..=3 {
        let held = store.block_by_height(height).unwrap().is_some();
        assert_eq!(
            held,
            height <= tip.block.height,
            "height {height}, tip {tip:?}"
        );
    }
    assert!(tip == tip1 || tip == tip2 || tip == tip3);
    // Written again from the surviving tip and synced: durable.
    let mut parent = tip;
    for (height, tag) in [(2, 2), (3, 3)] {
        if parent.block.height < height {
            let block = block_at(height, tag, &parent);
            parent = unsynced(&store, &block, &parent);
        }
    }
    store.sync().unwrap();
    let store = crash(store);
    assert_eq!(store.tip().unwrap().unwrap().block.height, 3);
}

fn pruning_deletes_blocks_and_records_below_and_keeps_the_rest<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    let (store, genesis) = genesis_store(make);
    let sender = KeyPair::from_seed([7; 32]);
    let mut tip = genesis;
    let mut hashes = Vec::new();
    let none = BTreeMap::new();
    for height in 1..=6u64 {
        let tx = hotledger_ledger::Transfer {
            from: sender.public(),
            to: KeyPair::from_seed([8; 32]).public(),
            amount: 1,
            nonce: height - 1,
        }
        .sign(&sender, "suite");
        let mut block = block_at(height, u8::try_from(height).unwrap(), &tip);
        block.payload =
            hotledger_ledger::BlockPayload::new(0, tip.state_root, vec![tx.clone()]).encode();
        let record = TxRecord {
            height,
            index: 0,
            outcome: TxOutcome::Applied,
        };
        let root = tip.state_root;
        tip = commit(
            &store,
            &block,
            root,
            &[(tx.hash(), record)],
            &none,
            TreeUpdateBatch::default(),
            &tip,
        );
        hashes.push((height, block.id, tx.hash()));
    }
    assert_eq!(store.earliest().unwrap(), 1);
    // At most 2 heights a call, never the tip.
    assert_eq!(store.prune(5, 2).unwrap(), 3);
    assert_eq!(store.prune(5, 100).unwrap(), 5);
    assert_eq!(store.prune(100, 100).unwrap(), 6, "the tip is kept");
    assert_eq!(store.prune(2, 100).unwrap(), 6, "nothing below goes back");
    let store = crash(store);
    assert_eq!(store.earliest().unwrap(), 6);
    for (height, id, hash) in hashes {
        let kept = height >= 6;
        assert_eq!(
            store.block_by_height(height).unwrap().is_some(),
            kept,
            "{height}"
        );
        assert_eq!(store.block_by_id(&id).unwrap().is_some(), kept, "{height}");
        assert_eq!(store.tx(&hash).unwrap().is_some(), kept, "{height}");
    }
    assert_eq!(store.tip().unwrap(), Some(tip));
}

fn uncommitted_blocks_are_listed_and_deleted_by_commits<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    let (store, genesis) = genesis_store(make);
    let blocks: Vec<Block> = [(1, 1), (1, 2), (2, 3), (3, 4)]
        .into_iter()
        .map(|(height, tag)| block_at(height, tag, &genesis))
        .collect();
    for block in &blocks {
        store.put_uncommitted(block).unwrap();
        store.put_uncommitted(block).unwrap(); // twice: stored once
    }
    let listed = store.uncommitted_blocks().unwrap();
    let heights: Vec<u64> = listed.iter().map(|b| b.height).collect();
    assert_eq!(heights, vec![1, 1, 2, 3]);
    let ids: BTreeSet<Digest> = listed.iter().map(|b| b.id).collect();
    assert_eq!(ids, blocks.iter().map(|b| b.id).collect());
    // A synced write makes the puts before it durable.
    store.sync().unwrap();
    let store = crash(store);
    assert_eq!(store.uncommitted_blocks().unwrap().len(), 4);
    let tip = commit_empty(&store, &blocks[2], &genesis);
    assert_eq!(store.uncommitted_blocks().unwrap(), vec![blocks[3].clone()]);
    // A block at or below the tip can never commit: not stored.
    store.put_uncommitted(&block_at(2, 5, &tip)).unwrap();
    store.put_uncommitted(&block_at(1, 6, &tip)).unwrap();
    let store = crash(store);
    assert_eq!(store.uncommitted_blocks().unwrap(), vec![blocks[3].clone()]);
    assert_eq!(store.block_by_id(&blocks[0].id).unwrap(), None);
}

fn commits_are_read_back_by_height_id_tx_and_account<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    let (store, genesis) = genesis_store(make);
    let (key, _) = genesis_account();
    let other = KeyPair::from_seed([8; 32]).public();
    let stored_first = block_at(1, 1, &genesis);
    let fork = block_at(1, 2, &genesis);
    store.put_uncommitted(&stored_first).unwrap();
    store.put_uncommitted(&fork).unwrap();
    let updates = BTreeMap::from([
        (
            key,
            Account {
                balance: 90,
                nonce: 1,
            },
        ),
        (
            other,
            Account {
                balance: 10,
                nonce: 0,
            },
        ),
    ]);
    let (root, tree) = compute_state_root(&store, 1, &updates).unwrap();
    let hash = Digest::of(b"tx 1");
    let record = TxRecord {
        height: 1,
        index: 0,
        outcome: TxOutcome::Applied,
    };
    let tip = commit(
        &store,
        &stored_first,
        root,
        &[(hash, record.clone())],
        &updates,
        tree,
        &genesis,
    );
    // Never stored before its commit (as after a restart that lost an unsynced write).
    let unseen = block_at(2, 3, &tip);
    let tip = commit_empty(&store, &unseen, &tip);
    let check = |store: &S| {
        assert_eq!(store.tip().unwrap(), Some(tip.clone()));
        for block in [&stored_first, &unseen] {
            let served = store.block_by_height(block.height).unwrap().unwrap();
            assert_eq!(&served.block, block);
            assert_eq!(served.state_root, root);
            assert_eq!(store.block_by_id(&block.id).unwrap().as_ref(), Some(block));
        }
        assert_eq!(store.block_by_id(&fork.id).unwrap(), None);
        assert_eq!(store.block_by_height(3).unwrap(), None);
        assert_eq!(store.tx(&hash).unwrap(), Some(record.clone()));
        assert_eq!(store.tx(&Digest::of(b"tx 2")).unwrap(), None);
        assert_eq!(store.account(&key).unwrap(), updates.get(&key).copied());
        assert_eq!(store.account(&other).unwrap(), updates.get(&other).copied());
        assert!(store.uncommitted_blocks().unwrap().is_empty());
    };
    check(&store);
    check(&crash(store));
}

fn tree_nodes_are_written_every_few_commits_and_by_flush<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    let keys = tree_keys();
    let (store, genesis) = genesis_store(make);
    let last = TREE_WRITE_EVERY - 1;
    let (tip, _) = commit_tree_blocks(&store, genesis, &keys, 1..=last);
    assert!(store.tree_behind().unwrap().is_empty()); // held in memory, not behind
    let store = crash(store);
    assert_eq!(
        store.tree_behind().unwrap(),
        1..=last,
        "nothing written yet"
    );
    store.rebuild_tree(|_| Ok(keys.clone())).unwrap();
    // The commit of `TREE_WRITE_EVERY` writes the tree.
    let (tip, _) = commit_tree_blocks(&store, tip, &keys, TREE_WRITE_EVERY..=TREE_WRITE_EVERY);
    let store = crash(store);
    assert!(store.tree_behind().unwrap().is_empty());
    // So does a flush.
    let next = TREE_WRITE_EVERY + 1;
    commit_tree_blocks(&store, tip, &keys, next..=next + 1);
    let updates = tree_updates(&keys, next + 2);
    let before = compute_state_root(&store, next + 2, &updates).unwrap();
    store.flush().unwrap();
    let store = crash(store);
    assert!(store.tree_behind().unwrap().is_empty());
    let after = compute_state_root(&store, next + 2, &updates).unwrap();
    assert_eq!(after.0, before.0);
    assert_eq!(after.1.node_batch.nodes(), before.1.node_batch.nodes());
}

fn a_crash_is_rebuilt_to_every_stored_root<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    let keys = tree_keys();
    let (store, genesis) = genesis_store(make);
    let last = TREE_WRITE_EVERY + 3;
    let (_, roots) = commit_tree_blocks(&store, genesis, &keys, 1..=last);
    let next = tree_updates(&keys, last + 1);
    let before = compute_state_root(&store, last + 1, &next).unwrap();
    let store = crash(store);
    assert_eq!(store.tree_behind().unwrap(), TREE_WRITE_EVERY + 1..=last);
    assert!(matches!(
        compute_state_root(&store, last + 1, &next),
        Err(LedgerError::MissingVersion { version }) if version == last
    ));
    let mut seen = Vec::new();
    let rebuilt = store
        .rebuild_tree(|block| {
            seen.push(block.height);
            Ok(keys.clone()) // a superset of what each block changed
        })
        .unwrap();
    assert_eq!(rebuilt, 3);
    assert_eq!(seen, (TREE_WRITE_EVERY + 1..=last).collect::<Vec<_>>());
    assert!(store.tree_behind().unwrap().is_empty());
    for height in 1..=last {
        let stored = store.block_by_height(height).unwrap().unwrap();
        let index = usize::try_from(height - 1).unwrap();
        assert_eq!(stored.state_root, roots[index]);
    }
    for height in [TREE_WRITE_EVERY, last] {
        let root = Sha256Jmt::new(&store).get_root_hash(height).unwrap();
        let index = usize::try_from(height - 1).unwrap();
        assert_eq!(Digest(root.0), roots[index], "root of version {height}");
    }
    let after = compute_state_root(&store, last + 1, &next).unwrap();
    assert_eq!(after.0, before.0);
    assert_eq!(after.1.node_batch.nodes(), before.1.node_batch.nodes());
    // Accounts read their latest committed value.
    for key in &keys {
        let latest = (1..=last)
            .rev()
            .find_map(|h| tree_updates(&keys, h).get(key).copied());
        assert_eq!(store.account(key).unwrap(), latest);
    }
}

fn a_rebuild_missing_a_changed_account_is_a_root_mismatch<S: ChainStore>(
    make: &impl Fn() -> S,
    crash: &impl Fn(S) -> S,
) {
    let keys = tree_keys();
    let (store, genesis) = genesis_store(make);
    let (_, roots) = commit_tree_blocks(&store, genesis, &keys, 1..=2);
    let store = crash(store);
    let err = store.rebuild_tree(|_| Ok(keys[1..].to_vec())).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Ledger(LedgerError::RootMismatch { height: 1, stored, .. })
                if stored == roots[0]
        ),
        "{err}"
    );
    // A failing `touched` stops the rebuild with its error.
    let refused = StorageError::MissingBlock { height: 1 };
    let err = store.rebuild_tree(|_| Err(refused.clone())).unwrap_err();
    assert_eq!(err, refused);
}
