//! The safety rules (see `hotledger_consensus::safety`): the pure rule functions, table-driven,
//! and `SafetyRules` as a signer, including restart from persisted `SafetyData`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::CHAIN;
use hotledger_consensus::safety::{
    check_proposal_round, check_round_increase, safe_to_timeout, safe_to_vote,
};
use hotledger_consensus::{
    Block, BlockInfo, ConsensusError, QuorumCert, Round, SafetyData, SafetyRules, TimeoutCert,
    TimeoutSig, VoteData,
};
use hotledger_crypto::{Digest, KeyPair, Signature};
use proptest::prelude::*;

// ---- unsigned fixtures: the rules never look at signatures ----------------------------------

fn info(round: Round, tag: u8) -> BlockInfo {
    BlockInfo {
        id: Digest::of(&[tag, round as u8, (round >> 8) as u8]),
        round,
        height: round,
        timestamp_ms: round,
    }
}

/// A QC certifying a block of `round` (an unsigned one: the rules do not verify).
fn qc(round: Round) -> QuorumCert {
    let parent = info(round.saturating_sub(1), 0);
    QuorumCert {
        data: VoteData {
            block: info(round, 0),
            parent,
        },
        votes: Vec::new(),
    }
}

/// A block of `round` extending a QC of `qc_round`; `tag` tells same-round blocks apart.
fn block(round: Round, qc_round: Round, tag: u8) -> Block {
    let qc = qc(qc_round);
    let author = KeyPair::from_seed([1; 32]).public();
    let payload = vec![tag];
    let height = qc.block().height + 1;
    Block {
        id: Block::compute_id(round, height, round, &author, &qc, &[], &payload),
        round,
        height,
        timestamp_ms: round,
        author,
        qc,
        failed_leaders: Vec::new(),
        payload,
        signature: Signature([0; 64]),
    }
}

/// A TC for `round` whose signers report the given high-QC rounds.
fn tc(round: Round, high_qc_rounds: &[Round]) -> TimeoutCert {
    let author = KeyPair::from_seed([1; 32]).public();
    TimeoutCert {
        round,
        high_qc: qc(high_qc_rounds.iter().copied().max().unwrap_or(0)),
        sigs: high_qc_rounds
            .iter()
            .map(|&r| TimeoutSig {
                author,
                high_qc_round: r,
                signature: Signature([0; 64]),
            })
            .collect(),
    }
}

fn data(last_voted_round: Round, locked_round: Round, last_proposed_round: Round) -> SafetyData {
    SafetyData {
        last_voted_round,
        locked_round,
        last_proposed_round,
        ..SafetyData::default()
    }
}

fn rules() -> SafetyRules {
    SafetyRules::new(
        KeyPair::from_seed([1; 32]),
        CHAIN.into(),
        SafetyData::default(),
    )
}

// ---- rule 1 ----------------------------------------------------------------------------------

/// Rule 1: a vote or timeout needs a round strictly above `last_voted_round`.
#[test]
fn check_round_increase_table() {
    for (round, last_voted, ok) in [
        (1, 0, true),
        (6, 5, true),
        (5, 5, false),
        (4, 5, false),
        (0, 0, false),
    ] {
        let got = check_round_increase(round, &data(last_voted, 0, 0));
        let want = if ok {
            Ok(())
        } else {
            Err(ConsensusError::RoundNotIncreasing { round, last_voted })
        };
        assert_eq!(got, want, "round {round}, last voted {last_voted}");
    }
}

// ---- rule 2 ----------------------------------------------------------------------------------

