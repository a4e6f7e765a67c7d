//! Safety rules: the only component that signs, and the state that must survive a crash.
//!
//! Every signature this node makes goes through [`SafetyRules`], which checks a written rule
//! before signing and updates [`SafetyData`]. The caller must persist the new `SafetyData`
//! (durably: fsync) **before** the signed message leaves the node — the core expresses this by
//! emitting [`crate::Action::PersistSafety`] ahead of the send. A node that restarts from the
//! persisted data can therefore never sign two conflicting messages.
//!
//! The rules (Jolteon / DiemBFT-v4, 2-chain):
//!
//! 1. **Round increase** — vote or time out only in a round above `last_voted_round`, then raise it.
//!    Timing out a round also counts as having voted in it, so no vote follows a timeout there.
//! 2. **Vote extension** — vote for block `B` of round `r` carrying QC `qc` only if
//!    `r == qc.round + 1`, or `B` comes with a TC for round `r - 1` and
//!    `qc.round >= tc.max_high_qc_round` (the block extends the highest QC any TC signer knew).
//! 3. **Timeout lock** — time out round `r` only with `qc` such that `r == qc.round + 1` or we hold
//!    a TC for `r - 1`, and `qc.round >= locked_round`, the highest certified round we voted or
//!    timed out on top of. This is what makes a TC carry every QC that may have committed.
//! 4. **One proposal per round** — propose only in a round above `last_proposed_round`.
//!
//! Same-round repeats are not signed twice: a repeated vote or timeout returns the stored message.

use hotledger_crypto::{Domain, KeyPair, PublicKey};
use serde::{Deserialize, Serialize};

use crate::config::DisabledRule;
use crate::error::{ConsensusError, Result};
use crate::types::{
    proposal_signing_bytes, timeout_signing_bytes, Block, QuorumCert, Round, TimeoutCert,
    TimeoutMsg, Vote,
};

/// What must survive a crash for this node to stay safe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyData {
    /// Highest round this node voted or timed out in.
    pub last_voted_round: Round,
    /// Highest certified-block round this node built on when voting or timing out (Jolteon's
    /// "one-chain round"); timeouts must carry a QC at least this high.
    pub locked_round: Round,
    /// Highest round this node timed out.
    pub highest_timeout_round: Round,
    /// Highest round this node proposed in.
    pub last_proposed_round: Round,
    /// The last vote signed, re-sent verbatim if asked to vote again in its round.
    pub last_vote: Option<Vote>,
    /// The last timeout signed, re-sent verbatim on repeated timeouts of its round.
    pub last_timeout: Option<TimeoutMsg>,
    /// Highest QC known when this data was last written. Not needed for safety but for
    /// liveness: a restarted node re-enters its round with it and can still time out.
    pub high_qc: Option<QuorumCert>,
    /// Highest TC known when this data was last written (same reason).
    pub high_tc: Option<TimeoutCert>,
}

/// Rule 1: `round` must be above the last round voted or timed out in.
pub fn check_round_increase(round: Round, data: &SafetyData) -> Result<()> {
    if round > data.last_voted_round {
        Ok(())
    } else {
        Err(ConsensusError::RoundNotIncreasing {
            round,
            last_voted: data.last_voted_round,
        })
    }
}

/// Rule 2: vote for a block of `round` with `qc_round` only if it directly extends the QC, or a
/// TC for `round - 1` justifies it and the QC is at least the TC's highest QC.
pub fn safe_to_vote(round: Round, qc_round: Round, tc: Option<&TimeoutCert>) -> Result<()> {
    if qc_round.checked_add(1) == Some(round) {
        return Ok(());
    }
    if let Some(tc) = tc {
        if tc.round.checked_add(1) == Some(round) && qc_round >= tc.max_high_qc_round() {
            return Ok(());
        }
    }
    Err(ConsensusError::UnsafeToVote {
        round,
        qc_round,
        tc: tc.map(|t| (t.round, t.max_high_qc_round())),
    })
}

/// Rule 3: time out `round` with a QC of `qc_round` only if the round follows that QC or a TC we
/// hold, and the QC is at least our locked round.
pub fn safe_to_timeout(
    round: Round,
    qc_round: Round,
    tc_round: Option<Round>,
    data: &SafetyData,
) -> Result<()> {
    let follows = qc_round.checked_add(1) == Some(round)
        || tc_round.and_then(|r| r.checked_add(1)) == Some(round);
    if follows && qc_round >= data.locked_round {
        Ok(())
    } else {
        Err(ConsensusError::UnsafeToTimeout {
            round,
            qc_round,
            locked: data.locked_round,
        })
    }
}

/// Rule 4: one proposal per round.
pub fn check_proposal_round(round: Round, data: &SafetyData) -> Result<()> {
    if round > data.last_proposed_round {
        Ok(())
    } else {
        Err(ConsensusError::AlreadyProposed { round })
    }
}

