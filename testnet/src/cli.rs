//! The command line: `run`, `status`, `stop`, `wipe`, `bench`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

/// Start, watch, load and benchmark a local hotledger network (127.0.0.1, or with `run --netns`
/// network namespaces made for the run).
#[derive(Debug, Parser)]
#[command(name = "hotledger-testnet", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate (or reuse), start and watch a local network, optionally under load
    Run(RunArgs),
    /// Show the processes in DIR/pids.json and each validator's status
    Status(DirArgs),
    /// Send SIGTERM to the validators in DIR/pids.json
    Stop(DirArgs),
    /// Delete DIR (refused while its validators run)
    Wipe(DirArgs),
    /// Measure throughput and commit latency at increasing offered rates
    Bench(BenchArgs),
}

/// Where the `hotledger` binary is.
#[derive(Debug, Clone, Args)]
pub struct BinArgs {
    /// The `hotledger` binary [default: $HOTLEDGER_BIN, else next to this program, else PATH]
    #[arg(long = "bin", value_name = "PATH")]
    pub bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DirArgs {
    /// The network's folder
    #[arg(long, value_name = "DIR", default_value = "./.testnet")]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Number of validators
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub validators: u16,
    /// The network's folder (homes, logs, pids.json)
    #[arg(long, value_name = "DIR", default_value = "./.testnet")]
    pub dir: PathBuf,
    /// Offered load in transfers per second
    #[arg(long, value_name = "TPS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rate: u64,
    /// Stop after this many seconds [default: until Ctrl-C]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: Option<u64>,
    /// Start the network without the load generator
    #[arg(long)]
    pub no_load: bool,
    /// Funded accounts of a newly generated network
    #[arg(long, value_name = "M", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub accounts: u64,
    /// Delete a stopped network in DIR and generate a new one (default: reuse its homes)
    #[arg(long)]
    pub fresh: bool,
    /// Run each validator on its own network host: a Linux network namespace with its own
    /// address on a bridge (198.18.0.0/24), homes generated with `hotledger testnet --hosts`.
    /// Root only; the namespaces are deleted when the run ends
    #[arg(long)]
    pub netns: bool,
    /// Without --duration: seconds of load to pre-sign (the load stops when they are used up)
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub presign_secs: u64,
    #[command(flatten)]
    pub bin: BinArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Number of validators
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub validators: u16,
    /// Offered rates to measure, in transfers per second, in order
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,10000,20000", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rates: Vec<u64>,
    /// Measured seconds per rate
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub step_secs: u64,
    /// Seconds of load before measuring, per rate
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup_secs: u64,
    /// Where to write the results as JSON
    #[arg(long, value_name = "FILE", default_value = "bench.json")]
    pub out: PathBuf,
    /// Validators to kill with SIGKILL during each measured step (at most f of 3f+1): the step
    /// is measured in thirds, healthy, then crashed from the first third on
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub crash: u16,
    /// With --crash: start the crashed validators again at two thirds of the step, so the last
    /// third measures the recovery
    #[arg(long, requires = "crash")]
    pub restart: bool,
    /// With --restart: keep the crashed validators down this long (instead of a third of the
    /// step), the healthy and recovered parts sharing the rest; the report gives how long each
    /// restarted validator took to catch up with the others and how fast it replayed
    #[arg(long, value_name = "SECS", requires = "restart", value_parser = clap::value_parser!(u64).range(1..=3_000))]
    pub down_secs: Option<u64>,
    /// With --restart: delete the crashed validators' chain data (`data/`; their safety
    /// records stay) while they are down, so they come back with an empty database
    #[arg(long, requires = "restart")]
    pub wipe: bool,
    /// With --wipe: restart them with `start --state-sync`, so they join from the others'
    /// snapshots; the report adds the snapshot's height and the state sync's seconds
    #[arg(long, requires = "wipe")]
    pub state_sync: bool,
    /// With --restart: stop the load when the crashed validators restart, so they catch up
    /// with a chain that no longer grows by transfers (the recovered part then commits none
    /// of ours)
    #[arg(long, requires = "restart")]
    pub stop_load_at_restart: bool,
    /// Funded accounts in each network (default: 7 per 20 tx/s of the rate, at least 1,000)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub accounts: Option<u64>,
    /// Every validator snapshots the state every N heights (`snapshot.interval` in each
    /// config.toml; the node's default otherwise)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub snapshot_interval: Option<u64>,
    /// The benchmark networks' folder (wiped for every rate)
    #[arg(long, value_name = "DIR", default_value = "./.testnet-bench")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub bin: BinArgs,
}

impl Cli {
    /// Runs the command on a multi-threaded tokio runtime.
    pub fn run(self) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("hotledger-testnet")
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(async move {
            match self.command {
                Command::Run(args) => crate::run::run(args).await,
                Command::Status(args) => crate::run::status(&args.dir).await,
                Command::Stop(args) => crate::run::stop(&args.dir).await,
                Command::Wipe(args) => crate::run::wipe(&args.dir),
                Command::Bench(args) => crate::bench::bench(args).await,
            }
        })
    }
}

impl BinArgs {
    /// `--bin`, else `$HOTLEDGER_BIN`, else `hotledger` next to this executable, else on PATH.
    pub fn resolve(&self) -> Result<PathBuf> {
        let path = if let Some(path) = &self.bin {
            path.clone()
        } else if let Some(path) = std::env::var_os("HOTLEDGER_BIN").filter(|p| !p.is_empty()) {
            PathBuf::from(path)
        } else {
            let sibling = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|d| d.join("hotledger")))
                .filter(|p| p.is_file());
            match sibling {
                Some(p) => p,
                None => PathBuf::from("hotledger"),
            }
        };
        if path.components().count() > 1 && !path.is_file() {
            anyhow::bail!(
                "the hotledger binary {} does not exist; build it with \
                 `cargo build --release -p hotledger-node` or pass --bin PATH",
                path.display()
            );
        }
        Ok(path)
    }
}
