//! Golden fixtures: the SHA-256 of every byte format this crate defines, built from fixed inputs
//! (keys from fixed seeds, a fixed chain id and genesis), pinned in `fixtures/formats.txt`.
//!
//! Signed bytes, block ids and the leader draw decide what validators agree on; the postcard
//! encodings are what the daemon sends and stores. A change to any of them must be deliberate:
//! the test fails, prints the new hashes, and asks for the domain or version tag to be bumped
//! with the fixture file updated in the same change.
//!
//! The inputs are built here, not with the shared test harness, so that changing the harness
//! never changes a fixture.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use hotledger_consensus::leader::LeaderElection;
use hotledger_consensus::{
    proposal_signing_bytes, timeout_signing_bytes, Block, BlockInfo, BlockRequest, BlockResponse,
    Commit, Config, Evidence, Message, Proposal, QuorumCert, ReputationParams, SafetyData,
    TimeoutCert, TimeoutMsg, TimeoutSig, Validator, ValidatorSet, Vote, VoteData,
};
use hotledger_crypto::{signing_bytes, Digest, Domain, KeyPair};
use serde::Serialize;

const CHAIN: &str = "hotledger-fixture";
const GENESIS_TIME_MS: u64 = 1_700_000_000_000;
const FIXTURE_FILE: &str = "consensus/tests/fixtures/formats.txt";

/// Four validators with keys from the seeds `[1; 32]` to `[4; 32]`, power 1 to 4.
struct Inputs {
    keys: Vec<KeyPair>,
    set: ValidatorSet,
    genesis: BlockInfo,
}

impl Inputs {
    fn new() -> Inputs {
        let keys: Vec<KeyPair> = (1..=4u8).map(|i| KeyPair::from_seed([i; 32])).collect();
        let set = ValidatorSet::new(
            keys.iter()
                .zip(1..)
                .map(|(k, power)| Validator {
                    key: k.public(),
                    power,
                })
                .collect(),
        )
        .unwrap();
        let genesis = Config::genesis_block(Digest::of(b"fixture genesis"), GENESIS_TIME_MS);
        Inputs { keys, set, genesis }
    }

    fn qc(&self, data: VoteData, signers: &[usize]) -> QuorumCert {
        QuorumCert {
            data,
            votes: signers
                .iter()
                .map(|&i| (self.keys[i].public(), self.vote(i, data).signature))
                .collect(),
        }
    }

    fn vote(&self, i: usize, data: VoteData) -> Vote {
        Vote {
            data,
            author: self.keys[i].public(),
            signature: self.keys[i].sign(Domain::Vote, CHAIN, &data.signing_bytes()),
        }
    }

    /// A block of `round` by validator `author` on `qc`, with a correct id and signature.
    fn block(&self, author: usize, round: u64, qc: &QuorumCert, payload: &[u8]) -> Block {
        let key = &self.keys[author];
        let parent = qc.block();
        let (height, timestamp_ms) = (parent.height + 1, parent.timestamp_ms + 1_000);
        let failed_leaders: Vec<_> = (qc.round() + 1..round)
            .map(|r| self.set.leader(r))
            .collect();
        let id = Block::compute_id(
            round,
            height,
            timestamp_ms,
            &key.public(),
            qc,
            &failed_leaders,
            payload,
        );
        let signature = key.sign(
            Domain::Proposal,
            CHAIN,
            &proposal_signing_bytes(round, height, &id),
        );
        Block {
            id,
            round,
            height,
            timestamp_ms,
            author: key.public(),
            qc: qc.clone(),
            failed_leaders,
            payload: payload.to_vec(),
            signature,
        }
    }

    fn timeout(&self, i: usize, round: u64, high_qc: &QuorumCert) -> TimeoutMsg {
        TimeoutMsg {
            round,
            high_qc: high_qc.clone(),
            author: self.keys[i].public(),
            signature: self.timeout_sig(i, round, high_qc.round()).signature,
            last_tc: None,
            vote: None,
        }
    }

    fn timeout_sig(&self, i: usize, round: u64, high_qc_round: u64) -> TimeoutSig {
        TimeoutSig {
            author: self.keys[i].public(),
            high_qc_round,
            signature: self.keys[i].sign(
                Domain::Timeout,
                CHAIN,
                &timeout_signing_bytes(round, high_qc_round),
            ),
        }
    }