/// Holds this node's key and safety data; signs only what the rules allow.
#[derive(Debug)]
pub struct SafetyRules {
    key: KeyPair,
    chain_id: String,
    data: SafetyData,
    /// Only ever set by the simulator's fault injection (feature `fault-injection`).
    disabled: Option<DisabledRule>,
}

impl SafetyRules {
    /// Starts from persisted data (or `SafetyData::default()` on first start).
    pub fn new(key: KeyPair, chain_id: String, data: SafetyData) -> Self {
        SafetyRules {
            key,
            chain_id,
            data,
            disabled: None,
        }
    }

    #[cfg(feature = "fault-injection")]
    pub(crate) fn disable(&mut self, rule: Option<DisabledRule>) {
        self.disabled = rule;
    }

    fn rule_off(&self, rule: DisabledRule) -> bool {
        self.disabled == Some(rule)
    }

    /// This node's public key.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// The data to persist before any message signed since the last persist is sent.
    pub fn data(&self) -> &SafetyData {
        &self.data
    }

    /// Remembers the highest certificates known, persisted with the next write.
    pub fn record_certificates(&mut self, high_qc: &QuorumCert, high_tc: Option<&TimeoutCert>) {
        if self
            .data
            .high_qc
            .as_ref()
            .is_none_or(|q| q.round() < high_qc.round())
        {
            self.data.high_qc = Some(high_qc.clone());
        }
        if let Some(tc) = high_tc {
            if self
                .data
                .high_tc
                .as_ref()
                .is_none_or(|t| t.round < tc.round)
            {
                self.data.high_tc = Some(tc.clone());
            }
        }
    }

    /// Signs a proposal for `block` (its id, round and height). Rule 4.
    pub fn sign_proposal(&mut self, block: &Block) -> Result<hotledger_crypto::Signature> {
        check_proposal_round(block.round, &self.data)?;
        self.data.last_proposed_round = block.round;
        Ok(self.key.sign(
            Domain::Proposal,
            &self.chain_id,
            &proposal_signing_bytes(block.round, block.height, &block.id),
        ))
    }

    /// Votes for `block` (already verified), justified by `tc` if its QC is not for the
    /// previous round. Rules 1 and 2; returns the stored vote if asked again for the same block.
    pub fn vote(&mut self, block: &Block, tc: Option<&TimeoutCert>) -> Result<Vote> {
        if let Some(last) = &self.data.last_vote {
            if last.data.block.id == block.id {
                return Ok(last.clone());
            }
        }
        if !self.rule_off(DisabledRule::RoundIncrease) {
            check_round_increase(block.round, &self.data)?;
        }
        if !self.rule_off(DisabledRule::VoteExtension) {
            safe_to_vote(block.round, block.qc.round(), tc)?;
        }
        self.data.last_voted_round = self.data.last_voted_round.max(block.round);
        self.data.locked_round = self.data.locked_round.max(block.qc.round());
        let data = block.vote_data();
        let signature = self
            .key
            .sign(Domain::Vote, &self.chain_id, &data.signing_bytes());
        let vote = Vote {
            data,
            author: self.key.public(),
            signature,
        };
        self.data.last_vote = Some(vote.clone());
        Ok(vote)
    }

    /// Times out `round` with our highest QC, justified by `last_tc` (a TC for `round - 1`) when
    /// the QC is not for the previous round. Rules 1 and 3; a repeat for the same round returns
    /// the stored timeout (with the current `last_tc` attached). The returned timeout carries no
    /// vote; the caller may attach the vote already signed in `round` (`data().last_vote`).
    pub fn timeout(
        &mut self,
        round: Round,
        high_qc: &QuorumCert,
        last_tc: Option<&TimeoutCert>,
    ) -> Result<TimeoutMsg> {
        if let Some(last) = &self.data.last_timeout {
            if last.round == round {
                let mut again = last.clone();
                again.last_tc = last_tc.cloned();
                return Ok(again);
            }
        }
        if !self.rule_off(DisabledRule::RoundIncrease) {
            // Having voted in `round` is fine (Jolteon times out after voting); having voted or
            // timed out in a later round is not.
            if round < self.data.last_voted_round || round <= self.data.highest_timeout_round {
                return Err(ConsensusError::RoundNotIncreasing {
                    round,
                    last_voted: self.data.last_voted_round,
                });
            }
        }
        safe_to_timeout(round, high_qc.round(), last_tc.map(|t| t.round), &self.data)?;
        self.data.last_voted_round = self.data.last_voted_round.max(round);
        self.data.highest_timeout_round = round;
        self.data.locked_round = self.data.locked_round.max(high_qc.round());
        let signature = self.key.sign(
            Domain::Timeout,
            &self.chain_id,
            &timeout_signing_bytes(round, high_qc.round()),
        );
        let msg = TimeoutMsg {
            round,
            high_qc: high_qc.clone(),
            author: self.key.public(),
            signature,
            last_tc: None,
            vote: None,
        };
        let mut stored = msg.clone();
        stored.last_tc = None;
        self.data.last_timeout = Some(stored);
        Ok(TimeoutMsg {
            last_tc: last_tc.cloned(),
            ..msg
        })
    }
}
