//! Protocol behaviour: four in-process nodes on the deterministic `Sim` network (commit,
//! persist-before-send, timeouts, catch-up), plus single-node scenarios for equivocation
//! evidence and resource bounds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{evidence, feed, sent_votes, DropFn, Net, Sim, NOW};
use hotledger_consensus::{Action, ConsensusError, Event, Evidence, Limits, Message, Proposal};

// ---- the happy path ------------------------------------------------------------------------

/// Four honest nodes commit a contiguous chain and agree on it. `Sim::apply` checks on every
/// batch that a `PersistSafety` covering each vote, timeout and proposal precedes its send.
#[test]
fn four_nodes_commit_the_same_chain() {
    let mut sim = Sim::new(4);
    assert!(
        sim.run_until(20_000, |s| s.min_committed() >= 10),
        "no progress: {:?}",
        sim.errors
    );
    sim.assert_consistent_commits();
    for (i, node) in sim.nodes.iter().enumerate() {
        assert!(node.stats().blocks_committed >= 10, "node {i}");
        assert!(node.committed().height >= 10);
        assert_eq!(node.committed().id, sim.committed[i].last().unwrap().id);
    }
    assert!(
        sim.evidence.iter().all(Vec::is_empty),
        "honest nodes reported misbehaviour"
    );
    assert!(
        sim.errors.iter().all(Vec::is_empty),
        "honest messages rejected: {:?}",
        sim.errors
    );
    assert!(sim.batches > 40);
}

/// Each `Commit` carries a proof: a consecutive QC whose parent is the last committed block.
#[test]
fn commit_proofs_certify_the_last_block() {
    let net = Net::new(4);
    let (blocks, qcs) = net.chain(4);
    let mut node = net.node(0);
    let mut commits = Vec::new();
    for b in &blocks {
        let p = Proposal {
            block: b.clone(),
            tc: None,
        };
        let actions = feed(&mut node, net.pk(net.leader(b.round)), Message::Proposal(p)).unwrap();
        commits.extend(actions.into_iter().filter_map(|a| match a {
            Action::Commit(c) => Some(c),
            _ => None,
        }));
    }
    // Block 3 carries QC(2), consecutive over block 1: commits block 1; block 4 commits block 2.
    assert_eq!(commits.len(), 2);
    for (c, committed) in commits.iter().zip([&blocks[0], &blocks[1]]) {
        assert_eq!(c.blocks, vec![committed.clone()]);
        assert_eq!(c.proof.data.parent.id, committed.id);
        assert!(c.proof.data.is_consecutive());
    }
    assert_eq!(commits[1].proof, qcs[2]);
}

// ---- equivocation ----------------------------------------------------------------------------

/// A leader signs two proposals for round 1; a node receiving both reports it and votes once.
#[test]
fn equivocating_leader_is_reported_and_gets_one_vote() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let a = net.block(1, &g, b"a");
    let b = net.block(1, &g, b"b");
    let voter = (0..4)
        .find(|&i| i != net.leader(1) && i != net.leader(2))
        .unwrap();
    let mut node = net.node(voter);
    let leader = net.pk(net.leader(1));
    let first = feed(
        &mut node,
        leader,
        Message::Proposal(Proposal {
            block: a.clone(),
            tc: None,
        }),
    )
    .unwrap();
    let second = feed(
        &mut node,
        leader,
        Message::Proposal(Proposal {
            block: b.clone(),
            tc: None,
        }),
    )
    .unwrap();
    assert_eq!(
        evidence(&second),
        vec![Evidence::ConflictingProposals {
            author: leader,
            round: 1,
            first: (a.height, a.id, a.signature),
            second: (b.height, b.id, b.signature),
        }]
    );
    let votes: Vec<_> = sent_votes(&first)
        .into_iter()
        .chain(sent_votes(&second))
        .collect();
    assert_eq!(votes.len(), 1, "exactly one vote in round 1");
    assert_eq!(votes[0].1.data.block.id, a.id);
    // Replaying the first proposal re-sends nothing new and reports nothing new.
    let again = feed(
        &mut node,
        leader,
        Message::Proposal(Proposal { block: a, tc: None }),
    )
    .unwrap();
    assert!(evidence(&again).is_empty());
    assert!(sent_votes(&again).iter().all(|(_, v)| *v == votes[0].1));
}

