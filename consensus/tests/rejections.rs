//! Every way a node rejects a peer's message, as a typed `ConsensusError`, and that the node
//! still works normally afterwards (a rejection changes nothing that matters).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cases::{case, prop, prop_of, run};
use common::{feed, outsider, sent_votes, Net, CHAIN, NOW};
use hotledger_consensus::{
    BlockInfo, Config, ConsensusError, Message, Params, QuorumCert, Vote, VoteData,
};
use hotledger_crypto::{Digest, Domain};

#[test]
fn proposal_rejections() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let (_, qcs) = net.chain(1);
    let l1 = net.leader(1);
    let key1 = &net.keys[l1];
    let sign_other = |id: &Digest| {
        let bytes = hotledger_consensus::proposal_signing_bytes(1, 1, id);
        net.keys[(l1 + 1) % 4].sign(Domain::Proposal, CHAIN, &bytes)
    };
    let mut bad_sig = net.block(1, &g, b"x");
    bad_sig.signature = sign_other(&bad_sig.id);
    let mut bad_id = net.block(1, &g, b"x");
    let claimed = bad_id.id;
    bad_id.payload = b"y".to_vec();
    let computed = bad_id.recompute_id();
    let max = Params::default().max_payload_bytes;
    let backwards = Net::make_block(&net.keys[net.leader(2)], CHAIN, 2, 2, 0, &qcs[0], b"x");
    let other_genesis = Config::genesis_block(Digest::of(b"another genesis"), 0);
    let other_gqc = QuorumCert::genesis(other_genesis);
    let tc2 = |signers: &[usize]| net.tc(2, &g, signers);
    let mut tc_bad_high = tc2(&[0, 1, 2]);
    tc_bad_high.sigs[1] = net.timeout_sig(1, 2, 1);
    let mut tc_bad_sig = tc2(&[0, 1, 2]);
    tc_bad_sig.sigs[2].signature = net.timeout_sig(2, 7, 0).signature;
    let non_leader = (l1 + 1) % 4;

    let cases = vec![
        case(
            "author not in the validator set",
            prop_of(Net::make_block(&outsider(), CHAIN, 1, 1, 1, &g, b"x")),
            ConsensusError::NotLeader {
                round: 1,
                author: outsider().public(),
                expected: net.pk(l1),
            },
        ),
        case(
            "proposal from a non-leader",
            prop_of(net.block_by(non_leader, 1, &g, b"x")),
            ConsensusError::NotLeader {
                round: 1,
                author: net.pk(non_leader),
                expected: net.pk(l1),
            },
        ),
        case(
            "bad proposal signature",
            prop_of(bad_sig),
            ConsensusError::BadSignature {
                what: "proposal",
                signer: net.pk(l1),
            },
        ),
        case(
            "block id mismatch",
            prop_of(bad_id),
            ConsensusError::BlockIdMismatch { claimed, computed },
        ),
        case(
            "bad height",
            prop_of(Net::make_block(key1, CHAIN, 1, 2, 1, &g, b"x")),
            ConsensusError::BadHeight { parent: 0, got: 2 },
        ),
        case(
            "payload too large",
            prop_of(Net::make_block(key1, CHAIN, 1, 1, 1, &g, &vec![0; max + 1])),
            ConsensusError::PayloadTooLarge { got: max + 1, max },
        ),
        case(
            "timestamp before the parent's",
            prop_of(backwards),
            ConsensusError::BadTimestamp {
                got: 0,
                min: 1,
                max: u64::MAX,
            },
        ),
        case(
            "round neither after its QC nor after a TC",
            prop(net.proposal(3, &g, None)),
            ConsensusError::UnjustifiedRound {
                round: 3,
                qc_round: 0,
                tc_round: None,
            },
        ),
        case(
            "TC for the wrong round",
            prop(net.proposal(3, &g, Some(net.tc(1, &g, &[0, 1, 2])))),
            ConsensusError::UnjustifiedRound {
                round: 3,
                qc_round: 0,
                tc_round: Some(1),
            },
        ),
        case(
            "genesis QC of another genesis",
            prop_of(Net::make_block(key1, CHAIN, 1, 1, 1, &other_gqc, b"x")),
            ConsensusError::WrongGenesis {
                expected: net.genesis.id,
                got: other_genesis.id,
            },
        ),
        case(
            "TC whose high QC round differs from its signed rounds",
            prop(net.proposal(3, &g, Some(tc_bad_high))),
            ConsensusError::MalformedTc("high QC round differs from the highest signed QC round"),
        ),
        case(
            "TC with insufficient power",
            prop(net.proposal(3, &g, Some(tc2(&[0, 1])))),
            ConsensusError::InsufficientPower {
                what: "TC",
                got: 2,
                needed: 3,
            },
        ),
        case(
            "TC with a signature for another round",
            prop(net.proposal(3, &g, Some(tc_bad_sig))),
            ConsensusError::BadSignature {
                what: "TC",
                signer: net.pk(2),
            },
        ),
    ];
    // A node that checks payloads refuses them the same way, before asking for the check.
    for c in cases {
        run(&net, c.clone());
        run(&net, c.checking());
    }
}

