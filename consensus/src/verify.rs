//! Checks that turn a peer's bytes into something the core may act on.
//!
//! Each function checks structure first (cheap, bounded), then signatures. Certificates are
//! batch-verified: all their signatures arrive together.

use std::collections::HashSet;

use hotledger_crypto::{verify_batch, BatchItem, CryptoError, Domain, PublicKey, Signature};

use crate::error::{ConsensusError, Result};
use crate::types::{
    proposal_signing_bytes, timeout_signing_bytes, Block, BlockInfo, QuorumCert, TimeoutCert,
    TimeoutMsg, Vote, MAX_FAILED_LEADERS,
};
use crate::validators::ValidatorSet;

/// What verification needs to know about the chain.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    /// The chain id every signature is bound to.
    pub chain_id: &'a str,
    /// The genesis block, the only block certified without signatures.
    pub genesis: &'a BlockInfo,
    /// Who may sign, with what power.
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
                return Err(ConsensusError::MalformedQc(
                    "round-0 QC is not the genesis QC",
                ));
            }
            return Ok(());
        }
        if qc.data.parent.round >= qc.data.block.round {
            return Err(ConsensusError::MalformedQc(
                "parent round not below block round",
            ));
        }
        if qc.data.parent.height.checked_add(1) != Some(qc.data.block.height) {
            return Err(ConsensusError::MalformedQc(
                "block height is not parent height + 1",
            ));
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
            return Err(ConsensusError::MalformedTc(
                "high QC is not below the TC round",
            ));
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
            return Err(ConsensusError::MalformedTc(
                "timeout's high QC is not below its round",
            ));
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
        if block.failed_leaders.len() > MAX_FAILED_LEADERS {
            return Err(ConsensusError::TooManyFailedLeaders {
                got: block.failed_leaders.len(),
                max: MAX_FAILED_LEADERS,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use hotledger_crypto::{Digest, KeyPair};

    use super::*;
    use crate::types::{Round, TimeoutSig, VoteData};
    use crate::validators::Validator;

    const CHAIN: &str = "verify-test";

    struct Fixture {
        keys: Vec<KeyPair>,
        set: ValidatorSet,
        genesis: BlockInfo,
    }

    impl Fixture {
        fn new() -> Fixture {
            let keys: Vec<KeyPair> = (1..=4u8).map(|i| KeyPair::from_seed([i; 32])).collect();
            let set = ValidatorSet::new(
                keys.iter()
                    .map(|k| Validator {
                        key: k.public(),
                        power: 1,
                    })
                    .collect(),
            )
            .unwrap();
            let genesis = BlockInfo {
                id: Digest::of(b"genesis"),
                round: 0,
                height: 0,
                timestamp_ms: 0,
            };
            Fixture { keys, set, genesis }
        }

        fn verifier(&self) -> Verifier<'_> {
            Verifier {
                chain_id: CHAIN,
                genesis: &self.genesis,
                validators: &self.set,
            }
        }

        fn data(&self, round: Round) -> VoteData {
            VoteData {
                block: BlockInfo {
                    id: Digest::of(b"block"),
                    round,
                    height: 1,
                    timestamp_ms: 1,
                },
                parent: self.genesis,
            }
        }

        fn qc(&self, data: VoteData, signers: &[usize]) -> QuorumCert {
            QuorumCert {
                data,
                votes: signers
                    .iter()
                    .map(|&i| {
                        let k = &self.keys[i];
                        (
                            k.public(),
                            k.sign(Domain::Vote, CHAIN, &data.signing_bytes()),
                        )
                    })
                    .collect(),
            }
        }

        fn tc(&self, round: Round, high_qc: QuorumCert, signers: &[usize]) -> TimeoutCert {
            let sigs = signers
                .iter()
                .map(|&i| TimeoutSig {
                    author: self.keys[i].public(),
                    high_qc_round: high_qc.round(),
                    signature: self.keys[i].sign(
                        Domain::Timeout,
                        CHAIN,
                        &timeout_signing_bytes(round, high_qc.round()),
                    ),
                })
                .collect();
            TimeoutCert {
                round,
                high_qc,
                sigs,
            }
        }
    }

    #[test]
    fn qc_structure_checks() {
        let f = Fixture::new();
        let v = f.verifier();
        let good = f.qc(f.data(1), &[0, 1, 2]);
        assert_eq!(v.verify_qc(&good), Ok(()));

        let mut too_many = f.qc(f.data(1), &[0, 1, 2, 3]);
        too_many.votes.push(too_many.votes[3]);
        assert_eq!(
            v.verify_qc(&too_many),
            Err(ConsensusError::TooManySignatures {
                what: "QC",
                got: 5,
                max: 4
            })
        );
        let mut bad_height = f.data(1);
        bad_height.block.height = 3;
        assert_eq!(
            v.verify_qc(&f.qc(bad_height, &[0, 1, 2])),
            Err(ConsensusError::MalformedQc(
                "block height is not parent height + 1"
            ))
        );
        let mut genesis_with_votes = QuorumCert::genesis(f.genesis);
        genesis_with_votes.votes = good.votes.clone();
        assert_eq!(
            v.verify_qc(&genesis_with_votes),
            Err(ConsensusError::MalformedQc(
                "round-0 QC is not the genesis QC"
            ))
        );
        assert_eq!(v.verify_qc(&QuorumCert::genesis(f.genesis)), Ok(()));
        // The last signature bad: the error names the right signer.
        let mut last_bad = good.clone();
        last_bad.votes[2].1 = f.keys[2].sign(Domain::Timeout, CHAIN, &f.data(1).signing_bytes());
        assert_eq!(
            v.verify_qc(&last_bad),
            Err(ConsensusError::BadSignature {
                what: "QC",
                signer: f.keys[2].public()
            })
        );
    }

    #[test]
    fn tc_structure_checks() {
        let f = Fixture::new();
        let v = f.verifier();
        let g = QuorumCert::genesis(f.genesis);
        assert_eq!(
            v.verify_tc_signatures(&f.tc(3, g.clone(), &[0, 1, 2])),
            Ok(())
        );
        assert_eq!(
            v.verify_tc_signatures(&f.tc(0, g.clone(), &[0, 1, 2])),
            Err(ConsensusError::MalformedTc("round 0 cannot time out"))
        );
        let qc2 = f.qc(f.data(2), &[0, 1, 2]);
        assert_eq!(
            v.verify_tc_signatures(&f.tc(2, qc2, &[0, 1, 2])),
            Err(ConsensusError::MalformedTc(
                "high QC is not below the TC round"
            ))
        );
        let mut dup = f.tc(3, g, &[0, 1, 2]);
        dup.sigs[1] = dup.sigs[0].clone();
        assert_eq!(
            v.verify_tc_signatures(&dup),
            Err(ConsensusError::DuplicateSigner {
                what: "TC",
                signer: f.keys[0].public()
            })
        );
    }

    #[test]
    fn vote_and_timeout_structure_checks() {
        let f = Fixture::new();
        let v = f.verifier();
        let k = &f.keys[0];
        let vote = |data: VoteData| Vote {
            data,
            author: k.public(),
            signature: k.sign(Domain::Vote, CHAIN, &data.signing_bytes()),
        };
        assert_eq!(v.verify_vote(&vote(f.data(1))), Ok(()));
        let mut not_chaining = f.data(1);
        not_chaining.parent.round = 1;
        assert_eq!(
            v.verify_vote(&vote(not_chaining)),
            Err(ConsensusError::MalformedQc("vote data does not chain"))
        );
        let qc1 = f.qc(f.data(1), &[0, 1, 2]);
        let timeout = |round: Round, high_qc: QuorumCert| TimeoutMsg {
            round,
            signature: k.sign(
                Domain::Timeout,
                CHAIN,
                &timeout_signing_bytes(round, high_qc.round()),
            ),
            high_qc,
            author: k.public(),
            last_tc: None,
            vote: None,
        };
        assert_eq!(v.verify_timeout(&timeout(2, qc1.clone())), Ok(()));
        assert_eq!(
            v.verify_timeout(&timeout(1, qc1)),
            Err(ConsensusError::MalformedTc(
                "timeout's high QC is not below its round"
            ))
        );
        // A vote signature replayed as a timeout (domain separation).
        let mut replayed = timeout(2, QuorumCert::genesis(f.genesis));
        replayed.signature = k.sign(Domain::Vote, CHAIN, &timeout_signing_bytes(2, 0));
        assert_eq!(
            v.verify_timeout(&replayed),
            Err(ConsensusError::BadSignature {
                what: "timeout",
                signer: k.public()
            })
        );
    }

    #[test]
    fn block_round_must_exceed_parent_round() {
        let f = Fixture::new();
        let k = &f.keys[0];
        let qc = f.qc(f.data(4), &[0, 1, 2]);
        let id = Block::compute_id(4, 2, 1, &k.public(), &qc, &[], b"");
        let block = Block {
            id,
            round: 4,
            height: 2,
            timestamp_ms: 1,
            author: k.public(),
            qc,
            failed_leaders: Vec::new(),
            payload: Vec::new(),
            signature: k.sign(Domain::Proposal, CHAIN, &proposal_signing_bytes(4, 2, &id)),
        };
        assert_eq!(
            f.verifier().verify_block(&block, 10),
            Err(ConsensusError::UnjustifiedRound {
                round: 4,
                qc_round: 4,
                tc_round: None
            })
        );
    }
}