/// A validator sends the next leader votes for two different blocks of one round.
#[test]
fn conflicting_votes_are_reported() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let a = net.block(1, &g, b"a");
    let b = net.block(1, &g, b"b");
    let mut leader2 = net.node(net.leader(2));
    let culprit = (0..4).find(|&i| i != net.leader(2)).unwrap();
    let (va, vb) = (net.vote(culprit, &a), net.vote(culprit, &b));
    let from = net.pk(culprit);
    assert!(evidence(&feed(&mut leader2, from, Message::Vote(va.clone())).unwrap()).is_empty());
    // The same vote again is a harmless duplicate.
    assert!(evidence(&feed(&mut leader2, from, Message::Vote(va.clone())).unwrap()).is_empty());
    let actions = feed(&mut leader2, from, Message::Vote(vb.clone())).unwrap();
    assert_eq!(
        evidence(&actions),
        vec![Evidence::ConflictingVotes {
            first: va,
            second: vb
        }]
    );
    assert_eq!(evidence(&actions)[0].culprit(), &from);
}

/// A validator times out one round twice with different high QCs.
#[test]
fn conflicting_timeouts_are_reported() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let (_, qcs) = net.chain(1);
    let mut node = net.node(0);
    let (t1, t2) = (net.timeout(1, 2, &g), net.timeout(1, 2, &qcs[0]));
    assert!(
        evidence(&feed(&mut node, net.pk(1), Message::Timeout(t1.clone())).unwrap()).is_empty()
    );
    let actions = feed(&mut node, net.pk(1), Message::Timeout(t2.clone())).unwrap();
    assert_eq!(
        evidence(&actions),
        vec![Evidence::ConflictingTimeouts {
            author: net.pk(1),
            round: 2,
            first: (0, t1.signature),
            second: (1, t2.signature),
        }]
    );
}

// ---- timeouts --------------------------------------------------------------------------------

/// Nobody proposes in round 1; all timers fire; the timeouts form a TC, everyone moves to
/// round 2, and its leader proposes with that TC attached. The chain then goes on committing.
#[test]
fn timers_produce_a_tc_and_the_next_leader_proposes_with_it() {
    let mut sim = Sim::with(4, false, Box::new(|_, _, _| false));
    sim.run_until(1_000, |_| false);
    assert!(sim.nodes.iter().all(|n| n.round() == 1));
    sim.auto_payload = true;
    sim.fire_timers();
    assert!(
        sim.run_until(20_000, |s| s.nodes.iter().all(|n| n.round() >= 2)
            && s.min_committed() >= 3)
    );
    for (i, node) in sim.nodes.iter().enumerate() {
        assert!(
            node.high_tc().is_some_and(|tc| tc.round == 1),
            "node {i} has no TC for round 1"
        );
        assert!(node.stats().timeouts_sent >= 1);
    }
    let leader2 = sim.net.leader(2);
    let with_tc: Vec<&Proposal> = sim
        .sent
        .iter()
        .filter_map(|(from, _, m)| match m {
            Message::Proposal(p) if *from == leader2 && p.block.round == 2 => Some(p),
            _ => None,
        })
        .collect();
    assert!(!with_tc.is_empty(), "round 2 was never proposed");
    for p in with_tc {
        let tc =
            p.tc.as_ref()
                .expect("a round-2 proposal over the genesis QC needs the TC");
        assert_eq!(tc.round, 1);
        assert_eq!(p.block.qc.round(), 0);
    }
    sim.assert_consistent_commits();
}

