//! Proposals: verifying a leader's block, taking it into the tree, and voting for it.

use hotledger_crypto::{Digest, PublicKey};

use super::{Action, Consensus};
use crate::block_tree::Inserted;
use crate::error::{ConsensusError, Result};
use crate::types::{Block, Evidence, Proposal, TimeoutCert};

impl Consensus {
    /// A proposal from `from`: verified whole, then taken into the tree and voted on, or, with
    /// `check_payloads`, parked until the application has checked its payload.
    pub(super) fn on_proposal(
        &mut self,
        from: PublicKey,
        p: Proposal,
        out: &mut Vec<Action>,
    ) -> Result<()> {
        if !self.verify_proposal(from, &p, out)? {
            return Ok(());
        }
        let unseen = self.tree.get(&p.block.id).is_none() && Some(p.block.author) != self.me;
        if self.check_payloads && unseen {
            // Certificates first: the commits they make, and the host's execution of them, come
            // before the payload check, so the check finds the claimed height executed
            // (`crate::claim`). If the block gets certified without this node's vote, it is
            // fetched with its QC, which needs no payload check.
            self.take_certificates(from, &p, out)?;
            if self.worth_a_payload_check(&p, out) {
                match self.state_claim(&p.block) {
                    Some(claim) => self.park(from, p, claim, out),
                    // The chain below it is not here: its claim cannot be checked, so it is not
                    // voted for; its missing parent is fetched.
                    None => self.request_parent(from, &p.block, out),
                }
            }
            return Ok(());
        }
        self.accept_proposal(from, p, true, out)
    }

    /// Asks `from` for `block`'s parent unless it is in the tree or committed.
    fn request_parent(&mut self, from: PublicKey, block: &Block, out: &mut Vec<Action>) {
        let parent = block.parent();
        if parent.height > self.tree.root().height && !self.tree.contains(&parent.id) {
            self.request_block(from, parent.id, out);
        }
    }

    /// Whether a verified proposal, not in the tree, earns a check of its payload (decoding and
    /// up to `max_block_txs` signatures, the costliest thing a peer can ask for): only one this
    /// node could still vote for (not of a round it has left), the first its author signed for
    /// its round (a second, different one is equivocation: reported here, and never checked),
    /// and not one whose payload was refused already.
    fn worth_a_payload_check(&mut self, p: &Proposal, out: &mut Vec<Action>) -> bool {
        let block = &p.block;
        if block.round < self.round {
            return false;
        }
        if self.payload_refused.contains(&(block.round, block.id)) {
            return false;
        }
        let first = self
            .proposals_seen
            .get(&block.round)
            .and_then(|seen| seen.get(&block.author))
            .is_none_or(|(_, id, _)| *id == block.id);
        self.note_proposal(block, out);
        first
    }

    /// Verifies everything about a proposal before anything changes: its leader and the failed
    /// leaders it names (`check_schedule`), its signature, id, timestamp, justification and
    /// certificates. Returns `false` when `check_schedule` does.
    fn verify_proposal(
        &mut self,
        from: PublicKey,
        p: &Proposal,
        out: &mut Vec<Action>,
    ) -> Result<bool> {
        if !self.check_schedule(from, p, out)? {
            return Ok(false);
        }
        let block = &p.block;
        // A proposal may be any number of rounds ahead: its certificates, verified below, justify
        // the jump (a node back from a long partition follows them).
        self.verifier()
            .verify_block(block, self.params.max_payload_bytes)?;
        self.check_justification(block, p.tc.as_ref())?;
        self.verify_qc_once(&block.qc)?;
        if let Some(tc) = &p.tc {
            self.verify_tc_once(tc)?;
        }
        if self.ahead_of_clock(block) {
            // Not voted for, and no misbehaviour either: the clock that disagrees may be this
            // node's. Its certificates still move the node on, so a node whose clock lags keeps
            // following the chain (and its own proposals, timestamped no earlier than their
            // parents, are accepted by the others) instead of isolating itself.
            self.stats.proposals_ahead_of_clock += 1;
            self.take_certificates(from, p, out)?;
            return Ok(false);
        }
        Ok(true)
    }

    /// The proposal's author must be the leader this node computes for its round, and the block
    /// must name the failed leaders this node computes. If not, and its certificates brought
    /// something new, they are taken in instead (see `take_certificates`) and this returns
    /// `false`: the block itself is dropped. No signature is checked here.
    pub(super) fn check_schedule(
        &mut self,
        from: PublicKey,
        p: &Proposal,
        out: &mut Vec<Action>,
    ) -> Result<bool> {
        let block = &p.block;
        let leader = self.leader(block.round);
        if block.author != leader {
            let not_leader = ConsensusError::NotLeader {
                round: block.round,
                author: block.author,
                expected: leader,
            };
            return match self.take_certificates(from, p, out)? {
                true => Ok(false),
                false => Err(not_leader),
            };
        }
        let expected =
            self.leaders
                .failed_leaders(&self.validators, block.parent().round, block.round);
        if block.failed_leaders != expected {
            let wrong = ConsensusError::WrongFailedLeaders {
                round: block.round,
                got: block.failed_leaders.clone(),
                expected,
            };
            return match self.take_certificates(from, p, out)? {
                true => Ok(false),
                false => Err(wrong),
            };
        }
        Ok(true)
    }

