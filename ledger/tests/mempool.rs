//! Mempool admission, limits, selection and pruning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};

use common::{accounts, key, pk, signed, CHAIN};
use hotledger_crypto::{Digest, PublicKey, Signature};
use hotledger_ledger::{
    Account, AccountReader, Eviction, LedgerError, Mempool, MempoolLimits, Origin, Rejection,
    SignedTransaction, Transfer, GAP_SWEEP_MS,
};

fn pool(limits: MempoolLimits) -> Mempool {
    Mempool::new(CHAIN.to_string(), limits)
}

fn insert_one(
    pool: &mut Mempool,
    state: &impl AccountReader,
    tx: SignedTransaction,
) -> Result<Digest, Rejection> {
    let mut results = pool.insert_batch(state, vec![tx]);
    assert_eq!(results.len(), 1);
    results.remove(0)
}

#[test]
fn admits_valid_transactions() {
    let state = accounts(&[(0, 100)]);
    let mut mp = pool(MempoolLimits::default());
    let tx = signed(0, 1, 10, 0);
    let size = tx.encoded_len();
    assert_eq!(insert_one(&mut mp, &state, tx.clone()), Ok(tx.hash()));
    assert!(mp.contains(&tx.hash()));
    assert_eq!(mp.get(&tx.hash()), Some(&tx));
    assert_eq!((mp.len(), mp.bytes()), (1, size));
    assert!(!mp.is_empty());
}

#[test]
fn every_rejection() {
    let mut state = accounts(&[(0, 100), (2, 5)]);
    state.insert(
        pk(3),
        Account {
            balance: 100,
            nonce: 4,
        },
    );
    let limits = MempoolLimits {
        max_nonce_gap: 10,
        ..MempoolLimits::default()
    };
    let mut mp = pool(limits);
    let first = signed(0, 1, 60, 0);
    assert!(insert_one(&mut mp, &state, first.clone()).is_ok());
    let mut bad_sig = signed(0, 1, 1, 1);
    bad_sig.signature.0[3] ^= 0x10;
    let wrong_chain = Transfer {
        from: pk(0),
        to: pk(1),
        amount: 1,
        nonce: 2,
    }
    .sign(&key(0), "x");
    let mut huge_limits = limits;
    huge_limits.max_tx_bytes = 100;
    let cases: Vec<(SignedTransaction, Rejection)> = vec![
        (first.clone(), Rejection::Duplicate),
        (bad_sig, Rejection::BadSignature),
        (wrong_chain, Rejection::BadSignature),
        (
            signed(3, 1, 1, 3),
            Rejection::StaleNonce {
                expected: 4,
                got: 3,
            },
        ),
        (
            signed(3, 1, 1, 15),
            Rejection::NonceTooFarAhead {
                expected: 4,
                got: 15,
                max_gap: 10,
            },
        ),
        (signed(0, 2, 1, 0), Rejection::DuplicateNonce { nonce: 0 }),
        (signed(1, 0, 1, 0), Rejection::UnknownSender),
        (
            signed(0, 1, 41, 1),
            Rejection::InsufficientBalance {
                balance: 100,
                needed: 101,
            },
        ),
        (
            signed(2, 1, 6, 0),
            Rejection::InsufficientBalance {
                balance: 5,
                needed: 6,
            },
        ),
        (signed(0, 1, 0, 1), Rejection::ZeroAmount),
        (signed(0, 0, 1, 1), Rejection::SelfTransfer),
    ];
    for (tx, want) in cases {
        assert_eq!(insert_one(&mut mp, &state, tx), Err(want.clone()), "{want}");
    }
    assert_eq!(mp.len(), 1);
    // The gap bound is inclusive.
    assert!(insert_one(&mut mp, &state, signed(3, 1, 1, 14)).is_ok());
    let mut small = pool(huge_limits);
    let tx = signed(0, 1, 1, 0);
    let size = tx.encoded_len();
    assert_eq!(
        insert_one(&mut small, &state, tx),
        Err(Rejection::Oversized { size, max: 100 })
    );
}