/// A single node's timer fires: it broadcasts a signed timeout (persisted first) and re-arms.
#[test]
fn a_timer_firing_broadcasts_a_persisted_timeout() {
    let net = Net::new(4);
    let mut node = net.node(0);
    let actions = node.handle(NOW, Event::TimeoutFired { round: 1 }).unwrap();
    assert!(matches!(&actions[0], Action::PersistSafety(d) if d.highest_timeout_round == 1));
    assert!(matches!(&actions[1], Action::Broadcast(Message::Timeout(t)) if t.round == 1));
    assert!(matches!(
        actions.last(),
        Some(Action::ScheduleTimeout { round: 1, .. })
    ));
    // A stale timer does nothing.
    assert_eq!(
        node.handle(NOW, Event::TimeoutFired { round: 0 }).unwrap(),
        vec![]
    );
}

/// A timer whose timeout completes a TC takes the node into the next round, and the batch arms
/// that round's timer last: a host that keeps one timer, replaced by each `ScheduleTimeout`, is
/// left with the timer of the round the node is in.
#[test]
fn a_timer_that_completes_a_tc_leaves_the_next_rounds_timer_armed() {
    let net = Net::new(4);
    let me = (0..4)
        .find(|&i| ![net.leader(2), net.leader(3)].contains(&i))
        .unwrap();
    let others: Vec<usize> = (0..4).filter(|&i| i != me).take(2).collect();
    let mut node = net.node(me);
    // Two timeouts of round 2 arrive while the node is still in round 1: counted, not joined.
    for &i in &others {
        let t = net.timeout(i, 2, &net.genesis_qc());
        feed(&mut node, net.pk(i), Message::Timeout(t)).unwrap();
    }
    // A TC of round 1 (carried by a copy of one of them) moves it to round 2.
    feed(&mut node, net.pk(others[0]), net.advance_msg(others[0], 2)).unwrap();
    assert_eq!(node.round(), 2);
    // The node's own timeout of round 2 completes the TC.
    let actions = node.handle(NOW, Event::TimeoutFired { round: 2 }).unwrap();
    assert_eq!(node.round(), 3);
    let timers: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::ScheduleTimeout { round, .. } => Some(*round),
            _ => None,
        })
        .collect();
    assert_eq!(timers.last(), Some(&3), "timers armed: {timers:?}");
}

/// A node that voted in a round times it out with that vote attached (signed once, persisted
/// when it was cast); a node that did not vote attaches none.
#[test]
fn a_timeout_carries_the_vote_of_its_round() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let voter = (0..4)
        .find(|&i| i != net.leader(1) && i != net.leader(2))
        .unwrap();
    let mut node = net.node(voter);
    let actions = feed(
        &mut node,
        net.pk(net.leader(1)),
        Message::Proposal(net.proposal(1, &g, None)),
    )
    .unwrap();
    let cast = sent_votes(&actions)[0].1.clone();
    let actions = node.handle(NOW, Event::TimeoutFired { round: 1 }).unwrap();
    let timeouts: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(Message::Timeout(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0].vote, Some(cast));
    common::check_persist_before_send(&net.pk(voter), &actions).unwrap();

    let mut silent = net.node(voter);
    let actions = silent
        .handle(NOW, Event::TimeoutFired { round: 1 })
        .unwrap();
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Broadcast(Message::Timeout(t)) if t.vote.is_none())));
}

