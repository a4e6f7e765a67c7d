//! The jmt state root, the tree store and account proofs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{accounts, pk, unsigned};
use hotledger_crypto::Digest;
use hotledger_ledger::jmt::storage::TreeReader;
use hotledger_ledger::{
    account_key_hash, compute_state_root, decode_node, decode_node_key, encode_node,
    encode_node_key, encode_value_key, execute, genesis_state_root, verify_account_proof, Account,
    AccountReader, LedgerError, MemoryTreeStore, StateTree, TreeStore,
};

fn genesis(store: &MemoryTreeStore, balances: &[(u8, u64)]) -> Digest {
    let list: Vec<_> = balances.iter().map(|(i, b)| (pk(*i), *b)).collect();
    StateTree::genesis(store, &list).unwrap().1
}

#[test]
fn genesis_root_is_deterministic_and_order_independent() {
    let a = genesis_state_root(&[(pk(0), 10), (pk(1), 20), (pk(2), 30)])
        .unwrap()
        .0;
    let b = genesis_state_root(&[(pk(2), 30), (pk(0), 10), (pk(1), 20)])
        .unwrap()
        .0;
    assert_eq!(a, b);
    assert_ne!(
        a,
        genesis_state_root(&[(pk(0), 10), (pk(1), 20)]).unwrap().0
    );
    assert_ne!(
        a,
        genesis_state_root(&[(pk(0), 11), (pk(1), 20), (pk(2), 30)])
            .unwrap()
            .0
    );
    // The empty tree's root is jmt's placeholder hash.
    let empty = genesis_state_root(&[]).unwrap().0;
    assert_eq!(empty.as_bytes(), b"SPARSE_MERKLE_PLACEHOLDER_HASH__");
    // Stored genesis gives the same root as the pure computation.
    let store = MemoryTreeStore::new();
    assert_eq!(genesis(&store, &[(1, 20), (0, 10), (2, 30)]), a);
    assert_eq!(StateTree::open(&store, 0).root().unwrap(), a);
}

#[test]
fn genesis_rejects_duplicates_and_supply_overflow() {
    assert_eq!(
        genesis_state_root(&[(pk(0), 1), (pk(0), 2)]).map(|r| r.0),
        Err(LedgerError::DuplicateGenesisAccount { key: pk(0) })
    );
    assert_eq!(
        genesis_state_root(&[(pk(0), u64::MAX), (pk(1), 1)]).map(|r| r.0),
        Err(LedgerError::SupplyOverflow)
    );
    assert!(genesis_state_root(&[(pk(0), u64::MAX), (pk(1), 0)]).is_ok());
}

#[test]
fn root_changes_with_any_balance_or_nonce_change() {
    let store = MemoryTreeStore::new();
    let g = genesis(&store, &[(0, 100), (1, 100), (2, 100)]);
    let base = accounts(&[(0, 100), (1, 100), (2, 100)]);
    let mut roots = vec![g];
    for i in 0..3u8 {
        for change in [
            Account {
                balance: 99,
                nonce: 0,
            },
            Account {
                balance: 100,
                nonce: 1,
            },
        ] {
            let updates = BTreeMap::from([(pk(i), change)]);
            let (root, _) = compute_state_root(&store, 1, &updates).unwrap();
            assert!(!roots.contains(&root));
            roots.push(root);
        }
    }
    // Writing an unchanged value keeps the root.
    let same = BTreeMap::from([(pk(1), base[&pk(1)])]);
    assert_eq!(compute_state_root(&store, 1, &same).unwrap().0, g);
    assert_eq!(
        compute_state_root(&store, 1, &BTreeMap::new()).unwrap().0,
        g
    );
    // Computing is deterministic and writes nothing.
    let updates = BTreeMap::from([(
        pk(0),
        Account {
            balance: 1,
            nonce: 1,
        },
    )]);
    let (r1, b1) = compute_state_root(&store, 1, &updates).unwrap();
    let (r2, b2) = compute_state_root(&store, 1, &updates).unwrap();
    assert_eq!((r1, b1), (r2, b2));
    assert!(StateTree::open(&store, 1).root().is_err());
}