/// A reader that always fails.
struct Broken;
impl AccountReader for Broken {
    fn account(&self, _: &PublicKey) -> Result<Option<Account>, LedgerError> {
        Err(LedgerError::Store {
            reason: "disk on fire".into(),
        })
    }
}

#[test]
fn state_errors_are_rejections() {
    let mut mp = pool(MempoolLimits::default());
    assert!(matches!(
        insert_one(&mut mp, &Broken, signed(0, 1, 1, 0)),
        Err(Rejection::State { .. })
    ));
    assert!(mp.is_empty());
    // A transfer admitted against a working state is not selected when the state fails.
    let state = accounts(&[(0, 100)]);
    assert!(insert_one(&mut mp, &state, signed(0, 1, 1, 0)).is_ok());
    assert_eq!(mp.select(&state, 10, 10_000, &HashSet::new()).len(), 1);
    assert!(mp.select(&Broken, 10, 10_000, &HashSet::new()).is_empty());
}

#[test]
fn full_mempool_rejects_without_growth() {
    let balances: Vec<(u8, u64)> = (0..6).map(|i| (i, 100)).collect();
    let state = accounts(&balances);
    let mut mp = pool(MempoolLimits {
        max_txs: 3,
        ..MempoolLimits::default()
    });
    let txs: Vec<_> = (0..5).map(|i| signed(i, 5, 1, 0)).collect();
    let results = mp.insert_batch(&state, txs);
    assert!(results[..3].iter().all(Result::is_ok));
    assert_eq!(
        results[3..],
        [Err(Rejection::MempoolFull), Err(Rejection::MempoolFull)]
    );
    let (len, bytes) = (mp.len(), mp.bytes());
    assert_eq!(
        insert_one(&mut mp, &state, signed(5, 0, 1, 0)),
        Err(Rejection::MempoolFull)
    );
    assert_eq!((mp.len(), mp.bytes()), (len, bytes));
    // The byte bound too.
    let one = signed(0, 1, 1, 0).encoded_len();
    let mut mp = pool(MempoolLimits {
        max_bytes: 2 * one,
        ..MempoolLimits::default()
    });
    let results = mp.insert_batch(&state, (0..3).map(|i| signed(i, 5, 1, 0)).collect());
    assert_eq!(results[2], Err(Rejection::MempoolFull));
    assert_eq!(mp.bytes(), 2 * one);
}

#[test]
fn per_sender_limit() {
    let state = accounts(&[(0, 100), (1, 100)]);
    let mut mp = pool(MempoolLimits {
        max_per_sender: 3,
        ..MempoolLimits::default()
    });
    let results = mp.insert_batch(&state, (0..4).map(|n| signed(0, 1, 1, n)).collect());
    assert!(results[..3].iter().all(Result::is_ok));
    assert_eq!(results[3], Err(Rejection::SenderQueueFull));
    assert!(insert_one(&mut mp, &state, signed(1, 0, 1, 0)).is_ok());
}

#[test]
fn next_nonce_follows_the_pending_transfers_without_a_gap() {
    let state = accounts(&[(0, 100), (1, 100)]);
    let mut mp = pool(MempoolLimits::default());
    assert_eq!(mp.next_nonce(&pk(0), 0), 0);
    for n in [0, 1, 2, 5] {
        assert!(insert_one(&mut mp, &state, signed(0, 1, 1, n)).is_ok());
    }
    // 0, 1 and 2 are pending, 3 is missing: the wallet's next transfer is nonce 3, not 6.
    assert_eq!(mp.next_nonce(&pk(0), 0), 3);
    // Once 0 and 1 commit, the account's nonce is 2 and 2 is still pending.
    assert_eq!(mp.next_nonce(&pk(0), 2), 3);
    // A committed nonce past what is pending wins.
    assert_eq!(mp.next_nonce(&pk(0), 4), 4);
    assert_eq!(mp.next_nonce(&pk(1), 7), 7);
}

