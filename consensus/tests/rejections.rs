//! Every way a node rejects a peer's message, as a typed `ConsensusError`, and that the node
//! still works normally afterwards (a rejection changes nothing that matters).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{feed, outsider, sent_votes, Net, CHAIN, NOW};
use hotledger_consensus::{
    BlockInfo, BlockRequest, BlockResponse, Config, ConsensusError, Message, Proposal,
    QuorumCert, Round, Vote, VoteData,
};
use hotledger_crypto::{Digest, Domain};

/// One rejection: a node (after `setup` messages, all accepted) gets `msg` and must answer `want`;
/// then `then` (a valid message) must make it vote in round `then_round`.
struct Case {
    name: &'static str,
    node: usize,
    setup: Vec<Message>,
    msg: Message,
    want: ConsensusError,
    then: Message,
    then_round: Round,
}

fn prop(p: Proposal) -> Message {
    Message::Proposal(p)
}

/// Runs a case; returns a description of the first failure.
fn run(net: &Net, case: Case) {
    let name = case.name;
    let mut node = net.node(case.node);
    let peer = net.pk(if case.node == 1 { 3 } else { 1 });
    for m in case.setup {
        feed(&mut node, peer, m).unwrap_or_else(|e| panic!("{name}: setup rejected: {e}"));
    }
    let rejected_before = node.stats().rejected_messages;
    let round_before = node.round();
    assert_eq!(feed(&mut node, peer, case.msg), Err(case.want), "{name}");
    assert_eq!(node.stats().rejected_messages, rejected_before + 1, "{name}: not counted");
    assert_eq!(node.round(), round_before, "{name}: the rejected message moved the round");
    // The node is not corrupted: a valid message is processed and voted on.
    let actions = feed(&mut node, peer, case.then)
        .unwrap_or_else(|e| panic!("{name}: valid follow-up rejected: {e}"));
    let last_vote = node.safety_data().and_then(|d| d.last_vote.clone());
    assert_eq!(
        last_vote.map(|v| v.round()),
        Some(case.then_round),
        "{name}: no vote after the follow-up; actions {actions:#?}"
    );
}