    /// A certified chain of `n` blocks in rounds 1..=n, by the round-robin leaders.
    fn chain(&self, n: u64) -> (Vec<Block>, Vec<QuorumCert>) {
        let mut qc = QuorumCert::genesis(self.genesis);
        let (mut blocks, mut qcs) = (Vec::new(), Vec::new());
        for round in 1..=n {
            let leader = self.set.index_of(&self.set.leader(round)).unwrap();
            let block = self.block(leader, round, &qc, format!("block {round}").as_bytes());
            qc = self.qc(block.vote_data(), &[0, 1, 2, 3]);
            blocks.push(block);
            qcs.push(qc.clone());
        }
        (blocks, qcs)
    }
}

fn postcard<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap()
}

/// Every pinned format, by name, with its bytes.
fn formats() -> Vec<(&'static str, Vec<u8>)> {
    let inputs = Inputs::new();
    let (blocks, qcs) = inputs.chain(3);
    let (b1, b2, b3) = (&blocks[0], &blocks[1], &blocks[2]);
    let vote_data = b2.vote_data();
    let vote = inputs.vote(1, vote_data);
    let tc = TimeoutCert {
        round: 4,
        high_qc: qcs[2].clone(),
        sigs: (1..4).map(|i| inputs.timeout_sig(i, 4, 3)).collect(),
    };
    // Round 5 after the TC of round 4 (whose leader failed), naming that leader.
    let b5 = inputs.block(0, 5, &qcs[2], b"block 5");
    let proposal = Proposal {
        block: b5.clone(),
        tc: Some(tc.clone()),
    };
    let mut timeout = inputs.timeout(2, 5, &qcs[2]);
    timeout.last_tc = Some(tc.clone());
    timeout.vote = Some(inputs.vote(2, b5.vote_data()));
    let other_timeout = inputs.timeout(2, 5, &qcs[1]);
    let safety = SafetyData {
        last_voted_round: 5,
        locked_round: 3,
        highest_timeout_round: 5,
        last_proposed_round: 2,
        last_vote: timeout.vote.clone(),
        last_timeout: Some(inputs.timeout(2, 5, &qcs[2])),
        high_qc: Some(qcs[2].clone()),
        high_tc: Some(tc.clone()),
    };
    let other_b5 = inputs.block(0, 5, &qcs[2], b"another block 5");
    let request = BlockRequest {
        id: b3.id,
        count: 3,
    };
    let response = BlockResponse {
        blocks: vec![b3.clone(), b2.clone(), b1.clone()],
    };

    let signed = |domain, msg: &[u8]| signing_bytes(domain, CHAIN, msg);
    let proposal_bytes = proposal_signing_bytes(b5.round, b5.height, &b5.id);
    let timeout_bytes = timeout_signing_bytes(5, 3);
    vec![
        // What is signed, and how blocks are named.
        ("signed.vote_data", vote_data.signing_bytes()),
        ("signed.vote_data.digest", vote_data.digest().0.to_vec()),
        (
            "signed.vote.framed",
            signed(Domain::Vote, &vote_data.signing_bytes()),
        ),
        ("signed.vote.signature", vote.signature.0.to_vec()),
        ("signed.proposal", proposal_bytes.clone()),
        (
            "signed.proposal.framed",
            signed(Domain::Proposal, &proposal_bytes),
        ),
        ("signed.proposal.signature", b5.signature.0.to_vec()),
        ("signed.timeout", timeout_bytes.clone()),
        (
            "signed.timeout.framed",
            signed(Domain::Timeout, &timeout_bytes),
        ),
        ("signed.timeout.signature", timeout.signature.0.to_vec()),
        ("block.id", b5.id.0.to_vec()),
        ("block.id.chain", ids(&blocks)),
        // Who leads: the weighted round-robin and the reputation draw.
        ("leader.round_robin", round_robin(&inputs)),
        ("leader.reputation", reputation(&inputs)),
        // The postcard encodings the daemon sends and stores.
        ("postcard.block_info", postcard(&b5.info())),
        ("postcard.block", postcard(&b5)),
        ("postcard.vote", postcard(&vote)),
        ("postcard.quorum_cert", postcard(&qcs[2])),
        (
            "postcard.quorum_cert.genesis",
            postcard(&QuorumCert::genesis(inputs.genesis)),
        ),
        ("postcard.timeout_cert", postcard(&tc)),
        ("postcard.timeout", postcard(&timeout)),
        ("postcard.proposal", postcard(&proposal)),
        (
            "postcard.message.proposal",
            postcard(&Message::Proposal(proposal.clone())),
        ),
        (
            "postcard.message.vote",
            postcard(&Message::Vote(vote.clone())),
        ),
        (
            "postcard.message.timeout",
            postcard(&Message::Timeout(timeout.clone())),
        ),
        (
            "postcard.message.block_request",
            postcard(&Message::BlockRequest(request)),
        ),
        (
            "postcard.message.block_response",
            postcard(&Message::BlockResponse(response)),
        ),
        ("postcard.safety_data", postcard(&safety)),
        (
            "postcard.safety_data.default",
            postcard(&SafetyData::default()),
        ),
        (
            "postcard.commit",
            postcard(&Commit {
                blocks: vec![b1.clone()],
                proof: qcs[2].clone(),
            }),
        ),
        (
            "postcard.evidence.proposals",
            postcard(&Evidence::ConflictingProposals {
                author: b5.author,
                round: 5,
                first: (b5.height, b5.id, b5.signature),
                second: (other_b5.height, other_b5.id, other_b5.signature),
            }),
        ),
        (
            "postcard.evidence.votes",
            postcard(&Evidence::ConflictingVotes {
                first: inputs.vote(1, b2.vote_data()),
                second: inputs.vote(1, b3.vote_data()),
            }),
        ),
        (
            "postcard.evidence.timeouts",
            postcard(&Evidence::ConflictingTimeouts {
                author: timeout.author,
                round: 5,
                first: (3, timeout.signature),
                second: (2, other_timeout.signature),
            }),
        ),
    ]
}