/// The leader of round 2 is down. Round 1's block gets its votes only through the timeouts of
/// round 1, which every live node certifies; round 2 is then timed out at once, without a
/// second timer, and the leader of round 3 proposes on the QC of round 1: the block is kept.
#[test]
fn a_block_whose_next_leader_is_down_is_certified_by_the_timeouts() {
    let dead = Net::new(4).leader(2);
    let drop: DropFn = Box::new(move |from, to, _| from == dead || to == dead);
    let mut sim = Sim::with(4, true, drop);
    sim.run_until(10_000, |_| false);
    let live: Vec<usize> = (0..4).filter(|&i| i != dead).collect();
    assert!(live.iter().all(|&i| sim.nodes[i].round() == 1));
    for &i in &live {
        let round = sim.nodes[i].round();
        sim.deliver(i, Event::TimeoutFired { round });
    }
    let leader3 = sim.net.leader(3);
    let proposed3 = |s: &Sim| {
        s.sent.iter().any(
            |(from, _, m)| matches!(m, Message::Proposal(p) if *from == leader3 && p.block.round == 3),
        )
    };
    assert!(
        sim.run_until(10_000, proposed3),
        "round 3 was never proposed"
    );
    let p3 = sim
        .sent
        .iter()
        .find_map(|(from, _, m)| match m {
            Message::Proposal(p) if *from == leader3 && p.block.round == 3 => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(p3.block.qc.round(), 1, "round 1's block was dropped");
    assert_eq!(p3.tc.as_ref().map(|t| t.round), Some(2));
    for &i in &live {
        let stats = sim.nodes[i].stats();
        assert_eq!(
            stats.timeouts_sent, 2,
            "node {i}: rounds 1 and 2, one timer"
        );
        assert!(sim.nodes[i].high_qc().round() >= 1);
    }
    // Round 1's block commits once round 3's is certified (node 3 never hears of any of it).
    assert!(sim.run_until(10_000, |s| live
        .iter()
        .all(|&i| s.committed[i].first().is_some_and(|b| b.round == 1))));
    assert!(sim.errors.iter().all(Vec::is_empty), "{:?}", sim.errors);
}

// ---- catch-up --------------------------------------------------------------------------------

/// Node 3 never receives the proposals of rounds 1 and 2. When a later proposal refers to blocks
/// it lacks, it requests them, gets them from the sender, and commits the same chain as everyone.
#[test]
fn a_node_that_missed_blocks_fetches_them_and_commits() {
    let drop: DropFn =
        Box::new(|_, to, m| to == 3 && matches!(m, Message::Proposal(p) if p.block.round <= 2));
    let mut sim = Sim::with(4, true, drop);
    // The others commit blocks 1 and 2 before node 3 asks: serve them from the host store.
    sim.serve_from_store = true;
    assert!(
        sim.run_until(20_000, |s| s.min_committed() >= 6),
        "no progress: {:?}",
        sim.errors[3].first()
    );
    let requests = sim
        .sent
        .iter()
        .filter(|(from, _, m)| *from == 3 && matches!(m, Message::BlockRequest(_)))
        .count();
    assert!(requests >= 1, "node 3 never asked for the blocks it missed");
    assert!(
        sim.committed[3][0].round <= 2,
        "node 3 committed the blocks it fetched"
    );
    sim.assert_consistent_commits();
}

// ---- bounds ----------------------------------------------------------------------------------

/// 10,000 timeouts for distinct future rounds: those within `max_round_ahead` are counted,
/// everything beyond is rejected before it is stored, and no round is entered.
#[test]
fn far_round_timeouts_are_bounded() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let mut node = net.node(0);
    let ahead = Limits::default().max_round_ahead;
    let mut rejected = 0u64;
    for k in 0..10_000u64 {
        let round = 2 + k;
        match feed(
            &mut node,
            net.pk(1),
            Message::Timeout(net.timeout(1, round, &g)),
        ) {
            Ok(_) => assert!(round <= 1 + ahead, "round {round} accepted"),
            Err(e) => {
                assert_eq!(e, ConsensusError::RoundTooFarAhead { round, current: 1 });
                rejected += 1;
            }
        }
    }
    assert_eq!(rejected, 10_000 - ahead);
    assert_eq!(node.round(), 1);
    assert_eq!(node.pending_blocks(), (0, 0));
    // Still live: a valid proposal is voted on.
    let actions = feed(
        &mut node,
        net.pk(net.leader(1)),
        Message::Proposal(net.proposal(1, &g, None)),
    )
    .unwrap();
    assert_eq!(sent_votes(&actions).len(), 1);
}

// ---- hostile certificates ----------------------------------------------------------------------

/// The node entered round 3 through the genuine TC for round 2, whose signers reported a QC for
/// block 1. The leader of round 3 proposes a block on the genesis QC and attaches a *forged* TC
/// for round 2 claiming nobody knew anything above genesis. The vote rule must be checked
/// against a verified TC; voting here breaks rule 2.
#[test]
fn a_forged_tc_for_a_round_already_certified_does_not_justify_a_vote() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let (_, qcs) = net.chain(1);
    let mut node = net.node(0);
    let genuine = net.tc(2, &qcs[0], &[0, 1, 2]);
    let mut t = net.timeout(1, 3, &qcs[0]);
    t.last_tc = Some(genuine);
    feed(&mut node, net.pk(1), Message::Timeout(t)).unwrap();
    assert_eq!(node.round(), 3);

    let mut forged = net.tc(2, &g, &[0, 1, 2]);
    for s in &mut forged.sigs {
        s.signature = hotledger_crypto::Signature([7; 64]);
    }
    let p = net.proposal(3, &g, Some(forged));
    let result = feed(&mut node, net.pk(net.leader(3)), Message::Proposal(p));
    // (Node 0 leads round 4, so its vote is counted locally rather than sent.)
    assert_eq!(
        node.safety_data().unwrap().last_voted_round,
        0,
        "voted on a block justified only by a forged TC: {result:?}"
    );
}

