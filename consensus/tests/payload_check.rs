//! The application's payload check as an action and an event: with `Config::check_payloads`, a
//! peer's proposal that passes the protocol's checks waits (`Action::CheckPayload`) until the
//! host answers (`Event::PayloadChecked`); without it, proposals are taken in at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cases::{case, feed_checked, prop, prop_of, run};
use common::{check_persist_before_send, feed, sent_votes, DropFn, Net, Sim, NOW};
use hotledger_consensus::{
    Action, Block, BlockRequest, BlockResponse, Consensus, ConsensusError, Event, Message,
    PayloadError, Proposal, QuorumCert, Recovery, SafetyData,
};
use hotledger_crypto::Digest;

/// A validator that leads neither round 1 nor round 2 (its round-1 vote is sent to a peer).
fn voter(net: &Net) -> usize {
    (0..4)
        .find(|&i| i != net.leader(1) && i != net.leader(2))
        .unwrap()
}

/// Validator `i`'s node with payload checks on, started in round 1.
fn checking_node(net: &Net, i: usize) -> Consensus {
    let mut config = net.config(i);
    config.check_payloads = true;
    net.start(config).0
}

/// How many payload checks `actions` ask for.
fn checks(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::CheckPayload { .. }))
        .count()
}

fn answer(node: &mut Consensus, id: Digest, result: Result<(), PayloadError>) -> Vec<Action> {
    node.handle(NOW, Event::PayloadChecked { id, result })
        .unwrap()
}

#[test]
fn a_proposal_waits_for_its_check_and_then_gets_the_vote() {
    let net = Net::new(4);
    let v = voter(&net);
    let mut node = checking_node(&net, v);
    let leader = net.pk(net.leader(1));
    let p = net.proposal(1, &net.genesis_qc(), None);
    let id = p.block.id;

    let actions = feed(&mut node, leader, prop(p.clone())).unwrap();
    assert_eq!(
        actions,
        vec![Action::CheckPayload {
            from: leader,
            block: p.block.clone(),
            state_height: 0,
        }],
        "the proposal asks for its check (of a claim at genesis) and does nothing else"
    );
    assert_eq!(node.block(&id), None, "not in the tree before its check");
    assert_eq!(node.safety_data().unwrap().last_vote, None);
    assert_eq!(node.parked_proposals(), 1);

    let actions = answer(&mut node, id, Ok(()));
    check_persist_before_send(&net.pk(v), &actions).unwrap();
    let store = actions
        .iter()
        .position(|a| *a == Action::StoreUncommitted(p.block.clone()))
        .expect("the block is stored");
    let persist = actions
        .iter()
        .position(|a| matches!(a, Action::PersistSafety(_)))
        .expect("the vote is persisted");
    assert!(store < persist, "stored before the vote's persist");
    assert_eq!(
        sent_votes(&actions),
        vec![(net.pk(net.leader(2)), net.vote(v, &p.block))]
    );
    assert_eq!(node.block(&id), Some(&p.block));
    assert_eq!(node.parked_proposals(), 0);
    assert_eq!(answer(&mut node, id, Ok(())), vec![], "answered once only");
}

/// Each way an application refuses a payload comes back as `InvalidPayload` with the typed
/// error, the proposal's round and author; the node is unchanged and votes for a good proposal.
#[test]
fn a_refused_payload_is_a_typed_rejection_without_a_vote() {
    let net = Net::new(4);
    let l1 = net.leader(1);
    let refusals = [
        PayloadError::Malformed {
            detail: "transaction 2 ends early".into(),
        },
        PayloadError::BadSignature { index: 3 },
        PayloadError::WrongStateRoot {
            height: 7,
            claimed: Digest::of(b"theirs"),
            ours: Digest::of(b"ours"),
        },
        PayloadError::Oversized {
            bytes: 10_000,
            max: 4_096,
        },
    ];
    for error in refusals {
        let bad = net.block(1, &net.genesis_qc(), b"refused");
        let want = ConsensusError::InvalidPayload {
            round: 1,
            author: net.pk(l1),
            error: error.clone(),
        };
        // The follow-up is of round 2: another round-1 proposal of the same leader would be
        // equivocation, which is never checked.
        let next = on_genesis(&net, 2, b"round 2");
        let c = case("refused payload", prop_of(bad), want).then(prop(next), 2);
        run(&net, c.node(voter(&net)).refuse(error));
    }
}