    /// Takes a verified proposal in: the block enters the tree (or waits for its parent), its
    /// certificates are processed, and, with `vote`, this node votes if it is still in the
    /// block's round. Without `vote` (its payload's claim could not be checked here) the block is
    /// only kept, so that the chain above it connects: nothing extends or commits it without a
    /// QC, which a quorum that checked it makes.
    pub(super) fn accept_proposal(
        &mut self,
        from: PublicKey,
        p: Proposal,
        vote: bool,
        out: &mut Vec<Action>,
    ) -> Result<()> {
        let (id, round) = (p.block.id, p.block.round);
        let new_tc =
            p.tc.clone()
                .filter(|tc| self.high_tc.as_ref().is_none_or(|h| h.round < tc.round));
        let inserted = self.tree.insert(p.block.clone())?;
        // Equivocation is reported, and the block is still processed: it may get certified by
        // others, and the safety rules alone decide whether we vote (one vote per round).
        self.note_proposal(&p.block, out);
        if let Some(tc) = new_tc {
            self.process_qc(&tc.high_qc.clone(), Some(from), out);
            self.process_tc(tc, out);
        }
        self.process_qc(&p.block.qc, Some(from), out);
        match inserted {
            Inserted::Added(ids) => {
                self.store_uncommitted(&ids, out);
                self.after_insert(&ids, out);
            }
            Inserted::Known | Inserted::BelowRoot => {}
            Inserted::Orphan { missing } => {
                if vote && round == self.round {
                    self.awaiting_parent.insert(round, (id, p.tc.clone()));
                }
                self.request_block(from, missing, out);
            }
        }
        if vote && round == self.round && self.tree.get(&id).is_some() {
            self.try_vote(&id, p.tc.as_ref(), out);
        }
        Ok(())
    }

    /// A proposal whose author is not the leader this node computes is not voted on, nor is its
    /// block kept, but its certificates, verified on their own as a timeout's are, still move
    /// the node on: a node whose committed history lags computes other leaders than its peers
    /// until their QCs let it commit and catch up. Returns whether they brought anything new.
    pub(super) fn take_certificates(
        &mut self,
        from: PublicKey,
        p: &Proposal,
        out: &mut Vec<Action>,
    ) -> Result<bool> {
        if !self.validators.contains(&p.block.author) {
            return Ok(false);
        }
        let qc = &p.block.qc;
        let new_qc = qc.round() > self.high_qc.round();
        let tc =
            p.tc.as_ref()
                .filter(|tc| self.high_tc.as_ref().is_none_or(|h| h.round < tc.round));
        if !new_qc && tc.is_none() {
            return Ok(false);
        }
        self.verify_qc_once(qc)?;
        if let Some(tc) = tc {
            self.verify_tc_once(tc)?;
            self.process_qc(&tc.high_qc.clone(), Some(from), out);
            self.process_tc(tc.clone(), out);
        }
        self.process_qc(qc, Some(from), out);
        Ok(true)
    }

    /// Whether a block is timestamped further ahead of this node's clock than the allowed skew
    /// (such a block is not voted for).
    pub(super) fn ahead_of_clock(&self, block: &Block) -> bool {
        block.timestamp_ms > self.now_ms.saturating_add(self.params.max_clock_skew_ms)
    }

    /// A block of round r must carry a QC of round r-1, or a TC of round r-1.
    pub(super) fn check_justification(
        &self,
        block: &Block,
        tc: Option<&TimeoutCert>,
    ) -> Result<()> {
        let qc_round = block.qc.round();
        let by_qc = qc_round.checked_add(1) == Some(block.round);
        let by_tc = tc.is_some_and(|t| t.round.checked_add(1) == Some(block.round));
        if by_qc || by_tc {
            Ok(())
        } else {
            Err(ConsensusError::UnjustifiedRound {
                round: block.round,
                qc_round,
                tc_round: tc.map(|t| t.round),
            })
        }
    }

    /// Records the signed header; on a second, different proposal from the same leader in the
    /// same round, reports evidence.
    pub(super) fn note_proposal(&mut self, block: &Block, out: &mut Vec<Action>) {
        let seen = self.proposals_seen.entry(block.round).or_default();
        match seen.get(&block.author) {
            Some((h, id, sig)) if *id != block.id => {
                out.push(Action::ReportMisbehaviour(Evidence::ConflictingProposals {
                    author: block.author,
                    round: block.round,
                    first: (*h, *id, *sig),
                    second: (block.height, block.id, block.signature),
                }));
            }
            Some(_) => {}
            None => {
                seen.insert(block.author, (block.height, block.id, block.signature));
            }
        }
    }

    /// Asks the host to store blocks that just entered the tree as uncommitted (before any vote
    /// for them).
    pub(super) fn store_uncommitted(&self, ids: &[Digest], out: &mut Vec<Action>) {
        for id in ids {
            if let Some(block) = self.tree.get(id) {
                out.push(Action::StoreUncommitted(block.clone()));
            }
        }
    }

    /// After blocks entered the tree: vote for a waiting proposal, commit what became local.
    pub(super) fn after_insert(&mut self, ids: &[Digest], out: &mut Vec<Action>) {
        if let Some((id, tc)) = self.awaiting_parent.get(&self.round).cloned() {
            if ids.contains(&id) {
                self.awaiting_parent.remove(&self.round);
                self.try_vote(&id, tc.as_ref(), out);
            }
        }
        self.try_commit(out);
    }
}
