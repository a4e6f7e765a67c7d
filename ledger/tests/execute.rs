//! Deterministic execution and the supply invariant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{accounts, pk, supply, unsigned};
use hotledger_crypto::PublicKey;
use hotledger_ledger::{execute, Account, AccountReader, Overlay, TxError, TxOutcome};
use proptest::prelude::*;

/// The state after applying an execution's updates.
fn apply(
    base: &BTreeMap<PublicKey, Account>,
    updates: &BTreeMap<PublicKey, Account>,
) -> BTreeMap<PublicKey, Account> {
    let mut state = base.clone();
    state.extend(updates.iter().map(|(k, a)| (*k, *a)));
    state
}

#[test]
fn simple_transfer() {
    let state = accounts(&[(0, 100)]);
    let exec = execute(&state, &[unsigned(pk(0), pk(1), 30, 0)]).unwrap();
    assert_eq!(exec.outcomes, vec![TxOutcome::Applied]);
    assert_eq!(exec.applied(), 1);
    assert_eq!(
        exec.updates[&pk(0)],
        Account {
            balance: 70,
            nonce: 1
        }
    );
    assert_eq!(
        exec.updates[&pk(1)],
        Account {
            balance: 30,
            nonce: 0
        }
    );
    assert_eq!(supply(&apply(&state, &exec.updates)), 100);
}

#[test]
fn failures_change_nothing() {
    let state = accounts(&[(0, 100), (1, u64::MAX)]);
    let cases = [
        (unsigned(pk(5), pk(0), 1, 0), TxError::UnknownSender),
        (
            unsigned(pk(0), pk(1), 1, 1),
            TxError::BadNonce {
                expected: 0,
                got: 1,
            },
        ),
        (
            unsigned(pk(0), pk(2), 101, 0),
            TxError::InsufficientBalance {
                balance: 100,
                amount: 101,
            },
        ),
        (unsigned(pk(0), pk(1), 1, 0), TxError::Overflow),
        (unsigned(pk(0), pk(2), 0, 0), TxError::ZeroAmount),
        (unsigned(pk(0), pk(0), 5, 0), TxError::SelfTransfer),
    ];
    for (tx, err) in cases {
        let exec = execute(&state, std::slice::from_ref(&tx)).unwrap();
        assert_eq!(exec.outcomes, vec![TxOutcome::Failed(err.clone())], "{err}");
        assert!(exec.updates.is_empty(), "{err}");
    }
}

#[test]
fn sender_nonce_overflow() {
    let mut state = accounts(&[(0, 100)]);
    state.insert(
        pk(0),
        Account {
            balance: 100,
            nonce: u64::MAX,
        },
    );
    let exec = execute(&state, &[unsigned(pk(0), pk(1), 1, u64::MAX)]).unwrap();
    assert_eq!(exec.outcomes, vec![TxOutcome::Failed(TxError::Overflow)]);
}

#[test]
fn sequential_nonces_in_one_block() {
    let state = accounts(&[(0, 100)]);
    let txs = [
        unsigned(pk(0), pk(1), 10, 0),
        unsigned(pk(0), pk(2), 10, 1),
        unsigned(pk(0), pk(1), 10, 1), // replay of nonce 1
        unsigned(pk(1), pk(2), 5, 0),  // spends funds received earlier in the block
        unsigned(pk(0), pk(2), 90, 2), // overdraft: 80 left
        unsigned(pk(0), pk(2), 80, 2), // same nonce, affordable
    ];
    let exec = execute(&state, &txs).unwrap();
    assert_eq!(
        exec.outcomes,
        vec![
            TxOutcome::Applied,
            TxOutcome::Applied,
            TxOutcome::Failed(TxError::BadNonce {
                expected: 2,
                got: 1
            }),
            TxOutcome::Applied,
            TxOutcome::Failed(TxError::InsufficientBalance {
                balance: 80,
                amount: 90
            }),
            TxOutcome::Applied,
        ]
    );
    let after = apply(&state, &exec.updates);
    assert_eq!(
        after[&pk(0)],
        Account {
            balance: 0,
            nonce: 3
        }
    );
    assert_eq!(
        after[&pk(1)],
        Account {
            balance: 5,
            nonce: 1
        }
    );
    assert_eq!(
        after[&pk(2)],
        Account {
            balance: 95,
            nonce: 0
        }
    );
    assert_eq!(supply(&after), 100);
}

#[test]
fn execution_is_deterministic_and_layered() {
    let state = accounts(&[(0, 100), (1, 50)]);
    let block1 = [unsigned(pk(0), pk(1), 10, 0)];
    let block2 = [unsigned(pk(0), pk(1), 10, 1), unsigned(pk(1), pk(0), 60, 0)];
    let e1 = execute(&state, &block1).unwrap();
    assert_eq!(e1, execute(&state, &block1).unwrap());
    // Block 2 on top of block 1's uncommitted updates equals block 2 on the committed state.
    let view = Overlay {
        base: &state,
        overlay: &e1.updates,
    };
    let e2 = execute(&view, &block2).unwrap();
    let committed = apply(&state, &e1.updates);
    assert_eq!(e2, execute(&committed, &block2).unwrap());
    assert_eq!(view.account(&pk(2)).unwrap(), None);
    let after = apply(&committed, &e2.updates);
    assert_eq!(
        after[&pk(0)],
        Account {
            balance: 140,
            nonce: 2
        }
    );
    assert_eq!(
        after[&pk(1)],
        Account {
            balance: 10,
            nonce: 1
        }
    );
}

fn tx_strategy(keys: u8) -> impl Strategy<Value = (u8, u8, u64, u64)> {
    (
        0..keys,
        0..keys,
        prop_oneof![Just(0u64), 1..200u64, Just(u64::MAX), any::<u64>()],
        0..6u64,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn supply_is_invariant(
        balances in proptest::collection::vec(
            prop_oneof![0..500u64, Just(u64::MAX), Just(u64::MAX - 1)], 1..6),
        txs in proptest::collection::vec(tx_strategy(7), 0..40),
    ) {
        let genesis: Vec<(u8, u64)> =
            balances.iter().enumerate().map(|(i, b)| (i as u8, *b)).collect();
        let state = accounts(&genesis);
        let txs: Vec<_> = txs
            .iter()
            .map(|(f, t, amount, nonce)| unsigned(pk(*f), pk(*t), *amount, *nonce))
            .collect();
        let exec = execute(&state, &txs).unwrap();
        prop_assert_eq!(exec.outcomes.len(), txs.len());
        let after = apply(&state, &exec.updates);
        prop_assert_eq!(supply(&after), supply(&state));
        // Each sender's nonce advanced by exactly its applied transfers.
        for (key, account) in &after {
            let applied = txs
                .iter()
                .zip(&exec.outcomes)
                .filter(|(tx, o)| tx.transfer.from == *key && **o == TxOutcome::Applied)
                .count() as u64;
            let before = state.get(key).map_or(0, |a| a.nonce);
            prop_assert_eq!(account.nonce, before + applied);
        }
        // Deterministic.
        prop_assert_eq!(execute(&state, &txs).unwrap(), exec);
    }
}
