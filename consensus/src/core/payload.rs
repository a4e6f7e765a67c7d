//! Payloads: building and signing this node's proposal once the host hands over its payload.

use hotledger_crypto::{PublicKey, Signature};

use super::{Action, Consensus};
use crate::error::{ConsensusError, Result};
use crate::types::{Block, Message, Proposal, Round, TimeoutCert};

/// The application's check of a proposed block's payload, run before the block is accepted
/// and voted on (for example: transactions decode, signatures verify, limits hold). Blocks
/// fetched during catch-up are not checked: their QC shows a quorum already accepted them.
/// The check must be deterministic for honest nodes that have the same committed state.
pub trait PayloadCheck: Send + std::fmt::Debug {
    fn check(&mut self, block: &Block) -> std::result::Result<(), String>;
}

/// Accepts every payload (the simulator's application).
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAll;

impl PayloadCheck for AcceptAll {
    fn check(&mut self, _block: &Block) -> std::result::Result<(), String> {
        Ok(())
    }
}

impl Consensus {
    /// The payload this node asked for as the leader of `round`: builds and signs the proposal,
    /// persists, broadcasts it, and then processes it like anyone's.
    pub(super) fn on_payload(
        &mut self,
        round: Round,
        payload: Vec<u8>,
        out: &mut Vec<Action>,
    ) -> Result<()> {
        if self.payload_round != Some(round) || round != self.round {
            return Ok(()); // the round moved on; the payload is dropped
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
