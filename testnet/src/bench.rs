//! `bench`: for each offered rate, a fresh network, a warm-up, then a measured step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use jsonrpsee::http_client::HttpClient;
use serde::Serialize;
use tokio::sync::watch;

use crate::cli::BenchArgs;
use crate::dashboard::thousands;
use crate::load::{self, Progress};
use crate::network::{self, Network};
use crate::procs;
use crate::run::{interrupted, start_network};
use crate::stats::{self, Counters, Stats};
use hotledger_node::config::NodeConfig;
use hotledger_node::home::Home;

/// Funded accounts per offered transfer per second: each account sends about 2.9 transfers a
/// second (7,000 accounts at 20,000 tx/s), whatever the step's length, so steps of different
/// lengths run the same workload: every block touches its senders' and recipients' accounts in
/// the state tree, so the account count shapes the cost of a commit.
const ACCOUNTS_PER_TPS: (u64, u64) = (7, 20);
/// Fewest accounts in a step.
const MIN_ACCOUNTS: u64 = 1_000;
/// A step is saturated when it commits less than this share of what it offered.
const SATURATION: f64 = 0.8;

#[derive(Debug, Clone, Serialize)]
pub struct ValidatorUsage {
    pub name: String,
    /// CPU time over the measured step, in % of one core.
    pub cpu_percent: f64,
    /// Peak resident memory (VmHWM) at the end of the step.
    pub peak_rss_mib: f64,
    pub exited: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub rate: u64,
    pub accounts: u64,
    pub measured_secs: f64,
    pub offered_tps: f64,
    pub accepted_tps: f64,
    pub committed_tps: f64,
    pub blocks_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub latency_samples: usize,
    pub rejected: BTreeMap<String, u64>,
    pub dropped_by_client: u64,
    pub rpc_errors: u64,
    /// Re-sent transfers the node had refused for a full mempool.
    pub resubmitted: u64,
    pub validators: Vec<ValidatorUsage>,
    /// This program's own CPU (load generator and watcher), in % of one core.
    pub loadgen_cpu_percent: f64,
    pub saturated: bool,
    /// With `--crash`: the step's thirds (healthy, crashed, then recovered or still crashed).
    pub phases: Vec<PhaseResult>,
    /// Our transfers committed in each second of the step.
    pub committed_per_sec: Vec<u64>,
    /// The p99 commit latency (ms) of the transfers seen committed in each second of the step
    /// (`null` for a second in which none was).
    pub p99_ms_per_sec: Vec<Option<f64>>,
    /// With `--restart`: each restarted validator's catch-up.
    pub catch_up: Vec<CatchUp>,
}

/// How a restarted validator caught up with the others.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUp {
    pub name: String,
    /// Blocks the others committed while it was down (their height at the restart less its
    /// height at the kill).
    pub missed_blocks: u64,
    /// Transfers committed while it was down.
    pub missed_txs: u64,
    /// Seconds from the restart until it reported, not syncing, a height within 2 blocks of
    /// the lowest other validator's and a round within 2 of theirs (polled once a second);
    /// `null` if it never did within the step.
    pub caught_up_secs: Option<f64>,
    /// Transfers it committed from the restart until caught up, per second of that time.
    pub replay_tps: Option<f64>,
    /// Whether its chain data was deleted while it was down (`--wipe`).
    pub wiped: bool,
    /// Transfers the chain held (the others' committed count) at the restart.
    pub chain_txs: u64,
    /// With `--state-sync`: the height of the snapshot it installed and the seconds its log
    /// gives for the state sync (choosing the snapshot, fetching and checking every chunk,
    /// installing it), before block sync took it to the tip.
    pub snapshot_height: Option<u64>,
    pub state_sync_secs: Option<f64>,
    /// Whether, once caught up, its state root at its height equalled another validator's at
    /// that height (`null`: not compared).
    pub root_agrees: Option<bool>,
}

/// One part of a step with `--crash`.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// `healthy`, `crashed` or `recovered`.
    pub name: &'static str,
    pub secs: f64,
    pub committed_tps: f64,
    pub blocks_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Transfers sent again to another validator after their request failed.
    pub failed_over: u64,
}

#[derive(Debug, Serialize)]
struct BenchFile<'a> {
    validators: u16,
    step_secs: u64,
    warmup_secs: u64,
    cores: usize,
    results: &'a [StepResult],
    best: Option<&'a StepResult>,
}

