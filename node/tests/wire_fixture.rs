//! Golden fixtures for the wire frame: the SHA-256 of the encoding of fixed frames is pinned, so
//! any change to the wire format (postcard layout, a field, a variant's order, a signing change
//! that alters a signature) fails here and has to be made on purpose.
//!
//! Every input is fixed: keys come from constant seeds, the chain id is constant, and ed25519
//! signatures are deterministic. If a test fails after a deliberate wire-format change, check
//! that the change is intended (old nodes cannot decode the new frames), then replace the pinned
//! hash with the one the failure prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hotledger_consensus::{BlockInfo, BlockRequest, Message, Vote, VoteData};
use hotledger_crypto::{Digest, Domain, KeyPair};
use hotledger_ledger::{SignedTransaction, Transfer};
use hotledger_node::wire::WireMessage;
use hotledger_node::NodeError;

const CHAIN_ID: &str = "hotledger-wire-fixture";

/// SHA-256 of [`transactions_frame`]'s encoding.
const TRANSACTIONS_SHA256: &str =
    "75d637a37b9338d2bf193da7aaa5e94e1d673bbcdda3fa3db7326c256e192fc7";
/// SHA-256 of [`vote_frame`]'s encoding.
const VOTE_SHA256: &str = "96e33d6fc388317f516538ecd140701b741a94992f0d158bef8f7ed12eeded05";
/// SHA-256 of [`block_request_frame`]'s encoding.
const BLOCK_REQUEST_SHA256: &str =
    "01995bcac54d9ea9dd9aa02e2eb818b8fc4fcc6b7b926f781a6f38e9b74ae22f";

fn key(seed: u8) -> KeyPair {
    KeyPair::from_seed([seed; 32])
}

/// Three transfers between accounts of seeds 1, 2 and 3, with small and large amounts and
/// nonces (postcard varints change length at 128 and beyond `u32`).
fn transactions_frame() -> WireMessage {
    let (a, b, c) = (key(1), key(2), key(3));
    let transfer = |from: &KeyPair, to: &KeyPair, amount: u64, nonce: u64| -> SignedTransaction {
        Transfer {
            from: from.public(),
            to: to.public(),
            amount,
            nonce,
        }
        .sign(from, CHAIN_ID)
    };
    WireMessage::Transactions(vec![
        transfer(&a, &b, 1, 0),
        transfer(&b, &c, 1_000_000_000, 127),
        transfer(&c, &a, u64::MAX, 1 << 40),
    ])
}

fn block_info(tag: &[u8], round: u64, height: u64) -> BlockInfo {
    BlockInfo {
        id: Digest::of(tag),
        round,
        height,
        timestamp_ms: 1_796_169_600_000 + round,
    }
}

/// A vote of the validator of seed 7 for a block at round 12 extending one at round 11.
fn vote_frame() -> WireMessage {
    let voter = key(7);
    let data = VoteData {
        block: block_info(b"block 12", 12, 9),
        parent: block_info(b"block 11", 11, 8),
    };
    let signature = voter.sign(Domain::Vote, CHAIN_ID, &data.signing_bytes());
    WireMessage::Consensus(Message::Vote(Vote {
        data,
        author: voter.public(),
        signature,
    }))
}

fn block_request_frame() -> WireMessage {
    WireMessage::Consensus(Message::BlockRequest(BlockRequest {
        id: Digest::of(b"block 12"),
        count: 300,
    }))
}

/// Encodes `frame`, checks it decodes back to itself, and compares its SHA-256 with `pinned`.
fn assert_pinned(name: &str, frame: &WireMessage, pinned: &str) {
    let bytes = frame.encode().unwrap();
    assert_eq!(&WireMessage::decode(&bytes).unwrap(), frame, "{name}");
    let hash = Digest::of(&bytes).to_hex();
    assert!(
        hash == pinned,
        "the wire encoding of the {name} frame changed: a wire-format change must be deliberate \
         (nodes of the old format cannot decode it). If it is, pin the new hash.\n  \
         pinned: {pinned}\n  now:    {hash}\n  frame ({} bytes): {}",
        bytes.len(),
        hex::encode(&bytes)
    );
}

#[test]
fn transactions_frame_is_pinned() {
    assert_pinned("transactions", &transactions_frame(), TRANSACTIONS_SHA256);
}

#[test]
fn vote_frame_is_pinned() {
    assert_pinned("vote", &vote_frame(), VOTE_SHA256);
}

#[test]
fn block_request_frame_is_pinned() {
    assert_pinned(
        "block request",
        &block_request_frame(),
        BLOCK_REQUEST_SHA256,
    );
}

#[test]
fn frame_kinds_are_told_apart_by_their_first_byte() {
    assert!(WireMessage::is_transactions(
        &transactions_frame().encode().unwrap()
    ));
    assert!(!WireMessage::is_transactions(
        &vote_frame().encode().unwrap()
    ));
    assert!(!WireMessage::is_transactions(
        &block_request_frame().encode().unwrap()
    ));
}

#[test]
fn a_trailing_byte_is_a_typed_error() {
    for frame in [transactions_frame(), vote_frame(), block_request_frame()] {
        let mut bytes = frame.encode().unwrap();
        bytes.push(0);
        assert!(
            matches!(
                WireMessage::decode(&bytes),
                Err(NodeError::TrailingBytes { count: 1 })
            ),
            "{}",
            frame.kind()
        );
    }
}

#[test]
fn an_unknown_tag_is_a_typed_error() {
    // `WireMessage` has two variants (0 and 1): tag 2 names none.
    let mut bytes = transactions_frame().encode().unwrap();
    bytes[0] = 2;
    assert!(matches!(
        WireMessage::decode(&bytes),
        Err(NodeError::UndecodableFrame(_))
    ));
    // `Message` has five variants (0 to 4): a consensus frame with tag 5 names none.
    let mut bytes = vote_frame().encode().unwrap();
    bytes[1] = 5;
    assert!(matches!(
        WireMessage::decode(&bytes),
        Err(NodeError::UndecodableFrame(_))
    ));
}

#[test]
fn a_truncated_frame_is_a_typed_error() {
    for frame in [transactions_frame(), vote_frame(), block_request_frame()] {
        let bytes = frame.encode().unwrap();
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    WireMessage::decode(&bytes[..len]),
                    Err(NodeError::UndecodableFrame(_))
                ),
                "{} cut at {len}",
                frame.kind()
            );
        }
    }
}