/// Bad QCs, carried by an otherwise valid round-2 proposal extending block 1.
#[test]
fn qc_rejections() {
    let net = Net::new(4);
    let (blocks, _) = net.chain(1);
    let b1 = &blocks[0];
    let mut dup = net.qc(b1, &[0, 1, 2]);
    dup.votes[2] = dup.votes[0];
    let mut bad_sig = net.qc(b1, &[0, 1, 2]);
    bad_sig.votes[1].1 = net.keys[1].sign(Domain::Vote, CHAIN, b"something else");
    let mut too_many = net.qc(b1, &[0, 1, 2, 3]);
    too_many.votes.push(too_many.votes[0]);
    let mut bad_parent = net.qc(b1, &[0, 1, 2]);
    bad_parent.data.parent.round = 1;
    let other_chain = net.qc_on(b1.vote_data(), &[0, 1, 2], "another-chain");

    let cases: Vec<(&'static str, QuorumCert, ConsensusError)> = vec![
        (
            "duplicate signer",
            dup,
            ConsensusError::DuplicateSigner {
                what: "QC",
                signer: net.pk(0),
            },
        ),
        (
            "insufficient power",
            net.qc(b1, &[0, 1]),
            ConsensusError::InsufficientPower {
                what: "QC",
                got: 2,
                needed: 3,
            },
        ),
        (
            "bad signature",
            bad_sig,
            ConsensusError::BadSignature {
                what: "QC",
                signer: net.pk(1),
            },
        ),
        (
            "signed for another chain id",
            other_chain,
            ConsensusError::BadSignature {
                what: "QC",
                signer: net.pk(0),
            },
        ),
        (
            "more signatures than validators",
            too_many,
            ConsensusError::TooManySignatures {
                what: "QC",
                got: 5,
                max: 4,
            },
        ),
        (
            "parent round not below",
            bad_parent,
            ConsensusError::MalformedQc("parent round not below block round"),
        ),
    ];
    for (name, qc, want) in cases {
        run(&net, case(name, prop(net.proposal(2, &qc, None)), want));
    }
}