#[test]
fn proposal_rejections() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let (blocks, qcs) = net.chain(3);
    let good1 = prop(net.proposal(1, &g, None));
    let l1 = net.leader(1);
    let key1 = &net.keys[l1];

    let by_outsider = Net::make_block(&outsider(), CHAIN, 1, 1, 1, &g, b"x");
    let by_non_leader = net.block_by(2, 1, &g, b"x");
    let mut bad_sig = net.block(1, &g, b"x");
    bad_sig.signature = net.keys[2].sign(
        Domain::Proposal,
        CHAIN,
        &hotledger_consensus::proposal_signing_bytes(1, 1, &bad_sig.id),
    );
    let mut bad_id = net.block(1, &g, b"x");
    let claimed = bad_id.id;
    bad_id.payload = b"y".to_vec();
    let computed = bad_id.recompute_id();
    let bad_height = Net::make_block(key1, CHAIN, 1, 2, 1, &g, b"x");
    let max_payload = hotledger_consensus::Params::default().max_payload_bytes;
    let too_big = Net::make_block(key1, CHAIN, 1, 1, 1, &g, &vec![0; max_payload + 1]);
    let skew = hotledger_consensus::Params::default().max_clock_skew_ms;
    let future = Net::make_block(key1, CHAIN, 1, 1, NOW + skew + 1, &g, b"x");
    let backwards = Net::make_block(&net.keys[net.leader(2)], CHAIN, 2, 2, 0, &qcs[0], b"x");

    let other_genesis = Config::genesis_block(Digest::of(b"another genesis"), 0);
    let wrong_genesis =
        Net::make_block(key1, CHAIN, 1, 1, 1, &QuorumCert::genesis(other_genesis), b"x");

    let cases = vec![
        Case {
            name: "author not in the validator set",
            node: 0,
            setup: vec![],
            msg: prop(Proposal { block: by_outsider, tc: None }),
            want: ConsensusError::NotLeader { round: 1, author: outsider().public(), expected: net.pk(l1) },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "proposal from a non-leader",
            node: 0,
            setup: vec![],
            msg: prop(Proposal { block: by_non_leader, tc: None }),
            want: ConsensusError::NotLeader { round: 1, author: net.pk(2), expected: net.pk(l1) },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "bad proposal signature",
            node: 0,
            setup: vec![],
            msg: prop(Proposal { block: bad_sig, tc: None }),
            want: ConsensusError::BadSignature { what: "proposal", signer: net.pk(l1) },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "block id mismatch",
            node: 0,
            setup: vec![],
            msg: prop(Proposal { block: bad_id, tc: None }),
            want: ConsensusError::BlockIdMismatch { claimed, computed },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "bad height",
            node: 0,
            setup: vec![],
            msg: prop(Proposal { block: bad_height, tc: None }),
            want: ConsensusError::BadHeight { parent: 0, got: 2 },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "payload too large",
            node: 0,
            setup: vec![],
            msg: prop(Proposal { block: too_big, tc: None }),
            want: ConsensusError::PayloadTooLarge { got: max_payload + 1, max: max_payload },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "timestamp too far in the future",
            node: 0,
            setup: vec![],
            msg: prop(Proposal { block: future, tc: None }),
            want: ConsensusError::BadTimestamp { got: NOW + skew + 1, min: 0, max: NOW + skew },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "timestamp before the parent's",
            node: 0,
            setup: vec![],
            msg: prop(Proposal { block: backwards, tc: None }),
            want: ConsensusError::BadTimestamp { got: 0, min: 1, max: u64::MAX },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "round neither after its QC nor after a TC",
            node: 0,
            setup: vec![],
            msg: prop(net.proposal(3, &g, None)),
            want: ConsensusError::UnjustifiedRound { round: 3, qc_round: 0, tc_round: None },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "TC for the wrong round",
            node: 0,
            setup: vec![],
            msg: prop(net.proposal(3, &g, Some(net.tc(1, &g, &[0, 1, 2])))),
            want: ConsensusError::UnjustifiedRound { round: 3, qc_round: 0, tc_round: Some(1) },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "genesis QC of another genesis",
            node: 0,
            setup: vec![],
            msg: prop(Proposal { block: wrong_genesis, tc: None }),
            want: ConsensusError::WrongGenesis { expected: net.genesis.id, got: other_genesis.id },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "TC whose high QC round differs from its signed rounds",
            node: 0,
            setup: vec![],
            msg: prop(net.proposal(
                3,
                &g,
                Some({
                    let mut tc = net.tc(2, &g, &[0, 1, 2]);
                    tc.sigs[1] = net.timeout_sig(1, 2, 1);
                    tc
                }),
            )),
            want: ConsensusError::MalformedTc("high QC round differs from the highest signed QC round"),
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "TC with insufficient power",
            node: 0,
            setup: vec![],
            msg: prop(net.proposal(3, &g, Some(net.tc(2, &g, &[0, 1])))),
            want: ConsensusError::InsufficientPower { what: "TC", got: 2, needed: 3 },
            then: good1.clone(),
            then_round: 1,
        },
        Case {
            name: "TC with a signature for another round",
            node: 0,
            setup: vec![],
            msg: prop(net.proposal(
                3,
                &g,
                Some({
                    let mut tc = net.tc(2, &g, &[0, 1, 2]);
                    tc.sigs[2].signature = net.timeout_sig(2, 7, 0).signature;
                    tc
                }),
            )),
            want: ConsensusError::BadSignature { what: "TC", signer: net.pk(2) },
            then: good1.clone(),
            then_round: 1,
        },
    ];
    for case in cases {
        run(&net, case);
    }
    drop(blocks);
}

/// Bad QCs, carried by an otherwise valid round-2 proposal extending block 1.
#[test]
fn qc_rejections() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let (blocks, _) = net.chain(1);
    let good1 = prop(net.proposal(1, &g, None));
    let data = blocks[0].vote_data();
    let with_qc = |qc: QuorumCert| prop(net.proposal(2, &qc, None));
    let mut dup = net.qc(&blocks[0], &[0, 1, 2]);
    dup.votes[2] = dup.votes[0];
    let mut bad_sig = net.qc(&blocks[0], &[0, 1, 2]);
    bad_sig.votes[1].1 = net.keys[1].sign(Domain::Vote, CHAIN, b"something else");
    let mut too_many = net.qc(&blocks[0], &[0, 1, 2, 3]);
    too_many.votes.push(too_many.votes[0]);
    let mut bad_parent = net.qc(&blocks[0], &[0, 1, 2]);
    bad_parent.data.parent.round = 1;

    let cases: Vec<(&str, QuorumCert, ConsensusError)> = vec![
        ("duplicate signer", dup, ConsensusError::DuplicateSigner { what: "QC", signer: net.pk(0) }),
        (
            "insufficient power",
            net.qc(&blocks[0], &[0, 1]),
            ConsensusError::InsufficientPower { what: "QC", got: 2, needed: 3 },
        ),
        ("bad signature", bad_sig, ConsensusError::BadSignature { what: "QC", signer: net.pk(1) }),
        (
            "signed for another chain id",
            net.qc_on(data, &[0, 1, 2], "another-chain"),
            ConsensusError::BadSignature { what: "QC", signer: net.pk(0) },
        ),
        (
            "more signatures than validators",
            too_many,
            ConsensusError::TooManySignatures { what: "QC", got: 5, max: 4 },
        ),
        ("parent round not below", bad_parent, ConsensusError::MalformedQc("parent round not below block round")),
    ];
    for (name, qc, want) in cases {
        run(
            &net,
            Case { name, node: 0, setup: vec![], msg: with_qc(qc), want, then: good1.clone(), then_round: 1 },
        );
    }
}

