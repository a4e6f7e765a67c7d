//! `run`, `status`, `stop` and `wipe`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hotledger_node::rpc::HotledgerApiClient;
use jsonrpsee::http_client::HttpClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::RunArgs;
use crate::dashboard::{thousands, Dashboard};
use crate::files;
use crate::load::{self, Progress};
use crate::netns;
use crate::network::{self, Network};
use crate::stats::Stats;

/// A run without `--duration` still ends by itself after this long.
pub const MAX_RUN: Duration = Duration::from_secs(24 * 3600);
/// The names of `run --netns`'s namespaces (`hltn-<i>`) and bridge (`hltnbr`).
pub const NETNS_TAG: &str = "hltn";
/// How long the validators get to commit their first block.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Resolves on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Starts the network in DIR and waits for every validator to commit height 1.
pub async fn start_network(
    dir: &Path,
    bin: &Path,
    info: files::NetworkFile,
    hosts: Option<netns::Hosts>,
) -> Result<Network> {
    let mut net = Network::start(dir, bin, info, hosts)?;
    let n = net.len();
    let bar = network::spinner(format!("starting {n} validators"));
    let waited = net
        .wait_for_height(1, START_TIMEOUT, |heights| {
            let shown: Vec<String> = heights
                .iter()
                .map(|h| h.map_or_else(|| "·".into(), |h| h.to_string()))
                .collect();
            bar.set_message(format!(
                "waiting for the first commit; heights [{}]",
                shown.join(" ")
            ));
        })
        .await;
    bar.finish_and_clear();
    if let Err(err) = waited {
        net.stop().await?;
        return Err(err);
    }
    println!(
        "{n} validators are committing (logs in {})",
        files::logs_dir(dir).display()
    );
    Ok(net)
}

pub async fn run(args: RunArgs) -> Result<()> {
    let bin = args.bin.resolve()?;
    let (dir, info, hosts) = prepare(&args, &bin)?;
    let run_for = args.duration.map_or(MAX_RUN, Duration::from_secs);

    let interrupt = interrupted();
    tokio::pin!(interrupt);
    let mut net = tokio::select! {
        net = start_network(&dir, &bin, info, hosts) => net?,
        _ = &mut interrupt => {
            // `Network` is dropped here: its Drop kills the processes started so far.
            let _ = std::fs::remove_file(files::pids_path(&dir));
            anyhow::bail!("interrupted while starting");
        }
    };
    let started = Instant::now();
    let clients = net.clients()?;
    let stats = Arc::new(Stats::default());
    let progress = Arc::new(Progress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let watcher = load::spawn_watcher(
        clients.clone(),
        Arc::clone(&stats),
        run_for,
        stop_rx.clone(),
    );
    let shared = Shared {
        clients: &clients,
        stats: &stats,
        progress: &progress,
        stop: &stop_rx,
    };
    let load_task = start_load(&args, &dir, &net, &shared, run_for, started).await?;
    watch_until_done(
        &args,
        &mut net,
        &shared,
        load_task.as_ref(),
        run_for,
        started,
        &mut interrupt,
    )
    .await;

    let _ = stop_tx.send(true);
    if let Some(task) = load_task {
        let _ = task.await;
    }
    let _ = watcher.await;
    println!(
        "stopping {} validators (SIGTERM, SIGKILL after 10 s)",
        net.len()
    );
    net.stop().await?;
    summary(&net, &stats, started.elapsed(), args.no_load);
    Ok(())
}

/// The network's folder (canonical), its description, and its hosts with `--netns`.
fn prepare(
    args: &RunArgs,
    bin: &Path,
) -> Result<(PathBuf, files::NetworkFile, Option<netns::Hosts>)> {
    let hosts = make_hosts(args)?;
    let info = network::prepare(
        &args.dir,
        bin,
        args.validators,
        args.accounts,
        args.fresh,
        hosts.as_ref(),
    )?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    Ok((dir, info, hosts))
}

/// With `--netns`, one network namespace per validator.
fn make_hosts(args: &RunArgs) -> Result<Option<netns::Hosts>> {
    if !args.netns {
        return Ok(None);
    }
    let hosts =
        netns::Hosts::create(NETNS_TAG, 0, usize::from(args.validators)).context("--netns")?;
    println!(
        "{} hosts in network namespaces {}-0.. on bridge {}br ({}), this machine at {}",
        hosts.len(),
        NETNS_TAG,
        NETNS_TAG,
        hosts.hosts_arg(),
        hosts.gateway
    );
    Ok(Some(hosts))
}

/// What the load generator and the dashboard share.
struct Shared<'a> {
    clients: &'a [HttpClient],
    stats: &'a Arc<Stats>,
    progress: &'a Arc<Progress>,
    stop: &'a watch::Receiver<bool>,
}