#[test]
fn transfers_behind_a_gap_expire_and_the_gapless_ones_stay() {
    let state = accounts(&[(0, 100), (1, 100)]);
    let mut mp = pool(MempoolLimits {
        gap_expiry_ms: 5_000,
        ..MempoolLimits::default()
    });
    // Sender 0: nonces 0 and 1 can execute, 3 and 4 wait for a 2 that never comes.
    for n in [0, 1, 3, 4] {
        assert!(insert_one(&mut mp, &state, signed(0, 1, 1, n)).is_ok());
    }
    // Sender 1: 5 and 6 wait behind 0..5; the gap closes before it expires.
    let late = signed(1, 0, 1, 6);
    assert!(insert_one(&mut mp, &state, late.clone()).is_ok());
    assert_eq!(mp.expire_gapped(&state, 10_000).unwrap(), vec![]);
    // Within one sweep period nothing is swept.
    assert_eq!(mp.expire_gapped(&state, 14_999).unwrap(), vec![]);
    assert_eq!(
        mp.expire_gapped(&state, 14_000 + GAP_SWEEP_MS).unwrap(),
        vec![]
    );
    for n in 0..6 {
        assert!(insert_one(&mut mp, &state, signed(1, 0, 1, n)).is_ok());
    }
    let expired = mp.expire_gapped(&state, 16_000).unwrap();
    let gapped: Vec<Digest> = [3, 4].iter().map(|&n| signed(0, 1, 1, n).hash()).collect();
    assert_eq!(
        expired,
        vec![
            (
                gapped[0],
                Eviction::NonceGapExpired {
                    next: 2,
                    nonce: 3,
                    waited_ms: 6_000
                }
            ),
            (
                gapped[1],
                Eviction::NonceGapExpired {
                    next: 2,
                    nonce: 4,
                    waited_ms: 6_000
                }
            ),
        ]
    );
    assert!(!mp.contains(&gapped[0]) && !mp.contains(&gapped[1]));
    assert!(mp.contains(&signed(0, 1, 1, 1).hash()));
    assert!(
        mp.contains(&late.hash()),
        "its gap closed before it expired"
    );
    assert_eq!(mp.len(), 2 + 7);
    // 0 turns expiry off.
    let mut keep = pool(MempoolLimits {
        gap_expiry_ms: 0,
        ..MempoolLimits::default()
    });
    assert!(insert_one(&mut keep, &state, signed(0, 1, 1, 3)).is_ok());
    assert_eq!(keep.expire_gapped(&state, 0).unwrap(), vec![]);
    assert_eq!(keep.expire_gapped(&state, u64::MAX).unwrap(), vec![]);
    assert_eq!(keep.len(), 1);
}

#[test]
fn batch_finds_every_bad_signature_and_duplicates_within_batch() {
    let balances: Vec<(u8, u64)> = (0..10).map(|i| (i, 100)).collect();
    let state = accounts(&balances);
    let mut mp = pool(MempoolLimits::default());
    let mut txs: Vec<_> = (0..10).map(|i| signed(i, (i + 1) % 10, 5, 0)).collect();
    for i in [2, 3, 7] {
        txs[i].signature = Signature([i as u8; 64]);
    }
    // A good copy of a bad one (same hash) later in the batch is admitted.
    txs.push(signed(2, 3, 5, 0));
    txs.push(signed(0, 1, 5, 0)); // duplicate of txs[0] within the batch
    let results = mp.insert_batch(&state, txs);
    let bad: Vec<usize> = (0..results.len())
        .filter(|i| results[*i] == Err(Rejection::BadSignature))
        .collect();
    assert_eq!(bad, vec![2, 3, 7]);
    assert!(results[10].is_ok());
    assert_eq!(results[11], Err(Rejection::Duplicate));
    assert_eq!(mp.len(), 8);
}