#[test]
fn vote_and_timeout_rejections() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let good1 = prop(net.proposal(1, &g, None));
    let b1 = net.block(1, &g, b"b1");
    let next_leader = net.leader(2);
    let not_next_leader = (0..4).find(|&i| i != next_leader && i != net.leader(1)).unwrap();
    let outsider_vote = {
        let data = b1.vote_data();
        Vote {
            data,
            author: outsider().public(),
            signature: outsider().sign(Domain::Vote, CHAIN, &data.signing_bytes()),
        }
    };
    let mut forged_vote = net.vote(0, &b1);
    forged_vote.signature = net.keys[1].sign(Domain::Vote, CHAIN, &b1.vote_data().signing_bytes());
    // A vote for a far round that this node would lead the round after.
    let far = (1002..).find(|r| net.leader(r + 1) == next_leader).unwrap();
    let far_vote = net.vote_on(
        0,
        VoteData {
            block: BlockInfo { id: Digest::of(b"far"), round: far, height: 1, timestamp_ms: 1 },
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
    let vote = Message::Vote;
    let timeout = Message::Timeout;

    let cases = vec![
        (next_leader, "vote from an unknown signer", vote(outsider_vote), ConsensusError::UnknownSigner(outsider().public())),
        (next_leader, "vote with a bad signature", vote(forged_vote), ConsensusError::BadSignature { what: "vote", signer: net.pk(0) }),
        (not_next_leader, "vote sent to a node that is not next leader", vote(net.vote(0, &b1)), ConsensusError::NotNextLeader { round: 1 }),
        (next_leader, "vote too far ahead", vote(far_vote), ConsensusError::RoundTooFarAhead { round: far, current: 1 }),
        (0, "timeout from an unknown signer", timeout(outsider_timeout), ConsensusError::UnknownSigner(outsider().public())),
        (0, "timeout with a bad signature", timeout(forged_timeout), ConsensusError::BadSignature { what: "timeout", signer: net.pk(0) }),
        (0, "timeout round too far ahead", timeout(net.timeout(1, 1002, &g)), ConsensusError::RoundTooFarAhead { round: 1002, current: 1 }),
    ];
    for (node, name, msg, want) in cases {
        run(&net, Case { name, node, setup: vec![], msg, want, then: good1.clone(), then_round: 1 });
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
        Case {
            name: "stale timeout",
            node: 0,
            setup: vec![net.advance_msg(1, 3)],
            msg: Message::Timeout(net.timeout(2, 2, &g)),
            want: ConsensusError::StaleRound { round: 2, current: 3 },
            then: prop(net.proposal(3, &g, Some(tc2))),
            then_round: 3,
        },
    );
}

#[test]
fn block_request_and_response_rejections() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let good1 = prop(net.proposal(1, &g, None));
    let (blocks, qcs) = net.chain(2);
    let req = |count| Message::BlockRequest(BlockRequest { id: blocks[0].id, count });
    let resp = |blocks| Message::BlockResponse(BlockResponse { blocks });
    let cases = vec![
        ("block request too large", req(65), ConsensusError::RequestTooLarge { got: 65, max: 64 }),
        ("block request for nothing", req(0), ConsensusError::RequestTooLarge { got: 0, max: 64 }),
        ("unsolicited block response", resp(vec![blocks[0].clone()]), ConsensusError::BadBlockResponse("not requested")),
        ("empty block response", resp(vec![]), ConsensusError::BadBlockResponse("empty or larger than requested")),
    ];
    for (name, msg, want) in cases {
        run(&net, Case { name, node: 0, setup: vec![], msg, want, then: good1.clone(), then_round: 1 });
    }
    // A request inside the limit is answered with a ServeBlocks action.
    let mut node = net.node(0);
    let actions = feed(&mut node, net.pk(1), req(64)).unwrap();
    assert_eq!(
        actions,
        vec![hotledger_consensus::Action::ServeBlocks { to: net.pk(1), id: blocks[0].id, count: 64 }]
    );
    // A proposal on an unknown parent makes the node ask the sender for it.
    let mut node = net.node(0);
    let actions = feed(&mut node, net.pk(1), prop(net.proposal(2, &qcs[0], None))).unwrap();
    assert!(actions.contains(&hotledger_consensus::Action::Send {
        to: net.pk(1),
        message: Message::BlockRequest(BlockRequest { id: blocks[0].id, count: 64 }),
    }));
    assert_eq!(node.pending_blocks(), (0, 1), "the proposal waits as an orphan");
    assert!(sent_votes(&actions).is_empty());
}