pub async fn bench(args: BenchArgs) -> Result<()> {
    let bin = args.bin.resolve()?;
    let f = (args.validators.saturating_sub(1)) / 3;
    if args.crash > f {
        anyhow::bail!(
            "--crash {} exceeds f = {f} for {} validators: a quorum would be gone",
            args.crash,
            args.validators
        );
    }
    if let Some(down) = args.down_secs {
        if down.saturating_add(2) > args.step_secs {
            anyhow::bail!(
                "--down-secs {down} leaves no healthy or recovered part of a {} s step: \
                 make --step-secs at least {}",
                args.step_secs,
                down.saturating_add(2)
            );
        }
    }
    let mut results: Vec<StepResult> = Vec::new();
    println!(
        "bench: {} validators, rates {:?} tx/s, {} s warm-up + {} s measured per rate, network in {}",
        args.validators,
        args.rates,
        args.warmup_secs,
        args.step_secs,
        args.dir.display()
    );
    let interrupt = interrupted();
    tokio::pin!(interrupt);
    for &rate in &args.rates {
        let step = tokio::select! {
            r = step(&args, &bin, rate) => r?,
            _ = &mut interrupt => { println!("interrupted"); break; }
        };
        print_row(&step, results.is_empty());
        let saturated = step.saturated;
        results.push(step);
        write_results(&args, &results)?;
        if saturated {
            println!("saturated at {rate} tx/s (committed < 80% of offered): stopping");
            break;
        }
    }
    let best = best(&results);
    match best {
        Some(b) => println!(
            "highest sustained rate with p99 < 1s: {:.0} tx/s committed (offered {:.0})",
            b.committed_tps, b.offered_tps
        ),
        None => println!(
            "highest sustained rate with p99 < 1s: none (no rate met p99 < 1 s unsaturated)"
        ),
    }
    write_results(&args, &results)?;
    println!("results: {}", args.out.display());
    Ok(())
}

/// The unsaturated step with p99 < 1 s and the highest committed rate.
pub fn best(results: &[StepResult]) -> Option<&StepResult> {
    results
        .iter()
        .filter(|r| !r.saturated && r.p99_ms.is_some_and(|p| p < 1000.0))
        .max_by(|a, b| a.committed_tps.total_cmp(&b.committed_tps))
}

fn write_results(args: &BenchArgs, results: &[StepResult]) -> Result<()> {
    let file = BenchFile {
        validators: args.validators,
        step_secs: args.step_secs,
        warmup_secs: args.warmup_secs,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        results,
        best: best(results),
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("cannot write {}", args.out.display()))
}

fn print_header() {
    println!(
        "{:>7} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8}  {:<14} validators' CPU % / peak MiB",
        "rate",
        "offered",
        "committed",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "rejected",
        "dropped",
        "loadgen CPU %"
    );
}

fn print_row(r: &StepResult, header: bool) {
    if header {
        print_header();
    }
    let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    let usage: Vec<String> = r
        .validators
        .iter()
        .map(|v| match &v.exited {
            None => format!("{:.0}/{:.0}", v.cpu_percent, v.peak_rss_mib),
            Some(_) => "DEAD".into(),
        })
        .collect();
    println!(
        "{:>7} {:>9.0} {:>10.0} {:>8} {:>8} {:>8} {:>9} {:>8}  {:<14} {}",
        r.rate,
        r.offered_tps,
        r.committed_tps,
        opt(r.p50_ms),
        opt(r.p95_ms),
        opt(r.p99_ms),
        thousands(r.rejected.values().sum()),
        thousands(r.dropped_by_client),
        format!("{:.0}", r.loadgen_cpu_percent),
        usage.join("  ")
    );
    if !r.rejected.is_empty() {
        let parts: Vec<String> = r.rejected.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("        rejected: {}", parts.join(", "));
    }
    if r.resubmitted > 0 {
        println!(
            "        resubmitted after \"mempool full\" or a nonce gap near full: {}",
            thousands(r.resubmitted)
        );
    }
    for ph in &r.phases {
        println!(
            "        {:<9} {:>5.1} s: committed {:>7.0} tx/s, {:>5.1} blocks/s, p50 {} ms, p99 {} ms, failed over {}",
            ph.name,
            ph.secs,
            ph.committed_tps,
            ph.blocks_per_sec,
            opt(ph.p50_ms),
            opt(ph.p99_ms),
            thousands(ph.failed_over)
        );
    }
}

