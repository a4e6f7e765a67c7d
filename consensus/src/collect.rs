//! Vote and timeout aggregation, with equivocation detection.
//!
//! Both collectors keep at most one entry per validator per round, and the core prunes rounds it
//! has left, so a peer can make them hold at most `validators x round window` entries.

use std::collections::{BTreeMap, HashMap};

use hotledger_crypto::{Digest, PublicKey, Signature};

use crate::types::{
    Evidence, QuorumCert, Round, TimeoutCert, TimeoutMsg, TimeoutSig, Vote, VoteData,
};

/// What adding a vote did.
#[derive(Debug, PartialEq, Eq)]
pub enum VoteOutcome {
    /// Counted; no quorum yet.
    Counted,
    /// The same vote again; ignored.
    Duplicate,
    /// This vote completed a quorum.
    Certified(QuorumCert),
    /// The author already voted differently in this round.
    Equivocation(Box<Evidence>),
}

#[derive(Debug)]
struct Tally {
    data: VoteData,
    power: u64,
    votes: Vec<(PublicKey, Signature)>,
    certified: bool,
}

#[derive(Debug, Default)]
struct RoundVotes {
    by_author: HashMap<PublicKey, Vote>,
    tallies: HashMap<Digest, Tally>,
}

/// Collects verified votes into QCs.
#[derive(Debug, Default)]
pub struct VoteCollector {
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteCollector {
    /// Adds a vote whose signature is already verified; `power` is its author's voting power.
    pub fn add(&mut self, vote: Vote, power: u64, quorum: u64) -> VoteOutcome {
        let round = vote.round();
        let rv = self.rounds.entry(round).or_default();
        if let Some(prev) = rv.by_author.get(&vote.author) {
            if prev.data == vote.data {
                return VoteOutcome::Duplicate;
            }
            return VoteOutcome::Equivocation(Box::new(Evidence::ConflictingVotes {
                first: prev.clone(),
                second: vote,
            }));
        }
        rv.by_author.insert(vote.author, vote.clone());
        let tally = rv
            .tallies
            .entry(vote.data.digest())
            .or_insert_with(|| Tally {
                data: vote.data,
                power: 0,
                votes: Vec::new(),
                certified: false,
            });
        tally.power = tally.power.saturating_add(power);
        tally.votes.push((vote.author, vote.signature));
        if !tally.certified && tally.power >= quorum {
            tally.certified = true;
            return VoteOutcome::Certified(QuorumCert {
                data: tally.data,
                votes: tally.votes.clone(),
            });
        }
        VoteOutcome::Counted
    }

    /// Forgets every round below `round`.
    pub fn prune_below(&mut self, round: Round) {
        self.rounds = self.rounds.split_off(&round);
    }

    /// Number of rounds held (for tests and bounds).
    #[cfg(test)]
    pub fn rounds_held(&self) -> usize {
        self.rounds.len()
    }
}

/// What adding a timeout did.
#[derive(Debug, PartialEq, Eq)]
pub enum TimeoutOutcome {
    /// Counted; the round's timeout power so far.
    Counted { power: u64 },
    /// The same timeout again.
    Duplicate,
    /// This timeout completed a TC.
    Certified(TimeoutCert),
    /// The author already timed out this round with a different QC round.
    Equivocation(Box<Evidence>),
}

#[derive(Debug, Default)]
struct RoundTimeouts {
    sigs: HashMap<PublicKey, TimeoutSig>,
    power: u64,
    high_qc: Option<QuorumCert>,
    certified: bool,
}

/// Collects verified timeouts into TCs.
#[derive(Debug, Default)]
pub struct TimeoutCollector {
    rounds: BTreeMap<Round, RoundTimeouts>,
}

impl TimeoutCollector {
    /// Adds a timeout whose signature and high QC are already verified.
    pub fn add(&mut self, t: &TimeoutMsg, power: u64, quorum: u64) -> TimeoutOutcome {
        let rt = self.rounds.entry(t.round).or_default();
        let hqc_round = t.high_qc.round();
        if let Some(prev) = rt.sigs.get(&t.author) {
            if prev.high_qc_round == hqc_round {
                return TimeoutOutcome::Duplicate;
            }
            return TimeoutOutcome::Equivocation(Box::new(Evidence::ConflictingTimeouts {
                author: t.author,
                round: t.round,
                first: (prev.high_qc_round, prev.signature),
                second: (hqc_round, t.signature),
            }));
        }
        rt.sigs.insert(
            t.author,
            TimeoutSig {
                author: t.author,
                high_qc_round: hqc_round,
                signature: t.signature,
            },
        );
        rt.power = rt.power.saturating_add(power);
        if rt.high_qc.as_ref().is_none_or(|q| q.round() < hqc_round) {
            rt.high_qc = Some(t.high_qc.clone());
        }
        if !rt.certified && rt.power >= quorum {
            if let Some(high_qc) = rt.high_qc.clone() {
                rt.certified = true;
                let mut sigs: Vec<TimeoutSig> = rt.sigs.values().cloned().collect();
                sigs.sort_by_key(|s| s.author);
                return TimeoutOutcome::Certified(TimeoutCert {
                    round: t.round,
                    high_qc,
                    sigs,
                });
            }
        }
        TimeoutOutcome::Counted { power: rt.power }
    }

