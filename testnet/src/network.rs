//! Generating a network folder and running its validator processes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hotledger_node::rpc::HotledgerApiClient;
use indicatif::{ProgressBar, ProgressStyle};
use jsonrpsee::http_client::HttpClient;

use crate::files::{self, NetworkFile, PidEntry, PidFile};
use crate::netns::Hosts;
use crate::{load, procs};

/// How long validators get between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A spinner on stderr (hidden when stderr is not a terminal).
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Prints `line` above `bar`, or plainly when the bar is hidden (stderr not a terminal), where
/// `ProgressBar::println` would print nothing.
pub fn say(bar: &ProgressBar, line: impl AsRef<str>) {
    if bar.is_hidden() {
        println!("{}", line.as_ref());
    } else {
        bar.println(line);
    }
}

/// Whether a network's validators are reached where they will run: at `hosts`' addresses, or
/// without hosts on loopback.
fn placed_on(info: &NetworkFile, hosts: Option<&Hosts>) -> bool {
    info.validators
        .iter()
        .enumerate()
        .all(|(i, v)| match hosts {
            Some(h) => h
                .addresses
                .get(i)
                .is_some_and(|a| v.p2p.starts_with(&format!("/ip4/{a}/"))),
            None => v.p2p.starts_with("/ip4/127.") || v.p2p.starts_with("/ip6/::1/"),
        })
}

/// Makes DIR hold an `n`-validator network: refuses while one runs there; with `fresh`, deletes
/// a stopped one first; reuses existing homes; otherwise runs `hotledger testnet` (with
/// `--hosts` when the validators run on separate `hosts`).
pub fn prepare(
    dir: &Path,
    bin: &Path,
    n: u16,
    accounts: u64,
    fresh: bool,
    hosts: Option<&Hosts>,
) -> Result<NetworkFile> {
    files::ensure_not_running(dir)?;
    if fresh && files::wipe_dir(dir)? {
        println!("deleted the old network in {}", dir.display());
    }
    if files::network_path(dir).exists() {
        return reuse(dir, n, hosts);
    }
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut e| e.next().is_some());
    if non_empty {
        bail!(
            "{} is not empty and holds no network.json; choose another --dir",
            dir.display()
        );
    }
    generate(dir, bin, n, accounts, hosts)
}

/// The network in DIR, if it has `n` validators placed on `hosts` (or on loopback without).
fn reuse(dir: &Path, n: u16, hosts: Option<&Hosts>) -> Result<NetworkFile> {
    let network = files::read_network(dir)?;
    if network.validators.len() != usize::from(n) {
        bail!(
            "{} holds a {}-validator network, not {n}; pass --fresh to replace it",
            dir.display(),
            network.validators.len()
        );
    }
    if !placed_on(&network, hosts) {
        bail!(
            "{} holds a network for {}; pass --fresh to replace it",
            dir.display(),
            if hosts.is_some() {
                "other hosts than these namespaces"
            } else {
                "separate hosts (made with --netns)"
            }
        );
    }
    println!(
        "reusing the {n}-validator network in {} (pass --fresh for a new one)",
        dir.display()
    );
    Ok(network)
}

