//! Rounds: the pacemaker's timer, entering rounds, timing out, and timeouts from peers.

use hotledger_crypto::PublicKey;

use super::{Action, Consensus};
use crate::collect::TimeoutOutcome;
use crate::error::{ConsensusError, Result};
use crate::pacemaker;
use crate::types::{Message, Round, TimeoutMsg, Vote};

impl Consensus {
    // ---- rounds and the pacemaker ----------------------------------------------------------

    /// The timeout for the current round (see [`crate::pacemaker`]).
    fn round_timeout_ms(&self) -> u64 {
        pacemaker::round_timeout_ms(&self.params, self.round, self.high_qc.round())
    }

    /// Moves to `round` if it is ahead: arms the timer, prunes, and asks for a payload if we lead.
    pub(super) fn enter_round(&mut self, round: Round, out: &mut Vec<Action>) {
        if round <= self.round {
            return;
        }
        self.round = round;
        let keep_from = round.saturating_sub(1);
        self.votes.prune_below(keep_from);
        self.timeouts.prune_below(round);
        self.proposals_seen = self.proposals_seen.split_off(&keep_from);
        self.payload_refused = self
            .payload_refused
            .split_off(&(keep_from, hotledger_crypto::Digest::ZERO));
        self.awaiting_parent = self.awaiting_parent.split_off(&round);
        let unreachable = self.leader_unreachable() && self.may_skip_early();
        out.push(Action::ScheduleTimeout {
            round,
            after_ms: if unreachable {
                0
            } else {
                self.round_timeout_ms()
            },
        });
        if self.me.is_some() && self.me == Some(self.leader(round)) {
            self.payload_round = Some(round);
            out.push(Action::RequestPayload {
                round,
                parent: *self.high_qc.block(),
            });
        }
    }

    /// Whether this node may time out the current round before its timer, because its leader
    /// is unreachable: if it has not timed the round out yet. (Timing out does not leave the
    /// round: only a TC does, so a node that lost every connection stays where it is.)
    pub(super) fn may_skip_early(&self) -> bool {
        self.safety_data()
            .is_some_and(|s| s.highest_timeout_round < self.round)
    }

    /// Whether `key` is another validator this node cannot reach.
    pub(super) fn is_unreachable(&self, key: &PublicKey) -> bool {
        self.me != Some(*key) && self.unreachable.contains(key)
    }

    /// Whether the current round's leader is another validator this node cannot reach.
    fn leader_unreachable(&self) -> bool {
        self.is_unreachable(&self.leader(self.round))
    }

    /// A vote whose next leader is unreachable: nobody gathers it there, so it goes to every
    /// validator, and this node counts it too.
    pub(super) fn gather_everywhere(&mut self, vote: Vote, out: &mut Vec<Action>) {
        out.push(Action::Broadcast(Message::Vote(vote.clone())));
        self.count_vote(vote, None, out);
    }

    /// The host's set of unreachable validators changed. If the current round's leader is in
    /// it and this node has not voted, the round is timed out at once. If this node voted and
    /// the next round's leader is in it, the vote (signed and persisted already) is broadcast,
    /// so every node can gather the round's QC.
    pub(super) fn on_unreachable(&mut self, validators: Vec<PublicKey>, out: &mut Vec<Action>) {
        let before = std::mem::replace(
            &mut self.unreachable,
            validators
                .into_iter()
                .filter(|k| self.validators.contains(k))
                .collect(),
        );
        let back: Vec<PublicKey> = before.difference(&self.unreachable).copied().collect();
        self.resend_to_returned(&back, out);
        let vote = self
            .safety_data()
            .and_then(|s| s.last_vote.clone())
            .filter(|v| v.round() == self.round);
        match vote {
            Some(vote) => {
                let next = self.round.checked_add(1).map(|n| self.leader(n));
                if next.is_some_and(|l| self.is_unreachable(&l)) {
                    self.gather_everywhere(vote, out);
                }
            }
            None => {
                if self.leader_unreachable() && self.may_skip_early() {
                    out.push(Action::ScheduleTimeout {
                        round: self.round,
                        after_ms: 0,
                    });
                }
            }
        }
    }