#[test]
fn select_respects_nonce_order_balance_and_limits() {
    let state = accounts(&[(0, 100), (1, 100), (2, 100)]);
    let mut mp = pool(MempoolLimits::default());
    // Arrival: 0/n2, 1/n0, 0/n1, 0/n0, 2/n1 (gap: 2/n0 missing), 1/n1.
    let order = [
        signed(0, 9, 1, 2),
        signed(1, 9, 1, 0),
        signed(0, 9, 1, 1),
        signed(0, 9, 1, 0),
    ];
    for tx in order
        .iter()
        .cloned()
        .chain([signed(2, 9, 1, 1), signed(1, 9, 1, 1)])
    {
        assert!(insert_one(&mut mp, &state, tx).is_ok());
    }
    let none = HashSet::new();
    let picked: Vec<(PublicKey, u64)> = mp
        .select(&state, 100, usize::MAX, &none)
        .iter()
        .map(|tx| (tx.transfer.from, tx.transfer.nonce))
        .collect();
    assert_eq!(
        picked,
        vec![(pk(1), 0), (pk(0), 0), (pk(0), 1), (pk(0), 2), (pk(1), 1)]
    );
    // Each sender's run is consecutive from its committed nonce, whatever the limits.
    assert_eq!(mp.select(&state, 2, usize::MAX, &none).len(), 2);
    let one = order[0].encoded_len();
    assert_eq!(mp.select(&state, 100, 3 * one, &none).len(), 3);
    assert!(mp.select(&state, 0, usize::MAX, &none).is_empty());
    // Excluded transactions (in ancestors) are skipped but count as taken.
    let exclude: HashSet<Digest> = [order[3].hash(), order[1].hash()].into();
    let picked: Vec<(PublicKey, u64)> = mp
        .select(&state, 100, usize::MAX, &exclude)
        .iter()
        .map(|tx| (tx.transfer.from, tx.transfer.nonce))
        .collect();
    assert_eq!(picked, vec![(pk(0), 1), (pk(0), 2), (pk(1), 1)]);
    // The committed balance bounds a sender's run.
    let poorer = accounts(&[(0, 2), (1, 100), (2, 100)]);
    let picked = mp.select(&poorer, 100, usize::MAX, &none);
    assert_eq!(
        picked.iter().filter(|tx| tx.transfer.from == pk(0)).count(),
        2
    );
}

#[test]
fn remove_committed_drops_committed_and_stale() {
    let state = accounts(&[(0, 100), (1, 100)]);
    let mut mp = pool(MempoolLimits::default());
    let txs: Vec<_> = (0..4).map(|n| signed(0, 1, 20, n)).collect();
    for tx in txs.iter().cloned().chain([signed(1, 0, 5, 0)]) {
        assert!(insert_one(&mut mp, &state, tx).is_ok());
    }
    // Another node committed a different nonce-1 transfer of sender 0 (for 50).
    let other = signed(0, 1, 50, 1);
    let mut after: BTreeMap<PublicKey, Account> = state.clone();
    after.insert(
        pk(0),
        Account {
            balance: 30,
            nonce: 2,
        },
    );
    after.insert(
        pk(1),
        Account {
            balance: 170,
            nonce: 0,
        },
    );
    mp.remove_committed(&after, [(txs[0].hash(), &txs[0]), (other.hash(), &other)])
        .unwrap();
    // Nonce 0 committed, nonce 1 stale, nonces 2 and 3 (40) exceed the balance of 30: keep 2.
    assert!(!mp.contains(&txs[0].hash()));
    assert!(!mp.contains(&txs[1].hash()));
    assert!(mp.contains(&txs[2].hash()));
    assert!(!mp.contains(&txs[3].hash()));
    assert_eq!(mp.len(), 2);
    assert_eq!(
        mp.bytes(),
        txs[2].encoded_len() + signed(1, 0, 5, 0).encoded_len()
    );
    // The freed nonce can be used again.
    assert!(insert_one(&mut mp, &after, signed(0, 1, 10, 3)).is_ok());
    assert_eq!(mp.select(&after, 10, usize::MAX, &HashSet::new()).len(), 3);
    // Errors are reported.
    assert!(mp
        .remove_committed(&Broken, [(txs[2].hash(), &txs[2])])
        .is_err());
    assert!(!mp.contains(&txs[2].hash()));
}