/// Bad answers to a real request: the node asked for block 1 (a round-2 proposal extends it).
/// Each is rejected; the node then still follows a TC to round 3 and votes there.
#[test]
fn bad_block_responses_are_rejected() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let (blocks, qcs) = net.chain(2);
    let resp = |blocks| Message::BlockResponse(BlockResponse { blocks });
    let ask_b1 = prop(net.proposal(2, &qcs[0], None));
    let mut bad_id = blocks[0].clone();
    bad_id.payload = b"tampered".to_vec();
    let computed = bad_id.recompute_id();

    // An outsider-authored block 1, certified (by a quorum that signs anything).
    let x = Net::make_block(&outsider(), CHAIN, 1, 1, 1, &g, b"x");
    let ask_x = prop(net.proposal(2, &net.qc(&x, &[0, 1, 2]), None));
    let tc2 = net.tc(2, &g, &[0, 1, 2]);

    let cases = vec![
        Case {
            name: "block response that does not chain",
            node: 0,
            setup: vec![ask_b1.clone()],
            msg: resp(vec![blocks[0].clone(), blocks[1].clone()]),
            want: ConsensusError::BadBlockResponse("blocks do not chain"),
            then: prop(net.proposal(3, &g, Some(tc2.clone()))),
            then_round: 3,
        },
        Case {
            name: "block response with a tampered block",
            node: 0,
            setup: vec![ask_b1],
            msg: resp(vec![bad_id]),
            want: ConsensusError::BlockIdMismatch { claimed: blocks[0].id, computed },
            then: prop(net.proposal(3, &g, Some(tc2.clone()))),
            then_round: 3,
        },
        Case {
            name: "block response with a block by an unknown author",
            node: 0,
            setup: vec![ask_x],
            msg: resp(vec![x]),
            want: ConsensusError::UnknownSigner(outsider().public()),
            then: prop(net.proposal(3, &g, Some(tc2))),
            then_round: 3,
        },
    ];
    for case in cases {
        run(&net, case);
    }
}

/// A rejected block response must leave the request outstanding ("a rejected message is dropped
/// and the state is unchanged"): otherwise any peer can cancel a fetch by answering first with
/// garbage, and the honest answer is refused as unsolicited.
#[test]
#[ignore = "BUG: on_block_response removes the id from `requested` before validating the response"]
fn correct_block_response_after_a_bad_one_is_accepted() {
    let net = Net::new(4);
    let (blocks, qcs) = net.chain(2);
    let resp = |blocks| Message::BlockResponse(BlockResponse { blocks });
    let mut tampered = blocks[0].clone();
    tampered.payload = b"tampered".to_vec();
    for bad in [vec![blocks[0].clone(), blocks[1].clone()], vec![tampered]] {
        let mut node = net.node(0);
        feed(&mut node, net.pk(1), prop(net.proposal(2, &qcs[0], None))).unwrap();
        // Another peer races the real answer with a bad one.
        assert!(feed(&mut node, net.pk(3), resp(bad)).is_err());
        let actions = feed(&mut node, net.pk(1), resp(vec![blocks[0].clone()]))
            .expect("the honest answer to the outstanding request is accepted");
        assert_eq!(sent_votes(&actions).len(), 1, "votes for block 2 once block 1 arrives");
    }
}