/// Where a step with `--crash` changes phase: seconds into the step, the phase that starts, and
/// whether the crashed validators are killed (`Some(true)`) or restarted (`Some(false)`) then.
fn phase_plan(args: &BenchArgs) -> Vec<(u64, &'static str, Option<bool>)> {
    if args.crash == 0 {
        return Vec::new();
    }
    let (down_at, up_at) = match args.down_secs {
        Some(down) => {
            let before = (args.step_secs.saturating_sub(down) / 2).max(1);
            (before, before.saturating_add(down))
        }
        None => {
            let third = (args.step_secs / 3).max(1);
            (third, 2 * third)
        }
    };
    let last = if args.restart { "recovered" } else { "crashed" };
    vec![
        (0, "healthy", None),
        (down_at, "crashed", Some(true)),
        (up_at, last, args.restart.then_some(false)),
    ]
}

/// The phases of a step with `--crash`: the plan, the validators it crashes, the phase under
/// way, and the closed phases with their latencies.
struct Phases {
    plan: Vec<(u64, &'static str, Option<bool>)>,
    crashed: Vec<usize>,
    /// `--wipe` and `--state-sync`.
    wipe: bool,
    state_sync: bool,
    /// `--stop-load-at-restart`.
    stop_load: bool,
    /// The others' lowest height and committed transfers when the crashed ones were killed.
    at_kill: Option<(u64, u64)>,
    /// When the crashed ones were restarted, the others' lowest height and transfers then.
    at_restart: Option<(Instant, u64, u64)>,
    catch_up: Vec<CatchUp>,
    current: Option<(&'static str, Instant, Counters)>,
    closed: Vec<PhaseResult>,
    latencies: Vec<f64>,
}

impl Phases {
    /// The last `--crash` validators of `validators` are the ones crashed.
    fn new(args: &BenchArgs, validators: usize) -> Phases {
        let crashed = (0..usize::from(args.crash))
            .filter_map(|k| validators.checked_sub(1 + k))
            .collect();
        Phases {
            plan: phase_plan(args),
            crashed,
            wipe: args.wipe,
            state_sync: args.state_sync,
            stop_load: args.stop_load_at_restart,
            at_kill: None,
            at_restart: None,
            catch_up: Vec::new(),
            current: None,
            closed: Vec::new(),
            latencies: Vec::new(),
        }
    }

    /// The lowest height, the highest round and the most committed transfers the validators
    /// not crashed report now.
    async fn others(&self, net: &Network) -> Option<(u64, u64, u64)> {
        let clients = net.clients().ok()?;
        let mut seen: Option<(u64, u64, u64)> = None;
        for (i, client) in clients.iter().enumerate() {
            if self.crashed.contains(&i) {
                continue;
            }
            if let Some(s) = status(client).await {
                let (h, r, t) = seen.unwrap_or((u64::MAX, 0, 0));
                seen = Some((h.min(s.height), r.max(s.round), t.max(s.committed_txs)));
            }
        }
        seen
    }

    /// After the restart: records, for each restarted validator not caught up yet, whether it
    /// is now (see [`CatchUp::caught_up_secs`]).
    async fn watch_catch_up(&mut self, net: &Network) {
        let Some((restarted, height_then, txs_then)) = self.at_restart else {
            return;
        };
        let Some((low, round, _)) = self.others(net).await else {
            return;
        };
        let Ok(clients) = net.clients() else {
            return;
        };
        let (kill_height, kill_txs) = self.at_kill.unwrap_or((0, 0));
        for &i in &self.crashed {
            let name = net.info.validators[i].name.clone();
            if self
                .catch_up
                .iter()
                .any(|c| c.name == name && c.caught_up_secs.is_some())
            {
                continue;
            }
            let Some(s) = status(&clients[i]).await else {
                continue;
            };
            if s.syncing || s.height.saturating_add(2) < low || s.round.saturating_add(2) < round {
                continue;
            }
            let secs = restarted.elapsed().as_secs_f64();
            // A wiped node counts its transfers from zero (from the snapshot after a state
            // sync), one that kept its data from what it had.
            let replayed = if self.wipe {
                s.committed_txs
            } else {
                s.committed_txs.saturating_sub(kill_txs)
            };
            let (snapshot_height, state_sync_secs) = if self.state_sync {
                state_sync_report(&net.log_path(i))
            } else {
                (None, None)
            };
            let other = (0..clients.len()).find(|j| !self.crashed.contains(j));
            let root_agrees = match other {
                Some(j) => same_root(&clients[i], &clients[j], s.height).await,
                None => None,
            };
            self.catch_up.retain(|c| c.name != name);
            self.catch_up.push(CatchUp {
                name,
                missed_blocks: height_then.saturating_sub(kill_height),
                missed_txs: txs_then.saturating_sub(kill_txs),
                caught_up_secs: Some(secs),
                replay_tps: Some(replayed as f64 / secs.max(0.001)),
                wiped: self.wipe,
                chain_txs: txs_then,
                snapshot_height,
                state_sync_secs,
                root_agrees,
            });
        }
    }

    /// The catch-ups, with a `null` entry for each restarted validator that never caught up.
    fn catch_ups(&self, net: &Network) -> Vec<CatchUp> {
        let mut out = self.catch_up.clone();
        if let (Some((_, height_then, txs_then)), Some((kill_height, kill_txs))) =
            (self.at_restart, self.at_kill)
        {
            for &i in &self.crashed {
                let name = &net.info.validators[i].name;
                if !out.iter().any(|c| &c.name == name) {
                    out.push(CatchUp {
                        name: name.clone(),
                        missed_blocks: height_then.saturating_sub(kill_height),
                        missed_txs: txs_then.saturating_sub(kill_txs),
                        caught_up_secs: None,
                        replay_tps: None,
                        wiped: self.wipe,
                        chain_txs: txs_then,
                        snapshot_height: None,
                        state_sync_secs: None,
                        root_agrees: None,
                    });
                }
            }
        }
        out
    }

    /// At second `s` of the step: if a phase starts then, closes the current one and kills or
    /// restarts the crashed validators as planned.
    async fn at_second(
        &mut self,
        s: u64,
        net: &mut Network,
        stats: &Stats,
        bar: &ProgressBar,
        rate: u64,
        load_stop: &watch::Sender<bool>,
    ) -> Result<()> {
        let Some(&(_, name, action)) = self.plan.iter().find(|(at, _, _)| *at == s) else {
            return Ok(());
        };
        self.close(stats);
        let what = match action {
            Some(true) => {
                self.crashed.iter().for_each(|&i| net.kill(i));
                self.at_kill = self.others(net).await.map(|(h, _, t)| (h, t));
                if self.wipe {
                    for &i in &self.crashed {
                        wipe_chain_data(&net.info.validators[i].home)?;
                    }
                    Some("killed and wiped the chain data of")
                } else {
                    Some("killed")
                }
            }
            Some(false) => {
                let (height, _, txs) = self.others(net).await.unwrap_or_default();
                let start_args: &[&str] = if self.state_sync {
                    &["--state-sync"]
                } else {
                    &[]
                };
                for &i in &self.crashed {
                    net.restart_with(i, start_args)?;
                }
                if self.stop_load {
                    let _ = load_stop.send(true);
                }
                self.at_restart = Some((Instant::now(), height, txs));
                Some(if self.stop_load {
                    "stopped the load and restarted"
                } else {
                    "restarted"
                })
            }
            None => None,
        };
        if let Some(what) = what {
            let names: Vec<&str> = self
                .crashed
                .iter()
                .map(|&i| net.info.validators[i].name.as_str())
                .collect();
            network::say(
                bar,
                format!("{rate} tx/s at {s} s: {what} {}", names.join(", ")),
            );
        }
        self.current = Some((name, Instant::now(), stats.counters()));
        Ok(())
    }

    /// Closes the phase under way, if any, keeping its latencies.
    fn close(&mut self, stats: &Stats) {
        if let Some((name, since, before)) = self.current.take() {
            let (phase, samples) = close_phase(name, since, &before, stats);
            self.latencies.extend(samples);
            self.closed.push(phase);
        }
    }
}

/// Deletes the database folder of the validator whose home is `home` (its safety record, in a
/// folder of its own, stays).
fn wipe_chain_data(home: &std::path::Path) -> Result<()> {
    let home = Home::new(home);
    let data = home.data_path(&NodeConfig::load(&home.config_path())?);
    match std::fs::remove_dir_all(&data) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot delete {}", data.display())),
    }
}

/// The snapshot height and the seconds of the state sync the node logged in `log` (the line
/// ending it, "snapshot installed"), if it did.
fn state_sync_report(log: &std::path::Path) -> (Option<u64>, Option<f64>) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return (None, None);
    };
    let Some(line) = text
        .lines()
        .rev()
        .find(|l| l.contains("snapshot installed"))
    else {
        return (None, None);
    };
    (
        log_field(line, "height").and_then(|v| v.parse().ok()),
        log_field(line, "secs").and_then(|v| v.parse().ok()),
    )
}