#[test]
fn vote_and_timeout_rejections() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let b1 = net.block(1, &g, b"b1");
    let next_leader = net.leader(2);
    let data = b1.vote_data();
    let outsider_vote = Vote {
        data,
        author: outsider().public(),
        signature: outsider().sign(Domain::Vote, CHAIN, &data.signing_bytes()),
    };
    let mut forged_vote = net.vote(0, &b1);
    forged_vote.signature = net.keys[1].sign(Domain::Vote, CHAIN, &data.signing_bytes());
    // A vote for a far round that this node would lead the round after.
    let far = (1002..).find(|r| net.leader(r + 1) == next_leader).unwrap();
    let far_block = BlockInfo {
        id: Digest::of(b"far"),
        round: far,
        height: 1,
        timestamp_ms: 1,
    };
    let far_vote = net.vote_on(
        0,
        VoteData {
            block: far_block,
            parent: net.genesis,
        },
    );
    let mut outsider_timeout = net.timeout(0, 1, &g);
    outsider_timeout.author = outsider().public();
    outsider_timeout.signature = outsider().sign(
        Domain::Timeout,
        CHAIN,
        &hotledger_consensus::timeout_signing_bytes(1, 0),
    );
    let mut forged_timeout = net.timeout(0, 1, &g);
    forged_timeout.signature = net.timeout(1, 1, &g).signature;
    let (vote, timeout) = (Message::Vote, Message::Timeout);
    let unknown = ConsensusError::UnknownSigner(outsider().public());
    // Timeouts of round 1 by validator 1 carrying a vote that is not its own vote of round 1.
    let with_vote = |v: Vote| {
        let mut t = net.timeout(1, 1, &g);
        t.vote = Some(v);
        timeout(t)
    };
    let b2 = BlockInfo {
        round: 2,
        ..far_block
    };
    let round2_vote = net.vote_on(
        1,
        VoteData {
            block: b2,
            parent: net.genesis,
        },
    );
    let mut forged_timeout_vote = net.vote(1, &b1);
    forged_timeout_vote.signature = net.keys[2].sign(Domain::Vote, CHAIN, &data.signing_bytes());

    let cases = vec![
        case(
            "vote from an unknown signer",
            vote(outsider_vote),
            unknown.clone(),
        )
        .node(next_leader),
        case(
            "vote with a bad signature",
            vote(forged_vote),
            ConsensusError::BadSignature {
                what: "vote",
                signer: net.pk(0),
            },
        )
        .node(next_leader),
        case(
            "vote too far ahead",
            vote(far_vote),
            ConsensusError::RoundTooFarAhead {
                round: far,
                current: 1,
            },
        )
        .node(next_leader),
        case(
            "timeout from an unknown signer",
            timeout(outsider_timeout),
            unknown,
        ),
        case(
            "timeout with a bad signature",
            timeout(forged_timeout),
            ConsensusError::BadSignature {
                what: "timeout",
                signer: net.pk(0),
            },
        ),
        case(
            "timeout carrying another validator's vote",
            with_vote(net.vote(2, &b1)),
            ConsensusError::ForeignTimeoutVote {
                round: 1,
                author: net.pk(1),
                vote_round: 1,
                voter: net.pk(2),
            },
        ),
        case(
            "timeout carrying a vote of another round",
            with_vote(round2_vote),
            ConsensusError::ForeignTimeoutVote {
                round: 1,
                author: net.pk(1),
                vote_round: 2,
                voter: net.pk(1),
            },
        ),
        case(
            "timeout carrying a badly signed vote",
            with_vote(forged_timeout_vote),
            ConsensusError::BadSignature {
                what: "vote",
                signer: net.pk(1),
            },
        ),
        case(
            "timeout round too far ahead",
            timeout(net.timeout(1, 1002, &g)),
            ConsensusError::RoundTooFarAhead {
                round: 1002,
                current: 1,
            },
        ),
    ];
    for c in cases {
        run(&net, c);
    }
    // The window's edge is accepted.
    let mut node = net.node(0);
    assert!(feed(&mut node, net.pk(1), timeout(net.timeout(1, 1001, &g))).is_ok());
}

#[test]
fn stale_timeout_is_rejected() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let tc2 = net.tc(2, &g, &[0, 1, 2]);
    run(
        &net,
        case(
            "stale timeout",
            Message::Timeout(net.timeout(2, 2, &g)),
            ConsensusError::StaleRound {
                round: 2,
                current: 3,
            },
        )
        .setup(vec![net.advance_msg(1, 3)])
        .then(prop(net.proposal(3, &g, Some(tc2))), 3),
    );
}

/// A proposal timestamped further ahead of this node's clock than the allowed skew is not voted
/// for, and is no rejection either (the clock that is off may be this node's, and a rejection
/// would strike an honest leader): its certificates still move the node on, so a node whose
/// clock lags keeps following the chain instead of isolating itself. It is counted.
#[test]
fn a_proposal_ahead_of_the_clock_is_not_voted_for_but_its_certificates_count() {
    let net = Net::new(4);
    let skew = Params::default().max_clock_skew_ms;
    let (blocks, qcs) = net.chain(1);
    let v = (0..4)
        .find(|&i| i != net.leader(1) && i != net.leader(2) && i != net.leader(3))
        .unwrap();
    let mut node = net.node(v);
    feed(&mut node, net.pk(net.leader(1)), prop_of(blocks[0].clone())).unwrap();
    let l2 = net.leader(2);
    let ahead = Net::make_block(&net.keys[l2], CHAIN, 2, 2, NOW + skew + 1, &qcs[0], b"x");
    let from = net.pk(l2);
    let actions = feed(&mut node, from, prop_of(ahead.clone())).unwrap();
    assert_eq!(node.round(), 2, "the QC of round 1 it carries was taken in");
    assert!(sent_votes(&actions).is_empty(), "{actions:#?}");
    assert_eq!(node.block(&ahead.id), None);
    assert_eq!(node.stats().proposals_ahead_of_clock, 1);
    assert_eq!(node.stats().rejected_messages, 0);
    // Within the skew, the same round's proposal gets the vote.
    let fine = Net::make_block(&net.keys[l2], CHAIN, 2, 2, NOW + skew, &qcs[0], b"y");
    let actions = feed(&mut node, from, prop_of(fine)).unwrap();
    assert_eq!(sent_votes(&actions).len(), 1, "{actions:#?}");
}