#[test]
fn a_refused_proposal_is_dropped() {
    let net = Net::new(4);
    let mut node = checking_node(&net, voter(&net));
    let p = net.proposal(1, &net.genesis_qc(), None);
    let id = p.block.id;
    feed(&mut node, net.pk(net.leader(1)), prop(p)).unwrap();
    let refused = node.handle(
        NOW,
        Event::PayloadChecked {
            id,
            result: Err(PayloadError::BadSignature { index: 0 }),
        },
    );
    assert!(matches!(
        refused,
        Err(ConsensusError::InvalidPayload { round: 1, .. })
    ));
    assert_eq!(node.block(&id), None);
    assert_eq!(node.parked_proposals(), 0);
    assert_eq!(node.safety_data().unwrap().last_vote, None);
    assert_eq!(
        answer(&mut node, id, Ok(())),
        vec![],
        "a late Ok is ignored"
    );
    assert_eq!(node.block(&id), None);
}

#[test]
fn an_answer_for_an_unknown_block_is_ignored() {
    let net = Net::new(4);
    let mut node = checking_node(&net, 0);
    let unknown = Digest::of(b"never proposed");
    assert_eq!(answer(&mut node, unknown, Ok(())), vec![]);
    let error = PayloadError::BadSignature { index: 0 };
    assert_eq!(answer(&mut node, unknown, Err(error)), vec![]);
    assert_eq!(node.stats().rejected_messages, 0);
}

#[test]
fn a_second_copy_of_a_waiting_proposal_asks_nothing_new() {
    let net = Net::new(4);
    let v = voter(&net);
    let mut node = checking_node(&net, v);
    let p = net.proposal(1, &net.genesis_qc(), None);
    let first = feed(&mut node, net.pk(net.leader(1)), prop(p.clone())).unwrap();
    assert_eq!(first.len(), 1);
    let relay = net.pk((v + 1) % 4);
    assert_eq!(feed(&mut node, relay, prop(p)).unwrap(), vec![]);
    assert_eq!(node.parked_proposals(), 1);
}

/// A proposal of `round` on genesis, justified by a TC of the round before (round 1: by the
/// genesis QC), from that round's leader.
fn on_genesis(net: &Net, round: u64, payload: &[u8]) -> Proposal {
    let g = net.genesis_qc();
    Proposal {
        block: net.block(round, &g, payload),
        tc: (round > 1).then(|| net.tc(round - 1, &g, &[0, 1, 2])),
    }
}

/// At most four proposals per validator wait: a full map (one proposal per round, rounds
/// 1 to 16) drops the proposal of the lowest round for a higher one, and refuses to hold a
/// proposal of a lower round than all it holds.
#[test]
fn waiting_proposals_are_bounded_lowest_round_first() {
    let net = Net::new(4);
    let max = 16;
    let v = voter(&net);
    let mut node = checking_node(&net, v);
    // Rounds the node does not lead itself (its own proposals are never checked).
    let proposals: Vec<Proposal> = (1u64..)
        .filter(|&r| net.leader(r) != v)
        .take(max + 4)
        .map(|r| on_genesis(&net, r, format!("round {r}").as_bytes()))
        .collect();
    for p in &proposals[..max] {
        let from = net.pk(net.leader(p.block.round));
        let actions = feed(&mut node, from, prop(p.clone())).unwrap();
        assert_eq!(checks(&actions), 1);
    }
    assert_eq!(node.parked_proposals(), max);
    // Higher rounds push the lowest out.
    for p in &proposals[max..] {
        let from = net.pk(net.leader(p.block.round));
        let actions = feed(&mut node, from, prop(p.clone())).unwrap();
        assert_eq!(checks(&actions), 1);
        assert_eq!(node.parked_proposals(), max);
    }
    let lowest_kept = proposals[4].block.round;
    let resumed: Vec<u64> = proposals
        .iter()
        .filter(|p| !answer(&mut node, p.block.id, Ok(())).is_empty())
        .map(|p| p.block.round)
        .collect();
    assert!(
        resumed.iter().all(|&r| r >= lowest_kept) && !resumed.is_empty(),
        "the dropped ones' answers are ignored: {resumed:?}"
    );

    // A full map: a proposal of a lower round than all it holds is not held.
    let mut node = checking_node(&net, voter(&net));
    for p in &proposals[4..] {
        feed(
            &mut node,
            net.pk(net.leader(p.block.round)),
            prop(p.clone()),
        )
        .unwrap();
    }
    assert_eq!(node.parked_proposals(), max);
    let late = &proposals[0];
    let from = net.pk(net.leader(1));
    assert_eq!(feed(&mut node, from, prop(late.clone())).unwrap(), vec![]);
    assert_eq!(answer(&mut node, late.block.id, Ok(())), vec![]);
}