// ---- the leader's payload follows its parent ------------------------------------------------

fn payload_requests(actions: &[Action]) -> Vec<(u64, hotledger_consensus::BlockInfo)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RequestPayload { round, parent } => Some((*round, *parent)),
            _ => None,
        })
        .collect()
}

fn proposals(actions: &[Action]) -> Vec<Proposal> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(Message::Proposal(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// A leader that entered its round on a TC asks for a payload on the TC's high QC block. The
/// previous round's votes, gathered late, raise the high QC within the round, so the proposal
/// will extend another block: the payload is asked for again on that block, and one built for
/// the old parent (which may repeat a transaction of the block in between) is not proposed.
#[test]
fn a_higher_qc_while_the_payload_is_built_asks_again_for_the_new_parent() {
    let net = Net::new(4);
    let leader = net.leader(3);
    let others: Vec<usize> = (0..4).filter(|&i| i != leader).collect();
    let mut node = net.node(leader);
    let (blocks, _) = net.chain(2);

    let entered = feed(&mut node, net.pk(others[0]), net.advance_msg(others[0], 3)).unwrap();
    assert_eq!(payload_requests(&entered), vec![(3, net.genesis)]);
    assert_eq!(node.round(), 3);

    // Round 2's votes reach its next leader late and certify block 2.
    let mut raised = Vec::new();
    for &i in &others {
        let vote = Message::Vote(net.vote(i, &blocks[1]));
        raised.extend(feed(&mut node, net.pk(i), vote).unwrap());
    }
    assert_eq!(node.round(), 3);
    assert_eq!(payload_requests(&raised), vec![(3, blocks[1].info())]);

    // The payload built for genesis arrives: not proposed, asked for again.
    let stale = node
        .handle(
            NOW,
            Event::PayloadReady {
                round: 3,
                parent: net.genesis.id,
                payload: b"chosen against genesis".to_vec(),
            },
        )
        .unwrap();
    assert!(proposals(&stale).is_empty(), "{stale:?}");
    assert_eq!(payload_requests(&stale), vec![(3, blocks[1].info())]);

    let ready = node
        .handle(
            NOW,
            Event::PayloadReady {
                round: 3,
                parent: blocks[1].id,
                payload: b"chosen against block 2".to_vec(),
            },
        )
        .unwrap();
    let sent = proposals(&ready);
    assert_eq!(sent.len(), 1, "{ready:?}");
    assert_eq!(sent[0].block.parent().id, blocks[1].id);
    assert_eq!(sent[0].block.payload, b"chosen against block 2".to_vec());
}
