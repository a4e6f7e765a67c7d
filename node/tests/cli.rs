//! The `hotledger` binary, run as a process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};

use hotledger_genesis::Genesis;
use hotledger_node::home::Home;
use hotledger_node::storage::SafetyStore;

fn hotledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotledger"))
        .args(args)
        .env_remove("HOTLEDGER_HOME")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = hotledger(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = hotledger(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn help_everywhere() {
    let commands: &[&[&str]] = &[
        &[],
        &["init"],
        &["keys"],
        &["keys", "generate"],
        &["keys", "show"],
        &["start"],
        &["testnet"],
        &["tx"],
        &["tx", "transfer"],
        &["query"],
        &["query", "status"],
        &["query", "account"],
        &["query", "block"],
        &["query", "tx"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = ok(&args);
        assert!(out.contains("Usage"), "{args:?}: {out}");
    }
    assert!(!hotledger(&[]).status.success());
    assert!(!hotledger(&["no-such-command"]).status.success());
}

#[test]
fn init_then_keys_show() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    ok(&[
        "init",
        "--home",
        s(&root),
        "--moniker",
        "alpha",
        "--chain-id",
        "test-chain",
    ]);
    let home = Home::new(&root);
    let genesis = home.load_genesis().unwrap();
    assert_eq!(genesis.chain_id, "test-chain");
    assert_eq!(genesis.validators.len(), 1);
    assert_eq!(genesis.validators[0].name, "alpha");
    assert_eq!(genesis.accounts.len(), 1);
    let account = hotledger_crypto::load_key_file(&root.join("keys/account.json")).unwrap();
    assert_eq!(genesis.accounts[0].public_key, account.public());
    assert_eq!(home.load_config().unwrap().moniker, "alpha");

    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["keys", "show", "--home", s(&root), "--json"])).unwrap();
    assert_eq!(
        shown["validator_public_key"],
        genesis.validators[0].public_key.to_hex()
    );
    assert_eq!(shown["peer_id"], genesis.validators[0].peer_id);
    let text = ok(&["keys", "show", "--home", s(&root)]);
    assert!(text.contains(&genesis.validators[0].peer_id), "{text}");

    // No silent overwrite; --force replaces the keys.
    let err = fails(&["init", "--home", s(&root)]);
    assert!(
        err.contains("--force") && err.contains("config.toml"),
        "{err}"
    );
    // --force deletes the chain data but never the safety record (the double-sign guard).
    let config = home.load_config().unwrap();
    let key = home.load_validator_key().unwrap();
    let record_dir = home.safety_path(&config);
    let signed = hotledger_consensus::SafetyData {
        last_voted_round: 42,
        ..Default::default()
    };
    hotledger_node::storage::SafetyFile::open(&record_dir, &genesis.hash(), key.public())
        .unwrap()
        .put(&signed)
        .unwrap();
    std::fs::create_dir_all(home.data_path(&config)).unwrap();
    ok(&["init", "--home", s(&root), "--force"]);
    assert!(!home.data_path(&config).exists(), "the old database stays");
    let kept =
        hotledger_node::storage::SafetyFile::open(&record_dir, &genesis.hash(), key.public())
            .unwrap();
    assert_eq!(kept.get().unwrap(), Some(signed));
    let again = home.load_genesis().unwrap();
    assert_ne!(
        again.validators[0].public_key,
        genesis.validators[0].public_key
    );

    let err = fails(&[
        "init",
        "--home",
        s(&dir.path().join("x")),
        "--chain-id",
        "Bad Chain",
    ]);
    assert!(err.contains("chain_id"), "{err}");
}

#[test]
fn keys_generate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.json");
    let public = ok(&["keys", "generate", "--output", s(&file)]);
    let key = hotledger_crypto::load_key_file(&file).unwrap();
    assert_eq!(public.trim(), key.public().to_hex());
    let err = fails(&["keys", "generate", "--output", s(&file)]);
    assert!(err.contains("k.json"), "{err}");
    ok(&["keys", "generate", "--output", s(&file), "--force"]);
}

