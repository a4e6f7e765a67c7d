//! Golden fixtures: the SHA-256 of each signed, stored or wire encoding the ledger defines, for
//! fixed keys and values. A failing pin means a format changed. That must be deliberate: the
//! signing bytes and hashes are what signatures and clients rely on, and the encodings are what
//! peers and databases hold. Update a pin only with the format change it records (and a schema
//! or protocol version bump where one applies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hotledger_crypto::{Digest, KeyPair};
use hotledger_ledger::jmt::storage::NodeKey;
use hotledger_ledger::{
    encode_account, encode_node, encode_node_key, genesis_state_root, Account, BlockPayload,
    SignedTransaction, Transfer,
};
use sha2::{Digest as _, Sha256};

const CHAIN: &str = "hotledger-fixtures";

fn key(seed: u8) -> KeyPair {
    KeyPair::from_seed([seed; 32])
}

fn transfer() -> Transfer {
    Transfer {
        from: key(1).public(),
        to: key(2).public(),
        amount: 1_234_567,
        nonce: 42,
    }
}

fn signed() -> SignedTransaction {
    transfer().sign(&key(1), CHAIN)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts that `bytes` hash to `pinned`; on failure, prints the new hash.
fn pin(what: &str, bytes: &[u8], pinned: &str) {
    let got = sha256_hex(bytes);
    assert_eq!(
        got, pinned,
        "the {what} changed: its SHA-256 is now {got}. A format change must be deliberate: \
         update this pin only together with the change it records"
    );
}

#[test]
fn transfer_signing_bytes() {
    pin(
        "transfer signing bytes",
        &transfer().signing_bytes(),
        "0a5149344c86e5fd12cd179197c067e137d45052308650ebc4a18fb38abdf759",
    );
}

#[test]
fn transaction_hash() {
    pin(
        "transaction hash",
        signed().hash().as_bytes(),
        "ded156b874c1b495d0327f0c073b182c8786a8e4ecbebff280cb80568a6ea45a",
    );
}

#[test]
fn signed_transaction_encoding() {
    let bytes = postcard::to_allocvec(&signed()).unwrap();
    assert_eq!(bytes.len(), signed().encoded_len());
    pin(
        "signed transaction encoding",
        &bytes,
        "13ebf01dbecc33946b9bd7c8e305d5ff3a59bf48c6f8882fdb0816aa26e6ad17",
    );
}

#[test]
fn block_payload_encoding() {
    let second = Transfer {
        nonce: 43,
        ..transfer()
    }
    .sign(&key(1), CHAIN);
    let payload = BlockPayload::new(7, Digest::of(b"state root"), vec![signed(), second]);
    pin(
        "block payload encoding",
        &payload.encode(),
        "eda5062dcc22635c69c08039b790aa8c5b68cb788bcb47459252644f85d43553",
    );
}

#[test]
fn account_tree_value_encoding() {
    let account = Account {
        balance: 1_000_000,
        nonce: 300,
    };
    pin(
        "account tree value",
        &encode_account(&account).unwrap(),
        "c0533b46e810b5b5ea2a683b6020165a5f55c4e85d7bb7b6353773c063239708",
    );
}

/// The genesis tree of three fixed accounts: its root, and every node key and node it holds.
#[test]
fn genesis_state_root_and_tree_encodings() {
    let accounts = [
        (key(1).public(), 1_000),
        (key(2).public(), 2_000),
        (key(3).public(), 3_000),
    ];
    let (root, batch) = genesis_state_root(&accounts).unwrap();
    pin(
        "genesis state root",
        root.as_bytes(),
        "f296f2b8773432a038c4ce3faff7b85dda6cd8eaea9e0cb024f81e70d52612ca",
    );
    let nodes = batch.node_batch.nodes();
    let keys: Vec<u8> = nodes
        .keys()
        .flat_map(|k| encode_node_key(k).unwrap())
        .collect();
    pin(
        "node key encoding",
        &keys,
        "0a177ca9a2d5f071853333f7199fa1c9bae6195cf2f32490662ddf195bed1e71",
    );
    let values: Vec<u8> = nodes
        .values()
        .flat_map(|n| encode_node(n).unwrap())
        .collect();
    pin(
        "node encoding",
        &values,
        "478b9a286b16de84254396bc8b18612a009195bb047655456b745815658e0653",
    );
    let deep = NodeKey::new(
        0x0102_0304,
        [1u8, 2, 3].map(Into::into).into_iter().collect(),
    );
    pin(
        "node key with a path",
        &encode_node_key(&deep).unwrap(),
        "9e9beea9953ad8c058afb07c6265bc81570b5f49730cd9738392133ca4a6b733",
    );
}
