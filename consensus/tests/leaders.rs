//! Leader reputation through the public API: a restarted node chooses its leaders from the
//! committed history it is given, and a proposal from an author this node does not take for the
//! leader is not voted on, though its certificates still move the node on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{feed, sent_votes, Net, NOW};
use hotledger_consensus::{
    Action, Block, Consensus, ConsensusError, Event, Message, Proposal, QuorumCert, Recovery,
    SafetyData,
};

/// Blocks in rounds 1..=n authored in turn by validators 0, 1 and 2, each certified by them:
/// validator 3 takes part in none.
fn chain_without_3(net: &Net, n: u64) -> (Vec<Block>, Vec<QuorumCert>) {
    let mut blocks: Vec<Block> = Vec::new();
    let mut qcs: Vec<QuorumCert> = Vec::new();
    for r in 1..=n {
        let qc = qcs.last().cloned().unwrap_or_else(|| net.genesis_qc());
        let b = net.block_by((r % 3) as usize, r, &qc, format!("block {r}").as_bytes());
        qcs.push(net.qc(&b, &[0, 1, 2]));
        blocks.push(b);
    }
    (blocks, qcs)
}

fn restarted(net: &Net, root: &Block, root_qc: &QuorumCert, history: Vec<Block>) -> Consensus {
    let recovery = Recovery {
        safety: SafetyData::default(),
        root: root.info(),
        root_qc: root_qc.clone(),
        uncommitted: Vec::new(),
        history,
    };
    Consensus::new(net.config(0), recovery).unwrap()
}

#[test]
fn a_restarted_node_chooses_leaders_from_its_history() {
    let net = Net::new(4);
    let (blocks, qcs) = chain_without_3(&net, 300);
    let (root, root_qc) = (&blocks[299], &qcs[299]);
    let keep = net.config(0).history_blocks() as usize;
    assert!(keep < blocks.len());
    let with_all = restarted(&net, root, root_qc, blocks.clone());
    let with_kept = restarted(&net, root, root_qc, blocks[blocks.len() - keep..].to_vec());
    let without = restarted(&net, root, root_qc, Vec::new());
    let three = net.pk(3);
    for r in 301..=380 {
        assert_ne!(
            with_kept.leader(r),
            three,
            "round {r}: a validator absent from history"
        );
        assert_eq!(with_kept.leader(r), with_all.leader(r), "round {r}");
        assert_eq!(
            with_kept.leader_candidates(r),
            vec![net.pk(0), net.pk(1), net.pk(2)]
        );
        // Without history: the weighted round-robin, every validator a candidate.
        assert_eq!(without.leader(r), net.set.leader(r), "round {r}");
        assert_eq!(without.leader_candidates(r).len(), 4);
    }
}

#[test]
fn recovery_history_must_end_at_the_root() {
    let net = Net::new(4);
    let (blocks, qcs) = chain_without_3(&net, 10);
    let try_with = |history: Vec<Block>| {
        let recovery = Recovery {
            safety: SafetyData::default(),
            root: blocks[9].info(),
            root_qc: qcs[9].clone(),
            uncommitted: Vec::new(),
            history,
        };
        Consensus::new(net.config(0), recovery).map(|_| ())
    };
    let refused = Err(ConsensusError::InvalidConfig(
        "recovery history is not a chain of committed blocks ending at the root".into(),
    ));
    let table: Vec<(&str, Vec<Block>, Result<(), ConsensusError>)> = vec![
        ("the whole chain", blocks.clone(), Ok(())),
        ("its last three", blocks[7..].to_vec(), Ok(())),
        ("none", Vec::new(), Ok(())),
        (
            "stops below the root",
            blocks[..9].to_vec(),
            refused.clone(),
        ),
        (
            "has a gap",
            [&blocks[..4], &blocks[5..]].concat(),
            refused.clone(),
        ),
    ];
    for (name, history, want) in table {
        assert_eq!(try_with(history), want, "{name}");
    }
}

