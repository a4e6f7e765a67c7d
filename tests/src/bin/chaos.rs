//! `chaos`: runs seeded fault schedules on real hotledger validators in network namespaces and
//! checks every run (see `hotledger_tests::chaos`). Prints one JSON line per run; exits 1 if
//! any run broke a claim (or, with `--negative-control`, if any run did not), 2 if the harness
//! could not run. Root only.
//!
//! ```text
//! chaos --nemesis halves --seeds 20
//! chaos --validators 7 --seeds 50          # nemesis drawn from each seed
//! chaos --byzantine equivocate --nemesis kill-one --seeds 5
//! chaos --negative-control --seeds 1       # a double-signer counted honest: must fail
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hotledger_tests::chaos::{self, Kind, RunConfig};

#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    about = "Fault injection on real hotledger validators (network namespaces; root only)"
)]
struct Args {
    /// Validators (4 or 7 are the tested sizes; 4 to 10).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(4..=10))]
    validators: u16,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Runs, with seeds seed, seed+1, ...
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    seeds: u64,
    /// The nemesis (quiet: none; halves, minority, bridge, leader, flap, kill-one, kill-f, kill-all, pause,
    /// clock, slow, wal-truncate, sst-corrupt, disk-full); drawn from each seed if omitted.
    #[arg(long)]
    nemesis: Option<Kind>,
    /// The last validator misbehaves (double-sign, equivocate, stale-flood, malformed-frames,
    /// tampered-sync) and is not held to the signing rules.
    #[arg(long)]
    byzantine: Option<String>,
    /// Validator 0 double-signs but is counted honest: every run must fail the checker.
    #[arg(long)]
    negative_control: bool,
    /// Milliseconds between two transfers of one account (16 accounts).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(20..=60_000))]
    tx_interval_ms: u64,
    /// Keep each run's homes and logs under DIR/seed-N (deleted otherwise).
    #[arg(long)]
    keep: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(why) = chaos::unavailable() {
        eprintln!("chaos cannot run here: {why}");
        return ExitCode::from(2);
    }
    let mut failed = 0u64;
    for (k, seed) in (args.seed..args.seed.saturating_add(args.seeds)).enumerate() {
        let cfg = RunConfig {
            validators: usize::from(args.validators),
            seed,
            kind: args.nemesis,
            byzantine: args.byzantine.clone(),
            negative_control: args.negative_control,
            tx_interval: Duration::from_millis(args.tx_interval_ms),
            dir: args.keep.as_ref().map(|d| d.join(format!("seed-{seed}"))),
            run_index: u32::try_from(k).unwrap_or(0),
        };
        // Ctrl-C or SIGTERM drops the run, whose guards kill its validators and delete its
        // namespaces and mounts.
        let outcome = tokio::select! {
            r = chaos::run(&cfg) => r,
            _ = stop_signal() => {
                eprintln!("stopped by a signal; the run's validators, namespaces and mounts are gone");
                return ExitCode::from(130);
            }
        };
        match outcome {
            Ok(summary) => {
                println!("{}", serde_json::to_string(&summary).unwrap_or_default());
                if summary.ok == args.negative_control {
                    failed += 1;
                }
            }
            Err(e) => {
                eprintln!("seed {seed}: the harness could not run: {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} runs {}",
            args.seeds,
            if args.negative_control {
                "passed the checker although a validator double-signed"
            } else {
                "broke a claim"
            }
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
