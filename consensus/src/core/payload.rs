//! Payloads: building and signing this node's proposal once the host hands over its payload,
//! and holding peers' proposals while the application checks theirs.
//!
//! With [`crate::Config::check_payloads`], a peer's proposal that passed every check of the
//! protocol is *parked* (kept with the peer it came from) and the host is asked to check its
//! payload ([`Action::CheckPayload`]). The answer ([`crate::Event::PayloadChecked`]) resumes it
//! exactly where it stopped (`accept_proposal`) or drops it. At most `PARKED_PER_VALIDATOR`
//! proposals per validator wait: only a round's leader can make a valid proposal of that round,
//! so when the map is full the proposal of the lowest round goes first, and a Byzantine leader
//! flooding its own round pushes out only its own proposals or older rounds'. Proposals at or
//! below a new commit can no longer enter the tree and are dropped then.

use hotledger_crypto::{Digest, PublicKey, Signature};

use super::{Action, Consensus};
use crate::error::{ConsensusError, PayloadError, Result};
use crate::types::{Block, Height, Message, Proposal, Round, TimeoutCert};

/// How many parked proposals the core holds per validator.
const PARKED_PER_VALIDATOR: usize = 4;

/// A verified proposal waiting for the application's payload check.
#[derive(Debug)]
pub(super) struct Parked {
    /// The peer it came from (asked for missing ancestors when it resumes).
    from: PublicKey,
    proposal: Proposal,
}

impl Consensus {
    /// Parks a verified proposal and asks the host to check its payload. A copy of a proposal
    /// already parked asks nothing new. When the map is full, the proposal of the lowest round
    /// goes, which may be this one.
    pub(super) fn park(
        &mut self,
        from: PublicKey,
        proposal: Proposal,
        state_height: Height,
        out: &mut Vec<Action>,
    ) {
        let id = proposal.block.id;
        if self.parked.contains_key(&id) {
            return;
        }
        let max = self.validators.len().saturating_mul(PARKED_PER_VALIDATOR);
        if self.parked.len() >= max {
            let lowest = self
                .parked
                .iter()
                .map(|(id, p)| (p.proposal.block.round, *id))
                .min();
            match lowest {
                Some((round, lowest)) if round <= proposal.block.round => {
                    self.parked.remove(&lowest);
                }
                _ => return,
            }
        }
        let block = proposal.block.clone();
        self.parked.insert(id, Parked { from, proposal });
        out.push(Action::CheckPayload {
            from,
            block,
            state_height,
        });
    }

    /// The application's verdict on a parked proposal's payload: `Ok` resumes it where
    /// `on_proposal` stopped (after checking again that its author leads its round, which is
    /// cheap and all that can have changed), `Err` drops it and is returned as
    /// `InvalidPayload`. An unknown id (answered already, or dropped) is ignored.
    pub(super) fn on_payload_checked(
        &mut self,
        id: Digest,
        result: std::result::Result<(), PayloadError>,
        out: &mut Vec<Action>,
    ) -> Result<()> {
        let Some(Parked { from, proposal }) = self.parked.remove(&id) else {
            return Ok(());
        };
        // A claim this node could not check (it has not executed that height yet) is no fault
        // of the proposer: the block is kept without a vote, so that a node behind by a block or
        // two connects the next proposals to its chain instead of fetching each one late.
        let vote = match result {
            Ok(()) => true,
            Err(PayloadError::ClaimUnchecked { .. }) => {
                self.stats.proposals_unchecked += 1;
                false
            }
            Err(error) => {
                self.payload_refused
                    .insert((proposal.block.round, proposal.block.id));
                return Err(ConsensusError::InvalidPayload {
                    round: proposal.block.round,
                    author: proposal.block.author,
                    error,
                });
            }
        };
        // Commits made while the check ran may have changed the leader schedule of a node that
        // lags; the proposal is taken in only if its author still leads its round.
        if self.check_schedule(from, &proposal, out)? {
            self.accept_proposal(from, proposal, vote, out)?;
        }
        Ok(())
    }

    /// Drops the parked proposals a commit left at or below the root: they cannot enter the
    /// tree any more.
    pub(super) fn prune_parked(&mut self) {
        let root = self.tree.root().height;
        self.parked.retain(|_, p| p.proposal.block.height > root);
    }