/// One payload check per round and author at most: a second, different proposal of a leader's
/// round is equivocation, reported with both signed headers and never checked; a proposal whose
/// payload was refused is not checked again when it comes back; a proposal of a round this
/// node has left is not checked, though its certificates still move the node on.
#[test]
fn a_payload_is_checked_once_per_round_and_author_and_never_for_a_past_round() {
    let net = Net::new(4);
    let l1 = net.pk(net.leader(1));
    let mut node = checking_node(&net, voter(&net));
    let first = on_genesis(&net, 1, b"first");
    let actions = feed(&mut node, l1, prop(first.clone())).unwrap();
    assert_eq!(checks(&actions), 1);
    let second = on_genesis(&net, 1, b"second");
    let actions = feed(&mut node, l1, prop(second.clone())).unwrap();
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::CheckPayload { .. })),
        "{actions:?}"
    );
    assert!(matches!(
        common::evidence(&actions).as_slice(),
        [hotledger_consensus::Evidence::ConflictingProposals { round: 1, .. }]
    ));
    assert_eq!(node.parked_proposals(), 1);

    // Refused once: the same proposal again asks nothing.
    let refused = node.handle(
        NOW,
        Event::PayloadChecked {
            id: first.block.id,
            result: Err(PayloadError::BadSignature { index: 0 }),
        },
    );
    assert!(refused.is_err());
    assert_eq!(feed(&mut node, l1, prop(first)).unwrap(), vec![]);
    assert_eq!(node.parked_proposals(), 0);

    // A node in round 3 does not check a round-2 proposal; it takes in the round-2 TC the
    // proposal carries only if it is new (here it is not: the node entered round 3 on it).
    let mut node = checking_node(&net, voter(&net));
    let advance = net.advance_msg(net.leader(1), 3);
    feed(&mut node, l1, advance).unwrap();
    assert_eq!(node.round(), 3);
    let past = on_genesis(&net, 2, b"too late");
    let actions = feed(&mut node, net.pk(net.leader(2)), prop(past)).unwrap();
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::CheckPayload { .. })),
        "{actions:?}"
    );
    assert_eq!(node.parked_proposals(), 0);
}

/// A proposal still waiting when a commit reaches its height can never enter the tree: it is
/// dropped, and its answer ignored.
#[test]
fn a_commit_drops_the_proposals_it_leaves_behind() {
    let net = Net::new(4);
    let (blocks, _) = net.chain(3);
    let mut node = checking_node(&net, voter(&net));
    // A block at height 1 of a round after the chain's (a round-1 one by the same leader as
    // `blocks[0]` would be equivocation, and never parked), by a validator other than this one.
    let v = voter(&net);
    let round = (4u64..).find(|&r| net.leader(r) != v).unwrap();
    let fork = on_genesis(&net, round, b"a fork at height 1");
    feed(&mut node, net.pk(net.leader(round)), prop(fork.clone())).unwrap();
    assert_eq!(node.parked_proposals(), 1);
    let fork = fork.block;
    // The fork's TC moved the node to its round. A timeout carrying block 3's QC, and blocks 1
    // to 3 of the other chain fetched: that QC commits block 2.
    let (blocks, qcs) = (blocks, net.chain(3).1);
    let peer = (0..4).find(|&i| i != v).unwrap();
    let t = net.timeout(peer, round, &qcs[2]);
    feed(&mut node, net.pk(peer), Message::Timeout(t)).unwrap();
    let fetched: Vec<Block> = blocks.iter().rev().cloned().collect();
    let response = Message::BlockResponse(BlockResponse { blocks: fetched });
    feed(&mut node, net.pk(peer), response).unwrap();
    assert_eq!(node.committed().id, blocks[1].id);
    assert_eq!(node.parked_proposals(), 0);
    assert_eq!(answer(&mut node, fork.id, Ok(())), vec![]);
    assert_eq!(node.block(&fork.id), None);
}