/// Pre-signs the run's transfers and starts the load generator; with `--no-load`, prints the
/// validators' URLs instead.
async fn start_load(
    args: &RunArgs,
    dir: &Path,
    net: &Network,
    shared: &Shared<'_>,
    run_for: Duration,
    started: Instant,
) -> Result<Option<JoinHandle<()>>> {
    if args.no_load {
        println!("no load; the validators' JSON-RPC URLs:");
        for v in &net.info.validators {
            println!("  {:<14} {}", v.name, v.rpc_url);
        }
        return Ok(None);
    }
    let keys = files::read_accounts(dir)?;
    let nonces = load::fetch_nonces(&shared.clients[0], &keys).await?;
    let secs = args.duration.unwrap_or(args.presign_secs);
    let count = usize::try_from(args.rate.saturating_mul(secs)).unwrap_or(usize::MAX);
    let per_account = count / keys.len().max(1);
    if per_account > 900 {
        println!(
            "note: {} transfers per account exceed the mempool's 1,000 pending per sender \
             if commits stall; use more --accounts with --fresh",
            thousands(per_account as u64)
        );
    }
    let chain_id = net.info.chain_id.clone();
    let txs =
        tokio::task::spawn_blocking(move || load::presign(&keys, &nonces, &chain_id, count, true))
            .await
            .context("the signing threads failed")?;
    println!(
        "pre-signed {} transfers; offering {} tx/s",
        thousands(txs.len() as u64),
        args.rate
    );
    let duration = run_for.saturating_sub(started.elapsed());
    Ok(Some(load::spawn_load(
        txs,
        args.rate,
        shared.clients.to_vec(),
        Arc::clone(shared.stats),
        Arc::clone(shared.progress),
        Some(duration),
        shared.stop.clone(),
    )))
}

/// Redraws the dashboard every second until `run_for` has passed or `interrupt` fires,
/// reporting validators that exit and the end of the pre-signed transfers.
async fn watch_until_done(
    args: &RunArgs,
    net: &mut Network,
    shared: &Shared<'_>,
    load_task: Option<&JoinHandle<()>>,
    run_for: Duration,
    started: Instant,
    interrupt: &mut (impl std::future::Future<Output = ()> + Unpin),
) {
    let load_label = if args.no_load {
        "off".to_string()
    } else {
        format!("{} tx/s", args.rate)
    };
    let mut dash = Dashboard::new(net.len(), load_label);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let max_ticks = run_for.as_secs() + 2;
    let mut load_done_reported = false;
    for _ in 0..max_ticks {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut *interrupt => { dash.println("interrupted: stopping"); break; }
        }
        if started.elapsed() >= run_for {
            break;
        }
        for (i, why) in net.poll_exits() {
            dash.println(&format!(
                "{} exited ({why})\n{}",
                net.info.validators[i].name,
                net.log_tail(i)
            ));
        }
        if !load_done_reported && load_task.is_some_and(|t| t.is_finished()) {
            load_done_reported = true;
            dash.println("the load generator has used all its pre-signed transfers; the network keeps running");
        }
        dash.refresh(net, shared.clients, shared.stats, shared.progress)
            .await;
    }
    dash.finish();
}