    /// The payload this node asked for as the leader of `round`: builds and signs the proposal,
    /// persists, broadcasts it, and then processes it like anyone's.
    pub(super) fn on_payload(
        &mut self,
        round: Round,
        parent: Digest,
        payload: Vec<u8>,
        out: &mut Vec<Action>,
    ) -> Result<()> {
        if self.payload_round != Some(round) || round != self.round {
            return Ok(()); // the round moved on; the payload is dropped
        }
        if parent != self.high_qc.block().id {
            // Built for an older parent: it may repeat a transaction of the blocks between.
            self.request_payload_again(out);
            return Ok(());
        }
        if payload.len() > self.params.max_payload_bytes {
            return Err(ConsensusError::PayloadTooLarge {
                got: payload.len(),
                max: self.params.max_payload_bytes,
            });
        }
        self.payload_round = None;
        let Some(tc) = self.proposal_tc(round) else {
            return Ok(()); // cannot justify this round; let it time out
        };
        let Some(author) = self.me else {
            return Ok(());
        };
        let mut block = self.build_block(round, author, payload)?;
        let (high_qc, high_tc) = (self.high_qc.clone(), self.high_tc.clone());
        let Some(safety) = self.safety.as_mut() else {
            return Ok(());
        };
        safety.record_certificates(&high_qc, high_tc.as_ref());
        block.signature = safety.sign_proposal(&block)?;
        out.push(Action::PersistSafety(safety.data().clone()));
        let proposal = Proposal { block, tc };
        out.push(Action::Broadcast(Message::Proposal(proposal.clone())));
        self.stats.proposals_made += 1;
        // Our own proposal goes through the same path as anyone's (it is verified cheaply).
        // (It cannot fail on our own signature; if the block tree is full we still sent it.)
        let _ = self.on_proposal(author, proposal, out);
        Ok(())
    }

    /// Asks again for the payload of the round this node waits to propose in, on the high
    /// QC's block (which changed since the last request).
    pub(super) fn request_payload_again(&mut self, out: &mut Vec<Action>) {
        if self.payload_round == Some(self.round) {
            out.push(Action::RequestPayload {
                round: self.round,
                parent: *self.high_qc.block(),
            });
        }
    }

    /// On restart in a round this node proposed in before it stopped: broadcasts that proposal
    /// again (its block was stored before the proposal left), instead of asking for a payload
    /// the safety rules would refuse to sign (one proposal per round), which would leave the
    /// round to time out.
    pub(super) fn resend_own_proposal(&mut self, out: &mut Vec<Action>) {
        let Some(proposal) = self.own_proposal() else {
            return;
        };
        let round = self.round;
        self.payload_round = None;
        out.retain(|a| !matches!(a, Action::RequestPayload { round: r, .. } if *r == round));
        out.push(Action::Broadcast(Message::Proposal(proposal)));
    }

    /// The proposal this node signed for the current round, rebuilt from its block in the tree
    /// and the certificate that justifies it; `None` if it made none, or cannot justify it.
    pub(super) fn own_proposal(&self) -> Option<Proposal> {
        let (me, data) = (self.me?, self.safety_data()?);
        if self.round == 0 || data.last_proposed_round != self.round {
            return None;
        }
        let round = self.round;
        let block = self
            .tree
            .blocks()
            .find(|b| b.author == me && b.round == round)?
            .clone();
        let tc = if block.qc.round().checked_add(1) == Some(round) {
            None
        } else {
            match &self.high_tc {
                Some(tc) if tc.round.checked_add(1) == Some(round) => Some(tc.clone()),
                _ => return None,
            }
        };
        Some(Proposal { block, tc })
    }

    /// What justifies a proposal of `round` on the highest QC: nothing more when that QC is of
    /// the round before (`Some(None)`), else the TC of the round before (`Some(Some(tc))`);
    /// `None` when neither does.
    fn proposal_tc(&self, round: Round) -> Option<Option<TimeoutCert>> {
        if self.high_qc.round().checked_add(1) == Some(round) {
            return Some(None);
        }
        match &self.high_tc {
            Some(tc) if tc.round.checked_add(1) == Some(round) => Some(Some(tc.clone())),
            _ => None,
        }
    }

    /// This node's unsigned block of `round` on the highest QC, carrying `payload`.
    fn build_block(&self, round: Round, author: PublicKey, payload: Vec<u8>) -> Result<Block> {
        let qc = self.high_qc.clone();
        let parent = *qc.block();
        let height = parent
            .height
            .checked_add(1)
            .ok_or(ConsensusError::Overflow)?;
        let timestamp_ms = self.now_ms.max(parent.timestamp_ms);
        let failed_leaders = self
            .leaders
            .failed_leaders(&self.validators, parent.round, round);
        let id = Block::compute_id(
            round,
            height,
            timestamp_ms,
            &author,
            &qc,
            &failed_leaders,
            &payload,
        );
        Ok(Block {
            id,
            round,
            height,
            timestamp_ms,
            author,
            qc,
            failed_leaders,
            payload,
            signature: Signature([0; 64]),
        })
    }
}
