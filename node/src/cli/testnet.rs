//! `hotledger testnet`: one home per validator of a fresh network, on this machine's loopback
//! (free ports chosen now) or, with `--hosts`, one validator per host on fixed ports.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use hotledger_crypto::{key_file_bytes, save_key_file, KeyPair};
use hotledger_genesis::{generate_network, GeneratedNetwork, Host, NetworkSpec};
use hotledger_node::config::NodeConfig;
use hotledger_node::home::Home;
use serde::Serialize;

use super::address::{parse_host, Listen, PortArgs};

#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// Number of validators, 1 to 100 [default: the number of --hosts]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=100), required_unless_present = "hosts")]
    validators: Option<u16>,
    /// One host per validator, comma-separated: IPv4, IPv6 or DNS names where its peers reach
    /// it. Every validator then uses the same --p2p-port, --rpc-port and --metrics-port on its
    /// own host. Without it, all validators run on 127.0.0.1 on free ports chosen now.
    #[arg(long, value_delimiter = ',', value_name = "HOST,...", value_parser = parse_host)]
    hosts: Vec<Host>,
    #[command(flatten)]
    ports: PortArgs,
    /// Folder to write the validators' homes, accounts.json and network.json into
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// Number of funded accounts (keys in DIR/accounts.json and DIR/accounts/<n>.json)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    accounts: u64,
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
    /// Where its peers and clients reach it.
    host: String,
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

/// Each validator's host and ports: `--hosts` on the fixed ports, else loopback on free ports.
struct Placement {
    hosts: Vec<Host>,
    p2p: Vec<u16>,
    rpc: Vec<u16>,
    metrics: Vec<u16>,
}

fn placement(args: &TestnetArgs) -> Result<Placement> {
    if args.hosts.is_empty() {
        let n = usize::from(args.validators.unwrap_or(1));
        let ports = free_ports(3 * n)?;
        return Ok(Placement {
            hosts: vec![Host::Ip(Ipv4Addr::LOCALHOST.into()); n],
            p2p: ports[..n].to_vec(),
            rpc: ports[n..2 * n].to_vec(),
            metrics: ports[2 * n..].to_vec(),
        });
    }
    let n = args.hosts.len();
    if let Some(v) = args.validators.filter(|&v| usize::from(v) != n) {
        bail!("--validators {v} but {n} --hosts: give one host per validator");
    }
    if n > 100 {
        bail!("{n} --hosts: at most 100 validators");
    }
    args.ports.check()?;
    for (i, host) in args.hosts.iter().enumerate() {
        if let Some(j) = args.hosts[..i].iter().position(|h| h == host) {
            bail!(
                "--hosts names {host} for validators {j} and {i}: with one port per role, \
                 each validator needs its own host"
            );
        }
    }
    Ok(Placement {
        hosts: args.hosts.clone(),
        p2p: vec![args.ports.p2p_port; n],
        rpc: vec![args.ports.rpc_port; n],
        metrics: vec![args.ports.metrics_port; n],
    })
}

pub fn run(args: TestnetArgs) -> Result<()> {
    let place = placement(&args)?;
    let accounts = usize::try_from(args.accounts).context("--accounts")?;
    let dir = prepare_output(&args.output, args.force)?;
    let listens = listen_addresses(&args, &place)?;
    let network = generate_network(&NetworkSpec {
        validators: place.hosts.len(),
        accounts,
        balance: args.balance,
        chain_id: args.chain_id.clone(),
        hosts: place.hosts.clone(),
        p2p_ports: place.p2p.clone(),
        genesis_time_ms: now_ms(),
        seed: None,
    })
    .context("cannot generate the network (check --hosts, --chain-id, --accounts and --balance)")?;
    let validators = write_homes(&dir, &place, &listens, &network, args.force)?;
    let written = write_network_files(&dir, &network, validators, args.force)?;
    print_summary(&args, &dir, &written);
    Ok(())
}