/// The value of `key=value` in a text log line (up to the next space).
fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

/// Closes a phase that ran from `since` with counters `before`; also returns its latencies.
fn close_phase(
    name: &'static str,
    since: Instant,
    before: &Counters,
    stats: &Stats,
) -> (PhaseResult, Vec<f64>) {
    let secs = since.elapsed().as_secs_f64().max(0.001);
    let delta = stats.counters().since(before);
    let mut lat = stats.take_window();
    let (p50, _, p99) = stats::summarize(&mut lat);
    let phase = PhaseResult {
        name,
        secs,
        committed_tps: delta.committed_ours as f64 / secs,
        blocks_per_sec: delta.blocks as f64 / secs,
        p50_ms: p50,
        p99_ms: p99,
        failed_over: delta.failed_over,
    };
    (phase, lat)
}

/// Whether `a` and `b` hold the same state root at `height` (`None`: either could not say).
async fn same_root(a: &HttpClient, b: &HttpClient, height: u64) -> Option<bool> {
    Some(root_at(a, height).await? == root_at(b, height).await?)
}

/// The state root `client` holds at `height`, within [`STATUS_TIMEOUT`], or `None`.
async fn root_at(client: &HttpClient, height: u64) -> Option<hotledger_crypto::Digest> {
    use hotledger_node::rpc::HotledgerApiClient;
    tokio::time::timeout(STATUS_TIMEOUT, client.get_block(Some(height)))
        .await
        .ok()?
        .ok()?
        .map(|b| b.state_root)
}

