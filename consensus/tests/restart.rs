//! A leader restarted in the round it proposed in sends that proposal again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Net, NOW};
use hotledger_consensus::{Action, Consensus, Event, Message, Proposal, Recovery, SafetyData};

/// The leader of round 1 proposes; returns its proposal and what it persisted.
fn propose(net: &Net, leader: usize) -> (Proposal, SafetyData, Vec<hotledger_consensus::Block>) {
    let (mut node, started) = net.start(net.config(leader));
    assert!(started
        .iter()
        .any(|a| matches!(a, Action::RequestPayload { round: 1, .. })));
    let actions = node
        .handle(
            NOW,
            Event::PayloadReady {
                round: 1,
                parent: net.genesis.id,
                payload: b"transfers".to_vec(),
            },
        )
        .unwrap();
    let mut proposal = None;
    let mut safety = None;
    let mut stored = Vec::new();
    for action in actions {
        match action {
            Action::Broadcast(Message::Proposal(p)) => proposal = Some(p),
            Action::PersistSafety(data) => safety = Some(data),
            Action::StoreUncommitted(block) => stored.push(block),
            _ => {}
        }
    }
    (proposal.unwrap(), safety.unwrap(), stored)
}

fn restart(
    net: &Net,
    leader: usize,
    safety: SafetyData,
    stored: Vec<hotledger_consensus::Block>,
) -> Vec<Action> {
    let config = net.config(leader);
    let recovery = Recovery {
        safety,
        uncommitted: stored,
        ..Recovery::genesis(&config)
    };
    let mut node = Consensus::new(config, recovery).unwrap();
    node.handle(NOW + 10, Event::Start).unwrap()
}

#[test]
fn a_restarted_leader_resends_its_proposal_instead_of_losing_the_round() {
    let net = Net::new(4);
    let leader = net.leader(1);
    let (proposal, safety, stored) = propose(&net, leader);
    assert_eq!(safety.last_proposed_round, 1);
    let actions = restart(&net, leader, safety, stored);
    let resent: Vec<&Proposal> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(Message::Proposal(p)) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(resent, vec![&proposal], "the same proposal, once");
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::RequestPayload { .. })),
        "asked for a payload it may not sign: {actions:?}"
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::PersistSafety(_))),
        "nothing is signed anew"
    );
}

#[test]
fn a_restarted_leader_without_its_block_asks_for_a_payload_and_resends_nothing() {
    let net = Net::new(4);
    let leader = net.leader(1);
    let (_, safety, _) = propose(&net, leader);
    let actions = restart(&net, leader, safety, Vec::new());
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::Broadcast(Message::Proposal(_)))));
}