#[test]
fn same_state_via_different_histories_gives_same_root() {
    let final_state = [(0u8, 5u64), (1, 7), (2, 9), (3, 11)];
    // Store A: everything at genesis, then one block touching nothing.
    let a = MemoryTreeStore::new();
    genesis(&a, &final_state);
    let mut tree_a = StateTree::open(&a, 0);
    let root_a = tree_a.apply(&BTreeMap::new()).unwrap();
    // Store B: a smaller genesis, then the rest inserted in another order, with a detour.
    let b = MemoryTreeStore::new();
    genesis(&b, &[(3, 11), (1, 1)]);
    let mut tree_b = StateTree::open(&b, 0);
    tree_b.apply(&accounts(&[(2, 9), (0, 4)])).unwrap();
    let root_b = tree_b.apply(&accounts(&[(1, 7), (0, 5)])).unwrap();
    assert_eq!(root_a, root_b);
    assert_eq!(tree_a.height(), 1);
    assert_eq!(tree_b.height(), 2);
    assert_eq!(tree_b.root().unwrap(), root_b);
}

#[test]
fn state_tree_applies_executions_and_reads_history() {
    let store = MemoryTreeStore::new();
    genesis(&store, &[(0, 100)]);
    let mut tree = StateTree::open(&store, 0);
    let exec = execute(&tree, &[unsigned(pk(0), pk(1), 40, 0)]).unwrap();
    let root1 = tree.apply(&exec.updates).unwrap();
    assert_eq!(
        tree.account(&pk(0)).unwrap(),
        Some(Account {
            balance: 60,
            nonce: 1
        })
    );
    assert_eq!(
        tree.account(&pk(1)).unwrap(),
        Some(Account {
            balance: 40,
            nonce: 0
        })
    );
    assert_eq!(tree.account(&pk(2)).unwrap(), None);
    let old = StateTree::open(&store, 0);
    assert_eq!(
        old.account(&pk(0)).unwrap(),
        Some(Account {
            balance: 100,
            nonce: 0
        })
    );
    assert_eq!(old.account(&pk(1)).unwrap(), None);
    assert_eq!(StateTree::open(&store, 1).root().unwrap(), root1);
    // A height cannot be applied twice with different content, nor skipped.
    let other = accounts(&[(5, 1)]);
    let (_, batch) = compute_state_root(&store, 1, &other).unwrap();
    assert!(matches!(
        store.write_node_batch(&batch.node_batch),
        Err(LedgerError::ConflictingNode { key }) if key.version() == 1
    ));
    assert_eq!(
        compute_state_root(&store, 3, &other).map(|r| r.0),
        Err(LedgerError::MissingVersion { version: 2 })
    );
    assert_eq!(
        compute_state_root(&store, 3, &BTreeMap::new()).map(|r| r.0),
        Err(LedgerError::MissingVersion { version: 2 })
    );
    let empty = MemoryTreeStore::new();
    assert_eq!(
        compute_state_root(&empty, 1, &other).map(|r| r.0),
        Err(LedgerError::MissingVersion { version: 0 })
    );
}

#[test]
fn account_proofs() {
    let store = MemoryTreeStore::new();
    let root = genesis(&store, &[(0, 100), (1, 7), (2, 3)]);
    let tree = StateTree::open(&store, 0);
    let (account, proof) = tree.prove(&pk(1)).unwrap();
    let account = account.unwrap();
    assert_eq!(
        account,
        Account {
            balance: 7,
            nonce: 0
        }
    );
    assert_eq!(
        verify_account_proof(&root, &pk(1), Some(&account), &proof),
        Ok(())
    );
    let forged = Account {
        balance: 8,
        nonce: 0,
    };
    assert!(verify_account_proof(&root, &pk(1), Some(&forged), &proof).is_err());
    assert!(verify_account_proof(&root, &pk(0), Some(&account), &proof).is_err());
    assert!(verify_account_proof(&Digest::ZERO, &pk(1), Some(&account), &proof).is_err());
    // Absence.
    let (none, proof) = tree.prove(&pk(9)).unwrap();
    assert_eq!(none, None);
    assert_eq!(verify_account_proof(&root, &pk(9), None, &proof), Ok(()));
    assert!(verify_account_proof(&root, &pk(9), Some(&account), &proof).is_err());
    // Proofs serialize (for JSON-RPC).
    let bytes = postcard::to_allocvec(&proof).unwrap();
    assert_eq!(
        postcard::from_bytes::<hotledger_ledger::AccountProof>(&bytes).unwrap(),
        proof
    );
}

