//! Table-driven rejection cases: a message a node must refuse with a given typed error, without
//! changing its state, after which a valid message must still get its vote.

use hotledger_consensus::{Block, ConsensusError, Message, Proposal, Round};

use super::{feed, Net};

/// One rejection: node `node` (after the `setup` messages, all accepted) gets `msg` and must
/// answer `want` without changing its round, blocks or safety data; then `then` (a valid message)
/// must make it vote in round `then_round`. By default node 0, no setup, and the round-1 proposal.
pub struct Case {
    name: &'static str,
    node: usize,
    setup: Vec<Message>,
    msg: Message,
    want: ConsensusError,
    then: Option<(Message, Round)>,
}

pub fn case(name: &'static str, msg: Message, want: ConsensusError) -> Case {
    Case {
        name,
        node: 0,
        setup: vec![],
        msg,
        want,
        then: None,
    }
}

impl Case {
    pub fn node(self, node: usize) -> Case {
        Case { node, ..self }
    }
    pub fn setup(self, setup: Vec<Message>) -> Case {
        Case { setup, ..self }
    }
    pub fn then(self, msg: Message, round: Round) -> Case {
        Case {
            then: Some((msg, round)),
            ..self
        }
    }
}

pub fn prop(p: Proposal) -> Message {
    Message::Proposal(p)
}

pub fn prop_of(block: Block) -> Message {
    Message::Proposal(Proposal { block, tc: None })
}

pub fn run(net: &Net, case: Case) {
    let name = case.name;
    let mut node = net.node(case.node);
    let peer = net.pk(if case.node == 1 { 3 } else { 1 });
    for m in case.setup {
        feed(&mut node, peer, m).unwrap_or_else(|e| panic!("{name}: setup rejected: {e}"));
    }
    let rejected = node.stats().rejected_messages;
    let before = (
        node.round(),
        node.pending_blocks(),
        node.safety_data().cloned(),
    );
    assert_eq!(feed(&mut node, peer, case.msg), Err(case.want), "{name}");
    assert_eq!(
        node.stats().rejected_messages,
        rejected + 1,
        "{name}: not counted"
    );
    let after = (
        node.round(),
        node.pending_blocks(),
        node.safety_data().cloned(),
    );
    assert_eq!(
        after, before,
        "{name}: the rejected message changed the node"
    );
    // The node is not corrupted: a valid message is processed and voted on.
    let (then, round) = case
        .then
        .unwrap_or_else(|| (prop(net.proposal(1, &net.genesis_qc(), None)), 1));
    let actions = feed(&mut node, peer, then)
        .unwrap_or_else(|e| panic!("{name}: valid follow-up rejected: {e}"));
    let last_vote = node.safety_data().and_then(|d| d.last_vote.clone());
    assert_eq!(
        last_vote.map(|v| v.round()),
        Some(round),
        "{name}: no vote after the follow-up; actions {actions:#?}"
    );
}