#[test]
fn testnet_of_four() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    ok(&[
        "testnet",
        "--validators",
        "4",
        "--output",
        s(&out),
        "--accounts",
        "7",
    ]);
    let mut ports = HashSet::new();
    let mut genesis_hashes = HashSet::new();
    for i in 0..4 {
        let home = Home::new(out.join(format!("validator-{i}")));
        let genesis = home.load_genesis().unwrap();
        genesis_hashes.insert(genesis.hash());
        let config = home.load_config().unwrap();
        let key = home.load_validator_key().unwrap();
        let entry = genesis.validator_by_key(&key.public()).unwrap();
        assert_eq!(entry.name, config.moniker);
        assert_eq!(entry.addresses, vec![config.p2p.listen.clone()]);
        let node_key = home.load_node_key().unwrap();
        assert_eq!(
            entry.peer_id,
            hotledger_genesis::peer_id_from_node_key(*node_key.secret_bytes()).unwrap()
        );
        let p2p_port: u16 = config
            .p2p
            .listen
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        for port in [
            p2p_port,
            config.rpc.listen.port(),
            config.metrics.listen.port(),
        ] {
            assert!(ports.insert(port), "port {port} used twice");
        }
    }
    assert_eq!(ports.len(), 12);
    assert_eq!(genesis_hashes.len(), 1);

    let accounts: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("accounts.json")).unwrap()).unwrap();
    assert_eq!(accounts.len(), 7);
    let genesis = Genesis::load(&out.join("validator-0/genesis.json")).unwrap();
    for (entry, funded) in accounts.iter().zip(&genesis.accounts) {
        assert_eq!(entry["public_key"], funded.public_key.to_hex());
        let seed: [u8; 32] = hex::decode(entry["secret_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            hotledger_crypto::KeyPair::from_seed(seed).public(),
            funded.public_key
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("accounts.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // One key file per funded account, for `tx transfer --key`.
    for (i, funded) in genesis.accounts.iter().enumerate() {
        let file = out.join(format!("accounts/{i}.json"));
        let key = hotledger_crypto::load_key_file(&file).unwrap();
        assert_eq!(key.public(), funded.public_key);
        let shown = ok(&["keys", "show", "--key", s(&file)]);
        assert_eq!(shown.trim(), funded.public_key.to_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }
    assert!(!out.join("accounts/7.json").exists());
    let network: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("network.json")).unwrap()).unwrap();
    assert_eq!(network["chain_id"], "hotledger-testnet");
    assert_eq!(network["validators"].as_array().unwrap().len(), 4);

    let err = fails(&["testnet", "--validators", "4", "--output", s(&out)]);
    assert!(err.contains("--force"), "{err}");
    ok(&[
        "testnet",
        "--validators",
        "2",
        "--output",
        s(&out),
        "--force",
    ]);
    fails(&[
        "testnet",
        "--validators",
        "0",
        "--output",
        s(&dir.path().join("a")),
    ]);
    fails(&[
        "testnet",
        "--validators",
        "101",
        "--output",
        s(&dir.path().join("b")),
    ]);
}

/// Validator `index`'s listen addresses (p2p, JSON-RPC, metrics) in the home at `root`, and
/// its addresses in genesis.
fn placement_of_home(root: &Path, index: usize) -> (String, String, String, Vec<String>) {
    let home = Home::new(root.to_path_buf());
    let config = home.load_config().unwrap();
    let genesis = home.load_genesis().unwrap();
    (
        config.p2p.listen,
        config.rpc.listen.to_string(),
        config.metrics.listen.to_string(),
        genesis.validators[index].addresses.clone(),
    )
}

/// [`placement_of_home`] of every validator of the testnet in `out`.
fn placement(out: &Path, n: usize) -> Vec<(String, String, String, Vec<String>)> {
    (0..n)
        .map(|i| placement_of_home(&out.join(format!("validator-{i}")), i))
        .collect()
}

#[test]
fn testnet_for_separate_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let hosts = "198.51.100.1,2001:db8::2,v2.example.org,V3.Example.org";
    ok(&[
        "testnet",
        "--hosts",
        hosts,
        "--output",
        s(&out),
        "--accounts",
        "2",
    ]);
    let placed = placement(&out, 4);
    let any4 = ("/ip4/0.0.0.0/tcp/26656", "0.0.0.0:26657", "0.0.0.0:26660");
    let expected = [
        (any4, "/ip4/198.51.100.1/tcp/26656"),
        (
            ("/ip6/::/tcp/26656", "[::]:26657", "[::]:26660"),
            "/ip6/2001:db8::2/tcp/26656",
        ),
        (any4, "/dns/v2.example.org/tcp/26656"),
        (any4, "/dns/v3.example.org/tcp/26656"),
    ];
    for (got, ((p2p, rpc, metrics), address)) in placed.iter().zip(expected) {
        assert_eq!(
            (got.0.as_str(), got.1.as_str(), got.2.as_str()),
            (p2p, rpc, metrics)
        );
        assert_eq!(got.3, vec![address.to_string()]);
    }
    let network: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("network.json")).unwrap()).unwrap();
    assert_eq!(
        network["validators"][1]["rpc_url"],
        "http://[2001:db8::2]:26657"
    );
    assert_eq!(
        network["validators"][2]["rpc_url"],
        "http://v2.example.org:26657"
    );
    assert_eq!(network["validators"][3]["host"], "v3.example.org");

    // Other ports, and listening on the hosts' own addresses.
    let out2 = dir.path().join("net2");
    ok(&[
        "testnet",
        "--hosts",
        "198.51.100.1,198.51.100.2",
        "--p2p-port",
        "7000",
        "--rpc-port",
        "7001",
        "--metrics-port",
        "7002",
        "--bind",
        "host",
        "--output",
        s(&out2),
    ]);
    let placed = placement(&out2, 2);
    assert_eq!(placed[1].0, "/ip4/198.51.100.2/tcp/7000");
    assert_eq!(placed[1].1, "198.51.100.2:7001");
    assert_eq!(placed[1].2, "198.51.100.2:7002");
    assert_eq!(placed[1].3, vec!["/ip4/198.51.100.2/tcp/7000".to_string()]);
}

