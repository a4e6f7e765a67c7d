//! Votes: casting this node's vote, counting votes from peers, and re-sending after a restart.

use hotledger_crypto::{Digest, PublicKey};

use super::{Action, Consensus};
use crate::collect::VoteOutcome;
use crate::error::{ConsensusError, Result};
use crate::types::{Message, TimeoutCert, Vote};

impl Consensus {
    /// A vote from a peer, for the leader of the next round (any validator takes votes in).
    pub(super) fn on_vote(&mut self, vote: Vote, out: &mut Vec<Action>) -> Result<()> {
        let round = vote.round();
        let next = round.checked_add(1).ok_or(ConsensusError::Overflow)?;
        // The next leader gathers the votes. Any validator takes them in, though: votes are
        // broadcast when the next leader is unreachable, and one may arrive before this node
        // has learnt that itself. (Each is verified once; a validator has one vote a round.)
        if self.me.is_none() {
            return Err(ConsensusError::NotNextLeader { round });
        }
        if next < self.round {
            return Err(ConsensusError::StaleRound {
                round,
                current: self.round,
            });
        }
        self.check_not_too_far(round)?;
        self.verifier().verify_vote(&vote)?;
        self.count_vote(vote, None, out);
        Ok(())
    }

    /// Adds a verified vote; `from` (a peer that holds the block) is asked for the block if a
    /// QC forms on one this node lacks.
    pub(super) fn count_vote(
        &mut self,
        vote: Vote,
        from: Option<PublicKey>,
        out: &mut Vec<Action>,
    ) {
        let Ok(power) = self.validators.power(&vote.author) else {
            return;
        };
        match self.votes.add(vote, power, self.validators.quorum()) {
            VoteOutcome::Certified(qc) => {
                self.stats.qcs_formed += 1;
                let fresh = qc.round() > self.high_qc.round();
                self.process_qc(&qc, from, out);
                if fresh {
                    self.skip_unled_round(qc.round(), out);
                }
            }
            VoteOutcome::Equivocation(evidence) => out.push(Action::ReportMisbehaviour(*evidence)),
            VoteOutcome::Counted | VoteOutcome::Duplicate => {}
        }
    }

    /// Votes for `id` (in the tree, current round) if the safety rules allow; persists first.
    pub(super) fn try_vote(
        &mut self,
        id: &Digest,
        tc: Option<&TimeoutCert>,
        out: &mut Vec<Action>,
    ) {
        let Some(block) = self.tree.get(id) else {
            return;
        };
        if block.round != self.round {
            return;
        }
        let high_qc = self.high_qc.clone();
        let high_tc = self.high_tc.clone();
        let Some(safety) = self.safety.as_mut() else {
            return;
        };
        safety.record_certificates(&high_qc, high_tc.as_ref());
        let Ok(vote) = safety.vote(block, tc) else {
            return; // already voted or timed out this round, or unsafe: stay silent
        };
        out.push(Action::PersistSafety(safety.data().clone()));
        self.stats.votes_sent += 1;
        let Some(next) = vote.round().checked_add(1) else {
            return;
        };
        let to = self.leader(next);
        if Some(to) == self.me {
            self.count_vote(vote, None, out);
        } else if self.is_unreachable(&to) {
            self.gather_everywhere(vote, out);
        } else {
            out.push(Action::Send {
                to,
                message: Message::Vote(vote),
            });
        }
    }

    /// On start: a restarted node re-sends the vote of the round it stopped in (already durable,
    /// so no `PersistSafety` precedes it).
    pub(super) fn resend_last_vote(&self, out: &mut Vec<Action>) {
        let Some(vote) = self.safety_data().and_then(|s| s.last_vote.clone()) else {
            return;
        };
        if vote.round() == self.round {
            if let Some(next) = vote.round().checked_add(1) {
                let to = self.leader(next);
                out.push(Action::Send {
                    to,
                    message: Message::Vote(vote),
                });
            }
        }
    }
}
