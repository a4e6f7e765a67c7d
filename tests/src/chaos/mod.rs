//! The chaos harness: real `hotledger` validators, each on its own network host (a Linux
//! network namespace on one bridge), under a steady load of signed transfers whose every
//! acknowledgement is recorded, while a seeded nemesis ([`nemesis`]) partitions, kills, pauses,
//! skews clocks, slows links or damages disks; then the checker ([`check`]) holds the run to
//! the safety and liveness claims. Root only (namespaces, nftables, tc, tmpfs).
//!
//! One run: generate the network, start it, wait for height 2, start the load, let it run 3 s,
//! play the plan, heal, time how long until the validators commit again, run the load 3 s more,
//! stop it, let every acknowledged transfer commit, check, clean up (processes by pid, then
//! mounts, namespaces and the bridge).

pub mod check;
pub mod load;
pub mod nemesis;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hotledger_node::rpc::HotledgerApiClient;
use hotledger_testnet::netns::{self, Hosts};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::cluster::Cluster;
pub use check::Violation;
pub use nemesis::{Kind, Plan, Step};

/// libfaketime's multithreaded library, from Debian's `libfaketime` package.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// Funded accounts the load transfers between.
const ACCOUNTS: usize = 16;
/// Commits must resume within this long of the last fault healing.
pub const RESUME_BOUND: Duration = Duration::from_secs(10);
/// Violations named in a summary line; the rest are counted.
const MAX_LISTED: usize = 20;
/// Size of a data tmpfs while its disk is not full.
const TMPFS_SIZE: &str = "512m";

/// What one run does.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub validators: usize,
    pub seed: u64,
    /// The nemesis; drawn from the seed when `None`.
    pub kind: Option<Kind>,
    /// One validator (the last) runs this test-only misbehaviour and is Byzantine: the load
    /// does not submit to it, and the checker holds only the others to agreement, to their
    /// acknowledgements and to the signing rules.
    pub byzantine: Option<String>,
    /// Validator 0 double-signs yet is counted honest: the checker must fail the run.
    pub negative_control: bool,
    /// Per account, one transfer per this long.
    pub tx_interval: Duration,
    /// Where the run's homes and logs go (a fresh temporary folder when `None`), kept after the
    /// run when given.
    pub dir: Option<PathBuf>,
    /// Differs between runs of one process, so their namespaces and subnets do not meet.
    pub run_index: u32,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            validators: 4,
            seed: 0,
            kind: None,
            byzantine: None,
            negative_control: false,
            tx_interval: Duration::from_millis(500),
            dir: None,
            run_index: 0,
        }
    }
}

/// One run's result: the JSON line the `chaos` program prints.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub nemesis: String,
    pub validators: usize,
    pub byzantine: Option<String>,
    pub negative_control: bool,
    /// Fault steps played (partitions, kills, pauses, skews, ...).
    pub faults: usize,
    pub acknowledged: usize,
    pub committed: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub divergences: usize,
    pub conflicting_signatures: usize,
    /// From the last heal until n - f validators committed above the height of then.
    pub resume_ms: Option<u64>,
    /// Committed transfers per second over the whole run (load on).
    pub committed_per_sec: f64,
    pub heights: Vec<u64>,
    /// What the disk faults did, file by file.
    pub damage: Vec<String>,
    /// Validators that refused to start, or to serve what they hold, after their disk was
    /// damaged (allowed: at most f).
    pub refused_to_start: Vec<usize>,
    pub violations: Vec<String>,
    pub ok: bool,
    pub secs: f64,
}

/// Why the harness cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    if let Some(why) = netns::unavailable() {
        return Some(why);
    }
    if let Some(why) = netns::nft_unavailable() {
        return Some(why);
    }
    for (cmd, package) in [("tc", "iproute2"), ("mount", "mount")] {
        let ok = Command::new(cmd)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !ok {
            return Some(format!(
                "the `{cmd}` command (Debian package {package}) is not installed"
            ));
        }
    }
    None
}