#[test]
fn node_and_value_encodings_roundtrip() {
    let (_, batch) = genesis_state_root(&[(pk(0), 1), (pk(1), 2), (pk(2), 3)]).unwrap();
    let nodes = batch.node_batch.nodes();
    assert!(nodes.len() >= 4);
    for (key, node) in nodes {
        let encoded_key = encode_node_key(key).unwrap();
        assert_eq!(encoded_key[..8], key.version().to_be_bytes());
        assert_eq!(&decode_node_key(&encoded_key).unwrap(), key);
        assert_eq!(&decode_node(&encode_node(node).unwrap()).unwrap(), node);
    }
    assert_eq!(
        decode_node_key(&[0; 7]),
        Err(LedgerError::ShortNodeKey { len: 7 })
    );
    assert!(decode_node(&[0xff; 3]).is_err());
    let k = account_key_hash(&pk(0));
    let vk = encode_value_key(&k, 0x0102);
    assert_eq!(vk[..32], k.0);
    assert_eq!(vk[32..], 0x0102u64.to_be_bytes());
    // Store values round-trip through the reader at the right versions.
    let store = MemoryTreeStore::new();
    store.write_node_batch(&batch.node_batch).unwrap();
    assert!(store.get_value_option(0, k).unwrap().is_some());
    assert!(store.get_rightmost_leaf().unwrap().is_some());
    assert!(store.node_count().unwrap() >= 4);
}

/// The batch insertion `compute_state_root` uses gives, block after block, the same roots as
/// jmt's key-by-key `put_value_set`, for random account sets that create, update and leave
/// accounts alone (and for empty blocks).
mod batch_matches_key_by_key {
    use super::*;
    use hotledger_ledger::encode_account;
    use hotledger_ledger::jmt::{KeyHash, OwnedValue, Sha256Jmt};
    use proptest::prelude::*;

    fn key_by_key(
        store: &MemoryTreeStore,
        height: u64,
        updates: &BTreeMap<hotledger_crypto::PublicKey, Account>,
    ) -> Digest {
        let set: Vec<(KeyHash, Option<OwnedValue>)> = updates
            .iter()
            .map(|(k, a)| (account_key_hash(k), Some(encode_account(a).unwrap())))
            .collect();
        let (root, _) = Sha256Jmt::new(store).put_value_set(set, height).unwrap();
        Digest(root.0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn roots_agree(
            genesis_keys in proptest::collection::btree_set(any::<u8>(), 1..40),
            blocks in proptest::collection::vec(
                proptest::collection::btree_map(any::<u8>(), (0u64..1_000, 0u64..5), 0..60),
                1..6,
            ),
        ) {
            let store = MemoryTreeStore::new();
            let list: Vec<_> = genesis_keys.iter().map(|i| (pk(*i), 1_000)).collect();
            StateTree::genesis(&store, &list).unwrap();
            for (i, block) in blocks.iter().enumerate() {
                let height = i as u64 + 1;
                let updates: BTreeMap<_, _> = block
                    .iter()
                    .map(|(k, (balance, nonce))| (pk(*k), Account { balance: *balance, nonce: *nonce }))
                    .collect();
                let expected = key_by_key(&store, height, &updates);
                let (root, batch) = compute_state_root(&store, height, &updates).unwrap();
                prop_assert_eq!(root, expected);
                store.write_node_batch(&batch.node_batch).unwrap();
                prop_assert_eq!(StateTree::open(&store, height).root().unwrap(), expected);
            }
        }
    }
}
