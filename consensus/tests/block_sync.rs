//! Block retrieval: requests a node serves, and responses it refuses or accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cases::{case, prop, run};
use common::{feed, outsider, sent_votes, Net, CHAIN};
use hotledger_consensus::{Action, BlockRequest, BlockResponse, ConsensusError, Message, Proposal};
use hotledger_crypto::Signature;

#[test]
fn block_request_and_unsolicited_response_rejections() {
    let net = Net::new(4);
    let (blocks, qcs) = net.chain(2);
    let req = |count| {
        Message::BlockRequest(BlockRequest {
            id: blocks[0].id,
            count,
        })
    };
    let resp = |blocks| Message::BlockResponse(BlockResponse { blocks });
    let cases = vec![
        case(
            "block request too large",
            req(65),
            ConsensusError::RequestTooLarge { got: 65, max: 64 },
        ),
        case(
            "block request for nothing",
            req(0),
            ConsensusError::RequestTooLarge { got: 0, max: 64 },
        ),
        case(
            "unsolicited block response",
            resp(vec![blocks[0].clone()]),
            ConsensusError::UnrequestedBlocks {
                first: blocks[0].id,
            },
        ),
        case(
            "empty block response",
            resp(vec![]),
            ConsensusError::BlockResponseSize { got: 0, max: 64 },
        ),
    ];
    for c in cases {
        run(&net, c);
    }
    // A request inside the limit is answered with a ServeBlocks action.
    let mut node = net.node(0);
    let actions = feed(&mut node, net.pk(1), req(64)).unwrap();
    assert_eq!(
        actions,
        vec![Action::ServeBlocks {
            to: net.pk(1),
            id: blocks[0].id,
            count: 64
        }]
    );
    // A proposal on an unknown parent makes the node ask the sender for it.
    let mut node = net.node(0);
    let actions = feed(&mut node, net.pk(1), prop(net.proposal(2, &qcs[0], None))).unwrap();
    assert!(actions.contains(&Action::Send {
        to: net.pk(1),
        message: Message::BlockRequest(BlockRequest {
            id: blocks[0].id,
            count: 64
        }),
    }));
    assert_eq!(
        node.pending_blocks(),
        (0, 1),
        "the proposal waits as an orphan"
    );
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
    let mut bad_sig = blocks[0].clone();
    bad_sig.signature = Signature([3; 64]);
    // An outsider-authored block 1, certified (by a quorum that signs anything).
    let x = Net::make_block(&outsider(), CHAIN, 1, 1, 1, &g, b"x");
    let ask_x = prop(net.proposal(2, &net.qc(&x, &[0, 1, 2]), None));
    let round3 = prop(net.proposal(3, &g, Some(net.tc(2, &g, &[0, 1, 2]))));

    let cases = vec![
        case(
            "block response that does not chain",
            resp(vec![blocks[0].clone(), blocks[1].clone()]),
            ConsensusError::BlocksDoNotChain,
        )
        .setup(vec![ask_b1.clone()]),
        case(
            "block response with a tampered block",
            resp(vec![bad_id]),
            ConsensusError::BlockIdMismatch {
                claimed: blocks[0].id,
                computed,
            },
        )
        .setup(vec![ask_b1.clone()]),
        case(
            "block response with a badly signed block",
            resp(vec![bad_sig]),
            ConsensusError::BadSignature {
                what: "proposal",
                signer: blocks[0].author,
            },
        )
        .setup(vec![ask_b1]),
        case(
            "block response with a block by an unknown author",
            resp(vec![x]),
            ConsensusError::UnknownSigner(outsider().public()),
        )
        .setup(vec![ask_x]),
    ];
    for c in cases {
        run(&net, c.then(round3.clone(), 3));
    }
}

/// A rejected block response must leave the request outstanding ("a rejected message is dropped
/// and the state is unchanged"): otherwise any peer can cancel a fetch by answering first with
/// garbage, and the honest answer is refused as unsolicited.
#[test]
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
        assert_eq!(
            sent_votes(&actions).len(),
            1,
            "votes for block 2 once block 1 arrives"
        );
    }
}

/// A proposal on an unknown parent whose QC moves the node to a new round: the parent is
/// requested once, and the sender's answer is accepted.
#[test]
fn a_missing_parent_is_requested_once_and_its_answer_accepted() {
    let net = Net::new(4);
    let (blocks, qcs) = net.chain(2);
    let mut node = net.node(0);
    let from = net.pk(net.leader(2));
    let actions = feed(
        &mut node,
        from,
        Message::Proposal(net.proposal(2, &qcs[0], None)),
    )
    .unwrap();
    let requests: Vec<&Action> = actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Send {
                    message: Message::BlockRequest(_),
                    ..
                }
            )
        })
        .collect();
    assert_eq!(
        requests.len(),
        1,
        "block 1 requested more than once: {requests:#?}"
    );
    let answer = Message::BlockResponse(BlockResponse {
        blocks: vec![blocks[0].clone()],
    });
    assert!(feed(&mut node, from, answer.clone()).is_ok());
    // A second copy of the answer is the one that is unsolicited.
    assert_eq!(
        feed(&mut node, from, answer),
        Err(ConsensusError::UnrequestedBlocks {
            first: blocks[0].id
        })
    );
}

/// A fetch outlives a round change: the answer to a request made in round 2 is still accepted in
/// round 3 (otherwise a node whose rounds move faster than a round trip never catches up, and
/// honest peers are blamed for unsolicited responses).
#[test]
fn a_block_response_after_a_round_change_is_accepted() {
    let net = Net::new(4);
    let (blocks, qcs) = net.chain(2);
    let mut node = net.node(0);
    feed(
        &mut node,
        net.pk(1),
        Message::Proposal(net.proposal(2, &qcs[0], None)),
    )
    .unwrap();
    feed(&mut node, net.pk(1), net.advance_msg(1, 3)).unwrap();
    assert_eq!(node.round(), 3);
    let answer = Message::BlockResponse(BlockResponse {
        blocks: vec![blocks[0].clone()],
    });
    assert_eq!(feed(&mut node, net.pk(1), answer).map(|_| ()), Ok(()));
    assert_eq!(
        node.pending_blocks(),
        (2, 0),
        "blocks 1 and 2 are in the tree"
    );
}

/// Proposals whose parents are unknown are held as orphans up to `max_orphan_blocks`.
#[test]
fn orphan_buffer_is_bounded() {
    let net = Net::new(4);
    let (blocks, qcs) = net.chain(12);
    let mut config = net.config(0);
    config.limits.max_orphan_blocks = 4;
    let (mut node, _) = net.start(config);
    // Blocks 3, 5, 7, ... each extend a block the node does not have.
    let mut full = 0;
    for k in (2..12).step_by(2) {
        let p = Proposal {
            block: blocks[k].clone(),
            tc: None,
        };
        match feed(
            &mut node,
            net.pk(net.leader(blocks[k].round)),
            Message::Proposal(p),
        ) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(
                    e,
                    ConsensusError::Full {
                        what: "orphan block buffer",
                        max: 4
                    }
                );
                full += 1;
            }
        }
        assert!(node.pending_blocks().1 <= 4);
    }
    assert_eq!(full, 1);
    assert_eq!(node.pending_blocks(), (0, 4));
    let _ = qcs;
}
