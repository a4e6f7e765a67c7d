//! Leaders the host reports unreachable: their rounds are timed out at once, and so is a round
//! whose vote would go to one, but only while at most one round has failed in a row.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{feed, Net, NOW};
use hotledger_consensus::{Action, Consensus, Event, Message, Proposal};
use hotledger_crypto::PublicKey;

fn immediate_timeout(actions: &[Action], round: u64) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::ScheduleTimeout { round: r, after_ms: 0 } if *r == round))
}

fn unreachable(node: &mut Consensus, keys: Vec<PublicKey>) -> Vec<Action> {
    node.handle(NOW, Event::Unreachable { validators: keys })
        .unwrap()
}

#[test]
fn the_round_of_an_unreachable_leader_is_timed_out_at_once() {
    let net = Net::new(4);
    let leader1 = net.leader(1);
    let me = (0..4).find(|&i| i != leader1).unwrap();
    let mut node = net.node(me);
    assert_eq!(node.round(), 1);
    // A key outside the set changes nothing; the leader's does.
    let outsider = common::outsider().public();
    assert!(!immediate_timeout(
        &unreachable(&mut node, vec![outsider]),
        1
    ));
    let actions = unreachable(&mut node, vec![net.pk(leader1)]);
    assert!(immediate_timeout(&actions, 1), "{actions:#?}");
    let fired = node.handle(NOW, Event::TimeoutFired { round: 1 }).unwrap();
    assert!(
        fired
            .iter()
            .any(|a| matches!(a, Action::Broadcast(Message::Timeout(t)) if t.round == 1)),
        "{fired:#?}"
    );
    // Timed out already: reporting it again does not time the round out twice.
    assert!(!immediate_timeout(
        &unreachable(&mut node, vec![net.pk(leader1)]),
        1
    ));
    // The leader itself does not skip its own round.
    let mut leader = net.node(leader1);
    assert!(!immediate_timeout(
        &unreachable(&mut leader, vec![net.pk(leader1)]),
        1
    ));
}

#[test]
fn votes_for_an_unreachable_next_leader_are_gathered_by_everyone() {
    let net = Net::new(4);
    let (leader1, leader2) = (net.leader(1), net.leader(2));
    let others: Vec<usize> = (0..4).filter(|&i| i != leader1 && i != leader2).collect();
    let me = others[0];
    let mut node = net.node(me);
    let p = net.proposal(1, &net.genesis_qc(), None);
    // A vote for round 1 goes to round 2's leader; this node is not it.
    let vote_of = |i: usize| {
        let mut n = net.node(i);
        let actions = feed(&mut n, net.pk(leader1), Message::Proposal(p.clone())).unwrap();
        common::sent_votes(&actions)[0].1.clone()
    };
    // A vote broadcast by a node that learnt of the unreachable leader first is taken in.
    let early = vote_of(others[1]);
    feed(&mut node, net.pk(others[1]), Message::Vote(early)).unwrap();
    unreachable(&mut node, vec![net.pk(leader2)]);
    let actions = feed(&mut node, net.pk(leader1), Message::Proposal(p.clone())).unwrap();
    assert!(
        common::sent_votes(&actions).is_empty(),
        "sent to the unreachable leader"
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Broadcast(Message::Vote(v)) if v.round() == 1)),
        "{actions:#?}"
    );
    // The others' votes are taken now; with two more the QC forms and the node moves on.
    for i in [others[1], leader1] {
        feed(&mut node, net.pk(i), Message::Vote(vote_of(i))).unwrap();
    }
    assert_eq!(node.high_qc().round(), 1);
    assert_eq!(node.round(), 2);
    // A node that voted before its next leader became unreachable broadcasts that vote, and
    // counts it: with two others' the QC forms there too.
    let mut late = net.node(others[1]);
    feed(&mut late, net.pk(leader1), Message::Proposal(p.clone())).unwrap();
    let actions = unreachable(&mut late, vec![net.pk(leader2)]);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Broadcast(Message::Vote(v)) if v.round() == 1)),
        "{actions:#?}"
    );
    for i in [me, leader1] {
        feed(&mut late, net.pk(i), Message::Vote(vote_of(i))).unwrap();
    }
    assert_eq!(late.high_qc().round(), 1);
}

#[test]
fn an_isolated_node_times_out_but_stays_in_its_round() {
    // Rounds 1 and 2 failed (a TC of round 2 over the genesis QC takes the node to round 3).
    // Every other validator is unreachable: round 3 is timed out at once, and the node stays in
    // it (only a TC moves it on), its timer backed off as usual.
    let net = Net::new(4);
    let g = net.genesis_qc();
    let leader3 = net.leader(3);
    let me = (0..4).find(|&i| i != leader3).unwrap();
    let intruder = (0..4).find(|&i| i != leader3 && i != me).unwrap();
    let mut node = net.node(me);
    let others: Vec<PublicKey> = (0..4).filter(|&i| i != me).map(|i| net.pk(i)).collect();
    unreachable(&mut node, others);
    let tc2 = net.tc(2, &g, &[0, 1, 2]);
    let p = Proposal {
        block: net.block_by(intruder, 3, &g, b"x"),
        tc: Some(tc2),
    };
    let actions = feed(&mut node, net.pk(intruder), Message::Proposal(p)).unwrap();
    assert_eq!(node.round(), 3);
    assert!(immediate_timeout(&actions, 3), "{actions:#?}");
    let fired = node.handle(NOW, Event::TimeoutFired { round: 3 }).unwrap();
    assert_eq!(node.round(), 3, "left the round without a TC");
    let timers: Vec<u64> = fired
        .iter()
        .filter_map(|a| match a {
            Action::ScheduleTimeout { round: 3, after_ms } => Some(*after_ms),
            _ => None,
        })
        .collect();
    assert_eq!(timers, vec![2_000], "the backed-off timer of round 3");
    // Timed out already: no second immediate timeout.
    let again = node.handle(NOW, Event::TimeoutFired { round: 3 }).unwrap();
    assert!(!immediate_timeout(&again, 3));
}

