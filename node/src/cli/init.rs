//! `hotledger init`: a single-validator home, or (`--full-node`) the home of a full node that
//! follows an existing chain.

use anyhow::{bail, Context, Result};
use clap::Args;
use hotledger_crypto::{save_key_file, KeyPair};
use hotledger_genesis::{
    generate_network, GeneratedNetwork, GeneratedValidator, Genesis, Host, NetworkSpec,
};
use hotledger_node::config::{NodeConfig, Role};
use hotledger_node::home::Home;

use super::address::{parse_host, Listen, PortArgs};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Name of this node (logs, and its validator name in genesis) [default: validator-0, or
    /// full-node with --full-node]
    #[arg(long)]
    moniker: Option<String>,
    /// Chain id: 1 to 64 bytes of [a-z0-9-_.]
    #[arg(long, default_value = "hotledger-local", conflicts_with = "full_node")]
    chain_id: String,
    /// Balance of the funded account (its key goes to keys/account.json)
    #[arg(long, default_value_t = 1_000_000_000, conflicts_with = "full_node")]
    balance: u64,
    /// A full node of an existing chain instead of a new chain's validator: it takes the
    /// chain's genesis.json (--genesis), gets its own node key and no validator key, dials the
    /// genesis validators and every --peer, follows the chain by block sync, relays
    /// transactions and serves RPC (role = "full" in config.toml)
    #[arg(long, requires = "genesis")]
    full_node: bool,
    /// With --full-node: the chain's genesis.json, copied into the home
    #[arg(long, value_name = "PATH", requires = "full_node")]
    genesis: Option<std::path::PathBuf>,
    /// With --full-node: a peer to dial besides the genesis validators, as
    /// /ip4/<address>/tcp/<port>/p2p/<peer id> (repeatable; p2p.peers in config.toml)
    #[arg(long = "peer", value_name = "MULTIADDR", requires = "full_node")]
    peers: Vec<String>,
    /// Where peers and clients reach this node: an IPv4 or IPv6 address or a DNS name
    #[arg(long, default_value = "127.0.0.1", value_parser = parse_host)]
    host: Host,
    #[command(flatten)]
    ports: PortArgs,
    /// Overwrite an existing home: replaces its config, genesis and keys, deletes its database
    #[arg(long)]
    force: bool,
}

pub fn run(home: &Home, args: InitArgs) -> Result<()> {
    refuse_existing_home(home, args.force)?;
    if args.full_node {
        return init_full_node(home, &args);
    }
    let config = config_of(&args)?;
    let network = generate(&args)?;
    let (Some(validator), Some(account)) =
        (network.validators.first(), network.account_keys.first())
    else {
        bail!("network generation returned no validator or no account");
    };
    write_home(
        home,
        &config,
        &network.genesis,
        validator,
        account,
        args.force,
    )?;
    print_summary(
        home,
        &args,
        &config,
        &network.genesis.chain_id,
        validator,
        account,
    );
    Ok(())
}

/// Without `--force`, fails if any of the home's files exists.
fn refuse_existing_home(home: &Home, force: bool) -> Result<()> {
    let existing = [
        home.config_path(),
        home.genesis_path(),
        home.validator_key_path(),
        home.node_key_path(),
    ]
    .into_iter()
    .find(|p| p.exists());
    if let (Some(path), false) = (&existing, force) {
        bail!(
            "{} already exists: {} holds a node home; pass --force to overwrite it \
             (this replaces its keys and deletes its database)",
            path.display(),
            home.root().display()
        );
    }
    Ok(())
}

/// The home of a full node: the chain's genesis, a new node key, `role = "full"` and the
/// peers of the flags.
fn init_full_node(home: &Home, args: &InitArgs) -> Result<()> {
    let Some(source) = &args.genesis else {
        bail!("--full-node needs --genesis PATH: the genesis.json of the chain to follow");
    };
    let genesis = Genesis::load(source).context("--genesis")?;
    let mut config = config_of(args)?;
    config.role = Role::Full;
    config.p2p.peers = args.peers.clone();
    config
        .validate()
        .map_err(|reason| anyhow::anyhow!("--peer: {reason}"))?;
    let node_key = KeyPair::generate(&mut rand::rngs::OsRng);
    let peer_id = hotledger_genesis::peer_id_from_node_key(*node_key.secret_bytes())?;
    if genesis.validators.iter().any(|v| v.peer_id == peer_id) {
        bail!("the new node key's peer id {peer_id} is a validator's in genesis; run again");
    }
    home.create_dirs()?;
    if args.force {
        remove_data(home, &config)?;
    }
    save_key_file(&home.node_key_path(), &node_key, args.force)?;
    genesis.save(&home.genesis_path())?;
    config.save(&home.config_path())?;
    println!("initialised full node {}", home.root().display());
    println!("  chain id          {}", genesis.chain_id);
    println!("  genesis hash      {}", genesis.hash());
    println!("  peer id           {peer_id}");
    println!(
        "  peers             the {} genesis validators, and {} more (p2p.peers)",
        genesis.validators.len(),
        config.p2p.peers.len()
    );
    println!(
        "  p2p               listening on {}, rpc on {}",
        config.p2p.listen, config.rpc.listen
    );
    println!(
        "start it with: hotledger start --home {} (add --state-sync to restore a recent \
         snapshot instead of replaying every block)",
        home.root().display()
    );
    Ok(())
}