fn ids(blocks: &[Block]) -> Vec<u8> {
    blocks.iter().flat_map(|b| b.id.0).collect()
}

/// The weighted round-robin leaders of rounds 0 to 99.
fn round_robin(inputs: &Inputs) -> Vec<u8> {
    (0..100)
        .flat_map(|r| inputs.set.leader(r).to_bytes())
        .collect()
}

/// The reputation leaders of rounds 41 to 140 after a committed history of 40 blocks in which
/// validator 0 (the least power) never took part.
fn reputation(inputs: &Inputs) -> Vec<u8> {
    let mut qc = QuorumCert::genesis(inputs.genesis);
    let mut history = Vec::new();
    for round in 1..=40 {
        let author = 1 + usize::try_from(round % 3).unwrap();
        let block = inputs.block(author, round, &qc, b"");
        qc = inputs.qc(block.vote_data(), &[1, 2, 3]);
        history.push(block);
    }
    let params = ReputationParams::for_validators(inputs.set.len());
    let mut leaders = LeaderElection::new(params);
    leaders.record(&inputs.set, &history);
    let candidates = leaders.candidates(&inputs.set, 41);
    assert!(
        !candidates.contains(&inputs.keys[0].public()),
        "reputation in effect"
    );
    (41..=140)
        .flat_map(|r| leaders.leader(&inputs.set, r).to_bytes())
        .collect()
}

/// The fixture file: `name sha256-hex` per line; `#` starts a comment.
fn pinned() -> BTreeMap<String, String> {
    include_str!("fixtures/formats.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, hash) = l.split_once(' ').expect("`name hash` per line");
            (name.to_string(), hash.trim().to_string())
        })
        .collect()
}

#[test]
fn every_format_matches_its_fixture() {
    let pinned = pinned();
    let now: Vec<(&str, String)> = formats()
        .into_iter()
        .map(|(name, bytes)| (name, Digest::of(&bytes).to_hex()))
        .collect();
    let mut changed: Vec<String> = now
        .iter()
        .filter(|(name, hash)| pinned.get(*name) != Some(hash))
        .map(|(name, hash)| {
            let was = pinned.get(*name).map_or("(not pinned)", String::as_str);
            format!("  {name}: pinned {was}, now {hash}")
        })
        .collect();
    changed.extend(
        pinned
            .keys()
            .filter(|name| !now.iter().any(|(n, _)| n == name))
            .map(|name| format!("  {name}: pinned but no longer built")),
    );
    let mut file = String::new();
    for (name, hash) in &now {
        file.push_str(&format!("{name} {hash}\n"));
    }
    assert!(
        changed.is_empty(),
        "\nThese formats changed:\n{}\n\nSigned bytes, block ids, the leader draw and the wire and \
         storage encodings must only change on purpose. If this change is deliberate, bump the \
         domain or version tag of what changed (e.g. `hotledger/block/v3`, a crypto `Domain` \
         tag, the storage schema) so old and new bytes cannot be confused, and replace the hash \
         lines of {FIXTURE_FILE} with:\n\n{file}",
        changed.join("\n"),
    );
}
