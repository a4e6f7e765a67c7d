//! Checks that turn a peer's bytes into something the core may act on.
//!
//! Each function checks structure first (cheap, bounded), then signatures. Certificates are
//! batch-verified: all their signatures arrive together.

use std::collections::HashSet;

use hotledger_crypto::{verify_batch, BatchItem, CryptoError, Domain, PublicKey, Signature};

use crate::error::{ConsensusError, Result};
use crate::types::{
    proposal_signing_bytes, timeout_signing_bytes, Block, BlockInfo, QuorumCert, TimeoutCert,
    TimeoutMsg, Vote,
};
use crate::validators::ValidatorSet;

/// What verification needs to know about the chain.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    pub chain_id: &'a str,
    pub genesis: &'a BlockInfo,
    pub validators: &'a ValidatorSet,
}

impl Verifier<'_> {
    /// Sums the power of distinct, known signers and checks it reaches a quorum.
    fn check_signers<'k>(
        &self,
        what: &'static str,
        signers: impl ExactSizeIterator<Item = &'k PublicKey>,
    ) -> Result<()> {
        if signers.len() > self.validators.len() {
            return Err(ConsensusError::TooManySignatures {
                what,
                got: signers.len(),
                max: self.validators.len(),
            });
        }
        let mut seen = HashSet::with_capacity(signers.len());
        let mut power: u64 = 0;
        for signer in signers {
            if !seen.insert(*signer) {
                return Err(ConsensusError::DuplicateSigner {
                    what,
                    signer: *signer,
                });
            }
            power = power.saturating_add(self.validators.power(signer)?);
        }
        if power < self.validators.quorum() {
            return Err(ConsensusError::InsufficientPower {
                what,
                got: power,
                needed: self.validators.quorum(),
            });
        }
        Ok(())
    }

    fn batch(&self, what: &'static str, items: &[BatchItem<'_>]) -> Result<()> {
        verify_batch(self.chain_id, items).map_err(|e| match e {
            CryptoError::BadSignature { index } => ConsensusError::BadSignature {
                what,
                signer: *items[index.min(items.len().saturating_sub(1))].key,
            },
            _ => ConsensusError::BadSignature {
                what,
                signer: *items[0].key,
            },
        })
    }

    fn single(
        &self,
        what: &'static str,
        key: &PublicKey,
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<()> {
        key.verify(domain, self.chain_id, msg, sig)
            .map_err(|_| ConsensusError::BadSignature { what, signer: *key })
    }

    /// A QC: well-formed vote data, distinct known signers with quorum power, valid signatures.
    /// The genesis QC (no signatures) is accepted only if it is exactly ours.
    pub fn verify_qc(&self, qc: &QuorumCert) -> Result<()> {
        if qc.data.block.round == 0 {
            if qc.data.block.id != self.genesis.id {
                return Err(ConsensusError::WrongGenesis {
                    expected: self.genesis.id,
                    got: qc.data.block.id,
                });
            }
            if *qc != QuorumCert::genesis(*self.genesis) {
                return Err(ConsensusError::MalformedQc("round-0 QC is not the genesis QC"));
            }
            return Ok(());
        }
        if qc.data.parent.round >= qc.data.block.round {
            return Err(ConsensusError::MalformedQc("parent round not below block round"));
        }
        if qc.data.parent.height.checked_add(1) != Some(qc.data.block.height) {
            return Err(ConsensusError::MalformedQc("block height is not parent height + 1"));
        }
        self.check_signers("QC", qc.votes.iter().map(|(k, _)| k))?;
        let msg = qc.data.signing_bytes();
        let items: Vec<BatchItem<'_>> = qc
            .votes
            .iter()
            .map(|(key, sig)| BatchItem {
                key,
                domain: Domain::Vote,
                msg: &msg,
                sig,
            })
            .collect();
        self.batch("QC", &items)
    }

    /// A TC: distinct known signers with quorum power, `high_qc` matching the highest reported
    /// QC round and below the TC's round, and valid signatures. The embedded `high_qc` is
    /// verified by the caller (so a QC seen before is not verified again).
    pub fn verify_tc_signatures(&self, tc: &TimeoutCert) -> Result<()> {
        if tc.round == 0 {
            return Err(ConsensusError::MalformedTc("round 0 cannot time out"));
        }
        if tc.high_qc.round() >= tc.round {
            return Err(ConsensusError::MalformedTc("high QC is not below the TC round"));
        }
        self.check_signers("TC", tc.sigs.iter().map(|s| &s.author))?;
        if tc.max_high_qc_round() != tc.high_qc.round() {
            return Err(ConsensusError::MalformedTc(
                "high QC round differs from the highest signed QC round",
            ));
        }
        let msgs: Vec<Vec<u8>> = tc
            .sigs
            .iter()
            .map(|s| timeout_signing_bytes(tc.round, s.high_qc_round))
            .collect();
        let items: Vec<BatchItem<'_>> = tc
            .sigs
            .iter()
            .zip(&msgs)
            .map(|(s, msg)| BatchItem {
                key: &s.author,
                domain: Domain::Timeout,
                msg,
                sig: &s.signature,
            })
            .collect();
        self.batch("TC", &items)
    }

    /// A vote's signer and signature.
    pub fn verify_vote(&self, vote: &Vote) -> Result<()> {
        self.validators.power(&vote.author)?;
        if vote.data.parent.round >= vote.data.block.round
            || vote.data.parent.height.checked_add(1) != Some(vote.data.block.height)
        {
            return Err(ConsensusError::MalformedQc("vote data does not chain"));
        }
        self.single(
            "vote",
            &vote.author,
            Domain::Vote,
            &vote.data.signing_bytes(),
            &vote.signature,
        )
    }

    /// A timeout's signer and signature (its `high_qc` and `last_tc` are checked by the caller).
    pub fn verify_timeout(&self, t: &TimeoutMsg) -> Result<()> {
        self.validators.power(&t.author)?;
        if t.high_qc.round() >= t.round {
            return Err(ConsensusError::MalformedTc("timeout's high QC is not below its round"));
        }
        self.single(
            "timeout",
            &t.author,
            Domain::Timeout,
            &timeout_signing_bytes(t.round, t.high_qc.round()),
            &t.signature,
        )
    }

    /// A block's self-consistency: id, height, size, author's signature. Its QC is checked by
    /// the caller.
    pub fn verify_block(&self, block: &Block, max_payload: usize) -> Result<()> {
        if block.payload.len() > max_payload {
            return Err(ConsensusError::PayloadTooLarge {
                got: block.payload.len(),
                max: max_payload,
            });
        }
        let parent = block.parent();
        if parent.height.checked_add(1) != Some(block.height) {
            return Err(ConsensusError::BadHeight {
                parent: parent.height,
                got: block.height,
            });
        }
        if block.round <= parent.round {
            return Err(ConsensusError::UnjustifiedRound {
                round: block.round,
                qc_round: parent.round,
                tc_round: None,
            });
        }
        if block.timestamp_ms < parent.timestamp_ms {
            return Err(ConsensusError::BadTimestamp {
                got: block.timestamp_ms,
                min: parent.timestamp_ms,
                max: u64::MAX,
            });
        }
        self.validators.power(&block.author)?;
        let computed = block.recompute_id();
        if computed != block.id {
            return Err(ConsensusError::BlockIdMismatch {
                claimed: block.id,
                computed,
            });
        }
        self.single(
            "proposal",
            &block.author,
            Domain::Proposal,
            &proposal_signing_bytes(block.round, block.height, &block.id),
            &block.signature,
        )
    }
}