#[test]
fn bad_hosts_and_ports_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let cases: [(&[&str], &str); 7] = [
        (&["--hosts", "198.51.100.1,exa mple.org"], "exa mple.org"),
        (&["--hosts", "198.51.100.1,0.0.0.0"], "0.0.0.0"),
        (&["--hosts", "198.51.100.1,198.51.100.1"], "198.51.100.1"),
        (
            &["--validators", "3", "--hosts", "198.51.100.1,198.51.100.2"],
            "--validators 3",
        ),
        (
            &["--hosts", "v0.example,v1.example", "--bind", "host"],
            "v0.example",
        ),
        (
            &["--hosts", "198.51.100.1", "--p2p-port", "0"],
            "--p2p-port",
        ),
        (
            &["--hosts", "198.51.100.1", "--rpc-port", "26656"],
            "--p2p-port and --rpc-port",
        ),
    ];
    for (i, (args, named)) in cases.into_iter().enumerate() {
        let target = out(&format!("n{i}"));
        let mut all = vec!["testnet", "--output", target.as_str()];
        all.extend_from_slice(args);
        let err = fails(&all);
        assert!(err.contains(named), "{args:?}: {err}");
    }
}

#[test]
fn init_for_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    ok(&[
        "init",
        "--home",
        s(&root),
        "--host",
        "198.51.100.9",
        "--p2p-port",
        "7100",
    ]);
    let placed = placement_of_home(&root, 0);
    assert_eq!(placed.0, "/ip4/0.0.0.0/tcp/7100");
    assert_eq!(placed.1, "0.0.0.0:26657");
    assert_eq!(placed.3, vec!["/ip4/198.51.100.9/tcp/7100".to_string()]);
    // The default stays on loopback.
    let local = dir.path().join("local");
    ok(&["init", "--home", s(&local)]);
    let placed = placement_of_home(&local, 0);
    assert_eq!(placed.0, "/ip4/127.0.0.1/tcp/26656");
    assert_eq!(placed.1, "127.0.0.1:26657");
    let err = fails(&[
        "init",
        "--home",
        s(&dir.path().join("x")),
        "--host",
        "bad host",
    ]);
    assert!(err.contains("bad host"), "{err}");
}