fn summary(net: &Network, stats: &Stats, elapsed: Duration, no_load: bool) {
    let c = stats.counters();
    let secs = elapsed.as_secs_f64().max(0.001);
    println!(
        "ran {:.0} s: {} blocks, {} transactions committed",
        secs,
        thousands(c.blocks),
        thousands(c.committed)
    );
    if !no_load {
        println!(
            "load: offered {} ({:.0} tx/s), accepted {}, rejected {} ({}), dropped by client {}, \
             resubmitted {} (mempool full) and {} (to another validator after a failed request), \
             given up after failed requests {}",
            thousands(c.offered),
            c.offered as f64 / secs,
            thousands(c.accepted),
            thousands(c.rejected_total()),
            c.rejected_summary(),
            thousands(c.dropped_by_client),
            thousands(c.resubmitted),
            thousands(c.failed_over),
            thousands(c.rpc_errors)
        );
    }
    for (i, v) in net.info.validators.iter().enumerate() {
        println!(
            "  {:<14} {}",
            v.name,
            net.exited[i].as_deref().unwrap_or("stopped")
        );
    }
    println!("data:  {}/validator-*/", net.dir.display());
    println!("logs:  {}", files::logs_dir(&net.dir).display());
    let netns = if net.on_hosts() { " --netns" } else { "" };
    println!(
        "start it again: hotledger-testnet run --dir {}{netns}   (or testnet/run.sh --dir ...{netns})",
        net.dir.display()
    );
    if let Some(v) = net.info.validators.first() {
        println!("query a running network:");
        println!("  hotledger query status --node {}", v.rpc_url);
        println!(
            "  curl -s -H 'content-type: application/json' -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\",\"params\":[]}}' {}",
            v.rpc_url
        );
    }
}

pub async fn status(dir: &Path) -> Result<()> {
    let info = files::read_network(dir)?;
    match files::read_pids(dir)? {
        Some(pids) => {
            for p in &pids.validators {
                let state = if p.alive() { "running" } else { "not running" };
                println!(
                    "{:<14} pid {:<8} {state:<12} log {}",
                    p.name,
                    p.pid,
                    p.log.display()
                );
            }
        }
        None => println!(
            "no pids.json in {}: the network is not running",
            dir.display()
        ),
    }
    for v in &info.validators {
        let client = load::client(&v.rpc_url)?;
        match tokio::time::timeout(Duration::from_secs(2), client.status()).await {
            Ok(Ok(s)) => println!(
                "{:<14} {}  height {} round {} peers {} mempool {} syncing {} committed txs {}",
                v.name,
                v.rpc_url,
                s.height,
                s.round,
                s.peers,
                s.mempool_txs,
                s.syncing,
                s.committed_txs
            ),
            _ => println!("{:<14} {}  no answer", v.name, v.rpc_url),
        }
    }
    Ok(())
}

pub async fn stop(dir: &Path) -> Result<()> {
    let Some(pids) = files::read_pids(dir)? else {
        println!("no pids.json in {}: nothing to stop", dir.display());
        return Ok(());
    };
    let alive: Vec<_> = pids.validators.iter().filter(|p| p.alive()).collect();
    for p in &alive {
        crate::procs::signal(p.pid, false);
        println!("sent SIGTERM to {} (pid {})", p.name, p.pid);
    }
    // Bounded wait for them to exit (their supervisor, if any, reaps them).
    for _ in 0..100 {
        if !alive.iter().any(|p| p.alive()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<_> = alive
        .iter()
        .filter(|p| p.alive())
        .map(|p| p.pid.to_string())
        .collect();
    if left.is_empty() {
        let _ = std::fs::remove_file(files::pids_path(dir));
        println!("stopped");
    } else {
        println!(
            "still running after 10 s: pids {}; `kill -9` them if needed",
            left.join(" ")
        );
    }
    Ok(())
}

pub fn wipe(dir: &Path) -> Result<()> {
    if files::wipe_dir(dir)? {
        println!("deleted {}", dir.display());
    } else {
        println!("{} does not exist", dir.display());
    }
    Ok(())
}
