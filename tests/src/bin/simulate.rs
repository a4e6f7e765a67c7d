//! Runs the deterministic simulator over many seeds and prints one summary line.
//!
//! `cargo run --release -p hotledger-tests --bin simulate -- --validators 4 --twins 1 --seeds 1000`

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use hotledger_consensus::DisabledRule;
use hotledger_tests::{run_clean, run_omission, run_seed, CrashRun, RunReport, SimConfig};

#[derive(Parser, Debug)]
#[command(
    about = "Deterministic simulation of hotledger consensus with crashes, partitions and Byzantine twins"
)]
struct Args {
    /// Number of validators (equal voting power).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Byzantine validators run as twin pairs sharing one key (f or fewer should be safe).
    #[arg(long, default_value_t = 1)]
    twins: usize,
    /// Number of seeds (scenarios) to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed; seeds are first..first+seeds.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Virtual time (ms) of global stabilisation: partitions heal, loss stops, crashed nodes return.
    #[arg(long, default_value_t = 20_000)]
    gst_ms: u64,
    /// Virtual time (ms) after GST within which every honest node must commit again.
    #[arg(long, default_value_t = 60_000)]
    liveness_bound_ms: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Measure a clean network instead: messages per committed block and commit latency in
    /// message delays, over this many virtual milliseconds.
    #[arg(long)]
    scale_ms: Option<u64>,
    /// Negative control: switch off a safety rule in every honest node.
    #[arg(long, value_enum)]
    disable_rule: Option<Rule>,
    /// Measure degraded mode instead: a clean network with the daemon's timing (1 s base
    /// timeout, 200 ms empty-block pace) in which this many validators crash at `--crash-at-ms`
    /// and stay down; prints commit rates and rounds lost, one line per seed.
    #[arg(long)]
    crash: Option<usize>,
    /// Virtual time (ms) at which the `--crash` validators go down.
    #[arg(long, default_value_t = 20_000)]
    crash_at_ms: u64,
    /// Virtual length (ms) of a `--crash` run.
    #[arg(long, default_value_t = 120_000)]
    duration_ms: u64,
    /// Switch leader reputation off (weighted round-robin leaders only), to compare.
    #[arg(long)]
    no_reputation: bool,
    /// Never tell nodes that a crashed validator is unreachable (by default they learn it 10 ms
    /// after the crash, as the daemon does from a dropped connection), to compare.
    #[arg(long)]
    no_detect: bool,
    /// Run the omission scenario instead: the first N validators are Byzantine and try to get
    /// the last one skipped by leader reputation (its votes left out of their QCs, its blocks
    /// never voted for nor certified by them), on a clean network for `--duration-ms`. Fails if
    /// an honest node ever stops counting the last validator among the leader candidates.
    #[arg(long)]
    omitters: Option<usize>,
    /// Byzantine forgers: this many validators after the twins put a transfer with a forged
    /// signature into every block they propose; honest validators must refuse those payloads
    /// and no committed block may carry one.
    #[arg(long, default_value_t = 0)]
    forgers: usize,
    /// The forgers lie about the state instead of forging a transfer: a wrong root at the
    /// claim height in even rounds, the root of another height in odd ones; the checker counts
    /// committed blocks that carry a false claim (`false_root_claims`)
    #[arg(long)]
    root_liars: bool,
    /// Virtual milliseconds between two transfers the simulated client signs and submits to
    /// every live node (0: no transfers).
    #[arg(long, default_value_t = 100)]
    tx_interval_ms: u64,
    /// `consensus.max_orphan_blocks` of every node (default: the daemon's); lower it to make
    /// nodes behind catch up by forward sync.
    #[arg(long, default_value_t = 4_096)]
    max_orphan_blocks: usize,
    /// Half of the crashes also wipe the node's chain data, as an operator deleting `data/`:
    /// it restarts from genesis with only its safety record, and must never sign a message
    /// conflicting with what it signed before.
    #[arg(long)]
    wipes: bool,
    /// Make a state snapshot at every multiple of this height (0: none).
    #[arg(long, default_value_t = 0)]
    snapshot_every: u64,
    /// A wiped node joins by state sync from its peers' snapshots (with --wipes and
    /// --snapshot-every).
    #[arg(long)]
    state_sync: bool,
    /// Longest a leader waits for transfers before proposing an empty block (virtual ms; the
    /// daemon's default is 200): a longer wait leaves more time for a higher QC to arrive
    /// while the payload is pending.
    #[arg(long, default_value_t = 1)]
    payload_delay_ms: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Rule {
    RoundIncrease,
    VoteExtension,
    /// The hosts' check of state claims (with `--root-liars`, false roots get certified).
    StateClaim,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.validators == 0
        || args.twins.saturating_add(args.forgers) > args.validators
        || args.threads == 0
    {
        eprintln!(
            "error: need --validators >= 1, --twins + --forgers <= --validators and --threads >= 1"
        );
        return ExitCode::from(2);
    }
    let cfg = sim_config(&args);
    if let Some(ms) = args.scale_ms {
        return scale(&cfg, ms, args.first_seed);
    }
    if let Some(omitters) = args.omitters {
        return omission(&args, omitters);
    }
    if let Some(crashed) = args.crash {
        let mut run = CrashRun::new(args.validators, crashed);
        run.crash_at_ms = args.crash_at_ms;
        run.duration_ms = args.duration_ms;
        run.reputation = !args.no_reputation;
        if args.no_detect {
            run.detect_crash_ms = None;
        }
        return crash(&run, args.first_seed, args.seeds);
    }
    scenarios(&args, &cfg)
}

/// The scenario configuration the flags describe.
fn sim_config(args: &Args) -> SimConfig {
    let mut cfg = SimConfig::new(args.validators, args.twins);
    cfg.forgers = args.forgers;
    cfg.root_liars = args.root_liars;
    cfg.tx_interval_ms = args.tx_interval_ms;
    cfg.wipes = args.wipes;
    cfg.snapshot_every = args.snapshot_every;
    cfg.state_sync = args.state_sync;
    cfg.max_orphan_blocks = args.max_orphan_blocks;
    cfg.payload_delay_ms = args.payload_delay_ms;
    cfg.gst_ms = args.gst_ms;
    cfg.liveness_bound_ms = args.liveness_bound_ms;
    cfg.reputation = !args.no_reputation;
    if args.no_detect {
        cfg.detect_crash_ms = None;
    }
    cfg.disabled_rule = args.disable_rule.map(|r| match r {
        Rule::RoundIncrease => DisabledRule::RoundIncrease,
        Rule::VoteExtension => DisabledRule::VoteExtension,
        Rule::StateClaim => DisabledRule::StateClaim,
    });
    cfg
}

/// Runs the seeds on `--threads` threads; returns their reports by seed.
fn run_all(args: &Args, cfg: &SimConfig) -> Vec<RunReport> {
    let next = AtomicU64::new(args.first_seed);
    let end = args.first_seed.saturating_add(args.seeds);
    let reports: Mutex<Vec<RunReport>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..args.threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let r = run_seed(cfg, seed);
                if !r.verdict.safe() || !r.verdict.live() {
                    eprintln!("seed {seed}: {}", r.verdict.describe());
                }
                if let Ok(mut all) = reports.lock() {
                    all.push(r);
                }
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_default();
    reports.sort_by_key(|r| r.seed);
    reports
}

/// The seeded scenario runs: one summary line; failure if any run was unsafe or stalled.
fn scenarios(args: &Args, cfg: &SimConfig) -> ExitCode {
    let started = Instant::now();
    let reports = run_all(args, cfg);

    let unsafe_runs = reports.iter().filter(|r| !r.verdict.safe()).count();
    let stalled_runs = reports.iter().filter(|r| !r.verdict.live()).count();
    let forks: usize = reports.iter().map(|r| r.verdict.forks).sum();
    let votes: usize = reports.iter().map(|r| r.verdict.conflicting_votes).sum();
    let invalid: usize = reports.iter().map(|r| r.verdict.invalid_commits).sum();
    let repeated: usize = reports.iter().map(|r| r.verdict.repeated_txs).sum();
    let commits: u64 = reports.iter().map(|r| r.verdict.committed_height).sum();
    let evidence: usize = reports.iter().map(|r| r.verdict.evidence).sum();
    let roots_agreed: u64 = reports.iter().map(|r| r.verdict.roots_agreed).sum();
    let root_mismatches: usize = reports.iter().map(|r| r.verdict.root_mismatches).sum();
    let unpersisted: usize = reports.iter().map(|r| r.verdict.unpersisted_sends).sum();
    let false_claims: usize = reports.iter().map(|r| r.verdict.false_root_claims).sum();
    let txs: u64 = reports.iter().map(|r| r.verdict.txs_applied).sum();
    let rebuilt: u64 = reports.iter().map(|r| r.verdict.rebuilt_heights).sum();
    let wipes: u64 = reports.iter().map(|r| r.verdict.wipes).sum();
    let syncs: u64 = reports.iter().map(|r| r.verdict.syncs).sum();
    let sync_refused: u64 = reports.iter().map(|r| r.verdict.sync_refused).sum();
    let refused: u64 = reports.iter().map(|r| r.verdict.payloads_refused).sum();
    let restores: u64 = reports.iter().map(|r| r.verdict.restores).sum();
    let restore_refused: u64 = reports.iter().map(|r| r.verdict.restore_refused).sum();
    let worst = reports
        .iter()
        .filter_map(|r| r.verdict.recovery_ms.map(|ms| (ms, r.seed)))
        .max();
    let first_bad = reports
        .iter()
        .find(|r| !r.verdict.safe() || !r.verdict.live())
        .map(|r| r.seed);
    println!(
        "scenarios={} validators={} twins={} forks={} conflicting_votes={} invalid_commits={} \
         repeated_txs={} state_roots_agreed={} state_root_mismatches={} unpersisted_sends={} \
         false_root_claims={} txs_applied={} \
         tree_heights_rebuilt={} wipes={} syncs={} sync_responses_refused={} state_syncs={} snapshot_responses_refused={} payloads_refused={} \
         stalled_runs={} commits={} evidence={} \
         worst_recovery_after_gst_ms={} first_failing_seed={} wall_s={:.1}",
        reports.len(),
        args.validators,
        args.twins,
        forks,
        votes,
        invalid,
        repeated,
        roots_agreed,
        root_mismatches,
        unpersisted,
        false_claims,
        txs,
        rebuilt,
        wipes,
        syncs,
        sync_refused,
        restores,
        restore_refused,
        refused,
        stalled_runs,
        commits,
        evidence,
        worst.map_or("none".into(), |(ms, seed)| format!("{ms} (seed {seed})")),
        first_bad.map_or("none".into(), |s| s.to_string()),
        started.elapsed().as_secs_f64(),
    );
    if unsafe_runs > 0 || stalled_runs > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn scale(cfg: &SimConfig, duration_ms: u64, seed: u64) -> ExitCode {
    let started = Instant::now();
    let r = run_clean(cfg, seed, duration_ms);
    let blocks = r.verdict.committed_height.max(1);
    let delay = cfg.fixed_delay_ms.max(1) as f64;
    println!(
        "validators={} virtual_ms={} committed_blocks={} messages={} messages_per_block={:.1} \
         messages_per_block_per_validator={:.2} commit_latency_ms={:.1} commit_latency_message_delays={:.2} \
         forks={} wall_s={:.1}",
        cfg.validators,
        duration_ms,
        r.verdict.committed_height,
        r.messages,
        r.messages as f64 / blocks as f64,
        r.messages as f64 / blocks as f64 / cfg.validators as f64,
        r.mean_commit_latency_ms,
        r.mean_commit_latency_ms / delay,
        r.verdict.forks,
        started.elapsed().as_secs_f64(),
    );
    if r.verdict.safe() && r.verdict.committed_height > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn crash(run: &CrashRun, first_seed: u64, seeds: u64) -> ExitCode {
    let mut safe = true;
    for seed in first_seed..first_seed.saturating_add(seeds) {
        let started = Instant::now();
        let r = run.run(seed);
        println!(
            "validators={} crashed={} seed={seed} {} wall_s={:.1}",
            run.validators,
            run.crashed,
            r.describe(),
            started.elapsed().as_secs_f64()
        );
        safe &= r.safe;
    }
    if safe {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn omission(args: &Args, omitters: usize) -> ExitCode {
    let started = Instant::now();
    let (mut excluded_runs, mut failed) = (0, false);
    let end = args.first_seed.saturating_add(args.seeds);
    for seed in args.first_seed..end {
        let r = run_omission(args.validators, omitters, seed, args.duration_ms);
        excluded_runs += usize::from(r.verdict.target_excluded > 0);
        if !r.verdict.safe() || !r.verdict.live() || r.verdict.target_excluded > 0 {
            eprintln!("seed {seed}: {}", r.verdict.describe());
            failed = true;
        }
    }
    println!(
        "validators={} omitters={omitters} seeds={} runs_with_target_excluded={excluded_runs} \
         wall_s={:.1}",
        args.validators,
        args.seeds,
        started.elapsed().as_secs_f64()
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