/// Blocks in rounds 1..=n, each certified by its author and the two before it in turn: validators
/// 0, 1 and 2 up to round 30, then 0, 1 and 3.
fn chain_switching_at_30(net: &Net, n: u64) -> (Vec<Block>, Vec<QuorumCert>) {
    let (mut blocks, mut qcs) = (Vec::new(), Vec::<QuorumCert>::new());
    for r in 1..=n {
        let members = if r <= 30 { [0, 1, 2] } else { [0, 1, 3] };
        let qc = qcs.last().cloned().unwrap_or_else(|| net.genesis_qc());
        let author = members[usize::try_from(r % 3).unwrap()];
        let b = net.block_by(author, r, &qc, format!("block {r}").as_bytes());
        qcs.push(net.qc(&b, &members));
        blocks.push(b);
    }
    (blocks, qcs)
}

fn restarted(
    net: &Net,
    i: usize,
    blocks: &[Block],
    qcs: &[QuorumCert],
    height: usize,
) -> Consensus {
    let mut config = net.config(i);
    config.check_payloads = true;
    let recovery = Recovery {
        safety: SafetyData::default(),
        root: blocks[height - 1].info(),
        root_qc: qcs[height - 1].clone(),
        uncommitted: Vec::new(),
        history: blocks[..height].to_vec(),
    };
    let mut node = Consensus::new(config, recovery).unwrap();
    node.handle(NOW, Event::Start).unwrap();
    node
}

/// A lagging node parks a proposal from the leader it computes; while the check runs, it
/// commits enough to compute another leader for that round. The answer then does not take the
/// block in: a proposal is taken in only if its author leads its round when it resumes.
#[test]
fn a_proposal_whose_author_no_longer_leads_when_checked_is_not_taken_in() {
    let net = Net::new(4);
    let (blocks, qcs) = chain_switching_at_30(&net, 60);
    let before = restarted(&net, 0, &blocks, &qcs, 30);
    // The node will commit up to `height` and be in round `height + 2`.
    let height = (45..=58)
        .find(|&h| {
            let round = h as u64 + 2;
            before.leader(round) != restarted(&net, 0, &blocks, &qcs, h).leader(round)
        })
        .expect("some round changes leader");
    let round = height as u64 + 2;
    let after = restarted(&net, 0, &blocks, &qcs, height).leader(round);
    let author = net.index_of(&before.leader(round));
    let me = (0..4).find(|&i| i != author && net.pk(i) != after).unwrap();
    let mut node = restarted(&net, me, &blocks, &qcs, 30);
    let p = Proposal {
        block: net.block_by(author, round, &qcs[height], b"proposal"),
        tc: None,
    };
    let actions = feed(&mut node, net.pk(author), prop(p.clone())).unwrap();
    assert_eq!(checks(&actions), 1);

    // A timeout carrying the QC of block `height + 1` makes the node fetch blocks 31 up to it,
    // commit up to `height` and enter `round`: the proposal's parent is now in the tree.
    let peer = (0..4).find(|&i| i != me && i != author).unwrap();
    let t = net.timeout(peer, round, &qcs[height]);
    feed(&mut node, net.pk(peer), Message::Timeout(t)).unwrap();
    let fetched: Vec<Block> = blocks[30..=height].iter().rev().cloned().collect();
    let response = Message::BlockResponse(BlockResponse { blocks: fetched });
    feed(&mut node, net.pk(peer), response).unwrap();
    assert_eq!(node.committed().height, height as u64);
    assert_eq!((node.round(), node.leader(round)), (round, after));

    let result = node.handle(
        NOW,
        Event::PayloadChecked {
            id: p.block.id,
            result: Ok(()),
        },
    );
    let want = ConsensusError::NotLeader {
        round,
        author: net.pk(author),
        expected: after,
    };
    assert_eq!(result, Err(want));
    assert_eq!(node.block(&p.block.id), None);
    assert_eq!(node.safety_data().unwrap().last_vote, None);
}

