//! Test-only misbehaviour (feature `fault-injection`, which release builds of `hotledger` do
//! not enable; the chaos harness's builds do). A `[fault_injection]` section in config.toml
//! makes this validator misbehave on purpose, so fault tests can show that honest validators
//! survive it and that the checkers notice it. A build without the feature refuses the section
//! (unknown field).
//!
//! Modes (`fault_injection.mode`):
//! - `double-sign`: every vote it sends goes out with a second vote for another block in the
//!   same round (a block nobody proposed). Harmless to the others, but a double signature: the
//!   negative control of the chaos checker.
//! - `equivocate`: as leader, it sends half of the validators its proposal and the other half a
//!   second, validly signed proposal for the same round (its block a millisecond later).
//! - `stale-flood`: with every message it sends, it broadcasts again up to
//!   [`STALE_PER_MESSAGE`] of its older proposals (rounds long gone).
//! - `malformed-frames`: with every message it sends, each validator also gets a frame of
//!   random bytes, and every [`OVERSIZED_EVERY`]th time one larger than the frame limit.
//! - `tampered-sync`: it behaves in consensus, but every block-sync response and snapshot
//!   chunk it serves is altered on the way out ([`tamper_sync`]), so a syncing node must refuse
//!   them, strike it and finish from the others.

use std::collections::VecDeque;
use std::sync::Arc;

use hotledger_consensus::{proposal_signing_bytes, Block, Message, Proposal, Vote, VoteData};
use hotledger_crypto::{Digest, Domain, KeyPair, PublicKey};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::host::sync::SyncMessage;
use crate::host::Outgoing;
use crate::network::NetCommand;

/// Older proposals re-broadcast with each message in `stale-flood`.
pub const STALE_PER_MESSAGE: usize = 8;
/// Own proposals kept for `stale-flood`.
const STALE_KEPT: usize = 64;
/// One oversized frame per this many messages in `malformed-frames`.
pub const OVERSIZED_EVERY: u64 = 64;
/// Largest random frame in `malformed-frames`.
const GARBAGE_MAX: usize = 4096;

/// How this validator misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultMode {
    DoubleSign,
    Equivocate,
    StaleFlood,
    MalformedFrames,
    TamperedSync,
}

/// `[fault_injection]` in config.toml.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultInjectionConfig {
    /// Unset: behave.
    pub mode: Option<FaultMode>,
}

impl FaultInjectionConfig {
    /// Nothing switched on (the section is then left out of a written config.toml).
    pub fn is_off(&self) -> bool {
        self.mode.is_none()
    }
}

/// Alters a sync answer as `tampered-sync` serves it: the first block of a response gets a byte
/// more of payload (its id no longer matches its contents), the first account of a snapshot
/// chunk a different value (the chunk no longer proves against the snapshot's root). "None"
/// answers are left as they are.
pub fn tamper_sync(message: &mut SyncMessage) {
    match message {
        SyncMessage::Response { blocks, .. } => {
            if let Some(first) = blocks.first_mut() {
                first.payload.push(0);
            }
        }
        SyncMessage::Chunk {
            chunk: Some(chunk), ..
        } => {
            if let Some(byte) = chunk
                .leaves
                .first_mut()
                .and_then(|(_, value)| value.first_mut())
            {
                *byte = byte.wrapping_add(1);
            }
        }
        _ => {}
    }
}

/// What a misbehaving validator sends instead of, or besides, what it should.
#[derive(Debug, Default)]
pub struct Rewritten {
    /// Messages to send (and log as signed), in order.
    pub messages: Vec<Outgoing>,
    /// Raw frames, sent as they are.
    pub frames: Vec<NetCommand>,
}

/// Rewrites outgoing messages per the mode.
#[derive(Debug)]
pub struct Injector {
    mode: FaultMode,
    key: KeyPair,
    chain_id: String,
    /// The other validators.
    peers: Vec<PublicKey>,
    max_frame: usize,
    stale: VecDeque<Proposal>,
    sent: u64,
    rng: rand::rngs::StdRng,
}

impl Injector {
    pub fn new(
        mode: FaultMode,
        key: KeyPair,
        chain_id: String,
        peers: Vec<PublicKey>,
        max_frame: usize,
    ) -> Injector {
        Injector {
            mode,
            key,
            chain_id,
            peers,
            max_frame,
            stale: VecDeque::new(),
            sent: 0,
            rng: rand::rngs::StdRng::from_entropy(),
        }
    }

    pub fn mode(&self) -> FaultMode {
        self.mode
    }

