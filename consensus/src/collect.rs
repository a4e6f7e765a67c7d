//! Vote and timeout aggregation, with equivocation detection.
//!
//! Both collectors keep at most one entry per validator per round, and the core prunes rounds it
//! has left, so a peer can make them hold at most `validators x round window` entries.

use std::collections::{BTreeMap, HashMap};

use hotledger_crypto::{Digest, PublicKey, Signature};

use crate::types::{Evidence, QuorumCert, Round, TimeoutCert, TimeoutMsg, TimeoutSig, Vote, VoteData};

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
        let tally = rv.tallies.entry(vote.data.digest()).or_insert_with(|| Tally {
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
