//! Byzantine validators that try to get one honest validator, the *target*, skipped by leader
//! reputation. Each omitter runs the honest core, and the simulator bends what it sends and
//! receives:
//!
//! * as a leader, it waits until the votes are in (`WAIT_MS`), then proposes its block with a QC
//!   rebuilt without the target's vote, from the other votes any omitter received for the same
//!   block and the omitters' own signatures (when they make a quorum), and votes for that block
//!   rather than the one its core signed;
//! * it never sees the target's proposals, so it never votes for the target's blocks, and it
//!   never receives votes for them, so as the target's next leader it never certifies them.
//!
//! With at most f omitters the target must stay a leader candidate at every honest node; with
//! every other validator omitting, it must not (the negative control).

use std::collections::HashMap;

use hotledger_consensus::{Message, Proposal, QuorumCert, ValidatorSet, Vote, VoteData};
use hotledger_crypto::{Digest, Domain, KeyPair, PublicKey, Signature};

use crate::scenario::{Scenario, SimConfig};
use crate::sim::{RunReport, Sim};

/// Who omits whom: validator indices (each validator is the sim node of the same index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OmissionSpec {
    pub omitters: Vec<usize>,
    pub target: usize,
}

/// How long an omitter leader waits for votes before it proposes (links carry at most 30 ms).
pub const WAIT_MS: u64 = 100;

/// What the omitters know, shared between them (they collude).
#[derive(Debug)]
pub struct Omission {
    pub spec: OmissionSpec,
    target: PublicKey,
    /// The omitters' keys: they sign for each other's blocks as they please.
    keys: Vec<KeyPair>,
    /// Votes delivered to any omitter, by the digest of what they sign.
    votes: HashMap<Digest, Vec<(PublicKey, Signature)>>,
    /// The author of every block proposed so far.
    authors: HashMap<Digest, PublicKey>,
    /// Blocks an omitter's core proposed, by id, and what the omitter sent instead.
    replaced: HashMap<Digest, VoteData>,
}

impl Omission {
    pub fn new(spec: OmissionSpec, target: PublicKey, keys: Vec<KeyPair>) -> Self {
        Omission {
            spec,
            target,
            keys,
            votes: HashMap::new(),
            authors: HashMap::new(),
            replaced: HashMap::new(),
        }
    }

    pub fn is_omitter(&self, node: usize) -> bool {
        self.spec.omitters.contains(&node)
    }

    /// The target's key.
    pub fn target(&self) -> PublicKey {
        self.target
    }

    /// Remembers who proposed a block (every proposal put on the wire passes here).
    pub fn note_proposal(&mut self, p: &Proposal) {
        self.authors.insert(p.block.id, p.block.author);
    }

    /// Whether a message delivered to node `to` is kept from it; records the votes omitters get.
    pub fn drops(&mut self, to: usize, msg: &Message) -> bool {
        if !self.is_omitter(to) {
            return false;
        }
        match msg {
            Message::Proposal(p) => p.block.author == self.target,
            Message::Vote(v) => {
                if self.authors.get(&v.data.block.id) == Some(&self.target) {
                    return true;
                }
                let seen = self.votes.entry(v.data.digest()).or_default();
                if !seen.iter().any(|(k, _)| *k == v.author) {
                    seen.push((v.author, v.signature));
                }
                false
            }
            _ => false,
        }
    }

    /// An omitter's proposal, its QC rebuilt without the target's vote if the other votes the
    /// omitters received make a quorum; re-signed with `key`.
    pub fn rewrite(
        &mut self,
        mut p: Proposal,
        key: &KeyPair,
        chain_id: &str,
        validators: &ValidatorSet,
    ) -> Proposal {
        let Some(qc) = self.without_target(&p.block.qc, chain_id, validators) else {
            return p;
        };
        let old = p.block.vote_data();
        let b = &mut p.block;
        b.qc = qc;
        crate::sim::reseal(b, key, chain_id);
        self.replaced.insert(old.block.id, b.vote_data());
        self.authors.insert(b.id, b.author);
        p
    }

    fn without_target(
        &self,
        qc: &QuorumCert,
        chain_id: &str,
        validators: &ValidatorSet,
    ) -> Option<QuorumCert> {
        if !qc.votes.iter().any(|(k, _)| *k == self.target) {
            return None;
        }
        let mut votes: Vec<(PublicKey, Signature)> = qc
            .votes
            .iter()
            .filter(|(k, _)| *k != self.target)
            .copied()
            .collect();
        let own = self.keys.iter().map(|k| {
            let sig = k.sign(Domain::Vote, chain_id, &qc.data.signing_bytes());
            (k.public(), sig)
        });
        let received = self.votes.get(&qc.data.digest()).into_iter().flatten();
        for extra in received.copied().chain(own) {
            if extra.0 != self.target && !votes.iter().any(|(k, _)| *k == extra.0) {
                votes.push(extra);
            }
        }
        let power: u64 = votes
            .iter()
            .filter_map(|(k, _)| validators.power(k).ok())
            .sum();
        (power >= validators.quorum()).then_some(QuorumCert {
            data: qc.data,
            votes,
        })
    }

    /// An omitter's vote for a block it replaced is re-signed for the replacement.
    pub fn redirect_vote(&self, vote: Vote, key: &KeyPair, chain_id: &str) -> Vote {
        match self.replaced.get(&vote.data.block.id) {
            Some(data) => Vote {
                data: *data,
                author: vote.author,
                signature: key.sign(Domain::Vote, chain_id, &data.signing_bytes()),
            },
            None => vote,
        }
    }
}

/// Runs `validators` on a clean network (10 ms links, up to 20 ms jitter) for `duration_ms`, the
/// first `omitters` of them omitting the last one.
pub fn run_omission(validators: usize, omitters: usize, seed: u64, duration_ms: u64) -> RunReport {
    let mut cfg = SimConfig::new(validators, 0);
    cfg.faults = false;
    cfg.gst_ms = 0;
    cfg.omission = Some(OmissionSpec {
        omitters: (0..omitters.min(validators.saturating_sub(1))).collect(),
        target: validators.saturating_sub(1),
    });
    let scenario = Scenario {
        delay_ms: 10,
        jitter_ms: 20,
        ..Scenario::default()
    };
    Sim::with_scenario(cfg, scenario, seed).run(duration_ms, false, seed)
}