/// Why clock faults cannot be injected here (libfaketime missing), if they cannot.
pub fn faketime_unavailable() -> Option<String> {
    (!Path::new(FAKETIME_LIB).is_file()).then(|| {
        format!("{FAKETIME_LIB} is missing: apt-get install libfaketime (clock faults preload it)")
    })
}

/// The plan a run of `cfg` plays.
pub fn plan_for(cfg: &RunConfig) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let kind = cfg
        .kind
        .unwrap_or_else(|| Kind::ALL[rng.gen_range(0..Kind::ALL.len())]);
    Plan::draw(kind, cfg.validators, &mut rng)
}

/// Runs once; `Err` only when the harness itself could not run (not for a violation).
pub async fn run(cfg: &RunConfig) -> Result<Summary> {
    if let Some(why) = unavailable() {
        bail!("{why}");
    }
    let plan = plan_for(cfg);
    if plan.needs_faketime() {
        if let Some(why) = faketime_unavailable() {
            bail!("{why}");
        }
    }
    let started = Instant::now();
    let temp;
    let dir = match &cfg.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("hotledger-chaos")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let pid = std::process::id();
    let tag = format!("hc{:x}{:x}", pid % 0x1000, cfg.run_index % 0x100);
    let first = u8::try_from(1 + (u64::from(pid) * 7 + u64::from(cfg.run_index) * 13) % 250)?;
    let subnet = netns::free_subnet(first).context("every 198.18.x.0/24 subnet is in use")?;
    let hosts = Hosts::create(&tag, subnet, cfg.validators)?;
    let mut world = World {
        hosts,
        mounts: Vec::new(),
        skew_files: Vec::new(),
    };
    // Processes are killed by the run (Cluster's drop); then World's drop unmounts and deletes
    // the namespaces, also when this future is dropped midway (Ctrl-C).
    run_in(cfg, &plan, &dir, &mut world, started).await
}

/// What the run made besides processes, undone in reverse.
struct World {
    hosts: Hosts,
    mounts: Vec<PathBuf>,
    skew_files: Vec<PathBuf>,
}