#[test]
fn without_the_check_a_proposal_is_taken_in_at_once() {
    let net = Net::new(4);
    let v = voter(&net);
    let mut node = net.node(v);
    let p = net.proposal(1, &net.genesis_qc(), None);
    let actions = feed(&mut node, net.pk(net.leader(1)), prop(p.clone())).unwrap();
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::CheckPayload { .. })));
    assert!(actions.contains(&Action::StoreUncommitted(p.block.clone())));
    assert_eq!(sent_votes(&actions).len(), 1);
    assert_eq!(node.parked_proposals(), 0);
}

/// This node's own proposal and blocks fetched during catch-up are not checked.
#[test]
fn own_proposals_and_fetched_blocks_are_not_checked() {
    let net = Net::new(4);
    let l1 = net.leader(1);
    let mut leader = checking_node(&net, l1);
    let payload = b"mine".to_vec();
    let actions = leader
        .handle(
            NOW,
            Event::PayloadReady {
                round: 1,
                parent: net.genesis.id,
                payload,
            },
        )
        .unwrap();
    assert!(actions.iter().any(|a| matches!(a, Action::Broadcast(_))));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::StoreUncommitted(_))));
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::CheckPayload { .. })));

    // A round-2 proposal on a missing block 1: checked, then its parent is fetched unchecked.
    let (blocks, qcs) = net.chain(1);
    let v = (0..4)
        .find(|&i| ![l1, net.leader(2), net.leader(3)].contains(&i))
        .unwrap();
    let mut node = checking_node(&net, v);
    let peer = net.pk(net.leader(2));
    let actions = feed_checked(&mut node, peer, prop(net.proposal(2, &qcs[0], None))).unwrap();
    assert!(actions.contains(&Action::Send {
        to: peer,
        message: Message::BlockRequest(BlockRequest {
            id: blocks[0].id,
            count: 64
        }),
    }));
    let response = Message::BlockResponse(BlockResponse {
        blocks: vec![blocks[0].clone()],
    });
    let actions = feed(&mut node, peer, response).unwrap();
    assert!(actions.contains(&Action::StoreUncommitted(blocks[0].clone())));
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::CheckPayload { .. })));
    assert_eq!(
        sent_votes(&actions).len(),
        1,
        "the waiting proposal is voted on"
    );
}

/// A network whose nodes all check payloads (the simulator answers `Ok` at once) commits the
/// same chain as one that does not.
#[test]
fn a_network_that_checks_payloads_commits() {
    let no_drop: DropFn = Box::new(|_, _, _| false);
    let mut sim = Sim::configured(4, true, no_drop, |c| c.check_payloads = true);
    assert!(
        sim.run_until(20_000, |s| s.min_committed() >= 10),
        "no progress: {:?}",
        sim.errors
    );
    sim.assert_consistent_commits();
    assert!(sim.errors.iter().all(Vec::is_empty), "{:?}", sim.errors);
    for (i, disk) in sim.disks.iter().enumerate() {
        assert!(disk.safety.is_some(), "node {i} persisted nothing");
        assert!(disk.uncommitted.len() >= 10, "node {i}");
    }
}

