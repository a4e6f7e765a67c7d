//! `hotledger testnet`: one home per validator of a fresh local network.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use hotledger_crypto::{save_key_file, KeyPair};
use hotledger_genesis::{generate_network, NetworkSpec};
use hotledger_node::config::NodeConfig;
use hotledger_node::home::Home;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// Number of validators (1 to 100)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=100))]
    validators: u16,
    /// Folder to write the validators' homes, accounts.json and network.json into
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// Number of funded accounts (keys in DIR/accounts.json)
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// Balance of each funded account
    #[arg(long, default_value_t = 1_000_000_000)]
    balance: u64,
    /// Chain id: 1 to 64 bytes of [a-z0-9-_.]
    #[arg(long, default_value = "hotledger-testnet")]
    chain_id: String,
    /// Write into a non-empty DIR: overwrites the homes and deletes their databases
    #[arg(long)]
    force: bool,
}

#[derive(Serialize)]
struct AccountEntry {
    public_key: String,
    secret_key: String,
}

#[derive(Serialize)]
struct NetworkFile {
    chain_id: String,
    validators: Vec<ValidatorEntry>,
}

#[derive(Serialize)]
struct ValidatorEntry {
    name: String,
    home: PathBuf,
    rpc_url: String,
    metrics_url: String,
    p2p: String,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `count` distinct free loopback ports: all listeners are held until every port is known.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot find free loopback ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

pub fn run(args: TestnetArgs) -> Result<()> {
    let n = usize::from(args.validators);
    let dir = &args.output;
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if non_empty && !args.force {
        bail!(
            "--output {} is not empty; pass --force to overwrite the testnet in it \
             (this deletes the validators' databases)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;

    let ports = free_ports(3 * n)?;
    let (p2p_ports, rest) = ports.split_at(n);
    let (rpc_ports, metrics_ports) = rest.split_at(n);
    let network = generate_network(&NetworkSpec {
        validators: n,
        accounts: args.accounts,
        balance: args.balance,
        chain_id: args.chain_id.clone(),
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        p2p_ports: p2p_ports.to_vec(),
        genesis_time_ms: now_ms(),
        seed: None,
    })
    .context("cannot generate the network (check --chain-id, --accounts and --balance)")?;

    let mut entries = Vec::with_capacity(n);
    for (i, v) in network.validators.iter().enumerate() {
        let home = Home::new(dir.join(&v.name));
        let mut config = NodeConfig {
            moniker: v.name.clone(),
            ..NodeConfig::default()
        };
        config.p2p.listen = v.address.clone();
        config.rpc.listen = SocketAddr::from(([127, 0, 0, 1], rpc_ports[i]));
        config.metrics.listen = SocketAddr::from(([127, 0, 0, 1], metrics_ports[i]));
        write_home(
            &home,
            &config,
            &network.genesis,
            &v.consensus_key,
            v.node_key,
            args.force,
        )?;
        entries.push(ValidatorEntry {
            name: v.name.clone(),
            home: home.root().to_path_buf(),
            rpc_url: format!("http://{}", config.rpc.listen),
            metrics_url: format!("http://{}/metrics", config.metrics.listen),
            p2p: v.address.clone(),
        });
    }

    let accounts: Vec<AccountEntry> = network
        .account_keys
        .iter()
        .map(|k| AccountEntry {
            public_key: k.public().to_hex(),
            secret_key: hex::encode(*k.secret_bytes()),
        })
        .collect();
    let accounts_path = dir.join("accounts.json");
    write_private(&accounts_path, &serde_json::to_vec_pretty(&accounts)?)?;
    let network_path = dir.join("network.json");
    let file = NetworkFile {
        chain_id: network.genesis.chain_id.clone(),
        validators: entries,
    };
    std::fs::write(&network_path, serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("cannot write {}", network_path.display()))?;

    println!(
        "testnet {:?}: {n} validators, {} funded accounts of {} units, in {}",
        file.chain_id,
        accounts.len(),
        args.balance,
        dir.display()
    );
    println!("  accounts (secret keys): {}", accounts_path.display());
    println!("  network description:    {}", network_path.display());
    println!("start each validator (one terminal each, or in the background):");
    for v in &file.validators {
        println!(
            "  hotledger start --home {}    # rpc {}",
            v.home.display(),
            v.rpc_url
        );
    }
    Ok(())
}

fn write_home(
    home: &Home,
    config: &NodeConfig,
    genesis: &hotledger_genesis::Genesis,
    consensus_key: &KeyPair,
    node_key: [u8; 32],
    force: bool,
) -> Result<()> {
    home.create_dirs()?;
    let data = home.data_path(config);
    if force && data.exists() {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("cannot delete the old database {}", data.display()))?;
    }
    save_key_file(&home.validator_key_path(), consensus_key, force)?;
    save_key_file(&home.node_key_path(), &KeyPair::from_seed(node_key), force)?;
    genesis.save(&home.genesis_path())?;
    config.save(&home.config_path())?;
    Ok(())
}

/// Writes `data` to `path` with mode 0600 (unix).
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        // An existing file keeps its mode on open: tighten it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict {}", path.display()))?;
        }
    }
    let mut file = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