/// A validator's status within [`STATUS_TIMEOUT`], or `None`.
async fn status(client: &HttpClient) -> Option<hotledger_node::shared::Status> {
    use hotledger_node::rpc::HotledgerApiClient;
    tokio::time::timeout(STATUS_TIMEOUT, client.status())
        .await
        .ok()?
        .ok()
}

/// How long the catch-up watch waits for one validator's status.
const STATUS_TIMEOUT: Duration = Duration::from_millis(250);

/// The committed transfers and the p99 latency of each second of the step.
struct PerSecond {
    last: Counters,
    committed: Vec<u64>,
    p99_ms: Vec<Option<f64>>,
}

impl PerSecond {
    /// Starts counting from now (drops the latencies of the interval so far).
    fn start(stats: &Stats) -> PerSecond {
        let last = stats.counters();
        stats.take_interval();
        PerSecond {
            last,
            committed: Vec::new(),
            p99_ms: Vec::new(),
        }
    }

    /// Closes a second.
    fn record(&mut self, stats: &Stats) {
        let now = stats.counters();
        let committed = now.committed_ours.saturating_sub(self.last.committed_ours);
        self.committed.push(committed);
        self.last = now;
        let mut second = stats.take_interval();
        self.p99_ms
            .push(stats::summarize(&mut second).2.map(|ms| ms.round()));
    }
}

/// What the measured step saw, before it is summarised.
struct Window {
    wall: f64,
    delta: Counters,
    latencies: Vec<f64>,
    validators: Vec<ValidatorUsage>,
    loadgen_cpu_percent: f64,
    phases: Vec<PhaseResult>,
    per_second: PerSecond,
    catch_up: Vec<CatchUp>,
}