    /// Forgets every round below `round`.
    pub fn prune_below(&mut self, round: Round) {
        self.rounds = self.rounds.split_off(&round);
    }

    #[cfg(test)]
    pub fn rounds_held(&self) -> usize {
        self.rounds.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use hotledger_crypto::KeyPair;

    use super::*;
    use crate::types::BlockInfo;

    fn key(i: u8) -> PublicKey {
        KeyPair::from_seed([i + 1; 32]).public()
    }

    fn data(round: Round, tag: &[u8]) -> VoteData {
        let info = |round, height, tag: &[u8]| BlockInfo {
            id: Digest::of(tag),
            round,
            height,
            timestamp_ms: 0,
        };
        VoteData {
            block: info(round, 2, tag),
            parent: info(round - 1, 1, b"parent"),
        }
    }

    fn vote(i: u8, data: VoteData) -> Vote {
        Vote {
            data,
            author: key(i),
            signature: Signature([i; 64]),
        }
    }

    fn qc(round: Round) -> QuorumCert {
        QuorumCert {
            data: data(round, b"qc"),
            votes: Vec::new(),
        }
    }

    fn timeout(i: u8, round: Round, qc_round: Round) -> TimeoutMsg {
        TimeoutMsg {
            round,
            high_qc: qc(qc_round),
            author: key(i),
            signature: Signature([i; 64]),
            last_tc: None,
            vote: None,
        }
    }

    #[test]
    fn votes_certify_once_at_quorum() {
        let mut c = VoteCollector::default();
        let d = data(3, b"a");
        assert_eq!(c.add(vote(0, d), 1, 3), VoteOutcome::Counted);
        assert_eq!(c.add(vote(0, d), 1, 3), VoteOutcome::Duplicate);
        // A vote for another block does not count towards this one.
        assert_eq!(c.add(vote(1, data(3, b"b")), 1, 3), VoteOutcome::Counted);
        assert_eq!(c.add(vote(2, d), 1, 3), VoteOutcome::Counted);
        let VoteOutcome::Certified(qc) = c.add(vote(3, d), 1, 3) else {
            panic!("no QC at quorum");
        };
        assert_eq!(qc.data, d);
        assert_eq!(
            qc.votes,
            vec![
                (key(0), Signature([0; 64])),
                (key(2), Signature([2; 64])),
                (key(3), Signature([3; 64]))
            ]
        );
        assert_eq!(c.rounds_held(), 1);
    }

    #[test]
    fn a_certified_block_is_not_certified_again() {
        let mut c = VoteCollector::default();
        let d = data(1, b"a");
        for i in 0..2 {
            assert_eq!(c.add(vote(i, d), 1, 3), VoteOutcome::Counted);
        }
        assert!(matches!(c.add(vote(2, d), 1, 3), VoteOutcome::Certified(_)));
        assert_eq!(c.add(vote(3, d), 1, 3), VoteOutcome::Counted);
    }

    #[test]
    fn weighted_power_counts() {
        let mut c = VoteCollector::default();
        let d = data(1, b"a");
        assert_eq!(c.add(vote(0, d), 5, 7), VoteOutcome::Counted);
        assert!(matches!(c.add(vote(1, d), 2, 7), VoteOutcome::Certified(_)));
    }

    #[test]
    fn conflicting_votes_are_evidence() {
        let mut c = VoteCollector::default();
        let (a, b) = (vote(0, data(2, b"a")), vote(0, data(2, b"b")));
        c.add(a.clone(), 1, 3);
        assert_eq!(
            c.add(b.clone(), 1, 3),
            VoteOutcome::Equivocation(Box::new(Evidence::ConflictingVotes {
                first: a,
                second: b
            }))
        );
        // The same author in another round is not equivocation.
        assert_eq!(c.add(vote(0, data(3, b"b")), 1, 3), VoteOutcome::Counted);
    }

    #[test]
    fn pruning_bounds_rounds_held() {
        let mut votes = VoteCollector::default();
        let mut timeouts = TimeoutCollector::default();
        for r in 1..=100 {
            votes.add(vote(0, data(r, b"a")), 1, 3);
            timeouts.add(&timeout(0, r, r), 1, 3);
        }
        assert_eq!((votes.rounds_held(), timeouts.rounds_held()), (100, 100));
        votes.prune_below(91);
        timeouts.prune_below(91);
        assert_eq!((votes.rounds_held(), timeouts.rounds_held()), (10, 10));
        votes.prune_below(u64::MAX);
        timeouts.prune_below(u64::MAX);
        assert_eq!((votes.rounds_held(), timeouts.rounds_held()), (0, 0));
    }

    #[test]
    fn timeouts_certify_with_the_highest_qc() {
        let mut c = TimeoutCollector::default();
        assert_eq!(
            c.add(&timeout(2, 5, 3), 1, 3),
            TimeoutOutcome::Counted { power: 1 }
        );
        assert_eq!(c.add(&timeout(2, 5, 3), 1, 3), TimeoutOutcome::Duplicate);
        assert_eq!(
            c.add(&timeout(0, 5, 4), 1, 3),
            TimeoutOutcome::Counted { power: 2 }
        );
        let TimeoutOutcome::Certified(tc) = c.add(&timeout(1, 5, 2), 1, 3) else {
            panic!("no TC at quorum");
        };
        assert_eq!(tc.round, 5);
        assert_eq!(tc.high_qc, qc(4));
        assert_eq!(tc.max_high_qc_round(), tc.high_qc.round());
        let authors: Vec<PublicKey> = tc.sigs.iter().map(|s| s.author).collect();
        let mut sorted = authors.clone();
        sorted.sort();
        assert_eq!(authors, sorted, "signers sorted by key");
        assert_eq!(
            c.add(&timeout(3, 5, 4), 1, 3),
            TimeoutOutcome::Counted { power: 4 }
        );
    }

    #[test]
    fn conflicting_timeouts_are_evidence() {
        let mut c = TimeoutCollector::default();
        c.add(&timeout(0, 5, 3), 1, 3);
        assert_eq!(
            c.add(&timeout(0, 5, 4), 1, 3),
            TimeoutOutcome::Equivocation(Box::new(Evidence::ConflictingTimeouts {
                author: key(0),
                round: 5,
                first: (3, Signature([0; 64])),
                second: (4, Signature([0; 64])),
            }))
        );
    }
}