    /// Validators reachable again (a partition healed, a connection found dead was redialled)
    /// missed what this node sent while they were cut off, and may wait for it until a timer
    /// backed off to many seconds fires. Each gets what the current round needs from this node,
    /// all of it signed and persisted already: its proposal if it leads the round, and its
    /// timeout of the round (which carries its vote and the TC that opened the round), or
    /// without one its vote if the returned validator gathers it (the next round's leader).
    fn resend_to_returned(&self, back: &[PublicKey], out: &mut Vec<Action>) {
        if back.is_empty() || self.me.is_none() {
            return;
        }
        let round = self.round;
        let proposal = self.own_proposal();
        let timeout = self.last_timeout.as_ref().filter(|t| t.round == round);
        let vote = self
            .safety_data()
            .and_then(|s| s.last_vote.clone())
            .filter(|v| v.round() == round);
        let gatherer = round.checked_add(1).map(|next| self.leader(next));
        for &to in back {
            if let Some(p) = &proposal {
                let message = Message::Proposal(p.clone());
                out.push(Action::Send { to, message });
            }
            match (timeout, &vote) {
                (Some(t), _) => {
                    let message = Message::Timeout(t.clone());
                    out.push(Action::Send { to, message });
                }
                (None, Some(v)) if gatherer == Some(to) => {
                    let message = Message::Vote(v.clone());
                    out.push(Action::Send { to, message });
                }
                _ => {}
            }
        }
    }

    /// The round timer fired: time the round out and re-arm the timer. If this node's timeout
    /// completed a TC, the node is in the next round already, whose timer is armed, and the
    /// batch's last `ScheduleTimeout` must stay that one (a host may keep a single timer).
    pub(super) fn on_timer(&mut self, round: Round, out: &mut Vec<Action>) -> Result<()> {
        if round != self.round {
            return Ok(()); // stale timer
        }
        self.local_timeout(out)?;
        if self.round == round {
            out.push(Action::ScheduleTimeout {
                round,
                after_ms: self.round_timeout_ms(),
            });
        }
        Ok(())
    }

    /// Signs (or re-sends) a timeout for the current round, persists, broadcasts, and counts it.
    /// The timeout carries this node's vote of the round, if it voted: that vote is already
    /// signed and persisted, so every node can certify the block when the next leader is down.
    pub(super) fn local_timeout(&mut self, out: &mut Vec<Action>) -> Result<()> {
        let round = self.round;
        let last_tc = self
            .high_tc
            .clone()
            .filter(|tc| tc.round.checked_add(1) == Some(round));
        let high_qc = self.high_qc.clone();
        let Some(safety) = self.safety.as_mut() else {
            return Ok(()); // observers do not time out
        };
        safety.record_certificates(&high_qc, self.high_tc.as_ref());
        let mut timeout = safety.timeout(round, &high_qc, last_tc.as_ref())?;
        timeout.vote = safety
            .data()
            .last_vote
            .clone()
            .filter(|v| v.round() == round);
        out.push(Action::PersistSafety(safety.data().clone()));
        out.push(Action::Broadcast(Message::Timeout(timeout.clone())));
        self.last_timeout = Some(timeout.clone());
        self.stats.timeouts_sent += 1;
        if let Some(vote) = timeout.vote.clone() {
            self.count_vote(vote, None, out);
        }
        self.count_timeout(&timeout, out);
        Ok(())
    }

    /// Adds a verified timeout to the collector; forms a TC, or joins a timeout that f+1 started.
    fn count_timeout(&mut self, t: &TimeoutMsg, out: &mut Vec<Action>) {
        let Ok(power) = self.validators.power(&t.author) else {
            return;
        };
        match self.timeouts.add(t, power, self.validators.quorum()) {
            TimeoutOutcome::Certified(tc) => {
                self.stats.tcs_formed += 1;
                self.process_tc(tc, out);
            }
            TimeoutOutcome::Counted { power } => {
                // f+1 timed out this round, so at least one honest node did: join them rather
                // than wait for our own timer (keeps rounds in step after a partition heals).
                // With the round's leader unreachable, one timeout is enough: a node that did
                // not get the leader's block (it left while sending it) will not vote for it,
                // and waiting only delays the TC; the timeouts carry the votes there are.
                let joined = self
                    .safety_data()
                    .is_some_and(|s| s.highest_timeout_round >= t.round);
                let enough = power >= self.validators.validity() || self.leader_unreachable();
                if t.round == self.round && enough && !joined {
                    let _ = self.local_timeout(out);
                }
            }
            TimeoutOutcome::Equivocation(evidence) => {
                out.push(Action::ReportMisbehaviour(*evidence));
            }
            TimeoutOutcome::Duplicate => {}
        }
    }