/// Rule 2: vote if the block directly extends a QC of `round - 1`, or a TC for `round - 1`
/// justifies it and its QC is at least the highest QC any TC signer reported.
#[test]
fn safe_to_vote_table() {
    let unsafe_ = |round, qc_round, tc: Option<&TimeoutCert>| ConsensusError::UnsafeToVote {
        round,
        qc_round,
        tc: tc.map(|t| (t.round, t.max_high_qc_round())),
    };
    let tc4 = tc(4, &[1, 3, 2]);
    let tc3 = tc(3, &[1, 2, 2]);
    let cases: [(&str, Round, Round, Option<&TimeoutCert>, bool); 8] = [
        ("consecutive QC", 5, 4, None, true),
        ("consecutive QC, TC ignored", 5, 4, Some(&tc3), true),
        ("TC r-1, qc == tc max", 5, 3, Some(&tc4), true),
        ("TC r-1, qc above tc max", 5, 3, Some(&tc(4, &[1, 2])), true),
        ("TC r-1, qc below tc max", 5, 2, Some(&tc4), false),
        ("TC for the wrong round", 5, 3, Some(&tc3), false),
        ("no QC r-1, no TC", 5, 3, None, false),
        ("QC from the future", 5, 5, None, false),
    ];
    for (name, round, qc_round, tc, ok) in cases {
        let want = if ok {
            Ok(())
        } else {
            Err(unsafe_(round, qc_round, tc))
        };
        assert_eq!(safe_to_vote(round, qc_round, tc), want, "{name}");
    }
}

/// Rounds near `u64::MAX` must give typed answers, never an arithmetic panic.
#[test]
fn safe_to_vote_at_u64_max_does_not_panic() {
    let max = u64::MAX;
    assert_eq!(safe_to_vote(max, max - 1, None), Ok(()));
    assert!(safe_to_vote(max, max, None).is_err());
    assert!(safe_to_vote(0, max, None).is_err());
    assert!(safe_to_vote(max, 0, Some(&tc(max, &[0]))).is_err());
    assert_eq!(safe_to_vote(max, 7, Some(&tc(max - 1, &[7]))), Ok(()));
    assert!(safe_to_timeout(max, max, Some(max), &data(0, 0, 0)).is_err());
    assert!(check_round_increase(max, &data(max, 0, 0)).is_err());
    assert_eq!(
        check_proposal_round(max, &data(0, 0, max)),
        Err(ConsensusError::AlreadyProposed { round: max })
    );
}

// ---- rule 3 ----------------------------------------------------------------------------------