mod props {
    use super::*;
    use hotledger_ledger::{execute, TxOutcome};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever was admitted, a selection executes completely on the committed state, and
        /// after committing it the mempool's counters stay consistent.
        #[test]
        fn selection_always_executes(
            balances in proptest::collection::vec(0..60u64, 3),
            txs in proptest::collection::vec((0..3u8, 0..4u8, 0..25u64, 0..6u64), 0..30),
            max_txs in 1..40usize,
            exclude_first in any::<bool>(),
        ) {
            let genesis: Vec<(u8, u64)> =
                balances.iter().enumerate().map(|(i, b)| (i as u8, *b)).collect();
            let state = accounts(&genesis);
            let limits = MempoolLimits { max_per_sender: 4, max_nonce_gap: 4, ..Default::default() };
            let mut mp = pool(limits);
            let txs = txs.iter().map(|(f, t, a, n)| signed(*f, *t, *a, *n)).collect();
            let admitted = mp.insert_batch(&state, txs).into_iter().filter(Result::is_ok).count();
            prop_assert_eq!(mp.len(), admitted);
            let mut exclude = HashSet::new();
            let mut base = state.clone();
            if exclude_first {
                // Pretend the first selected transaction is in an uncommitted ancestor.
                if let Some(first) = mp.select(&state, 1, usize::MAX, &HashSet::new()).pop() {
                    exclude.insert(first.hash());
                    let exec = execute(&state, &[first]).unwrap();
                    base.extend(exec.updates);
                }
            }
            let selected = mp.select(&state, max_txs, usize::MAX, &exclude);
            prop_assert!(selected.len() <= max_txs);
            prop_assert!(selected.iter().all(|tx| !exclude.contains(&tx.hash())));
            let exec = execute(&base, &selected).unwrap();
            prop_assert!(exec.outcomes.iter().all(|o| *o == TxOutcome::Applied));
            // Commit it and prune.
            base.extend(exec.updates);
            mp.remove_committed(&base, selected.iter().map(|t| (t.hash(), t))).unwrap();
            prop_assert!(mp.len() + selected.len() <= admitted);
            prop_assert_eq!(mp.is_empty(), mp.bytes() == 0);
            for tx in &selected {
                prop_assert!(!mp.contains(&tx.hash()));
            }
            let again = mp.select(&base, usize::MAX, usize::MAX, &HashSet::new());
            let exec = execute(&base, &again).unwrap();
            prop_assert!(exec.outcomes.iter().all(|o| *o == TxOutcome::Applied));
        }
    }
}

#[test]
fn split_admission_rechecks_what_changed_while_unlocked() {
    let mut state = accounts(&[(0, 100), (1, 100)]);
    let mut mp = pool(MempoolLimits::default());
    let stale = signed(0, 1, 10, 0);
    let dup = signed(1, 0, 10, 0);
    let mut forged = signed(1, 0, 10, 1);
    forged.signature.0[0] ^= 1;
    let screened = mp.screen(
        &state,
        vec![stale.clone(), dup.clone(), forged],
        Origin::Client,
    );
    assert_eq!(screened.candidates(), 3);
    let verified = screened.verify();
    // While the signatures were being checked: account 0's transfer committed elsewhere, and
    // account 1's arrived through another path.
    state.insert(
        pk(0),
        Account {
            balance: 90,
            nonce: 1,
        },
    );
    assert!(insert_one(&mut mp, &state, dup.clone()).is_ok());
    let results = mp.admit_verified(&state, verified);
    assert_eq!(
        results,
        vec![
            Err(Rejection::StaleNonce {
                expected: 1,
                got: 0
            }),
            Err(Rejection::Duplicate),
            Err(Rejection::BadSignature),
        ]
    );
    assert_eq!(mp.len(), 1);
}