#[test]
fn a_proposal_from_another_leader_still_moves_the_node_on() {
    let net = Net::new(4);
    let g = net.genesis_qc();
    let b1 = net.block(1, &g, b"b1");
    let qc1 = net.qc(&b1, &[0, 1, 2]);
    let intruder = (0..4).find(|&i| i != net.leader(2) && i != 0).unwrap();
    let b2 = net.block_by(intruder, 2, &qc1, b"b2");
    let mut node = net.node(0);
    let p = Message::Proposal(Proposal {
        block: b2.clone(),
        tc: None,
    });
    let actions = feed(&mut node, net.pk(intruder), p.clone()).unwrap();
    assert_eq!(
        node.round(),
        2,
        "the QC of round 1 took the node to round 2"
    );
    assert_eq!(node.high_qc(), &qc1);
    assert!(
        sent_votes(&actions).is_empty(),
        "voted for a non-leader's block"
    );
    assert!(node.block(&b2.id).is_none(), "kept a non-leader's block");
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Send { to, message: Message::BlockRequest(r) } if *to == net.pk(intruder) && r.id == b1.id)),
        "the certified block is not fetched: {actions:#?}"
    );
    // The same proposal again brings nothing new: refused.
    assert_eq!(
        feed(&mut node, net.pk(intruder), p),
        Err(ConsensusError::NotLeader {
            round: 2,
            author: net.pk(intruder),
            expected: net.pk(net.leader(2)),
        })
    );
    // The real leader's proposal of round 2 is voted on.
    let real = net.proposal(2, &qc1, None);
    node.handle(
        NOW,
        Event::Message {
            from: net.pk(net.leader(1)),
            message: Message::Proposal(Proposal {
                block: b1,
                tc: None,
            }),
        },
    )
    .unwrap();
    feed(&mut node, net.pk(net.leader(2)), Message::Proposal(real)).unwrap();
    let voted = node.safety_data().and_then(|d| d.last_vote.clone());
    assert_eq!(voted.map(|v| v.round()), Some(2));
}

#[test]
fn a_block_naming_other_failed_leaders_is_not_voted_for() {
    // Round 1 is certified, round 2 times out, round 3's leader extends round 1's QC with the
    // TC of round 2: its block must name round 2's leader as failed.
    let net = Net::new(4);
    let g = net.genesis_qc();
    let b1 = net.block(1, &g, b"b1");
    let qc1 = net.qc(&b1, &[0, 1, 2]);
    let tc2 = net.tc(2, &qc1, &[0, 1, 2]);
    let leader3 = net.leader(3);
    let right = net.failed_leaders(&qc1, 3);
    assert_eq!(right, vec![net.pk(net.leader(2))]);
    let me = (0..4).find(|&i| i != leader3).unwrap();
    let mut node = net.node(me);
    let p1 = Message::Proposal(Proposal {
        block: b1,
        tc: None,
    });
    feed(&mut node, net.pk(net.leader(1)), p1).unwrap();
    let proposal = |failed: &[hotledger_crypto::PublicKey]| {
        let block =
            Net::make_block_failed(&net.keys[leader3], common::CHAIN, 3, 2, &qc1, failed, b"b3");
        Message::Proposal(Proposal {
            block,
            tc: Some(tc2.clone()),
        })
    };
    let other = vec![net.pk(leader3)];
    for (name, failed) in [("none named", Vec::new()), ("another named", other)] {
        let p = proposal(&failed);
        let first = feed(&mut node, net.pk(leader3), p.clone());
        // The first copy's TC moves the node to round 3; nothing is voted for.
        assert!(matches!(
            first,
            Ok(_) | Err(ConsensusError::WrongFailedLeaders { .. })
        ));
        assert_eq!(node.round(), 3, "{name}");
        assert_eq!(
            feed(&mut node, net.pk(leader3), p),
            Err(ConsensusError::WrongFailedLeaders {
                round: 3,
                got: failed.clone(),
                expected: right.clone(),
            }),
            "{name}"
        );
        let voted = node.safety_data().and_then(|d| d.last_vote.clone());
        assert_eq!(
            voted.map(|v| v.round()),
            Some(1),
            "{name}: voted in round 3"
        );
    }
    feed(&mut node, net.pk(leader3), proposal(&right)).unwrap();
    let voted = node.safety_data().and_then(|d| d.last_vote.clone());
    assert_eq!(
        voted.map(|v| v.round()),
        Some(3),
        "the block naming round 2's leader is voted for"
    );
}
