//! Certificates: verifying QCs and TCs once, taking them in, and the 2-chain commit rule.

use hotledger_crypto::PublicKey;

use super::{Action, Consensus};
use crate::error::Result;
use crate::types::{Commit, QuorumCert, TimeoutCert};

impl Consensus {
    /// Verifies a QC unless this very QC, signers included, was verified before. (Its signers
    /// matter beyond the quorum: leader reputation reads them.)
    pub(super) fn verify_qc_once(&self, qc: &QuorumCert) -> Result<()> {
        if self.certified.get(&qc.data.block.id) == Some(qc) || self.root_cert.as_ref() == Some(qc)
        {
            return Ok(());
        }
        self.verifier().verify_qc(qc)
    }

    /// Verifies a TC and its high QC, unless it is the very TC we already hold. Returns whether
    /// it is newer than our highest TC. Every TC the core acts on, including one that justifies
    /// a vote, has passed this check.
    pub(super) fn verify_tc_once(&self, tc: &TimeoutCert) -> Result<bool> {
        if self.high_tc.as_ref() == Some(tc) {
            return Ok(false);
        }
        self.verifier().verify_tc_signatures(tc)?;
        self.verify_qc_once(&tc.high_qc)?;
        Ok(self.high_tc.as_ref().is_none_or(|h| h.round < tc.round))
    }

    /// Takes a verified QC into account: high QC, commit candidate, round, block fetch.
    pub(super) fn process_qc(
        &mut self,
        qc: &QuorumCert,
        from: Option<PublicKey>,
        out: &mut Vec<Action>,
    ) {
        let root = *self.tree.root();
        if qc.data.block.height > root.height {
            self.certified
                .entry(qc.data.block.id)
                .or_insert_with(|| qc.clone());
            if qc.data.is_consecutive()
                && qc.data.parent.height > root.height
                && self
                    .commit_candidate
                    .as_ref()
                    .is_none_or(|c| c.data.parent.height < qc.data.parent.height)
            {
                self.commit_candidate = Some(qc.clone());
            }
            if !self.tree.contains(&qc.data.block.id) {
                if let Some(peer) = from {
                    self.request_block(peer, qc.data.block.id, out);
                }
            }
        }
        let raised = qc.round() > self.high_qc.round();
        if raised {
            self.high_qc = qc.clone();
        }
        // Commit before entering the next round, so a leader builds its payload on top of the
        // state this QC just committed.
        self.try_commit(out);
        let round = self.round;
        if let Some(next) = qc.round().checked_add(1) {
            self.enter_round(next, out);
        }
        if raised && self.round == round {
            // Still waiting in the same round: the proposal will extend the new high QC's
            // block, so its payload must be built for that parent.
            self.request_payload_again(out);
        }
    }

    pub(super) fn process_tc(&mut self, tc: TimeoutCert, out: &mut Vec<Action>) {
        let next = tc.round.checked_add(1);
        if self.high_tc.as_ref().is_none_or(|h| h.round < tc.round) {
            self.high_tc = Some(tc);
        }
        if let Some(next) = next {
            self.enter_round(next, out);
        }
    }

    /// Commits the candidate's parent and everything below it, once the chain is local
    /// (2-chain rule: a certified block whose parent is one round below commits the parent).
    pub(super) fn try_commit(&mut self, out: &mut Vec<Action>) {
        let Some(candidate) = &self.commit_candidate else {
            return;
        };
        if candidate.data.parent.height <= self.tree.root().height {
            self.commit_candidate = None;
            return;
        }
        let Some(blocks) = self.tree.commit(&candidate.data.parent.id) else {
            return; // the chain to the root is not local yet; fetched blocks retry this
        };
        let Some(proof) = self.commit_candidate.take() else {
            return;
        };
        let root = *self.tree.root();
        self.root_claim = crate::claim::chain_claim(blocks.iter().map(|b| &b.qc), self.root_claim);
        self.root_cert = self.certified.remove(&root.id);
        self.certified
            .retain(|_, q| q.data.block.height > root.height);
        self.prune_parked();
        self.leaders.record(&self.validators, &blocks);
        self.stats.blocks_committed += blocks.len() as u64;
        out.push(Action::Commit(Commit { blocks, proof }));
    }
}