#[test]
fn screened_for_another_chain_is_not_admitted() {
    let state = accounts(&[(0, 100)]);
    let other = Mempool::new("another-chain".to_string(), MempoolLimits::default());
    let tx = Transfer {
        from: pk(0),
        to: pk(1),
        amount: 5,
        nonce: 0,
    }
    .sign(&key(0), "another-chain");
    let verified = other.screen(&state, vec![tx], Origin::Client).verify();
    let mut mp = pool(MempoolLimits::default());
    assert_eq!(
        mp.admit_verified(&state, verified),
        vec![Err(Rejection::BadSignature)]
    );
    assert!(mp.is_empty());
}

#[test]
fn the_last_slots_are_kept_for_transfers_that_can_execute() {
    let state = accounts(&[(0, 1_000), (1, 1_000), (2, 1_000)]);
    let limits = MempoolLimits {
        max_txs: 8,
        ready_reserve: 4,
        ..MempoolLimits::default()
    };
    let mut mp = pool(limits);
    // Four transfers behind gaps (nonce 0 of accounts 0 and 1 is missing) fill up to the reserve.
    for (from, nonce) in [(0, 1), (0, 2), (1, 3), (1, 4)] {
        assert!(insert_one(&mut mp, &state, signed(from, 2, 1, nonce)).is_ok());
    }
    // In the reserve, another gapped one is refused and named...
    assert_eq!(
        insert_one(&mut mp, &state, signed(1, 2, 1, 1)),
        Err(Rejection::NonceGap { next: 0, got: 1 })
    );
    // ...while account 2 can add its nonces one after the other: the next one allowed moves
    // past those already pending.
    assert!(insert_one(&mut mp, &state, signed(2, 0, 1, 0)).is_ok());
    assert_eq!(
        insert_one(&mut mp, &state, signed(2, 0, 1, 2)),
        Err(Rejection::NonceGap { next: 1, got: 2 })
    );
    assert!(insert_one(&mut mp, &state, signed(2, 0, 1, 1)).is_ok());
    // Account 0's nonce 0 fills its gap.
    assert!(insert_one(&mut mp, &state, signed(0, 2, 1, 0)).is_ok());
    assert!(insert_one(&mut mp, &state, signed(2, 0, 1, 2)).is_ok());
    assert_eq!(mp.len(), 8);
    assert_eq!(
        insert_one(&mut mp, &state, signed(2, 0, 1, 3)),
        Err(Rejection::MempoolFull)
    );
}

#[test]
fn near_full_the_screen_refuses_what_admission_would_before_any_signature_check() {
    let state = accounts(&[(0, 1_000), (1, 1_000), (2, 1_000)]);
    let limits = MempoolLimits {
        max_txs: 8,
        ready_reserve: 6,
        ..MempoolLimits::default()
    };
    let mut mp = pool(limits);
    // Two pending gapped transfers of account 0: the mempool is now within its reserve.
    for nonce in [3, 4] {
        assert!(insert_one(&mut mp, &state, signed(0, 2, 1, nonce)).is_ok());
    }
    // One batch: account 1's nonces 0, 1, 2 in order (each the next gapless one once the one
    // before is admitted), a gapped one of account 2, and account 0's 0, then 2 (before its 1,
    // so a gap), 1, and 5 (a gap: 2 is still missing).
    let batch = vec![
        signed(1, 2, 1, 0),
        signed(1, 2, 1, 1),
        signed(1, 2, 1, 2),
        signed(2, 1, 1, 1),
        signed(0, 2, 1, 0),
        signed(0, 2, 1, 2),
        signed(0, 2, 1, 1),
        signed(0, 2, 1, 5),
    ];
    let screened = mp.screen(&state, batch, Origin::Peer);
    // The gapped ones cost no verification.
    assert_eq!(screened.candidates(), 5);
    let results = mp.admit_verified(&state, screened.verify());
    assert_eq!(
        results.iter().map(Result::is_ok).collect::<Vec<_>>(),
        vec![true, true, true, false, true, false, true, false]
    );
    assert_eq!(results[3], Err(Rejection::NonceGap { next: 0, got: 1 }));
    assert_eq!(results[5], Err(Rejection::NonceGap { next: 1, got: 2 }));
    assert_eq!(results[7], Err(Rejection::NonceGap { next: 2, got: 5 }));
    assert_eq!(mp.len(), 7);
}