/// Rule 3: time out round r only if r follows the QC or a TC we hold, with qc >= locked round.
#[test]
fn safe_to_timeout_table() {
    // (name, round, qc_round, tc_round, locked, ok)
    type Row = (&'static str, Round, Round, Option<Round>, Round, bool);
    let cases: [Row; 7] = [
        ("follows QC", 5, 4, None, 0, true),
        ("follows QC, locked == qc", 5, 4, None, 4, true),
        ("follows TC", 5, 2, Some(4), 2, true),
        ("follows TC, qc below locked", 5, 2, Some(4), 3, false),
        ("follows QC, qc below locked", 5, 4, None, 5, false),
        ("follows neither", 5, 2, None, 0, false),
        ("TC for the wrong round", 5, 2, Some(3), 0, false),
    ];
    for (name, round, qc_round, tc_round, locked, ok) in cases {
        let want = if ok {
            Ok(())
        } else {
            Err(ConsensusError::UnsafeToTimeout {
                round,
                qc_round,
                locked,
            })
        };
        assert_eq!(
            safe_to_timeout(round, qc_round, tc_round, &data(0, locked, 0)),
            want,
            "{name}"
        );
    }
}

// ---- rule 4 ----------------------------------------------------------------------------------

/// Rule 4: one proposal per round, rounds strictly increasing.
#[test]
fn check_proposal_round_table() {
    for (round, last, ok) in [(1, 0, true), (3, 2, true), (2, 2, false), (1, 2, false)] {
        let want = if ok {
            Ok(())
        } else {
            Err(ConsensusError::AlreadyProposed { round })
        };
        assert_eq!(check_proposal_round(round, &data(0, 0, last)), want);
    }
}

// ---- SafetyRules as a signer -----------------------------------------------------------------

#[test]
fn no_second_vote_in_a_round() {
    let mut s = rules();
    let first = s.vote(&block(1, 0, 1), None).unwrap();
    assert_eq!(
        s.vote(&block(1, 0, 2), None),
        Err(ConsensusError::RoundNotIncreasing {
            round: 1,
            last_voted: 1
        })
    );
    // The same block again: the stored vote, byte for byte (not a fresh signature).
    assert_eq!(s.vote(&block(1, 0, 1), None), Ok(first.clone()));
    assert_eq!(s.data().last_vote, Some(first));
}

#[test]
fn no_vote_after_timing_out_the_round() {
    let mut s = rules();
    s.timeout(1, &qc(0), None).unwrap();
    assert_eq!(
        s.vote(&block(1, 0, 1), None),
        Err(ConsensusError::RoundNotIncreasing {
            round: 1,
            last_voted: 1
        })
    );
    // The next round is fine.
    assert!(s.vote(&block(2, 1, 1), None).is_ok());
}

#[test]
fn repeated_timeout_returns_the_identical_signed_timeout() {
    let mut s = rules();
    let first = s.timeout(3, &qc(2), None).unwrap();
    let data_after_first = s.data().clone();
    let again = s.timeout(3, &qc(2), None).unwrap();
    assert_eq!(again, first);
    assert_eq!(s.data(), &data_after_first, "a repeat changes nothing");
    // Even when asked with a different QC, the stored one is returned (never a second signature).
    let other = s.timeout(3, &qc(1), Some(&tc(2, &[1]))).unwrap();
    assert_eq!(
        (other.signature, other.high_qc.clone()),
        (first.signature, first.high_qc)
    );
    assert_eq!(
        other.last_tc,
        Some(tc(2, &[1])),
        "the current last_tc is attached"
    );
}

#[test]
fn timeout_after_voting_in_the_same_round_is_allowed() {
    let mut s = rules();
    s.vote(&block(1, 0, 1), None).unwrap();
    let t = s.timeout(1, &qc(0), None).unwrap();
    assert_eq!(t.round, 1);
    assert_eq!(s.data().highest_timeout_round, 1);
    // But not timing out an earlier round afterwards.
    let mut s = rules();
    s.vote(&block(4, 3, 1), None).unwrap();
    assert_eq!(
        s.timeout(3, &qc(2), None),
        Err(ConsensusError::RoundNotIncreasing {
            round: 3,
            last_voted: 4
        })
    );
}

#[test]
fn locked_round_rises_with_votes_and_timeouts() {
    let mut s = rules();
    s.vote(&block(3, 2, 1), None).unwrap();
    assert_eq!((s.data().last_voted_round, s.data().locked_round), (3, 2));
    s.timeout(6, &qc(5), None).unwrap();
    assert_eq!((s.data().last_voted_round, s.data().locked_round), (6, 5));
    // A TC-justified vote on a lower QC does not lower the lock.
    s.vote(&block(8, 5, 1), Some(&tc(7, &[5, 4]))).unwrap();
    assert_eq!((s.data().last_voted_round, s.data().locked_round), (8, 5));
    // And a timeout with a QC below the lock is refused.
    assert_eq!(
        s.timeout(9, &qc(4), Some(&tc(8, &[4]))),
        Err(ConsensusError::UnsafeToTimeout {
            round: 9,
            qc_round: 4,
            locked: 5
        })
    );
}

#[test]
fn sign_proposal_twice_in_a_round_is_refused() {
    let mut s = rules();
    s.sign_proposal(&block(2, 1, 1)).unwrap();
    assert_eq!(
        s.sign_proposal(&block(2, 1, 2)),
        Err(ConsensusError::AlreadyProposed { round: 2 })
    );
    assert_eq!(
        s.sign_proposal(&block(2, 1, 1)),
        Err(ConsensusError::AlreadyProposed { round: 2 })
    );
    assert_eq!(s.data().last_proposed_round, 2);
    assert!(s.sign_proposal(&block(3, 2, 1)).is_ok());
}

#[test]
fn restart_from_persisted_data_refuses_conflicting_vote_and_timeout() {
    let mut s = rules();
    let vote = s.vote(&block(5, 4, 1), None).unwrap();
    let persisted = s.data().clone();
    drop(s);
    let mut restarted = SafetyRules::new(KeyPair::from_seed([1; 32]), CHAIN.into(), persisted);
    assert_eq!(
        restarted.vote(&block(5, 4, 2), None),
        Err(ConsensusError::RoundNotIncreasing {
            round: 5,
            last_voted: 5
        })
    );
    assert_eq!(restarted.vote(&block(5, 4, 1), None), Ok(vote));

    let t = restarted.timeout(6, &qc(5), None).unwrap();
    let mut again = SafetyRules::new(
        KeyPair::from_seed([1; 32]),
        CHAIN.into(),
        restarted.data().clone(),
    );
    assert_eq!(again.timeout(6, &qc(5), None), Ok(t));
    assert_eq!(
        again.vote(&block(6, 5, 1), None),
        Err(ConsensusError::RoundNotIncreasing {
            round: 6,
            last_voted: 6
        })
    );
}

// ---- property: never two different votes for one round --------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Vote for block `tag` of `round` extending QC `round - back`, with a TC for `round - 1`
    /// reporting `tc_high` when `with_tc`.
    Vote {
        round: Round,
        back: Round,
        tag: u8,
        with_tc: bool,
        tc_high: Round,
    },
    Timeout {
        round: Round,
        back: Round,
        with_tc: bool,
    },
    /// Crash and restart from the persisted data.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..12u64, 1..4u64, 0..3u8, any::<bool>(), 0..12u64).prop_map(
            |(round, back, tag, with_tc, tc_high)| Op::Vote { round, back, tag, with_tc, tc_high }
        ),
        2 => (1..12u64, 1..4u64, any::<bool>())
            .prop_map(|(round, back, with_tc)| Op::Timeout { round, back, with_tc }),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #[test]
    fn never_two_different_votes_for_one_round(ops in proptest::collection::vec(op(), 1..60)) {
        let mut s = rules();
        let mut voted: std::collections::HashMap<Round, VoteData> = Default::default();
        let mut timed_out: std::collections::HashMap<Round, Round> = Default::default();
        for op in ops {
            match op {
                Op::Vote { round, back, tag, with_tc, tc_high } => {
                    let qc_round = round.saturating_sub(back);
                    let tc = with_tc.then(|| tc(round - 1, &[tc_high.min(round - 1)]));
                    if let Ok(v) = s.vote(&block(round, qc_round, tag), tc.as_ref()) {
                        prop_assert_eq!(v.round(), round);
                        let is_new = !voted.contains_key(&round);
                        prop_assert!(
                            !(is_new && timed_out.contains_key(&round)),
                            "new vote in round {} after timing it out", round
                        );
                        let first = *voted.entry(round).or_insert(v.data);
                        prop_assert_eq!(first, v.data, "two different votes in round {}", round);
                    }
                }
                Op::Timeout { round, back, with_tc } => {
                    let qc_round = round.saturating_sub(back);
                    let tc = with_tc.then(|| tc(round - 1, &[qc_round]));
                    if let Ok(t) = s.timeout(round, &qc(qc_round), tc.as_ref()) {
                        let first = *timed_out.entry(round).or_insert(t.high_qc.round());
                        prop_assert_eq!(first, t.high_qc.round(), "two different timeouts");
                    }
                }
                Op::Restart => {
                    let persisted = s.data().clone();
                    s = SafetyRules::new(KeyPair::from_seed([1; 32]), CHAIN.into(), persisted);
                }
            }
        }
    }
}
