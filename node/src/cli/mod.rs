//! The `hotledger` command line: `init`, `keys`, `start`, `testnet`, `tx`, `query`.

mod address;
mod init;
mod keys;
mod query;
mod start;
mod testnet;
mod tx;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Parser, Subcommand};
use hotledger_node::home::Home;
use hotledger_node::rpc::REJECTED;
use jsonrpsee::core::client::Error as ClientError;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};

/// hotledger: a Byzantine-fault-tolerant ledger node.
#[derive(Debug, Parser)]
#[command(name = "hotledger", version, propagate_version = true)]
pub struct Cli {
    /// The node's home folder [default: $HOTLEDGER_HOME, else $HOME/.hotledger]
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a single-validator home: config, keys and a genesis with one funded account
    Init(init::InitArgs),
    /// Generate or show keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Run the validator node of the home
    Start(start::StartArgs),
    /// Generate a local N-validator network (one home per validator)
    Testnet(testnet::TestnetArgs),
    /// Sign and submit transactions
    #[command(subcommand)]
    Tx(tx::TxCommand),
    /// Read the chain through a node's JSON-RPC
    Query(query::QueryArgs),
}

impl Cli {
    /// Runs the command.
    pub fn run(self) -> Result<()> {
        let home = || resolve_home(self.home.clone());
        match self.command {
            Command::Init(args) => init::run(&home()?, args),
            Command::Keys(keys::KeysCommand::Generate(args)) => keys::generate(args),
            Command::Keys(keys::KeysCommand::Show(args)) => keys::show(&home()?, args),
            Command::Start(args) => start::run(&home()?, args),
            Command::Testnet(args) => testnet::run(args),
            Command::Tx(cmd) => tx::run(&home()?, cmd),
            Command::Query(args) => query::run(&home()?, args),
        }
    }
}

/// `--home`, else `$HOTLEDGER_HOME`, else `$HOME/.hotledger`.
fn resolve_home(flag: Option<PathBuf>) -> Result<Home> {
    if let Some(path) = flag {
        return Ok(Home::new(path));
    }
    if let Some(path) = std::env::var_os("HOTLEDGER_HOME").filter(|p| !p.is_empty()) {
        return Ok(Home::new(PathBuf::from(path)));
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(home) => Ok(Home::new(PathBuf::from(home).join(".hotledger"))),
        None => Err(anyhow!(
            "no home folder: pass --home DIR or set HOTLEDGER_HOME (HOME is not set)"
        )),
    }
}

/// How to reach a node, shared by `tx` and `query`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// JSON-RPC URL of the node [default: http://<rpc.listen> from the home's config.toml]
    #[arg(long, global = true, value_name = "URL")]
    node: Option<String>,
    /// Print JSON instead of text
    #[arg(long, global = true)]
    json: bool,
}

/// A connected client and the URL it talks to (for error messages).
pub struct Node {
    pub url: String,
    pub client: HttpClient,
    runtime: tokio::runtime::Runtime,
}

impl ClientArgs {
    /// The URL from `--node`, else from the home's configuration.
    fn url(&self, home: &Home) -> Result<String> {
        if let Some(url) = &self.node {
            return Ok(url.clone());
        }
        let config = home
            .load_config()
            .context("cannot find the node's RPC address; pass --node URL")?;
        let mut addr = config.rpc.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        Ok(format!("http://{addr}"))
    }

    fn connect(&self, home: &Home) -> Result<Node> {
        let url = self.url(home)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let client = {
            // The HTTP client spawns its tasks on the current runtime.
            let _guard = runtime.enter();
            HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(30))
                .build(&url)
                .with_context(|| format!("invalid node URL {url:?}"))?
        };
        Ok(Node {
            url,
            client,
            runtime,
        })
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("url", &self.url).finish()
    }
}

impl Node {
    /// Runs one RPC call; errors name the URL.
    fn call<T, F>(&self, what: &str, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T, ClientError>>,
    {
        self.runtime
            .block_on(fut)
            .map_err(|e| describe(&self.url, what, e))
    }
}

fn describe(url: &str, what: &str, err: ClientError) -> anyhow::Error {
    match err {
        ClientError::Call(obj) if obj.code() == REJECTED => {
            anyhow!("{url} rejected the transaction: {}", obj.message())
        }
        ClientError::Call(obj) => {
            anyhow!(
                "{url}: {what} failed: {} (code {})",
                obj.message(),
                obj.code()
            )
        }
        ClientError::Transport(e) => {
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            anyhow!("cannot reach the node at {url}: {text}")
        }
        ClientError::RequestTimeout => anyhow!("{url}: {what} timed out"),
        other => anyhow!("{url}: {what} failed: {other}"),
    }
}

/// Prints `value` as pretty JSON.
fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