/// Runs `hotledger testnet` into the empty DIR.
fn generate(
    dir: &Path,
    bin: &Path,
    n: u16,
    accounts: u64,
    hosts: Option<&Hosts>,
) -> Result<NetworkFile> {
    let bar = spinner(format!(
        "generating {n} validator homes and {accounts} accounts"
    ));
    let mut cmd = Command::new(bin);
    cmd.args([
        "testnet",
        "--validators",
        &n.to_string(),
        "--accounts",
        &accounts.to_string(),
    ]);
    if let Some(hosts) = hosts {
        cmd.arg("--hosts").arg(hosts.hosts_arg());
    }
    let out = cmd
        .arg("--output")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    bar.finish_and_clear();
    if !out.status.success() {
        bail!(
            "`{} testnet` failed ({}):\n{}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // Keep secret keys and databases out of git when DIR is inside a clone (the default).
    let _ = std::fs::write(dir.join(".gitignore"), "*\n");
    println!(
        "generated {n} validators and {accounts} funded accounts in {}",
        dir.display()
    );
    files::read_network(dir)
}

/// The validator processes of a network started by this program.
#[derive(Debug)]
pub struct Network {
    pub dir: PathBuf,
    bin: PathBuf,
    pub info: NetworkFile,
    pub pids: Vec<u32>,
    children: Vec<Option<Child>>,
    /// Why each validator exited, once it has.
    pub exited: Vec<Option<String>>,
    /// The network namespaces the validators run in, if any; dropped after the processes.
    hosts: Option<Hosts>,
}

impl Network {
    /// Starts `bin --home <home> start` for every validator (on host `i` of `hosts`, if given),
    /// logs in DIR/logs, and writes DIR/pids.json. Each process gets its own process group, so
    /// Ctrl-C in the terminal reaches only this program, which then stops them in order.
    pub fn start(
        dir: &Path,
        bin: &Path,
        info: NetworkFile,
        hosts: Option<Hosts>,
    ) -> Result<Network> {
        std::fs::create_dir_all(files::logs_dir(dir))
            .with_context(|| format!("cannot create {}", files::logs_dir(dir).display()))?;
        let n = info.validators.len();
        let mut net = Network {
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            pids: vec![0; n],
            children: (0..n).map(|_| None).collect(),
            exited: vec![None; n],
            info,
            hosts,
        };
        for i in 0..n {
            net.spawn(i, &[])?;
        }
        net.write_pids()?;
        Ok(net)
    }

    /// Starts validator `i`'s process (`start` with `start_args`), appending to its log.
    fn spawn(&mut self, i: usize, start_args: &[&str]) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let v = &self.info.validators[i];
        let log_path = files::log_path(&self.dir, i);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let prefix = self.hosts.as_ref().map(|h| h.exec_prefix(i));
        let mut cmd = match prefix.as_deref() {
            Some([program, args @ ..]) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&self.bin);
                cmd
            }
            _ => Command::new(&self.bin),
        };
        let child = cmd
            .arg("--home")
            .arg(&v.home)
            .arg("start")
            .args(start_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {} ({})", v.name, self.bin.display()))?;
        self.pids[i] = child.id();
        self.children[i] = Some(child);
        self.exited[i] = None;
        Ok(())
    }

    /// Writes DIR/pids.json for the processes now running.
    fn write_pids(&self) -> Result<()> {
        let entries = self
            .info
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| PidEntry {
                name: v.name.clone(),
                pid: self.pids[i],
                start_ticks: procs::start_ticks(self.pids[i]),
                rpc_url: v.rpc_url.clone(),
                log: files::log_path(&self.dir, i),
            })
            .collect();
        files::write_pids(
            &self.dir,
            &PidFile {
                supervisor: std::process::id(),
                started_at_ms: now_ms(),
                validators: entries,
            },
        )
    }

    /// SIGKILL to validator `i` (a crash: nothing is flushed).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children.get_mut(i).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
            self.exited[i] = Some("killed (SIGKILL)".into());
        }
    }

    /// Starts validator `i` again after it exited or was killed.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.restart_with(i, &[])
    }

    /// [`Network::restart`] with more arguments for `hotledger start` (e.g. `--state-sync`).
    pub fn restart_with(&mut self, i: usize, start_args: &[&str]) -> Result<()> {
        if self.children.get(i).is_some_and(Option::is_some) {
            bail!("{} is still running", self.info.validators[i].name);
        }
        self.spawn(i, start_args)?;
        self.write_pids()
    }

    pub fn len(&self) -> usize {
        self.info.validators.len()
    }

    /// Whether the validators run on hosts of their own (`run --netns`).
    pub fn on_hosts(&self) -> bool {
        self.hosts.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.info.validators.is_empty()
    }

    pub fn alive(&self, i: usize) -> bool {
        self.exited.get(i).is_some_and(Option::is_none)
    }

    pub fn clients(&self) -> Result<Vec<HttpClient>> {
        self.info
            .validators
            .iter()
            .map(|v| load::client(&v.rpc_url))
            .collect()
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        files::log_path(&self.dir, i)
    }

    /// Validators that exited since the last call: (index, exit status).
    pub fn poll_exits(&mut self) -> Vec<(usize, String)> {
        let mut newly = Vec::new();
        for (i, slot) in self.children.iter_mut().enumerate() {
            if let Some(child) = slot {
                if let Ok(Some(status)) = child.try_wait() {
                    let why = status.to_string();
                    self.exited[i] = Some(why.clone());
                    *slot = None;
                    newly.push((i, why));
                }
            }
        }
        newly
    }

    /// SIGTERM to every validator, SIGKILL to those still running after [`STOP_GRACE`], then
    /// removes DIR/pids.json.
    pub async fn stop(&mut self) -> Result<()> {
        self.poll_exits();
        for slot in self.children.iter().flatten() {
            procs::signal(slot.id(), false);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.children.iter().any(Option::is_some) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.poll_exits();
        }
        for (i, slot) in self.children.iter_mut().enumerate() {
            if let Some(mut child) = slot.take() {
                let _ = child.kill();
                let _ = child.wait();
                self.exited[i] = Some("killed (SIGKILL) after 10 s".into());
            }
        }
        let path = files::pids_path(&self.dir);
        let _ = std::fs::remove_file(path);
        Ok(())
    }

    /// Waits until every validator reports height ≥ `height`, for at most `timeout`, calling
    /// `report` with the heights about every 200 ms. Fails if a validator exits meanwhile.
    pub async fn wait_for_height(
        &mut self,
        height: u64,
        timeout: Duration,
        mut report: impl FnMut(&[Option<u64>]),
    ) -> Result<()> {
        let clients = self.clients()?;
        let deadline = Instant::now() + timeout;
        let polls = timeout.as_millis() / 200 + 1;
        for _ in 0..polls {
            if let Some((i, why)) = self.poll_exits().into_iter().next() {
                bail!(
                    "{} exited ({why}) while starting:\n{}",
                    self.info.validators[i].name,
                    self.log_tail(i)
                );
            }
            let heights: Vec<Option<u64>> =
                futures::future::join_all(clients.iter().map(committed_height)).await;
            report(&heights);
            if heights.iter().all(|h| h.is_some_and(|h| h >= height)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "the validators did not all reach height {height} within {} s; logs are in {}",
            timeout.as_secs(),
            files::logs_dir(&self.dir).display()
        )
    }

    /// The last 20 lines of validator `i`'s log, indented.
    pub fn log_tail(&self, i: usize) -> String {
        let lines = files::tail(&self.log_path(i), 20);
        let mut out = format!(
            "  --- last {} lines of {} ---\n",
            lines.len(),
            self.log_path(i).display()
        );
        for l in lines {
            out.push_str("  ");
            out.push_str(&l);
            out.push('\n');
        }
        out
    }
}

impl Drop for Network {
    /// A safety net (errors, panics): no validator outlives its supervisor's `Network`.
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The committed height a validator reports: `status`, or the latest stored block when
/// `status` still says 0 (a lone validator's loop may not refresh its status while it commits).
pub async fn committed_height(client: &HttpClient) -> Option<u64> {
    let limit = Duration::from_millis(500);
    let status = tokio::time::timeout(limit, client.status())
        .await
        .ok()?
        .ok()?;
    if status.height > 0 {
        return Some(status.height);
    }
    match tokio::time::timeout(limit, client.get_block(None)).await {
        Ok(Ok(Some(block))) => Some(block.height),
        _ => Some(0),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