/// Deletes the home's database (`init --force`); the safety record is kept.
fn remove_data(home: &Home, config: &NodeConfig) -> Result<()> {
    let data = home.data_path(config);
    if data.exists() {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("cannot delete the old database {}", data.display()))?;
        println!("deleted the old database {}", data.display());
    }
    Ok(())
}

/// The moniker of the flags, else the default for the kind of node.
fn moniker(args: &InitArgs) -> String {
    match (&args.moniker, args.full_node) {
        (Some(m), _) => m.clone(),
        (None, false) => "validator-0".into(),
        (None, true) => "full-node".into(),
    }
}

/// The default configuration with the moniker, addresses and ports of the flags.
fn config_of(args: &InitArgs) -> Result<NodeConfig> {
    args.ports.check()?;
    let mut config = NodeConfig {
        moniker: moniker(args),
        ..NodeConfig::default()
    };
    Listen::new(
        &args.host,
        args.ports.bind,
        args.ports.p2p_port,
        args.ports.rpc_port,
        args.ports.metrics_port,
    )?
    .apply(&mut config);
    config
        .validate()
        .map_err(|reason| anyhow::anyhow!("the options give an invalid config.toml: {reason}"))?;
    Ok(config)
}

/// A one-validator network with one funded account; the validator is named `--moniker`.
fn generate(args: &InitArgs) -> Result<GeneratedNetwork> {
    let mut network = generate_network(&NetworkSpec {
        validators: 1,
        accounts: 1,
        balance: args.balance,
        chain_id: args.chain_id.clone(),
        hosts: vec![args.host.clone()],
        p2p_ports: vec![args.ports.p2p_port],
        genesis_time_ms: super::testnet::now_ms(),
        seed: None,
    })
    .context("--chain-id / --balance")?;
    if let Some(v) = network.genesis.validators.first_mut() {
        v.name = moniker(args);
    }
    network
        .genesis
        .validate()
        .context("--moniker is not a valid validator name")?;
    Ok(network)
}

/// Writes the keys, genesis and config; with `force`, deletes the old database first.
fn write_home(
    home: &Home,
    config: &NodeConfig,
    genesis: &Genesis,
    validator: &GeneratedValidator,
    account: &KeyPair,
    force: bool,
) -> Result<()> {
    home.create_dirs()?;
    if force {
        remove_data(home, config)?;
    }
    save_key_file(&home.validator_key_path(), &validator.consensus_key, force)?;
    save_key_file(
        &home.node_key_path(),
        &KeyPair::from_seed(validator.node_key),
        force,
    )?;
    save_key_file(&home.account_key_path(), account, force)?;
    genesis.save(&home.genesis_path())?;
    config.save(&home.config_path())?;
    Ok(())
}

fn print_summary(
    home: &Home,
    args: &InitArgs,
    config: &NodeConfig,
    chain_id: &str,
    validator: &GeneratedValidator,
    account: &KeyPair,
) {
    println!("initialised {}", home.root().display());
    println!("  chain id          {chain_id}");
    println!("  validator key     {}", validator.consensus_key.public());
    println!("  peer id           {}", validator.peer_id);
    println!(
        "  funded account    {} ({} units, key in {})",
        account.public(),
        args.balance,
        home.account_key_path().display()
    );
    println!(
        "  p2p               {} (listening on {})",
        validator.address, config.p2p.listen
    );
    println!(
        "  rpc               http://{}:{} (listening on {})",
        args.host.url_host(),
        args.ports.rpc_port,
        config.rpc.listen
    );
    println!(
        "start it with: hotledger start --home {}",
        home.root().display()
    );
}
