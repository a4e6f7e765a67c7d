//! The node overlay's write policy and the rebuild after a crash, against the reference: a
//! [`MemoryTreeStore`] that writes every version's nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::RwLock;

use common::pk;
use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use hotledger_ledger::jmt::{KeyHash, OwnedValue, Sha256Jmt, Version};
use hotledger_ledger::{
    compute_state_root, genesis_state_root, rebuild_version, Account, LedgerError, MemoryTreeStore,
    NodeOverlay, StateTree, TreeStore, TREE_WRITE_EVERY, TREE_WRITE_NODES,
};

/// A store that writes values with every commit and nodes when the overlay's policy says: the
/// shape of the node's stores, in memory.
struct PolicyStore {
    written: MemoryTreeStore,
    overlay: RwLock<NodeOverlay>,
}

impl PolicyStore {
    fn genesis(accounts: &[(PublicKey, u64)]) -> PolicyStore {
        let written = MemoryTreeStore::new();
        let (_, batch) = genesis_state_root(accounts).unwrap();
        written.write_node_batch(&batch.node_batch).unwrap();
        PolicyStore {
            written,
            overlay: RwLock::new(NodeOverlay::new(0)),
        }
    }

    /// Commits `updates` as version `height`; returns the root and whether the tree was written.
    fn commit(&self, height: u64, updates: &BTreeMap<PublicKey, Account>) -> (Digest, bool) {
        let (root, batch) = compute_state_root(self, height, updates).unwrap();
        let nodes = batch.node_batch;
        self.written.write_values(&nodes).unwrap();
        let mut overlay = self.overlay.write().unwrap();
        let write = overlay.must_write(height, nodes.nodes().len());
        if write {
            let reachable = overlay.reachable(height, Some(&nodes)).unwrap();
            self.written.write_nodes(reachable).unwrap();
        }
        overlay.add(height, nodes);
        if write {
            drop(overlay.mark_written(height));
        }
        (root, write)
    }

    /// A crash: the held nodes are lost.
    fn crash(&self) {
        let mut overlay = self.overlay.write().unwrap();
        *overlay = NodeOverlay::new(overlay.written());
    }
}

impl TreeReader for PolicyStore {
    fn get_node_option(&self, key: &NodeKey) -> anyhow::Result<Option<Node>> {
        if let Some(node) = self.overlay.read().unwrap().node(key) {
            return Ok(Some(node.clone()));
        }
        self.written.get_node_option(key)
    }
    fn get_value_option(&self, max: Version, key: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        self.written.get_value_option(max, key)
    }
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(None)
    }
}

fn genesis_accounts() -> Vec<(PublicKey, u64)> {
    (0..30u8).map(|i| (pk(i), 1_000)).collect()
}

/// Overlapping account sets, so each version replaces paths of the one before; every fifth
/// version changes nothing.
fn updates(height: u64) -> BTreeMap<PublicKey, Account> {
    if height.is_multiple_of(5) {
        return BTreeMap::new();
    }
    (0..40u8)
        .filter(|i| !(u64::from(*i) + height).is_multiple_of(3))
        .map(|i| {
            let account = Account {
                balance: height * 100 + u64::from(i),
                nonce: height,
            };
            (pk(i), account)
        })
        .collect()
}

fn touched(height: u64) -> Vec<PublicKey> {
    updates(height).into_keys().collect()
}

/// The reference roots of versions `1..=last`, every version written.
fn reference_roots(last: u64) -> Vec<Digest> {
    let store = MemoryTreeStore::new();
    let (mut tree, _) = StateTree::genesis(&store, &genesis_accounts()).unwrap();
    (1..=last)
        .map(|h| tree.apply(&updates(h)).unwrap())
        .collect()
}

fn root_at<R: TreeReader>(reader: &R, version: u64) -> Digest {
    Digest(Sha256Jmt::new(reader).get_root_hash(version).unwrap().0)
}

#[test]
fn roots_with_the_write_policy_equal_roots_with_every_version_written() {
    let last = 3 * TREE_WRITE_EVERY + 2;
    let reference = reference_roots(last);
    let store = PolicyStore::genesis(&genesis_accounts());
    let mut writes = Vec::new();
    for height in 1..=last {
        let (root, wrote) = store.commit(height, &updates(height));
        assert_eq!(
            root,
            reference[usize::try_from(height - 1).unwrap()],
            "{height}"
        );
        if wrote {
            writes.push(height);
        }
    }
    let every: Vec<u64> = (1..=3).map(|n| n * TREE_WRITE_EVERY).collect();
    assert_eq!(writes, every);
    // A written version reads from the written nodes alone.
    for version in every {
        let index = usize::try_from(version - 1).unwrap();
        assert_eq!(root_at(&store.written, version), reference[index]);
    }
}