#[test]
fn start_names_the_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = fails(&["start", "--home", s(&missing)]);
    assert!(
        err.contains("config.toml") && err.contains("hotledger init"),
        "{err}"
    );

    let root = dir.path().join("home");
    ok(&["init", "--home", s(&root)]);
    let config = root.join("config.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, "moniker = [\n").unwrap();
    let err = fails(&["start", "--home", s(&root)]);
    assert!(err.contains(s(&config)), "{err}");
    std::fs::write(&config, "no_such_field = 1\n").unwrap();
    let err = fails(&["start", "--home", s(&root)]);
    assert!(
        err.contains(s(&config)) && err.contains("no_such_field"),
        "{err}"
    );
    std::fs::write(&config, good).unwrap();

    let genesis = root.join("genesis.json");
    std::fs::write(&genesis, "{\"chain_id\": ").unwrap();
    let err = fails(&["start", "--home", s(&root)]);
    assert!(err.contains(s(&genesis)), "{err}");
}

/// A loopback port nothing listens on (bound, then released).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn unreachable_node_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    ok(&["init", "--home", s(&root)]);
    let url = dead_url();
    let key = root.join("keys/account.json");
    let to = hotledger_crypto::KeyPair::from_seed([5; 32])
        .public()
        .to_hex();
    let err = fails(&[
        "tx",
        "transfer",
        "--key",
        s(&key),
        "--to",
        &to,
        "--amount",
        "1",
        "--node",
        &url,
    ]);
    assert!(err.contains(&url), "{err}");
    let err = fails(&["query", "status", "--node", &url]);
    assert!(err.contains(&url), "{err}");
    // Without --node, the URL comes from the home's config.
    let home = Home::new(&root);
    let mut config = home.load_config().unwrap();
    let other = dead_url();
    config.rpc.listen = other.trim_start_matches("http://").parse().unwrap();
    config.save(&home.config_path()).unwrap();
    let err = fails(&["query", "block", "--home", s(&root), "--json"]);
    assert!(err.contains(&other), "{err}");
    let err = fails(&[
        "tx",
        "transfer",
        "--key",
        s(&dir.path().join("none.json")),
        "--to",
        &to,
        "--amount",
        "1",
    ]);
    assert!(err.contains("none.json"), "{err}");
    let err = fails(&["query", "account", "not-a-key", "--node", &url]);
    assert!(err.contains("not-a-key"), "{err}");
}

#[test]
fn init_full_node_joins_an_existing_chain() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("validator");
    ok(&["init", "--home", s(&chain)]);
    let genesis_path = chain.join("genesis.json");
    let genesis = Genesis::load(&genesis_path).unwrap();
    let peer = format!(
        "/ip4/127.0.0.1/tcp/26656/p2p/{}",
        genesis.validators[0].peer_id
    );

    let root = dir.path().join("full");
    let out = ok(&[
        "init",
        "--home",
        s(&root),
        "--full-node",
        "--genesis",
        s(&genesis_path),
        "--peer",
        &peer,
    ]);
    assert!(out.contains("initialised full node"), "{out}");
    let home = Home::new(&root);
    assert_eq!(home.load_genesis().unwrap().hash(), genesis.hash());
    let config = home.load_config().unwrap();
    assert_eq!(config.role, hotledger_node::config::Role::Full);
    assert_eq!(config.p2p.peers, vec![peer.clone()]);
    assert_eq!(config.moniker, "full-node");
    assert!(
        !home.validator_key_path().exists(),
        "a full node holds no validator key"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["keys", "show", "--home", s(&root), "--json"])).unwrap();
    assert!(shown["validator_public_key"].is_null(), "{shown}");
    let peer_id = shown["peer_id"].as_str().unwrap();
    assert!(
        genesis.validators.iter().all(|v| v.peer_id != peer_id),
        "its own node key"
    );
    assert!(out.contains(peer_id), "{out}");

    // What it needs, and what it cannot take, is named.
    let other = dir.path().join("other");
    let missing = dir.path().join("none");
    let init_other = |extra: &[&str]| {
        let mut args = vec!["init", "--home", s(&other), "--full-node"];
        args.extend_from_slice(extra);
        fails(&args)
    };
    let genesis_arg = s(&genesis_path);
    for (extra, says) in [
        (&[][..], "--genesis"),
        (
            &["--genesis", genesis_arg, "--peer", "/ip4/127.0.0.1/tcp/1"][..],
            "/p2p/<peer id>",
        ),
        (
            &["--genesis", genesis_arg, "--chain-id", "x"][..],
            "--chain-id",
        ),
        (&["--genesis", s(&missing)][..], "--genesis"),
    ] {
        let err = init_other(extra);
        assert!(err.contains(says), "{extra:?}: {err}");
    }
    assert!(
        !other.join("config.toml").exists(),
        "nothing written on an error"
    );
    // Without --force an existing home is kept.
    let err = fails(&[
        "init",
        "--home",
        s(&root),
        "--full-node",
        "--genesis",
        s(&genesis_path),
    ]);
    assert!(err.contains("--force"), "{err}");
}