    /// What to send in place of `outgoing`.
    pub fn rewrite(&mut self, outgoing: Outgoing) -> Rewritten {
        self.sent += 1;
        let mut out = Rewritten::default();
        match self.mode {
            FaultMode::DoubleSign => {
                let second = match &outgoing {
                    Outgoing::Send {
                        to,
                        message: Message::Vote(v),
                    } if v.author == self.key.public() => Some(Outgoing::Send {
                        to: *to,
                        message: Message::Vote(self.other_vote(v)),
                    }),
                    Outgoing::Broadcast(Message::Vote(v)) if v.author == self.key.public() => {
                        Some(Outgoing::Broadcast(Message::Vote(self.other_vote(v))))
                    }
                    _ => None,
                };
                out.messages.push(outgoing);
                out.messages.extend(second);
            }
            FaultMode::Equivocate => match outgoing {
                Outgoing::Broadcast(Message::Proposal(p))
                    if p.block.author == self.key.public() =>
                {
                    let twin = Proposal {
                        block: self.twin_block(&p.block),
                        tc: p.tc.clone(),
                    };
                    let half = self.peers.len() / 2;
                    for (i, to) in self.peers.iter().enumerate() {
                        let message = if i < half {
                            Message::Proposal(p.clone())
                        } else {
                            Message::Proposal(twin.clone())
                        };
                        out.messages.push(Outgoing::Send { to: *to, message });
                    }
                }
                other => out.messages.push(other),
            },
            FaultMode::StaleFlood => {
                if let Outgoing::Broadcast(Message::Proposal(p)) = &outgoing {
                    if p.block.author == self.key.public() {
                        if self.stale.len() == STALE_KEPT {
                            self.stale.pop_front();
                        }
                        self.stale.push_back(p.clone());
                    }
                }
                out.messages.push(outgoing);
                // The newest is the current round's; the rest are gone.
                let old = self.stale.len().saturating_sub(1);
                for p in self.stale.iter().take(old.min(STALE_PER_MESSAGE)) {
                    out.messages
                        .push(Outgoing::Broadcast(Message::Proposal(p.clone())));
                }
            }
            // Its consensus messages are honest; what it serves is altered in `tamper_sync`.
            FaultMode::TamperedSync => out.messages.push(outgoing),
            FaultMode::MalformedFrames => {
                out.messages.push(outgoing);
                for to in self.peers.clone() {
                    let len = self.rng.gen_range(1..=GARBAGE_MAX);
                    let bytes: Vec<u8> = (0..len).map(|_| self.rng.gen()).collect();
                    out.frames.push(NetCommand::Send {
                        to,
                        bytes: Arc::new(bytes),
                    });
                }
                if self.sent.is_multiple_of(OVERSIZED_EVERY) {
                    let bytes = Arc::new(vec![0u8; self.max_frame.saturating_add(1)]);
                    for to in &self.peers {
                        out.frames.push(NetCommand::Send {
                            to: *to,
                            bytes: bytes.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// A vote in `v`'s round for a block nobody proposed.
    fn other_vote(&self, v: &Vote) -> Vote {
        let mut data: VoteData = v.data;
        data.block.id = Digest::of(v.data.block.id.as_bytes());
        let signature = self
            .key
            .sign(Domain::Vote, &self.chain_id, &data.signing_bytes());
        Vote {
            data,
            author: v.author,
            signature,
        }
    }

    /// `block` a millisecond later: another valid block of the same round, validly signed.
    fn twin_block(&self, block: &Block) -> Block {
        let mut twin = block.clone();
        twin.timestamp_ms = twin.timestamp_ms.saturating_add(1);
        twin.id = twin.recompute_id();
        twin.signature = self.key.sign(
            Domain::Proposal,
            &self.chain_id,
            &proposal_signing_bytes(twin.round, twin.height, &twin.id),
        );
        twin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotledger_consensus::BlockInfo;

    fn info(id: u8, round: u64) -> BlockInfo {
        BlockInfo {
            id: Digest::of(&[id]),
            round,
            height: round,
            timestamp_ms: 1_000 * round,
        }
    }

    #[test]
    fn double_sign_sends_a_second_signed_vote_for_another_block_of_the_round() {
        let key = KeyPair::from_seed([9; 32]);
        let peer = KeyPair::from_seed([8; 32]).public();
        let mut inj = Injector::new(
            FaultMode::DoubleSign,
            key.clone(),
            "chain".into(),
            vec![peer],
            1 << 20,
        );
        let data = VoteData {
            block: info(2, 5),
            parent: info(1, 4),
        };
        let vote = Vote {
            data,
            author: key.public(),
            signature: key.sign(Domain::Vote, "chain", &data.signing_bytes()),
        };
        let out = inj.rewrite(Outgoing::Send {
            to: peer,
            message: Message::Vote(vote.clone()),
        });
        assert!(out.frames.is_empty());
        let votes: Vec<Vote> = out
            .messages
            .into_iter()
            .map(|m| match m {
                Outgoing::Send {
                    message: Message::Vote(v),
                    to,
                } if to == peer => v,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(votes.len(), 2);
        assert_eq!(votes[0], vote);
        assert_eq!(votes[1].round(), 5);
        assert_ne!(votes[1].data.block.id, vote.data.block.id);
        assert!(key
            .public()
            .verify(
                Domain::Vote,
                "chain",
                &votes[1].data.signing_bytes(),
                &votes[1].signature
            )
            .is_ok());
        // What another validator signed passes through alone.
        let mut theirs = vote.clone();
        theirs.author = peer;
        let out = inj.rewrite(Outgoing::Broadcast(Message::Vote(theirs)));
        assert_eq!(out.messages.len(), 1);
    }

    #[test]
    fn malformed_frames_go_to_every_peer_and_some_are_oversized() {
        let key = KeyPair::from_seed([9; 32]);
        let peers = vec![
            KeyPair::from_seed([7; 32]).public(),
            KeyPair::from_seed([8; 32]).public(),
        ];
        let mut inj = Injector::new(
            FaultMode::MalformedFrames,
            key,
            "chain".into(),
            peers.clone(),
            1 << 16,
        );
        let mut oversized = 0;
        for _ in 0..OVERSIZED_EVERY {
            let out = inj.rewrite(Outgoing::Broadcast(Message::BlockRequest(
                hotledger_consensus::BlockRequest {
                    id: Digest::of(b"x"),
                    count: 1,
                },
            )));
            assert_eq!(out.messages.len(), 1);
            for f in &out.frames {
                let NetCommand::Send { bytes, .. } = f else {
                    panic!("a frame not addressed to one peer");
                };
                if bytes.len() > 1 << 16 {
                    oversized += 1;
                }
            }
        }
        assert_eq!(oversized, peers.len());
    }
}