#[test]
fn with_its_leader_unreachable_one_timeout_is_joined() {
    let net = Net::new(4);
    let leader1 = net.leader(1);
    let others: Vec<usize> = (0..4).filter(|&i| i != leader1).collect();
    let (me, first) = (others[0], others[1]);
    // Without the leader unreachable, one timeout (below f+1) is not joined.
    let mut node = net.node(me);
    let t = net.timeout(first, 1, &net.genesis_qc());
    let actions = feed(&mut node, net.pk(first), Message::Timeout(t.clone())).unwrap();
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::Broadcast(Message::Timeout(_)))));
    // This node voted for the leader's block, then the leader became unreachable: the first
    // timeout of the round makes it time out too, its vote in the timeout.
    let mut node = net.node(me);
    let p = net.proposal(1, &net.genesis_qc(), None);
    feed(&mut node, net.pk(leader1), Message::Proposal(p)).unwrap();
    node.handle(
        NOW,
        Event::Unreachable {
            validators: vec![net.pk(leader1)],
        },
    )
    .unwrap();
    let actions = feed(&mut node, net.pk(first), Message::Timeout(t)).unwrap();
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Broadcast(Message::Timeout(t)) if t.round == 1 && t.vote.is_some())),
        "{actions:#?}"
    );
}

/// What `actions` send to `to`, by kind and round.
fn sent_to(actions: &[Action], to: PublicKey) -> Vec<(&'static str, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to: t, message } if *t == to => Some(message),
            _ => None,
        })
        .map(|m| match m {
            Message::Proposal(p) => ("proposal", p.block.round),
            Message::Timeout(t) => ("timeout", t.round),
            Message::Vote(v) => ("vote", v.round()),
            other => (other.kind(), 0),
        })
        .collect()
}

/// A validator reachable again (a partition healed) gets what it missed of the current round,
/// at once rather than when a backed-off timer fires: the timeout this node signed, the
/// proposal if this node leads the round, the vote if the returned validator gathers it.
/// Nothing is signed anew (no `PersistSafety`), and a validator still cut off gets nothing.
#[test]
fn validators_reachable_again_get_the_rounds_messages_again() {
    let net = Net::new(4);

    // A timeout of round 1, sent while `x` was cut off.
    let leader1 = net.leader(1);
    let me = (0..4).find(|&i| i != leader1).unwrap();
    let x = (0..4).find(|&i| i != leader1 && i != me).unwrap();
    let mut node = net.node(me);
    let keys = vec![net.pk(x), net.pk(leader1)];
    unreachable(&mut node, keys);
    node.handle(NOW, Event::TimeoutFired { round: 1 }).unwrap();
    let back = unreachable(&mut node, vec![net.pk(leader1)]);
    assert_eq!(sent_to(&back, net.pk(x)), vec![("timeout", 1)], "{back:#?}");
    assert!(sent_to(&back, net.pk(leader1)).is_empty());
    assert!(!back.iter().any(|a| matches!(a, Action::PersistSafety(_))));

    // The leader's proposal (and its vote, for the next leader when that is `x`).
    let mut leader = net.node(leader1);
    let made = leader
        .handle(
            NOW,
            Event::PayloadReady {
                round: 1,
                parent: net.genesis.id,
                payload: b"p".to_vec(),
            },
        )
        .unwrap();
    assert!(made.iter().any(|a| matches!(a, Action::Broadcast(_))));
    let x = net.leader(2);
    let x = if x == leader1 { (leader1 + 1) % 4 } else { x };
    unreachable(&mut leader, vec![net.pk(x)]);
    let back = unreachable(&mut leader, vec![]);
    let mut want = vec![("proposal", 1)];
    if x == net.leader(2) {
        want.push(("vote", 1));
    }
    assert_eq!(sent_to(&back, net.pk(x)), want, "{back:#?}");

    // Nothing of an earlier round: a node that has moved on re-sends nothing stale.
    let mut fresh = net.node(me);
    let moved = feed(&mut fresh, net.pk(x), net.advance_msg(x, 3)).unwrap();
    assert_eq!(fresh.round(), 3, "{moved:#?}");
    unreachable(&mut fresh, vec![net.pk(x)]);
    assert!(sent_to(&unreachable(&mut fresh, vec![]), net.pk(x)).is_empty());
}
