//! Genesis document: round trips, every validation rule, parse errors, the hash and network
//! generation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use hotledger_crypto::{KeyPair, PublicKey};
use hotledger_genesis::{
    generate_network, peer_id_from_node_key, ConsensusParams, GeneratedNetwork, Genesis,
    GenesisAccount, GenesisError, Host, NetworkSpec, MAX_VALIDATORS,
};

fn spec(validators: usize, seed: Option<u64>) -> NetworkSpec {
    NetworkSpec {
        validators,
        accounts: 3,
        balance: 1_000,
        chain_id: "hotledger-test".into(),
        hosts: vec![IpAddr::V4(Ipv4Addr::LOCALHOST).into(); validators],
        p2p_ports: (0..validators).map(|i| 30_000 + i as u16).collect(),
        genesis_time_ms: 1_700_000_000_000,
        seed,
    }
}

fn network(validators: usize) -> GeneratedNetwork {
    generate_network(&spec(validators, Some(7))).unwrap()
}

fn genesis4() -> Genesis {
    network(4).genesis
}

/// A valid key with an order-2 component added: accepted by `PublicKey::from_bytes` (not of
/// small order) but not torsion-free. (0, -1) is encoded as p - 1 = 2^255 - 20.
fn mixed_order_key() -> PublicKey {
    let pk = KeyPair::from_seed([9; 32]).public();
    let key = ed25519_dalek::VerifyingKey::from_bytes(pk.as_bytes()).unwrap();
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    let t = ed25519_dalek::VerifyingKey::from_bytes(&minus_one).unwrap();
    let mixed = (key.to_edwards() + t.to_edwards()).compress().to_bytes();
    PublicKey::from_bytes(&mixed).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn generated_genesis_validates_and_round_trips() {
    let g = genesis4();
    g.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.json");
    g.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("{\n  \"chain_id\""), "pretty JSON: {text}");
    assert!(text.ends_with("}\n"));
    let loaded = Genesis::load(&path).unwrap();
    assert_eq!(loaded, g);
    assert_eq!(loaded.hash(), g.hash());
    loaded.validate().unwrap();

    // Saving again replaces the file and leaves no temporary file behind.
    let mut changed = g.clone();
    changed.genesis_time_ms += 1;
    changed.save(&path).unwrap();
    assert_eq!(Genesis::load(&path).unwrap(), changed);
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

type Mutation = Box<dyn Fn(&mut Genesis)>;
type Check = fn(&GenesisError) -> bool;

#[test]
fn every_validation_error_is_produced() {
    let base = genesis4();
    let peer1 = base.validators[1].peer_id.clone();
    let key1 = base.validators[1].public_key;
    let acct0 = base.accounts[0].public_key;
    let weak = mixed_order_key();
    let other_peer = peer_id_from_node_key([5; 32]).unwrap();

    let cases: Vec<(&str, Mutation, Check)> = vec![
        ("empty chain id", Box::new(|g| g.chain_id.clear()), |e| {
            matches!(e, GenesisError::EmptyChainId)
        }),
        (
            "upper-case chain id",
            Box::new(|g| g.chain_id = "Hotledger".into()),
            |e| matches!(e, GenesisError::BadChainId { chain_id } if chain_id == "Hotledger"),
        ),
        (
            "chain id with a space",
            Box::new(|g| g.chain_id = "hot ledger".into()),
            |e| matches!(e, GenesisError::BadChainId { .. }),
        ),
        (
            "65-byte chain id",
            Box::new(|g| g.chain_id = "a".repeat(65)),
            |e| matches!(e, GenesisError::BadChainId { .. }),
        ),
        (
            "base_timeout_ms 0",
            Box::new(|g| g.consensus.base_timeout_ms = 0),
            |e| {
                matches!(
                    e,
                    GenesisError::BadParam {
                        field: "base_timeout_ms",
                        ..
                    }
                )
            },
        ),
        (
            "base_timeout_ms too large",
            Box::new(|g| g.consensus.base_timeout_ms = 600_001),
            |e| {
                matches!(
                    e,
                    GenesisError::BadParam {
                        field: "base_timeout_ms",
                        ..
                    }
                )
            },
        ),
        (
            "max_backoff_exponent 17",
            Box::new(|g| g.consensus.max_backoff_exponent = 17),
            |e| {
                matches!(
                    e,
                    GenesisError::BadParam {
                        field: "max_backoff_exponent",
                        ..
                    }
                )
            },
        ),
        (
            "max_block_txs 0",
            Box::new(|g| g.consensus.max_block_txs = 0),
            |e| {
                matches!(
                    e,
                    GenesisError::BadParam {
                        field: "max_block_txs",
                        ..
                    }
                )
            },
        ),
        (
            "max_block_bytes 0",
            Box::new(|g| g.consensus.max_block_bytes = 0),
            |e| {
                matches!(
                    e,
                    GenesisError::BadParam {
                        field: "max_block_bytes",
                        ..
                    }
                )
            },
        ),
        (
            "max_block_bytes over 64 MiB",
            Box::new(|g| g.consensus.max_block_bytes = 64 * 1024 * 1024 + 1),
            |e| {
                matches!(
                    e,
                    GenesisError::BadParam {
                        field: "max_block_bytes",
                        ..
                    }
                )
            },
        ),
        (
            "max_clock_skew_ms 0",
            Box::new(|g| g.consensus.max_clock_skew_ms = 0),
            |e| {
                matches!(
                    e,
                    GenesisError::BadParam {
                        field: "max_clock_skew_ms",
                        ..
                    }
                )
            },
        ),
        (
            "empty validator set",
            Box::new(|g| g.validators.clear()),
            |e| matches!(e, GenesisError::NoValidators),
        ),
        (
            "too many validators",
            Box::new(|g| g.validators = vec![g.validators[0].clone(); MAX_VALIDATORS + 1]),
            |e| {
                matches!(e, GenesisError::TooManyValidators { count, max }
                    if *count == MAX_VALIDATORS + 1 && *max == MAX_VALIDATORS)
            },
        ),
        (
            "empty name",
            Box::new(|g| g.validators[2].name.clear()),
            |e| matches!(e, GenesisError::BadName { name } if name.is_empty()),
        ),
        (
            "65-character name",
            Box::new(|g| g.validators[2].name = "é".repeat(65)),
            |e| matches!(e, GenesisError::BadName { .. }),
        ),
        (
            "name with a newline",
            Box::new(|g| g.validators[2].name = "a\nb".into()),
            |e| matches!(e, GenesisError::BadName { .. }),
        ),
        (
            "name with surrounding whitespace",
            Box::new(|g| g.validators[2].name = " validator-2".into()),
            |e| matches!(e, GenesisError::BadName { .. }),
        ),
        (
            "duplicate name",
            Box::new(|g| g.validators[3].name = "validator-1".into()),
            |e| matches!(e, GenesisError::DuplicateValidatorName { name } if name == "validator-1"),
        ),
        (
            "duplicate key",
            Box::new(move |g| g.validators[3].public_key = key1),
            |e| matches!(e, GenesisError::DuplicateValidatorKey { .. }),
        ),
        (
            "mixed-order key",
            Box::new(move |g| g.validators[2].public_key = weak),
            |e| matches!(e, GenesisError::WeakValidatorKey { name, .. } if name == "validator-2"),
        ),
        (
            "zero power",
            Box::new(|g| g.validators[2].power = 0),
            |e| matches!(e, GenesisError::ZeroPower { name } if name == "validator-2"),
        ),
        (
            "power overflow (u64::MAX + 1)",
            Box::new(|g| g.validators[0].power = u64::MAX),
            |e| matches!(e, GenesisError::PowerOverflow { name } if name == "validator-1"),
        ),
        (
            "unparseable peer id",
            Box::new(|g| g.validators[2].peer_id = "not-a-peer-id".into()),
            |e| {
                matches!(e, GenesisError::BadPeerId { name, peer_id, .. }
                    if name == "validator-2" && peer_id == "not-a-peer-id")
            },
        ),
        (
            "empty peer id",
            Box::new(|g| g.validators[2].peer_id.clear()),
            |e| matches!(e, GenesisError::BadPeerId { .. }),
        ),
        (
            "duplicate peer id",
            Box::new(move |g| g.validators[3].peer_id = peer1.clone()),
            |e| matches!(e, GenesisError::DuplicatePeerId { .. }),
        ),
        (
            "no addresses",
            Box::new(|g| g.validators[2].addresses.clear()),
            |e| matches!(e, GenesisError::NoAddresses { name } if name == "validator-2"),
        ),
        (
            "host:port instead of a multiaddr",
            Box::new(|g| g.validators[2].addresses = vec!["127.0.0.1:30002".into()]),
            |e| {
                matches!(e, GenesisError::BadAddress { name, address, .. }
                    if name == "validator-2" && address == "127.0.0.1:30002")
            },
        ),
        (
            "bad IPv4 in a multiaddr",
            Box::new(|g| {
                g.validators[2]
                    .addresses
                    .push("/ip4/300.0.0.1/tcp/1".into())
            }),
            |e| matches!(e, GenesisError::BadAddress { .. }),
        ),
        (
            "empty multiaddr",
            Box::new(|g| g.validators[2].addresses = vec![String::new()]),
            |e| matches!(e, GenesisError::BadAddress { .. }),
        ),
        (
            "address naming another peer",
            Box::new(move |g| {
                g.validators[2].addresses = vec![format!("/ip4/127.0.0.1/tcp/1/p2p/{other_peer}")]
            }),
            |e| matches!(e, GenesisError::BadAddress { .. }),
        ),
        (
            "duplicate address",
            Box::new(|g| g.validators[3].addresses = g.validators[0].addresses.clone()),
            |e| {
                matches!(e, GenesisError::DuplicateAddress { first, second, .. }
                    if first == "validator-0" && second == "validator-3")
            },
        ),
        (
            "duplicate account",
            Box::new(move |g| g.accounts[2].public_key = acct0),
            |e| matches!(e, GenesisError::DuplicateAccount { .. }),
        ),
        (
            "supply overflow",
            Box::new(|g| g.accounts[1].balance = u64::MAX),
            |e| matches!(e, GenesisError::SupplyOverflow { .. }),
        ),
    ];

    for (what, mutate, check) in &cases {
        let mut g = base.clone();
        mutate(&mut g);
        let err = g.validate().expect_err(what);
        assert!(check(&err), "{what}: unexpected error {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn valid_edge_cases_are_accepted() {
    let mut g = genesis4();
    g.chain_id = format!("{}-_.0", "a".repeat(60));
    assert_eq!(g.chain_id.len(), 64);
    g.validators[0].name = "é".repeat(64);
    g.validators[1].power = u64::MAX - 3;
    let own = format!("/ip4/10.0.0.2/tcp/1/p2p/{}", g.validators[2].peer_id);
    g.validators[2].addresses.push(own);
    g.validators[3].addresses = vec!["/dns4/node3.example/tcp/30003".into()];
    g.accounts[0].balance = u64::MAX - 2_000;
    g.accounts.push(GenesisAccount {
        public_key: g.validators[0].public_key,
        balance: 0,
    });
    g.consensus.max_backoff_exponent = 0;
    g.consensus.max_block_bytes = 64 * 1024 * 1024;
    g.validate().unwrap();
    assert_eq!(g.total_supply(), u64::MAX);
    let set = g.validator_set().unwrap();
    assert_eq!(set.total_power(), u64::MAX);
}

#[test]
fn error_messages_name_the_culprit() {
    let mut g = genesis4();
    g.validators[2].addresses = vec!["127.0.0.1:30002".into()];
    let msg = g.validate().unwrap_err().to_string();
    assert!(
        msg.contains("validator-2") && msg.contains("127.0.0.1:30002"),
        "{msg}"
    );

    let mut g = genesis4();
    g.consensus.base_timeout_ms = 0;
    let msg = g.validate().unwrap_err().to_string();
    assert!(
        msg.contains("consensus.base_timeout_ms") && msg.contains("1..=600000"),
        "{msg}"
    );
}

#[test]
fn derived_consensus_values() {
    let g = genesis4();
    let set = g.validator_set().unwrap();
    assert_eq!(set.len(), 4);
    assert_eq!(set.total_power(), 4);
    assert_eq!(set.quorum(), 3);
    for (v, sv) in g.validators.iter().zip(set.validators()) {
        assert_eq!(v.public_key, sv.key);
    }

    let block = g.genesis_block();
    assert_eq!(block.id, g.hash());
    assert_eq!((block.round, block.height), (0, 0));
    assert_eq!(block.timestamp_ms, g.genesis_time_ms);

    let params = g.consensus_params();
    assert_eq!(params, hotledger_consensus::Params::default());
    let mut custom = g.clone();
    custom.consensus.max_block_bytes = 1234;
    custom.consensus.base_timeout_ms = 250;
    assert_eq!(custom.consensus_params().max_payload_bytes, 1234);
    assert_eq!(custom.consensus_params().base_timeout_ms, 250);

    assert_eq!(g.total_supply(), 3_000);

    let v2 = &g.validators[2];
    assert_eq!(g.validator_by_key(&v2.public_key), Some(v2));
    assert_eq!(g.validator_by_peer(&v2.peer_id), Some(v2));
    assert_eq!(g.validator_by_key(&g.accounts[0].public_key), None);
    assert_eq!(g.validator_by_peer("12D3KooWnope"), None);

    let mut bad = g.clone();
    bad.validators[1].power = 0;
    assert!(matches!(
        bad.validator_set(),
        Err(GenesisError::ZeroPower { .. })
    ));
}

#[test]
fn malformed_json_names_path_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "broken.json",
        "{\n  \"chain_id\": \"x\",\n  \"genesis_time_ms\": 12,,\n}\n",
    );
    match Genesis::load(&path).unwrap_err() {
        GenesisError::Json {
            path: p,
            line,
            column,
            reason,
        } => {
            assert_eq!(p, path);
            assert_eq!(line, 3);
            assert_eq!(column, 25);
            assert!(!reason.contains("at line"), "{reason}");
        }
        other => panic!("expected Json, got {other:?}"),
    }
    let msg = Genesis::load(&path).unwrap_err().to_string();
    assert!(msg.contains("broken.json:3:25"), "{msg}");

    // Wrong type and missing field are Json errors too.
    let path = write(dir.path(), "types.json", "{\"chain_id\": 5}");
    assert!(matches!(
        Genesis::load(&path),
        Err(GenesisError::Json { line: 1, .. })
    ));
    let path = write(dir.path(), "missing.json", "{\"chain_id\": \"x\"}");
    let err = Genesis::load(&path).unwrap_err();
    assert!(err.to_string().contains("missing field"), "{err}");
}

#[test]
fn missing_file_is_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.json");
    match Genesis::load(&path).unwrap_err() {
        GenesisError::Io { path: p, source } => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    // Saving into a missing directory fails the same way.
    let g = genesis4();
    let target = dir.path().join("missing-dir").join("genesis.json");
    assert!(matches!(g.save(&target), Err(GenesisError::Io { path, .. }) if path == target));
}

/// The saved file with validator 1's public key replaced by `replacement`.
fn with_key_replaced(replacement: &str) -> (String, usize) {
    let g = genesis4();
    let text = serde_json::to_string_pretty(&g).unwrap();
    let key = g.validators[1].public_key.to_hex();
    let line = text
        .lines()
        .position(|l| l.contains(&key))
        .map(|i| i + 1)
        .unwrap();
    (text.replace(&key, replacement), line)
}

#[test]
fn malformed_keys_fail_at_parse_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("bad hex", "zz".repeat(32)),
        ("short", "ab".repeat(31)),
        ("weak (identity point)", format!("01{}", "00".repeat(31))),
    ];
    for (what, replacement) in cases {
        let (text, key_line) = with_key_replaced(&replacement);
        let path = write(dir.path(), "genesis.json", &text);
        match Genesis::load(&path).unwrap_err() {
            GenesisError::Json { line, reason, .. } => {
                assert_eq!(line, key_line, "{what}: {reason}");
            }
            other => panic!("{what}: expected Json, got {other:?}"),
        }
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let g = genesis4();
    let value = serde_json::to_value(&g).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 4] = [
        ("top level", |v| v["chainid"] = "x".into()),
        ("consensus", |v| v["consensus"]["base_timeout"] = 5.into()),
        ("validator", |v| v["validators"][0]["weight"] = 5.into()),
        ("account", |v| v["accounts"][0]["nonce"] = 0.into()),
    ];
    for (what, edit) in edits {
        let mut v = value.clone();
        edit(&mut v);
        let bytes = serde_json::to_vec(&v).unwrap();
        let err = Genesis::from_json(&bytes, Path::new("g.json")).unwrap_err();
        assert!(
            matches!(&err, GenesisError::Json { reason, .. } if reason.contains("unknown field")),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn omitted_consensus_and_accounts_take_defaults_with_the_same_hash() {
    let g = genesis4();
    let mut v = serde_json::to_value(&g).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("consensus");
    obj.remove("accounts");
    let parsed = Genesis::from_json(&serde_json::to_vec(&v).unwrap(), Path::new("g")).unwrap();
    assert_eq!(parsed.consensus, ConsensusParams::default());
    assert!(parsed.accounts.is_empty());
    let mut expected = g.clone();
    expected.accounts.clear();
    assert_eq!(parsed.hash(), expected.hash());

    // A single consensus field may be given on its own.
    let mut v = serde_json::to_value(&g).unwrap();
    v["consensus"] = serde_json::json!({ "base_timeout_ms": 500 });
    let parsed = Genesis::from_json(&serde_json::to_vec(&v).unwrap(), Path::new("g")).unwrap();
    assert_eq!(parsed.consensus.base_timeout_ms, 500);
    assert_eq!(parsed.consensus.max_block_txs, 10_000);
}

#[test]
fn hash_ignores_formatting_and_binds_every_field() {
    let g = genesis4();
    let reparsed =
        Genesis::from_json(&serde_json::to_vec_pretty(&g).unwrap(), Path::new("g")).unwrap();
    assert_eq!(reparsed.hash(), g.hash());
    assert_eq!(g.hash(), hotledger_crypto::Digest::of(&g.canonical_bytes()));

    let other_key = KeyPair::from_seed([77; 32]).public();
    let mutations: Vec<(&str, Mutation)> = vec![
        ("chain_id", Box::new(|g| g.chain_id.push('x'))),
        ("genesis_time_ms", Box::new(|g| g.genesis_time_ms += 1)),
        (
            "base_timeout_ms",
            Box::new(|g| g.consensus.base_timeout_ms += 1),
        ),
        (
            "max_backoff_exponent",
            Box::new(|g| g.consensus.max_backoff_exponent += 1),
        ),
        (
            "max_block_txs",
            Box::new(|g| g.consensus.max_block_txs += 1),
        ),
        (
            "max_block_bytes",
            Box::new(|g| g.consensus.max_block_bytes += 1),
        ),
        (
            "max_clock_skew_ms",
            Box::new(|g| g.consensus.max_clock_skew_ms += 1),
        ),
        (
            "validator name",
            Box::new(|g| g.validators[0].name.push('x')),
        ),
        (
            "validator key",
            Box::new(move |g| g.validators[0].public_key = other_key),
        ),
        ("validator power", Box::new(|g| g.validators[0].power += 1)),
        (
            "validator peer id",
            Box::new(|g| g.validators[0].peer_id.push('x')),
        ),
        (
            "validator address",
            Box::new(|g| g.validators[0].addresses[0].push('1')),
        ),
        (
            "extra address",
            Box::new(|g| g.validators[0].addresses.push("/ip4/1.2.3.4/tcp/1".into())),
        ),
        ("validator order", Box::new(|g| g.validators.swap(0, 1))),
        (
            "removed validator",
            Box::new(|g| {
                g.validators.pop();
            }),
        ),
        (
            "account key",
            Box::new(move |g| g.accounts[0].public_key = other_key),
        ),
        ("account balance", Box::new(|g| g.accounts[0].balance += 1)),
        (
            "removed account",
            Box::new(|g| {
                g.accounts.pop();
            }),
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    seen.insert(g.hash());
    for (what, mutate) in mutations {
        let mut m = g.clone();
        mutate(&mut m);
        assert!(
            seen.insert(m.hash()),
            "changing {what} must change the hash"
        );
    }
}

#[test]
fn generates_networks_of_1_4_7_10() {
    for n in [1, 4, 7, 10] {
        let net = generate_network(&spec(n, None)).unwrap();
        let g = &net.genesis;
        g.validate().unwrap();
        assert_eq!(g.validators.len(), n);
        assert_eq!(net.validators.len(), n);
        assert_eq!(net.account_keys.len(), 3);
        assert_eq!(g.total_supply(), 3_000);
        assert_eq!(g.genesis_time_ms, 1_700_000_000_000);
        assert_eq!(g.chain_id, "hotledger-test");
        let set = g.validator_set().unwrap();
        assert_eq!(set.quorum(), (2 * n as u64) / 3 + 1);
        for (i, (entry, gen)) in g.validators.iter().zip(&net.validators).enumerate() {
            assert_eq!(entry.name, format!("validator-{i}"));
            assert_eq!(gen.name, entry.name);
            assert_eq!(entry.public_key, gen.consensus_key.public());
            assert_eq!(entry.peer_id, gen.peer_id);
            assert_eq!(peer_id_from_node_key(gen.node_key).unwrap(), gen.peer_id);
            assert_eq!(entry.addresses, vec![gen.address.clone()]);
            assert_eq!(gen.address, format!("/ip4/127.0.0.1/tcp/{}", 30_000 + i));
            assert_eq!(entry.power, 1);
        }
        for (account, key) in g.accounts.iter().zip(&net.account_keys) {
            assert_eq!(account.public_key, key.public());
            assert_eq!(account.balance, 1_000);
        }
    }
}

#[test]
fn generation_is_deterministic_with_a_seed() {
    let a = generate_network(&spec(4, Some(1))).unwrap();
    let b = generate_network(&spec(4, Some(1))).unwrap();
    assert_eq!(a.genesis, b.genesis);
    assert_eq!(a.genesis.hash(), b.genesis.hash());
    for (x, y) in a.validators.iter().zip(&b.validators) {
        assert_eq!(
            *x.consensus_key.secret_bytes(),
            *y.consensus_key.secret_bytes()
        );
        assert_eq!(x.node_key, y.node_key);
    }
    for (x, y) in a.account_keys.iter().zip(&b.account_keys) {
        assert_eq!(x.public(), y.public());
    }

    // Another seed, or no seed, gives other keys.
    let c = generate_network(&spec(4, Some(2))).unwrap();
    assert_ne!(a.genesis.hash(), c.genesis.hash());
    let r1 = generate_network(&spec(4, None)).unwrap();
    let r2 = generate_network(&spec(4, None)).unwrap();
    assert_ne!(
        r1.genesis.validators[0].public_key,
        r2.genesis.validators[0].public_key
    );

    // Consensus, node and account keys are all distinct from each other.
    let mut secrets = std::collections::HashSet::new();
    for v in &a.validators {
        assert!(secrets.insert(*v.consensus_key.secret_bytes()));
        assert!(secrets.insert(v.node_key));
    }
    for k in &a.account_keys {
        assert!(secrets.insert(*k.secret_bytes()));
    }

    // A larger network extends a smaller one with the same seed.
    let big = generate_network(&spec(7, Some(1))).unwrap();
    assert_eq!(big.genesis.validators[..4], a.genesis.validators[..]);
}

#[test]
fn bad_specs_are_rejected() {
    let cases: Vec<(&str, NetworkSpec, Check)> = vec![
        ("no validators", spec(0, Some(1)), |e| {
            matches!(e, GenesisError::NoValidators)
        }),
        (
            "too many",
            spec(MAX_VALIDATORS + 1, Some(1)),
            |e| matches!(e, GenesisError::TooManyValidators { count, .. } if *count == MAX_VALIDATORS + 1),
        ),
        (
            "missing port",
            NetworkSpec {
                p2p_ports: vec![30_000, 30_001, 30_002],
                ..spec(4, Some(1))
            },
            |e| matches!(e, GenesisError::BadSpec { .. }),
        ),
        (
            "repeated port",
            NetworkSpec {
                p2p_ports: vec![30_000, 30_001, 30_000, 30_003],
                ..spec(4, Some(1))
            },
            |e| matches!(e, GenesisError::BadSpec { .. }),
        ),
        (
            "port 0",
            NetworkSpec {
                p2p_ports: vec![30_000, 0, 30_002, 30_003],
                ..spec(4, Some(1))
            },
            |e| matches!(e, GenesisError::BadSpec { .. }),
        ),
        (
            "unspecified host",
            NetworkSpec {
                hosts: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED).into(); 4],
                ..spec(4, Some(1))
            },
            |e| matches!(e, GenesisError::BadSpec { .. }),
        ),
        (
            "missing host",
            NetworkSpec {
                hosts: vec![IpAddr::V4(Ipv4Addr::LOCALHOST).into(); 3],
                ..spec(4, Some(1))
            },
            |e| matches!(e, GenesisError::BadSpec { .. }),
        ),
        (
            "two validators at one address",
            NetworkSpec {
                hosts: ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3"]
                    .map(|h| h.parse().unwrap())
                    .to_vec(),
                p2p_ports: vec![26_656; 4],
                ..spec(4, Some(1))
            },
            |e| matches!(e, GenesisError::BadSpec { reason } if reason.contains("10.0.0.1:26656")),
        ),
        (
            "bad chain id",
            NetworkSpec {
                chain_id: "Main Net".into(),
                ..spec(4, Some(1))
            },
            |e| matches!(e, GenesisError::BadChainId { .. }),
        ),
        (
            "supply overflow",
            NetworkSpec {
                balance: u64::MAX,
                ..spec(4, Some(1))
            },
            |e| matches!(e, GenesisError::SupplyOverflow { .. }),
        ),
    ];
    for (what, s, check) in cases {
        let err = generate_network(&s).expect_err(what);
        assert!(check(&err), "{what}: unexpected error {err:?}");
    }
}

#[test]
fn ipv6_hosts_produce_ip6_addresses() {
    let net = generate_network(&NetworkSpec {
        hosts: vec![IpAddr::V6(Ipv6Addr::LOCALHOST).into(); 2],
        ..spec(2, Some(3))
    })
    .unwrap();
    assert_eq!(net.validators[1].address, "/ip6/::1/tcp/30001");
}

#[test]
fn one_host_per_validator_with_one_port() {
    let hosts: Vec<Host> = ["198.51.100.7", "[2001:db8::1]", "V2.Example.org.", "db-3"]
        .iter()
        .map(|h| h.parse().unwrap())
        .collect();
    let net = generate_network(&NetworkSpec {
        hosts,
        p2p_ports: vec![26_656; 4],
        ..spec(4, Some(3))
    })
    .unwrap();
    let addresses: Vec<&str> = net.validators.iter().map(|v| v.address.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "/ip4/198.51.100.7/tcp/26656",
            "/ip6/2001:db8::1/tcp/26656",
            "/dns/v2.example.org/tcp/26656",
            "/dns/db-3/tcp/26656",
        ]
    );
    assert_eq!(
        net.genesis.validators[2].addresses,
        vec![addresses[2].to_string()]
    );
}

#[test]
fn bad_hosts_are_named() {
    for text in [
        "",
        "0.0.0.0",
        "::",
        "[::]",
        "exa mple.org",
        "-v0.example",
        "v0-.example",
        "a..b",
        "1.2.3.999",
        "300.1.1.1",
        "v0_example.org",
        &"a".repeat(64),
        "http://v0",
    ] {
        match text.parse::<Host>() {
            Err(GenesisError::BadHost { host, .. }) => assert_eq!(host, text),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert_eq!(
        "::1".parse::<Host>().unwrap(),
        Host::Ip(Ipv6Addr::LOCALHOST.into())
    );
    assert_eq!("[::1]".parse::<Host>().unwrap().url_host(), "[::1]");
    assert_eq!(
        "localhost".parse::<Host>().unwrap(),
        Host::Dns("localhost".into())
    );
}

#[test]
fn peer_ids_are_ed25519_libp2p_ids() {
    let a = peer_id_from_node_key([1; 32]).unwrap();
    assert_eq!(a, peer_id_from_node_key([1; 32]).unwrap());
    assert_ne!(a, peer_id_from_node_key([2; 32]).unwrap());
    // Ed25519 public keys are inlined in the peer id (identity multihash).
    assert!(a.starts_with("12D3KooW"), "{a}");
    let parsed: libp2p_identity::PeerId = a.parse().unwrap();
    assert_eq!(parsed.to_base58(), a);
}

#[test]
fn secrets_are_not_in_debug_output() {
    let net = network(1);
    let v = &net.validators[0];
    let debug = format!("{net:?}");
    let hex_seed: String = v.node_key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!debug.contains(&hex_seed));
    assert!(!debug.contains(&format!("{:?}", v.node_key)));
    assert!(debug.contains("redacted"));
}