impl Drop for World {
    fn drop(&mut self) {
        for m in self.mounts.drain(..).rev() {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
    }
}

async fn run_in(
    cfg: &RunConfig,
    plan: &Plan,
    dir: &Path,
    world: &mut World,
    started: Instant,
) -> Result<Summary> {
    let n = cfg.validators;
    let f = (n - 1) / 3;
    let hosts_arg = world.hosts.hosts_arg();
    let mut c = Cluster::generate_with(&dir.join("net"), n, ACCOUNTS, &["--hosts", &hosts_arg])?;
    let byzantine_index = cfg.byzantine.as_ref().map(|_| n - 1);
    for i in 0..n {
        let path = c.home(i).join("config.toml");
        let mut text = std::fs::read_to_string(&path)?;
        if !text.contains("\nsign_log = false\n") {
            bail!("{}: no storage.sign_log to switch on", path.display());
        }
        text = text.replace("\nsign_log = false\n", "\nsign_log = true\n");
        let mode = if cfg.negative_control && i == 0 {
            Some("double-sign".to_string())
        } else if byzantine_index == Some(i) {
            cfg.byzantine.clone()
        } else {
            None
        };
        if let Some(mode) = mode {
            text.push_str(&format!("\n[fault_injection]\nmode = \"{mode}\"\n"));
        }
        std::fs::write(&path, text)?;
    }
    for i in plan.tmpfs_validators() {
        let data = c.home(i).join("data");
        std::fs::create_dir_all(&data)?;
        netns::run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={TMPFS_SIZE}"),
                "tmpfs",
                path_str(&data)?,
            ],
        )?;
        world.mounts.push(data);
    }
    for i in 0..n {
        let mut launcher = world.hosts.exec_prefix(i);
        if plan.needs_faketime() {
            let file = dir.join(format!("faketime-{i}"));
            std::fs::write(&file, "+0\n")?;
            launcher.extend([
                "env".to_string(),
                format!("LD_PRELOAD={FAKETIME_LIB}"),
                format!("FAKETIME_TIMESTAMP_FILE={}", file.display()),
                "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
                "FAKETIME_CACHE_DURATION=1".into(),
            ]);
            world.skew_files.push(file);
        }
        c.set_launcher(i, launcher);
    }
    c.start_all()?;
    // The Byzantine validator may be banned by all the others from the start.
    let honest: Vec<usize> = (0..n).filter(|i| Some(*i) != byzantine_index).collect();
    c.wait_for_height(&honest, 2, Duration::from_secs(90))
        .await?;
    let keys = validator_keys(&c).await?;
    let supply = check::supply(&c, 0).await?;

    let load = load::Load::start(
        &c.accounts,
        &c.chain_id,
        // Clients of honest validators: what a Byzantine one acknowledges promises nothing.
        &honest
            .iter()
            .map(|&i| c.rpc_urls[i].clone())
            .collect::<Vec<_>>(),
        cfg.tx_interval,
        Duration::from_secs(300),
    );
    let load_started = Instant::now();
    let mut watch = Watch::new(n);
    watch.sample(&mut c, Duration::from_secs(3)).await;

    // The plan.
    let mut violations: Vec<String> = Vec::new();
    let fault_start = Instant::now();
    let mut refused: BTreeSet<usize> = BTreeSet::new();
    let mut damaged: BTreeSet<usize> = BTreeSet::new();
    let mut damage: Vec<String> = Vec::new();
    let mut stopped_heights: Option<Vec<u64>> = None;
    for (at, step) in &plan.steps {
        let until = fault_start + *at;
        watch.sample_until(&mut c, until).await;
        if plan.kind.stops_commits() && matches!(step, Step::Heal) {
            // Nothing may commit without a quorum; blocks certified before the cut may.
            if let Some(before) = &stopped_heights {
                if watch.heights != *before {
                    violations.push(format!(
                        "commits went on without a quorum: heights {before:?} then {:?}",
                        watch.heights
                    ));
                }
            }
        }
        apply(
            step,
            &mut c,
            world,
            &keys,
            &watch,
            &mut damaged,
            &mut damage,
        )
        .await?;
        if plan.kind.stops_commits() && matches!(step, Step::Split(_)) {
            watch.sample(&mut c, Duration::from_secs(4)).await;
            stopped_heights = Some(watch.heights.clone());
        }
    }
    let mark = watch.heights.iter().copied().max().unwrap_or(0);
    let resume = watch
        .resumed(&mut c, mark, n - f, Duration::from_secs(60))
        .await;
    match resume {
        Some(d) if d <= RESUME_BOUND => {}
        Some(d) => violations.push(format!(
            "commits resumed {} ms after the heal (bound {} ms)",
            d.as_millis(),
            RESUME_BOUND.as_millis()
        )),
        None => violations.push(format!(
            "no {} validators committed above height {mark} within 60 s of the heal",
            n - f
        )),
    }
    watch.sample(&mut c, Duration::from_secs(3)).await;
    let ledger = load.stop().await;
    let load_secs = load_started.elapsed().as_secs_f64();

    // Validators that exited: a damaged disk may make one refuse to start; nothing else may.
    for i in 0..n {
        if let Err(status) = c.poll(i) {
            if damaged.contains(&i) {
                refused.insert(i);
            } else {
                violations.push(format!(
                    "validator {i} exited with {status}: {}",
                    log_tail(&c.log_path(i), 5)
                ));
            }
        }
    }
    let live: Vec<usize> = honest
        .iter()
        .copied()
        .filter(|i| !refused.contains(i))
        .collect();

    let report = check::check(
        &c,
        &live,
        &honest,
        &damaged,
        &ledger,
        supply,
        Duration::from_secs(90),
    )
    .await?;
    violations.extend(report.violations.iter().map(ToString::to_string));
    for (i, error) in &report.unreadable {
        refused.insert(*i);
        damage.push(format!("validator {i} refused to serve {error}"));
    }
    if refused.len() > f {
        violations.push(format!(
            "{} validators unusable after disk damage, more than f = {f}",
            refused.len()
        ));
    }
    let heights = watch.heights.clone();
    let more = violations.len().saturating_sub(MAX_LISTED);
    violations.truncate(MAX_LISTED);
    if more > 0 {
        violations.push(format!("... and {more} more"));
    }
    let summary = Summary {
        seed: cfg.seed,
        nemesis: plan.kind.to_string(),
        validators: n,
        byzantine: cfg.byzantine.clone(),
        negative_control: cfg.negative_control,
        faults: plan.steps.len(),
        acknowledged: report.acknowledged,
        committed: report.committed,
        lost: report.lost,
        duplicated: report.duplicated,
        divergences: report.divergences,
        conflicting_signatures: report.conflicting_signatures,
        resume_ms: resume.map(|d| d.as_millis() as u64),
        committed_per_sec: report.committed as f64 / load_secs.max(0.001),
        heights,
        damage,
        refused_to_start: refused.into_iter().collect(),
        ok: violations.is_empty(),
        violations,
        secs: started.elapsed().as_secs_f64(),
    };
    drop(c);
    Ok(summary)
}