/// Certificates first: a proposal whose QC commits a block yields that commit before its check,
/// and the check asks for the claim at the committed height (the 2-chain rule's commit).
#[test]
fn a_proposals_commits_come_before_its_check() {
    let net = Net::new(4);
    let (blocks, qcs) = net.chain(3);
    // Round 4 on the QC of block 3, whose parent is of round 2: it commits block 2.
    let v = (0..4)
        .find(|&i| (1..=3).all(|r| net.leader(r) != i))
        .unwrap();
    let mut node = checking_node(&net, v);
    for b in &blocks[..2] {
        feed_checked(&mut node, net.pk(net.leader(b.round)), prop_of(b.clone())).unwrap();
    }
    // Block 3 arrives with the QC on block 2 (consecutive: commits block 1).
    let third = feed(&mut node, net.pk(net.leader(3)), prop_of(blocks[2].clone())).unwrap();
    let commit = third
        .iter()
        .position(
            |a| matches!(a, Action::Commit(c) if c.blocks.last().map(|b| b.height) == Some(1)),
        )
        .expect("block 1 committed by block 3's QC, before its check");
    let check = third
        .iter()
        .position(|a| {
            matches!(
                a,
                Action::CheckPayload {
                    state_height: 1,
                    ..
                }
            )
        })
        .expect("block 3 claims height 1");
    assert!(commit < check, "{third:#?}");
    assert_eq!(
        node.committed().height,
        1,
        "committed before the check is answered"
    );
    assert!(
        node.block(&blocks[2].id).is_none(),
        "not in the tree before its check"
    );
    answer(&mut node, blocks[2].id, Ok(()));
    let p = net.proposal(4, &qcs[2], None);
    assert_eq!(node.state_claim(&p.block), Some(2));
}

/// After a timed-out round a QC commits nothing, and the claim is the parent's: on blocks 1-3
/// (rounds 1-3), block 4 of round 5 (after a TC of round 4) claims height 2 (its QC, on block 3,
/// commits block 2), and a block of round 6 on block 4's QC (not consecutive) claims the same.
/// A node that does not hold block 4 cannot tell that claim: the proposal is not parked, and
/// block 4 is asked for.
#[test]
fn a_claim_after_a_timeout_is_the_parents_and_an_unknown_one_is_not_checked() {
    let net = Net::new(4);
    let (blocks, qcs) = net.chain(3);
    let v = (0..4)
        .find(|&i| ![net.leader(5), net.leader(6)].contains(&i))
        .unwrap();
    let mut node = checking_node(&net, v);
    for b in &blocks {
        feed_checked(&mut node, net.pk(net.leader(b.round)), prop_of(b.clone())).unwrap();
    }
    let after_timeout = Proposal {
        block: net.block(5, &qcs[2], b"after a timeout"),
        tc: Some(net.tc(4, &qcs[2], &[0, 1, 2])),
    };
    let fourth = after_timeout.block.clone();
    assert_eq!(node.state_claim(&fourth), Some(2));
    let actions = feed(&mut node, net.pk(net.leader(5)), prop(after_timeout)).unwrap();
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::CheckPayload {
            state_height: 2,
            ..
        }
    )));
    answer(&mut node, fourth.id, Ok(()));
    assert!(node.block(&fourth.id).is_some());
    let p = net.proposal(6, &net.qc(&fourth, &[0, 1, 2]), None);
    assert_eq!(
        node.state_claim(&p.block),
        Some(2),
        "inherited from block 4"
    );

    let mut fresh = checking_node(&net, v);
    assert_eq!(fresh.state_claim(&p.block), None);
    let actions = feed(&mut fresh, net.pk(net.leader(6)), prop(p)).unwrap();
    assert_eq!(checks(&actions), 0, "{actions:#?}");
    assert_eq!(fresh.parked_proposals(), 0);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Send { message: Message::BlockRequest(r), .. } if r.id == fourth.id
    )));
    assert_eq!(fresh.safety_data().unwrap().last_vote, None);
}

/// A voter that could not check a claim (it has not executed the height yet) keeps the block
/// without voting, so the next proposal on it connects; any other refusal drops the block.
#[test]
fn an_unchecked_claim_keeps_the_block_without_a_vote() {
    let net = Net::new(4);
    let v = voter(&net);
    let mut node = checking_node(&net, v);
    let p = net.proposal(1, &net.genesis_qc(), None);
    feed(&mut node, net.pk(net.leader(1)), prop(p.clone())).unwrap();
    let unchecked = PayloadError::ClaimUnchecked {
        height: 0,
        executed: 0,
    };
    let actions = answer(&mut node, p.block.id, Err(unchecked));
    assert!(actions.contains(&Action::StoreUncommitted(p.block.clone())));
    assert!(sent_votes(&actions).is_empty(), "{actions:#?}");
    assert_eq!(node.safety_data().unwrap().last_vote, None);
    assert_eq!(node.block(&p.block.id), Some(&p.block));
    assert_eq!(node.stats().proposals_unchecked, 1);
    assert_eq!(node.stats().rejected_messages, 0);
}