#[test]
fn clients_leave_the_peer_reserve_to_transfers_other_validators_gossip() {
    let state = accounts(&[(0, 1_000), (1, 1_000)]);
    let limits = MempoolLimits {
        max_txs: 5,
        peer_reserve: 2,
        ready_reserve: 0,
        ..MempoolLimits::default()
    };
    let mut mp = pool(limits);
    let client = |mp: &mut Mempool, tx: SignedTransaction| {
        let screened = mp.screen(&state, vec![tx], Origin::Client);
        mp.admit_verified(&state, screened.verify()).remove(0)
    };
    for nonce in 0..3 {
        assert!(client(&mut mp, signed(0, 1, 1, nonce)).is_ok());
    }
    // Three held, two free: a client is refused (before any signature check)...
    let screened = mp.screen(&state, vec![signed(0, 1, 1, 3)], Origin::Client);
    assert_eq!(screened.candidates(), 0);
    assert_eq!(
        mp.admit_verified(&state, screened.verify()),
        vec![Err(Rejection::MempoolFull)]
    );
    // ...while a peer's transfers take the last two slots.
    let from_peer = mp.insert_batch(&state, vec![signed(1, 0, 1, 0), signed(1, 0, 1, 1)]);
    assert!(from_peer.iter().all(Result::is_ok), "{from_peer:?}");
    assert_eq!(mp.len(), 5);
    assert_eq!(
        mp.insert_batch(&state, vec![signed(1, 0, 1, 2)]),
        vec![Err(Rejection::MempoolFull)]
    );
}

#[test]
fn a_signature_checked_in_a_proposal_is_not_checked_again_but_other_signature_bytes_are() {
    let state = accounts(&[(0, 100), (2, 100)]);
    let mut mp = pool(MempoolLimits::default());
    // A transfer whose signature bytes are wrong, as the node's own payload check would never
    // note: admitted without a check, it shows that the noted pair skips verification.
    let mut noted = signed(0, 1, 10, 0);
    noted.signature = Signature([7; 64]);
    // The same transfer of account 2 with a valid signature, and a copy with other bytes.
    let valid = signed(2, 1, 10, 0);
    let mut malleated = valid.clone();
    malleated.signature = Signature([9; 64]);
    assert_eq!(valid.hash(), malleated.hash());
    mp.note_verified([
        (noted.hash(), noted.signature),
        (valid.hash(), valid.signature),
    ]);
    assert!(mp.verified(&noted.hash(), &noted.signature));
    assert!(!mp.verified(&malleated.hash(), &malleated.signature));

    let screened = mp.screen(&state, vec![noted.clone(), malleated], Origin::Peer);
    assert_eq!((screened.candidates(), screened.known()), (2, 1));
    let results = mp.admit_verified(&state, screened.verify());
    assert_eq!(
        results,
        vec![Ok(noted.hash()), Err(Rejection::BadSignature)]
    );
    // Pending now, with those signature bytes only.
    assert!(mp.verified(&noted.hash(), &noted.signature));
    assert!(!mp.verified(&noted.hash(), &Signature([8; 64])));
}

#[test]
fn the_verified_memory_is_bounded_and_forgets_the_oldest_generation() {
    let mut mp = pool(MempoolLimits::default());
    let first = signed(0, 1, 10, 0);
    mp.note_verified([(first.hash(), first.signature)]);
    // Fillers: distinct hashes, never pending.
    let filler = |i: u32| {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        (Digest(bytes), Signature([1; 64]))
    };
    mp.note_verified((0..40_000).map(filler));
    // One generation later the first pair is still remembered ...
    assert!(mp.verified(&first.hash(), &first.signature));
    // ... two generations later it is not, and neither are the oldest fillers.
    mp.note_verified((40_000..80_000).map(filler));
    assert!(!mp.verified(&first.hash(), &first.signature));
    let (h, s) = filler(0);
    assert!(!mp.verified(&h, &s));
    let (h, s) = filler(79_999);
    assert!(mp.verified(&h, &s));
}
