//! The golden genesis file: pins the JSON format, the canonical encoding, the hash and the
//! seeded key derivation. If one of these tests fails, the format changed: if that was
//! deliberate, regenerate the file with
//! `cargo test -p hotledger-genesis --test fixture -- --ignored regenerate` and update
//! `GENESIS_4_HASH`. Every chain started from an old genesis file gets a new genesis id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use hotledger_genesis::{generate_network, Genesis, NetworkSpec};

/// `Genesis::hash()` of `tests/fixtures/genesis-4.json`.
const GENESIS_4_HASH: &str = "40257cea404aabb8fe1006a364cafdf29bc2a2c4c8de8a966b7ca7c50c452091";

/// Found through the crate folder `cargo test` names at run time (falling back to the one at
/// build time): the target folder is shared between clones, and a test binary built in another
/// clone would otherwise look in that clone.
fn fixture_path() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/fixtures/genesis-4.json")
}

/// The spec the fixture was generated from.
fn fixture_spec() -> NetworkSpec {
    NetworkSpec {
        validators: 4,
        accounts: 4,
        balance: 1_000_000_000,
        chain_id: "hotledger-golden".into(),
        hosts: vec![IpAddr::V4(Ipv4Addr::LOCALHOST).into(); 4],
        p2p_ports: vec![30_000, 30_001, 30_002, 30_003],
        genesis_time_ms: 1_700_000_000_000,
        seed: Some(42),
    }
}

#[test]
fn golden_genesis_parses_validates_and_has_the_pinned_hash() {
    let g = Genesis::load(&fixture_path()).unwrap();
    g.validate().unwrap();
    assert_eq!(g.validators.len(), 4);
    assert_eq!(g.hash().to_hex(), GENESIS_4_HASH);
    assert_eq!(g.genesis_block().id.to_hex(), GENESIS_4_HASH);
}

#[test]
fn golden_genesis_is_what_seed_42_generates() {
    let g = Genesis::load(&fixture_path()).unwrap();
    let generated = generate_network(&fixture_spec()).unwrap().genesis;
    assert_eq!(generated, g);
}

#[test]
fn golden_genesis_file_is_the_saved_form() {
    // `save` output is byte-for-byte the file, so the pretty format is pinned too.
    let g = Genesis::load(&fixture_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.json");
    g.save(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        std::fs::read_to_string(fixture_path()).unwrap()
    );
}

/// Rewrites the fixture and prints its hash. Run only on purpose (see the module docs).
#[test]
#[ignore = "rewrites tests/fixtures/genesis-4.json"]
fn regenerate() {
    let net = generate_network(&fixture_spec()).unwrap();
    let path = fixture_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    net.genesis.save(&path).unwrap();
    println!("GENESIS_4_HASH = {}", net.genesis.hash().to_hex());
}
