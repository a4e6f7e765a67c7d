//! Table-driven rejection cases: a message a node must refuse with a given typed error, without
//! changing its state, after which a valid message must still get its vote.

use hotledger_consensus::{
    Action, Block, Consensus, ConsensusError, Event, Message, PayloadError, Proposal, Round,
};
use hotledger_crypto::{Digest, PublicKey};

use super::{feed, Net, NOW};

/// One rejection: node `node` (after the `setup` messages, all accepted) gets `msg` and must
/// answer `want` without changing its round, blocks or safety data; then `then` (a valid message)
/// must make it vote in round `then_round`. By default node 0, no setup, and the round-1 proposal.
///
/// With `checking`, the node runs with `Config::check_payloads`: every `CheckPayload` of the
/// setup and the follow-up is answered `Ok`. With `refuse`, `msg` must instead yield exactly one
/// `CheckPayload`, and answering it with the given error must return `want`.
#[derive(Clone)]
pub struct Case {
    name: &'static str,
    node: usize,
    setup: Vec<Message>,
    msg: Message,
    want: ConsensusError,
    then: Option<(Message, Round)>,
    checking: bool,
    refuse: Option<PayloadError>,
}

pub fn case(name: &'static str, msg: Message, want: ConsensusError) -> Case {
    Case {
        name,
        node: 0,
        setup: vec![],
        msg,
        want,
        then: None,
        checking: false,
        refuse: None,
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
    /// The same case on a node that checks payloads (the message is refused before its check).
    pub fn checking(self) -> Case {
        Case {
            checking: true,
            ..self
        }
    }
    /// `msg` passes the protocol's checks; the application refuses its payload with `error`.
    pub fn refuse(self, error: PayloadError) -> Case {
        Case {
            checking: true,
            refuse: Some(error),
            ..self
        }
    }
}

/// Feeds `message`, then answers every `CheckPayload` it yields with `Ok`; all actions, in order.
pub fn feed_checked(
    node: &mut Consensus,
    from: PublicKey,
    message: Message,
) -> Result<Vec<Action>, ConsensusError> {
    let mut actions = feed(node, from, message)?;
    let mut i = 0;
    while i < actions.len() {
        if let Action::CheckPayload { block, .. } = &actions[i] {
            let event = Event::PayloadChecked {
                id: block.id,
                result: Ok(()),
            };
            let more = node.handle(NOW, event)?;
            actions.extend(more);
        }
        i += 1;
    }
    Ok(actions)
}

/// For a refused payload: feeds `msg`, which must be parked (its certificates processed) with
/// exactly one `CheckPayload` from `peer`; returns the parked block's id.
fn park_step(node: &mut Consensus, peer: PublicKey, msg: Message, name: &str) -> Digest {
    let actions = feed(node, peer, msg).unwrap_or_else(|e| panic!("{name}: not parked: {e}"));
    let checks: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::CheckPayload { from, block, .. } => Some((*from, block.id)),
            _ => None,
        })
        .collect();
    let [(from, id)] = checks.as_slice() else {
        panic!("{name}: want one CheckPayload, got {actions:#?}");
    };
    assert_eq!(*from, peer, "{name}");
    *id
}

pub fn prop(p: Proposal) -> Message {
    Message::Proposal(p)
}

pub fn prop_of(block: Block) -> Message {
    Message::Proposal(Proposal { block, tc: None })
}

pub fn run(net: &Net, case: Case) {
    let name = case.name;
    let mut config = net.config(case.node);
    config.check_payloads = case.checking;
    let mut node = net.start(config).0;
    let peer = net.pk(if case.node == 1 { 3 } else { 1 });
    for m in case.setup {
        feed_checked(&mut node, peer, m).unwrap_or_else(|e| panic!("{name}: setup rejected: {e}"));
    }
    // A refused payload's proposal is parked first: its certificates count whatever the
    // verdict, and the refusal must change nothing after them.
    let refusal = case
        .refuse
        .map(|error| (park_step(&mut node, peer, case.msg.clone(), name), error));
    let rejected = node.stats().rejected_messages;
    let before = (
        node.round(),
        node.pending_blocks(),
        node.safety_data().cloned(),
    );
    let result = match refusal {
        Some((id, error)) => node.handle(
            NOW,
            Event::PayloadChecked {
                id,
                result: Err(error),
            },
        ),
        None => feed(&mut node, peer, case.msg),
    };
    assert_eq!(result, Err(case.want), "{name}");
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
    let actions = feed_checked(&mut node, peer, then)
        .unwrap_or_else(|e| panic!("{name}: valid follow-up rejected: {e}"));
    let last_vote = node.safety_data().and_then(|d| d.last_vote.clone());
    assert_eq!(
        last_vote.map(|v| v.round()),
        Some(round),
        "{name}: no vote after the follow-up; actions {actions:#?}"
    );
}