    /// This node certified `round` itself, from votes carried by timeouts, and does not lead
    /// the next round: that round's leader did not gather the votes sent to it within a whole
    /// round's timer, so it is crashed or cut off. Time out its round at once instead of waiting
    /// a second timer for a proposal that is not coming. (The leader of the next round itself
    /// proposes instead; a node that already voted in that round keeps waiting.)
    pub(super) fn skip_unled_round(&mut self, round: Round, out: &mut Vec<Action>) {
        let Some(next) = round.checked_add(1) else {
            return;
        };
        if next != self.round || self.me.is_none() || self.me == Some(self.leader(next)) {
            return;
        }
        let acted = self
            .safety_data()
            .is_some_and(|s| s.last_voted_round >= next || s.highest_timeout_round >= next);
        if !acted {
            let _ = self.local_timeout(out);
        }
    }

    pub(super) fn on_timeout(
        &mut self,
        from: PublicKey,
        t: TimeoutMsg,
        out: &mut Vec<Action>,
    ) -> Result<()> {
        // Verify everything before changing anything.
        let new_tc = match &t.last_tc {
            Some(tc) => self.verify_tc_once(tc)?,
            None => false,
        };
        self.verify_qc_once(&t.high_qc)?;
        // The round its certificates take us to: a laggard follows them there.
        let mut reach = self.round.max(t.high_qc.round().saturating_add(1));
        if let (true, Some(tc)) = (new_tc, &t.last_tc) {
            reach = reach.max(tc.round.saturating_add(1));
        }
        let stale = t.round < reach;
        // The vote still counts for the round just left: a TC may have taken this node on before
        // the round's votes were in, and a QC is better than the TC (it keeps the block).
        let vote = t
            .vote
            .as_ref()
            .filter(|_| t.round.saturating_add(1) >= self.round);
        if stale {
            if !new_tc && t.high_qc.round() <= self.high_qc.round() && vote.is_none() {
                return Err(ConsensusError::StaleRound {
                    round: t.round,
                    current: self.round,
                });
            }
        } else {
            if t.round > reach.saturating_add(self.limits.max_round_ahead) {
                return Err(ConsensusError::RoundTooFarAhead {
                    round: t.round,
                    current: self.round,
                });
            }
            self.verifier().verify_timeout(&t)?;
        }
        if let Some(vote) = vote {
            self.verify_timeout_vote(&t, vote)?;
        }
        // Apply: certificates first, they may move us to the timeout's round; then the vote, so
        // a QC forms before a TC when this timeout completes both.
        if let (true, Some(tc)) = (new_tc, &t.last_tc) {
            self.process_qc(&tc.high_qc.clone(), Some(from), out);
            self.process_tc(tc.clone(), out);
        }
        self.process_qc(&t.high_qc, Some(from), out);
        if let Some(vote) = vote.filter(|_| t.round.saturating_add(1) >= self.round) {
            self.count_vote(vote.clone(), Some(from), out);
        }
        if !stale && t.round >= self.round {
            self.count_timeout(&t, out);
        }
        Ok(())
    }

    /// A timeout's vote must be its author's, for the timed-out round, validly signed.
    fn verify_timeout_vote(&self, t: &TimeoutMsg, vote: &Vote) -> Result<()> {
        if vote.author != t.author || vote.round() != t.round {
            return Err(ConsensusError::ForeignTimeoutVote {
                round: t.round,
                author: t.author,
                vote_round: vote.round(),
                voter: vote.author,
            });
        }
        self.verifier().verify_vote(vote)
    }
}