/// One rate: fresh network, warm-up, measured step, stop.
async fn step(args: &BenchArgs, bin: &std::path::Path, rate: u64) -> Result<StepResult> {
    // One second more than the warm-up and the step: the load must still be running when the
    // measured window closes (it starts after the network and the signing), or the window's
    // last moments see no new transfers and the offered rate reads short.
    let secs = args.warmup_secs + args.step_secs + 1;
    let (num, den) = ACCOUNTS_PER_TPS;
    let accounts = args
        .accounts
        .unwrap_or_else(|| rate.saturating_mul(num).div_ceil(den).max(MIN_ACCOUNTS));
    let (mut net, clients, txs) =
        start_step(args, bin, accounts, rate.saturating_mul(secs)).await?;

    let stats = Arc::new(Stats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    // The load's own stop: at the end, or at the restart with `--stop-load-at-restart`.
    let (load_stop_tx, load_stop_rx) = watch::channel(false);
    let run_for = Duration::from_secs(secs);
    let watcher = load::spawn_watcher(
        clients.clone(),
        Arc::clone(&stats),
        run_for + Duration::from_secs(5),
        stop_rx.clone(),
    );
    let generator = load::spawn_load(
        txs,
        rate,
        clients,
        Arc::clone(&stats),
        Arc::new(Progress::default()),
        Some(run_for),
        load_stop_rx,
    );
    let bar = network::spinner(format!("{rate} tx/s: warming up"));
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    let window = measure(args, rate, &mut net, &stats, &bar, &load_stop_tx).await?;
    bar.finish_and_clear();
    let _ = load_stop_tx.send(true);
    let _ = stop_tx.send(true);
    let _ = generator.await;
    let _ = watcher.await;
    net.stop().await?;
    Ok(step_result(rate, accounts, window))
}

/// A fresh network of `accounts` funded accounts, its clients, and `count` transfers signed.
async fn start_step(
    args: &BenchArgs,
    bin: &std::path::Path,
    accounts: u64,
    count: u64,
) -> Result<(Network, Vec<HttpClient>, Vec<load::Prepared>)> {
    let info = network::prepare(&args.dir, bin, args.validators, accounts, true, None)?;
    if let Some(interval) = args.snapshot_interval {
        for v in &info.validators {
            let path = Home::new(&v.home).config_path();
            let mut config = NodeConfig::load(&path)?;
            config.snapshot.interval = interval;
            config
                .validate()
                .map_err(|reason| anyhow::anyhow!("--snapshot-interval {interval}: {reason}"))?;
            config.save(&path)?;
        }
    }
    let dir = args.dir.canonicalize()?;
    let net = start_network(&dir, bin, info, None).await?;
    let clients = net.clients()?;
    let keys = crate::files::read_accounts(&dir)?;
    let nonces = load::fetch_nonces(&clients[0], &keys).await?;
    let chain_id = net.info.chain_id.clone();
    let n = usize::try_from(count).unwrap_or(usize::MAX);
    let txs =
        tokio::task::spawn_blocking(move || load::presign(&keys, &nonces, &chain_id, n, true))
            .await
            .context("the signing threads failed")?;
    Ok((net, clients, txs))
}

/// The measured step: `--step-secs` seconds, each closed on a schedule fixed from the start,
/// with the `--crash` phases, then the validators' and this program's CPU and memory.
async fn measure(
    args: &BenchArgs,
    rate: u64,
    net: &mut Network,
    stats: &Stats,
    bar: &ProgressBar,
    load_stop: &watch::Sender<bool>,
) -> Result<Window> {
    stats.reset_window();
    let before = stats.counters();
    let ticks_before: Vec<Option<u64>> = net.pids.iter().map(|&p| procs::cpu_ticks(p)).collect();
    let self_before = procs::cpu_ticks(std::process::id());
    let t0 = Instant::now();
    // Each second's end is fixed from the start, so the checks below do not stretch the step
    // (the rates divide by its measured length either way).
    let start = tokio::time::Instant::from_std(t0);
    let mut phases = Phases::new(args, net.len());
    let mut per_second = PerSecond::start(stats);
    for s in 0..args.step_secs {
        phases
            .at_second(s, net, stats, bar, rate, load_stop)
            .await?;
        phases.watch_catch_up(net).await;
        bar.set_message(format!("{rate} tx/s: measuring {s}/{} s", args.step_secs));
        tokio::time::sleep_until(start + Duration::from_secs(s.saturating_add(1))).await;
        per_second.record(stats);
        for (i, why) in net.poll_exits() {
            network::say(
                bar,
                format!(
                    "{} exited ({why})\n{}",
                    net.info.validators[i].name,
                    net.log_tail(i)
                ),
            );
        }
    }
    phases.close(stats);
    let catch_up = phases.catch_ups(net);
    for c in &catch_up {
        network::say(bar, format!(
            "{rate} tx/s: {} missed {} blocks ({} transfers; the chain held {}){}; caught up after {} s, replaying {} tx/s",
            c.name,
            thousands(c.missed_blocks),
            thousands(c.missed_txs),
            thousands(c.chain_txs),
            if c.wiped { ", its chain data deleted" } else { "" },
            c.caught_up_secs.map_or("(never)".into(), |s| format!("{s:.1}")),
            c.replay_tps.map_or("-".into(), |t| thousands(t.round() as u64)),
        ));
        if let Some(agrees) = c.root_agrees {
            network::say(
                bar,
                format!(
                    "        its state root at its height {} the others'",
                    if agrees { "equals" } else { "DIFFERS FROM" }
                ),
            );
        }
        if let (Some(h), Some(s)) = (c.snapshot_height, c.state_sync_secs) {
            network::say(bar, format!(
                "        state sync: the snapshot at height {} installed in {s:.1} s, then block sync to the tip",
                thousands(h)
            ));
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let delta = stats.counters().since(&before);
    // The latencies of the whole step: the phases', then those since the last phase closed.
    let mut latencies = std::mem::take(&mut phases.latencies);
    latencies.extend(stats.take_window());
    Ok(Window {
        wall,
        delta,
        latencies,
        validators: usage(net, &ticks_before, wall),
        loadgen_cpu_percent: cpu_percent(self_before, std::process::id(), wall),
        phases: phases.closed,
        per_second,
        catch_up,
    })
}

/// CPU of `pid` since it had `before` ticks, over `wall` seconds (0 if unknown).
fn cpu_percent(before: Option<u64>, pid: u32, wall: f64) -> f64 {
    match (before, procs::cpu_ticks(pid)) {
        (Some(a), Some(b)) => procs::cpu_percent(a, b, wall),
        _ => 0.0,
    }
}

/// Each validator's CPU since `ticks_before`, its peak memory, and how it exited if it did.
fn usage(net: &Network, ticks_before: &[Option<u64>], wall: f64) -> Vec<ValidatorUsage> {
    net.info
        .validators
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let pid = net.pids[i];
            ValidatorUsage {
                name: v.name.clone(),
                cpu_percent: cpu_percent(ticks_before.get(i).copied().flatten(), pid, wall),
                peak_rss_mib: procs::peak_rss_kib(pid).map_or(0.0, |k| k as f64 / 1024.0),
                exited: net.exited[i].clone(),
            }
        })
        .collect()
}

fn step_result(rate: u64, accounts: u64, w: Window) -> StepResult {
    let Window {
        wall,
        delta,
        mut latencies,
        validators,
        loadgen_cpu_percent,
        phases,
        per_second,
        catch_up,
    } = w;
    let (p50, p95, p99) = stats::summarize(&mut latencies);
    let offered_tps = delta.offered as f64 / wall;
    let committed_tps = delta.committed_ours as f64 / wall;
    StepResult {
        rate,
        accounts,
        measured_secs: wall,
        offered_tps,
        accepted_tps: delta.accepted as f64 / wall,
        committed_tps,
        blocks_per_sec: delta.blocks as f64 / wall,
        p50_ms: p50,
        p95_ms: p95,
        p99_ms: p99,
        latency_samples: latencies.len(),
        rejected: delta.rejected,
        dropped_by_client: delta.dropped_by_client,
        rpc_errors: delta.rpc_errors,
        resubmitted: delta.resubmitted,
        validators,
        loadgen_cpu_percent,
        saturated: committed_tps < SATURATION * offered_tps,
        phases,
        committed_per_sec: per_second.committed,
        p99_ms_per_sec: per_second.p99_ms,
        catch_up,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_state_sync_report_is_read_from_the_last_installed_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("validator-3.log");
        assert_eq!(state_sync_report(&log), (None, None));
        std::fs::write(
            &log,
            "2026-12-03T18:00:00Z  INFO hotledger_node::node: state sync: snapshot chosen height=2000 chunks=64\n\
             2026-12-03T18:00:02Z  INFO hotledger_node::node: state sync: snapshot installed, every chunk checked against the certified root height=2000 accounts=100000 chunks=64 fetched=64 refused=0 secs=1.875\n",
        )
        .unwrap();
        assert_eq!(state_sync_report(&log), (Some(2000), Some(1.875)));
        assert_eq!(log_field("a heights=5 height=7", "height"), Some("7"));
        assert_eq!(log_field("a height=", "height"), Some(""));
        assert_eq!(log_field("no fields", "height"), None);
    }
}