/// Each validator's key (hex), from its status.
async fn validator_keys(c: &Cluster) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..c.len() {
        out.push(c.client(i)?.status().await?.validator);
    }
    Ok(out)
}

/// The heights the harness last saw, polled every 250 ms.
struct Watch {
    heights: Vec<u64>,
}

impl Watch {
    fn new(n: usize) -> Watch {
        Watch {
            heights: vec![0; n],
        }
    }

    async fn poll(&mut self, c: &mut Cluster) {
        for i in 0..c.len() {
            let client = match c.client(i) {
                Ok(cl) => cl,
                Err(_) => continue,
            };
            let answer = tokio::time::timeout(Duration::from_millis(500), client.status()).await;
            if let Ok(Ok(s)) = answer {
                self.heights[i] = self.heights[i].max(s.height);
            }
        }
    }

    async fn sample(&mut self, c: &mut Cluster, for_: Duration) {
        self.sample_until(c, Instant::now() + for_).await;
    }

    async fn sample_until(&mut self, c: &mut Cluster, until: Instant) {
        loop {
            self.poll(c).await;
            let now = Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(250))).await;
        }
    }

    /// How long until `quorum` validators are above `mark` (`None`: not within `bound`).
    async fn resumed(
        &mut self,
        c: &mut Cluster,
        mark: u64,
        quorum: usize,
        bound: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < bound {
            self.poll(c).await;
            if self.heights.iter().filter(|&&h| h > mark).count() >= quorum {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

/// Plays one step.
async fn apply(
    step: &Step,
    c: &mut Cluster,
    world: &mut World,
    keys: &[String],
    watch: &Watch,
    damaged: &mut BTreeSet<usize>,
    damage: &mut Vec<String>,
) -> Result<()> {
    let hosts = &world.hosts;
    match step {
        Step::Split(groups) => {
            let groups: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
            hosts.partition(&groups)?;
        }
        Step::Bridge { a, b, bridge } => {
            for &i in a {
                hosts.drop_from(i, b)?;
            }
            for &i in b {
                hosts.drop_from(i, a)?;
            }
            hosts.drop_from(*bridge, &[])?;
        }
        Step::IsolateLeader => {
            let leader = leader_index(c, keys, watch).await.unwrap_or(0);
            let rest: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();
            hosts.partition(&[&[leader], &rest])?;
        }
        Step::Heal => hosts.heal()?,
        Step::Kill(v) => {
            for &i in v {
                c.kill(i)?;
            }
        }
        Step::Restart(v) => {
            for &i in v {
                if !matches!(c.poll(i), Ok(true)) {
                    c.start(i)?;
                }
            }
        }
        Step::Stop(v) | Step::Cont(v) => {
            let sig = if matches!(step, Step::Stop(_)) {
                Signal::SIGSTOP
            } else {
                Signal::SIGCONT
            };
            for &i in v {
                if let Some(pid) = c.pid(i) {
                    let _ = kill(Pid::from_raw(i32::try_from(pid)?), sig);
                }
            }
        }
        Step::Skew(skews) => {
            for &(i, ms) in skews {
                let file = world
                    .skew_files
                    .get(i)
                    .context("clock skew without libfaketime")?;
                let secs = ms as f64 / 1_000.0;
                std::fs::write(file, format!("{secs:+.3}\n"))?;
            }
        }
        Step::Throttle(v, rate) => {
            for &i in v {
                let ns = hosts.namespace(i).to_string();
                match rate {
                    Some(kbit) => netns::run(
                        "ip",
                        &[
                            "netns",
                            "exec",
                            &ns,
                            "tc",
                            "qdisc",
                            "replace",
                            "dev",
                            "eth0",
                            "root",
                            "tbf",
                            "rate",
                            &format!("{kbit}kbit"),
                            "burst",
                            "16kb",
                            "latency",
                            "400ms",
                        ],
                    )?,
                    None => netns::run(
                        "ip",
                        &[
                            "netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root",
                        ],
                    )?,
                }
            }
        }
        Step::TruncateWal(v, bytes) => {
            for &i in v {
                damaged.insert(i);
                let data = c.home(i).join("data");
                match newest(&data, "log")? {
                    Some(wal) => {
                        let len = std::fs::metadata(&wal)?.len();
                        let file = std::fs::OpenOptions::new().write(true).open(&wal)?;
                        let cut = (*bytes).min(len);
                        file.set_len(len - cut)?;
                        damage.push(format!(
                            "validator {i}: {cut} of {len} bytes cut off {}",
                            file_name(&wal)
                        ));
                    }
                    None => damage.push(format!("validator {i}: no WAL to cut")),
                }
            }
        }
        Step::CorruptSst(v, seed) => {
            for &i in v {
                damaged.insert(i);
                let data = c.home(i).join("data");
                let mut ssts = files_with(&data, "sst")?;
                ssts.sort();
                if ssts.is_empty() {
                    damage.push(format!("validator {i}: no SST to damage"));
                    continue;
                }
                let sst = &ssts[(*seed as usize) % ssts.len()];
                let len = std::fs::metadata(sst)?.len();
                if len > 64 {
                    let at = (*seed >> 16) % (len - 64);
                    use std::os::unix::fs::FileExt as _;
                    let file = std::fs::OpenOptions::new().write(true).open(sst)?;
                    file.write_at(&[0xA5; 64], at)?;
                    damage.push(format!(
                        "validator {i}: 64 bytes at {at} of {} ({len} bytes) overwritten",
                        file_name(sst)
                    ));
                }
            }
        }
        Step::FillDisk(v, full) => {
            for &i in v {
                let data = c.home(i).join("data");
                let size = if *full {
                    damaged.insert(i);
                    // What it holds plus a little: the next writes fail.
                    let used = du_bytes(&data)?;
                    damage.push(format!(
                        "validator {i}: data tmpfs shrunk to {} KiB",
                        used / 1024 + 64
                    ));
                    format!("{}k", used / 1024 + 64)
                } else {
                    if let Err(status) = c.poll(i) {
                        damage.push(format!(
                            "validator {i} stopped ({status}) on the full disk: {}",
                            log_tail(&c.log_path(i), 1)
                        ));
                    }
                    TMPFS_SIZE.to_string()
                };
                netns::run(
                    "mount",
                    &["-o", &format!("remount,size={size}"), path_str(&data)?],
                )?;
            }
        }
    }
    Ok(())
}

/// The validator that proposed the latest block a validator reports.
async fn leader_index(c: &Cluster, keys: &[String], watch: &Watch) -> Option<usize> {
    let best = (0..c.len()).max_by_key(|&i| watch.heights[i])?;
    let block = c.client(best).ok()?.get_block(None).await.ok()??;
    let proposer = block.proposer.to_hex();
    keys.iter().position(|k| *k == proposer)
}

/// Bytes used on the filesystem holding `dir`.
fn du_bytes(dir: &Path) -> Result<u64> {
    let out = Command::new("df")
        .args(["--output=used", "-B1"])
        .arg(dir)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .context("df output")
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn files_with(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    Ok(out)
}

/// The file with the highest number among `NNNNNN.<ext>` in `dir`.
fn newest(dir: &Path, ext: &str) -> Result<Option<PathBuf>> {
    let mut files = files_with(dir, ext)?;
    files.sort();
    Ok(files.pop())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("path is not UTF-8")
}

/// The last `lines` lines of a log, joined.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