/// Creates `dir` and returns its canonical path; refuses a non-empty one without `force`.
fn prepare_output(dir: &Path, force: bool) -> Result<PathBuf> {
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if non_empty && !force {
        bail!(
            "--output {} is not empty; pass --force to overwrite the testnet in it \
             (this deletes the validators' databases)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))
}

/// Each validator's listen addresses, from its placement and `--bind`.
fn listen_addresses(args: &TestnetArgs, place: &Placement) -> Result<Vec<Listen>> {
    (0..place.hosts.len())
        .map(|i| {
            Listen::new(
                &place.hosts[i],
                args.ports.bind,
                place.p2p[i],
                place.rpc[i],
                place.metrics[i],
            )
        })
        .collect()
}

/// Writes one home per validator, `DIR/<name>`; returns their `network.json` entries.
fn write_homes(
    dir: &Path,
    place: &Placement,
    listens: &[Listen],
    network: &GeneratedNetwork,
    force: bool,
) -> Result<Vec<ValidatorEntry>> {
    let mut entries = Vec::with_capacity(network.validators.len());
    for (i, v) in network.validators.iter().enumerate() {
        let home = Home::new(dir.join(&v.name));
        let mut config = NodeConfig {
            moniker: v.name.clone(),
            ..NodeConfig::default()
        };
        listens[i].apply(&mut config);
        let url_host = place.hosts[i].url_host();
        write_home(
            &home,
            &config,
            &network.genesis,
            &v.consensus_key,
            v.node_key,
            force,
        )?;
        entries.push(ValidatorEntry {
            name: v.name.clone(),
            home: home.root().to_path_buf(),
            host: place.hosts[i].to_string(),
            rpc_url: format!("http://{url_host}:{}", place.rpc[i]),
            metrics_url: format!("http://{url_host}:{}/metrics", place.metrics[i]),
            p2p: v.address.clone(),
        });
    }
    Ok(entries)
}

/// What [`write_network_files`] wrote.
struct Written {
    network: NetworkFile,
    accounts: usize,
    accounts_path: PathBuf,
    key_dir: PathBuf,
    network_path: PathBuf,
}

/// Writes `accounts.json`, the account key files and `network.json`.
fn write_network_files(
    dir: &Path,
    network: &GeneratedNetwork,
    validators: Vec<ValidatorEntry>,
    force: bool,
) -> Result<Written> {
    let accounts: Vec<AccountEntry> = network
        .account_keys
        .iter()
        .map(|k| AccountEntry {
            public_key: k.public().to_hex(),
            secret_key: hex::encode(*k.secret_bytes()),
        })
        .collect();
    let accounts_path = dir.join("accounts.json");
    write_private(&accounts_path, &serde_json::to_vec_pretty(&accounts)?, true)?;
    let key_dir = write_account_keys(dir, &network.account_keys, force)?;
    let network_path = dir.join("network.json");
    let file = NetworkFile {
        chain_id: network.genesis.chain_id.clone(),
        validators,
    };
    std::fs::write(&network_path, serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("cannot write {}", network_path.display()))?;
    Ok(Written {
        network: file,
        accounts: accounts.len(),
        accounts_path,
        key_dir,
        network_path,
    })
}

fn print_summary(args: &TestnetArgs, dir: &Path, written: &Written) {
    let file = &written.network;
    println!(
        "testnet {:?}: {} validators, {} funded accounts of {} units, in {}",
        file.chain_id,
        file.validators.len(),
        written.accounts,
        args.balance,
        dir.display()
    );
    println!(
        "  accounts (secret keys): {}",
        written.accounts_path.display()
    );
    println!(
        "  account key files:      {}/<n>.json (for `hotledger tx transfer --key`)",
        written.key_dir.display()
    );
    println!(
        "  network description:    {}",
        written.network_path.display()
    );
    if args.hosts.is_empty() {
        println!("start each validator (one terminal each, or in the background):");
        for v in &file.validators {
            println!(
                "  hotledger --home {} start    # rpc {}",
                v.home.display(),
                v.rpc_url
            );
        }
    } else {
        println!("copy each home to its host and start it there (see docs/deploy.md):");
        for v in &file.validators {
            println!(
                "  {} -> {}: hotledger --home <copied folder> start    # p2p {}, rpc {}",
                v.home.display(),
                v.host,
                v.p2p,
                v.rpc_url
            );
        }
    }
}

/// One key file per funded account, `DIR/accounts/<n>.json` (mode 0600, the format of
/// `keys/account.json`), in the order of `accounts.json`. `accounts.json`, written and synced
/// before, holds the same keys, so these are not synced one by one.
fn write_account_keys(dir: &Path, keys: &[KeyPair], force: bool) -> Result<PathBuf> {
    let key_dir = dir.join("accounts");
    if force && key_dir.exists() {
        // Keys of the replaced network's accounts would otherwise outlive it.
        std::fs::remove_dir_all(&key_dir)
            .with_context(|| format!("cannot delete the old {}", key_dir.display()))?;
    }
    std::fs::create_dir_all(&key_dir)
        .with_context(|| format!("cannot create {}", key_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", key_dir.display()))?;
    }
    for (i, key) in keys.iter().enumerate() {
        let path = key_dir.join(format!("{i}.json"));
        let bytes =
            key_file_bytes(key).with_context(|| format!("cannot encode {}", path.display()))?;
        write_private(&path, &bytes, false)?;
    }
    Ok(key_dir)
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

/// Writes `data` to `path` with mode 0600 (unix), synced to disk if `sync`.
fn write_private(path: &Path, data: &[u8], sync: bool) -> Result<()> {
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
        .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
        .with_context(|| format!("cannot write {}", path.display()))
}