#[test]
fn after_a_crash_the_rebuild_gives_back_every_root() {
    let last = 2 * TREE_WRITE_EVERY + 5;
    let reference = reference_roots(last + 1);
    let store = PolicyStore::genesis(&genesis_accounts());
    for height in 1..=last {
        store.commit(height, &updates(height));
    }
    store.crash();
    let behind = store.overlay.read().unwrap().behind(last);
    assert_eq!(behind, 2 * TREE_WRITE_EVERY + 1..=last);
    assert_eq!(
        compute_state_root(&store, last + 1, &updates(last + 1)).map(|r| r.0),
        Err(LedgerError::MissingVersion { version: last })
    );
    for height in behind {
        let stored = reference[usize::try_from(height - 1).unwrap()];
        let nodes = rebuild_version(&store, height, &touched(height), &stored).unwrap();
        store.overlay.write().unwrap().add(height, nodes);
        assert_eq!(root_at(&store, height), stored);
    }
    assert!(store.overlay.read().unwrap().behind(last).is_empty());
    let (next, _) = store.commit(last + 1, &updates(last + 1));
    assert_eq!(next, reference[usize::try_from(last).unwrap()]);
}

#[test]
fn a_wrong_stored_root_is_a_root_mismatch() {
    let store = PolicyStore::genesis(&genesis_accounts());
    let (root, _) = store.commit(1, &updates(1));
    store.crash();
    let wrong = Digest::of(b"not the root");
    assert_eq!(
        rebuild_version(&store, 1, &touched(1), &wrong),
        Err(LedgerError::RootMismatch {
            height: 1,
            rebuilt: root,
            stored: wrong,
        })
    );
    // An account left out of the rebuild gives another root, refused the same way.
    let partial = &touched(1)[1..];
    assert!(matches!(
        rebuild_version(&store, 1, partial, &root),
        Err(LedgerError::RootMismatch { height: 1, stored, .. }) if stored == root
    ));
    // A superset of the accounts changed gives the stored root.
    let all: Vec<PublicKey> = (0..40u8).map(pk).collect();
    assert!(rebuild_version(&store, 1, &all, &root).is_ok());
}

#[test]
fn the_node_count_bound_forces_a_write() {
    let store = PolicyStore::genesis(&genesis_accounts());
    let (_, wrote) = store.commit(1, &updates(1));
    assert!(!wrote);
    let overlay = store.overlay.read().unwrap();
    let held = overlay.unwritten();
    assert!(held > 0);
    // Far from `TREE_WRITE_EVERY`, the count alone decides.
    assert!(!overlay.must_write(2, TREE_WRITE_NODES - held - 1));
    assert!(overlay.must_write(2, TREE_WRITE_NODES - held));
    assert!(NodeOverlay::new(0).must_write(1, TREE_WRITE_NODES));
    assert!(!NodeOverlay::new(0).must_write(1, TREE_WRITE_NODES - 1));
    assert!(NodeOverlay::new(0).must_write(TREE_WRITE_EVERY, 0));
    assert!(!NodeOverlay::new(0).must_write(TREE_WRITE_EVERY - 1, 0));
}

#[test]
fn a_write_needs_every_unwritten_node_held() {
    let store = PolicyStore::genesis(&genesis_accounts());
    store.commit(1, &updates(1));
    store.crash();
    let overlay = store.overlay.read().unwrap();
    let root = NodeKey::new(1, std::iter::empty().collect());
    assert_eq!(
        overlay.reachable(1, None).map(|nodes| nodes.len()),
        Err(LedgerError::NodeNotHeld { key: root })
    );
}

#[test]
fn a_write_releases_the_versions_below_it() {
    let store = PolicyStore::genesis(&genesis_accounts());
    for height in 1..TREE_WRITE_EVERY {
        store.commit(height, &updates(height));
    }
    let mut overlay = store.overlay.read().unwrap().clone();
    assert_eq!(overlay.newest(), TREE_WRITE_EVERY - 1);
    let released = overlay.mark_written(3);
    assert_eq!(released.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(overlay.written(), 3);
    assert!(overlay.batch(3).is_some() && overlay.batch(2).is_none());
    let above: usize = (4..TREE_WRITE_EVERY)
        .map(|v| overlay.batch(v).unwrap().nodes().len())
        .sum();
    assert_eq!(overlay.unwritten(), above);
    assert!(overlay.behind(TREE_WRITE_EVERY - 1).is_empty());
}
