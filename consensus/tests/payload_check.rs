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
            block: p.block.clone()
        }],
        "the proposal asks for its check and does nothing else"
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
        let c = case("refused payload", prop_of(bad), want);
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

/// At most four proposals per validator wait. A full map drops the proposal of the lowest round,
/// and refuses to hold a proposal of a lower round than all it holds.
#[test]
fn waiting_proposals_are_bounded_lowest_round_first() {
    let net = Net::new(4);
    let max = 16;
    let g = net.genesis_qc();
    let b1 = net.block(1, &g, b"block 1");
    let qc1 = net.qc(&b1, &[0, 1, 2]);
    let from = net.pk(net.leader(1));

    // Round 1: a Byzantine leader's many proposals; every one asks for a check.
    let mut node = checking_node(&net, voter(&net));
    let round1: Vec<Proposal> = (0..max + 4)
        .map(|k| Proposal {
            block: net.block(1, &g, format!("proposal {k}").as_bytes()),
            tc: None,
        })
        .collect();
    for p in &round1 {
        let actions = feed(&mut node, from, prop(p.clone())).unwrap();
        assert!(matches!(actions.as_slice(), [Action::CheckPayload { .. }]));
        assert!(node.parked_proposals() <= max);
    }
    assert_eq!(node.parked_proposals(), max);
    let resumed = round1
        .iter()
        .filter(|p| !answer(&mut node, p.block.id, Ok(())).is_empty())
        .count();
    assert_eq!(resumed, max, "the dropped ones' answers are ignored");

    // A full map of round-2 proposals: a round-1 proposal is not held, a round-3 one is.
    let mut node = checking_node(&net, voter(&net));
    for k in 0..max {
        let p = Proposal {
            block: net.block(2, &qc1, format!("round 2, {k}").as_bytes()),
            tc: None,
        };
        feed(&mut node, net.pk(net.leader(2)), prop(p)).unwrap();
    }
    assert_eq!(node.parked_proposals(), max);
    let late = net.proposal(1, &g, None);
    assert_eq!(feed(&mut node, from, prop(late.clone())).unwrap(), vec![]);
    assert_eq!(answer(&mut node, late.block.id, Ok(())), vec![]);
    let tc2 = net.tc(2, &qc1, &[0, 1, 2]);
    let ahead = net.proposal(3, &qc1, Some(tc2));
    let actions = feed(&mut node, net.pk(net.leader(3)), prop(ahead)).unwrap();
    assert!(matches!(actions.as_slice(), [Action::CheckPayload { .. }]));
    assert_eq!(node.parked_proposals(), max);
}

/// A proposal still waiting when a commit reaches its height can never enter the tree: it is
/// dropped, and its answer ignored.
#[test]
fn a_commit_drops_the_proposals_it_leaves_behind() {
    let net = Net::new(4);
    let (blocks, _) = net.chain(3);
    let mut node = checking_node(&net, voter(&net));
    let fork = net.block(1, &net.genesis_qc(), b"a fork at height 1");
    feed(&mut node, net.pk(net.leader(1)), prop_of(fork.clone())).unwrap();
    assert_eq!(node.parked_proposals(), 1);
    // Blocks 1 to 3 of the other chain: block 3's QC commits block 1.
    for b in &blocks {
        feed_checked(&mut node, net.pk(net.leader(b.round)), prop_of(b.clone())).unwrap();
    }
    assert_eq!(node.committed().id, blocks[0].id);
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
    assert!(matches!(actions.as_slice(), [Action::CheckPayload { .. }]));

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
