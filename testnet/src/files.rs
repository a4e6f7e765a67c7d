//! The files of a network folder: `network.json` and `accounts.json` (written by
//! `hotledger testnet`), `pids.json` (written by `run`) and `logs/`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use hotledger_crypto::KeyPair;
use serde::{Deserialize, Serialize};

use crate::procs;

/// `DIR/network.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkFile {
    pub chain_id: String,
    pub validators: Vec<ValidatorEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatorEntry {
    pub name: String,
    pub home: PathBuf,
    pub rpc_url: String,
    pub metrics_url: String,
    pub p2p: String,
}

/// One entry of `DIR/accounts.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountEntry {
    pub public_key: String,
    pub secret_key: String,
}

/// `DIR/pids.json`: the processes of a running network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PidFile {
    /// The `hotledger-testnet run` process that started them.
    pub supervisor: u32,
    pub started_at_ms: u64,
    pub validators: Vec<PidEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PidEntry {
    pub name: String,
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22): a reused pid has
    /// another one, so a stale file is recognised.
    pub start_ticks: Option<u64>,
    pub rpc_url: String,
    pub log: PathBuf,
}

impl PidEntry {
    /// Is this exact process (same pid and start time) still running?
    pub fn alive(&self) -> bool {
        match procs::start_ticks(self.pid) {
            Some(ticks) => {
                self.start_ticks.is_none_or(|t| t == ticks) && procs::is_running(self.pid)
            }
            None => false,
        }
    }
}

pub fn network_path(dir: &Path) -> PathBuf {
    dir.join("network.json")
}

pub fn pids_path(dir: &Path) -> PathBuf {
    dir.join("pids.json")
}

pub fn logs_dir(dir: &Path) -> PathBuf {
    dir.join("logs")
}

pub fn log_path(dir: &Path, index: usize) -> PathBuf {
    logs_dir(dir).join(format!("validator-{index}.log"))
}

pub fn read_network(dir: &Path) -> Result<NetworkFile> {
    let path = network_path(dir);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a network file", path.display()))
}

/// The funded accounts' key pairs, in file order.
pub fn read_accounts(dir: &Path) -> Result<Vec<KeyPair>> {
    let path = dir.join("accounts.json");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let entries: Vec<AccountEntry> = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not an accounts file", path.display()))?;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let bytes = hex::decode(&e.secret_key)
                .with_context(|| format!("account {i}: secret key is not hex"))?;
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow!("account {i}: secret key is not 32 bytes"))?;
            let key = KeyPair::from_seed(seed);
            if key.public().to_hex() != e.public_key {
                bail!(
                    "account {i}: the secret key does not match public key {}",
                    e.public_key
                );
            }
            Ok(key)
        })
        .collect()
}

/// `None` if there is no pid file.
pub fn read_pids(dir: &Path) -> Result<Option<PidFile>> {
    let path = pids_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not a pid file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn write_pids(dir: &Path, pids: &PidFile) -> Result<()> {
    let path = pids_path(dir);
    std::fs::write(&path, serde_json::to_vec_pretty(pids)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Fails if DIR's pid file names a live process; removes a stale pid file.
pub fn ensure_not_running(dir: &Path) -> Result<()> {
    let Some(pids) = read_pids(dir)? else {
        return Ok(());
    };
    let alive: Vec<String> = pids
        .validators
        .iter()
        .filter(|v| v.alive())
        .map(|v| format!("{} (pid {})", v.name, v.pid))
        .collect();
    if !alive.is_empty() {
        bail!(
            "a network is running in {}: {}; stop it first with `hotledger-testnet stop --dir {}`",
            dir.display(),
            alive.join(", "),
            dir.display()
        );
    }
    let path = pids_path(dir);
    std::fs::remove_file(&path)
        .with_context(|| format!("cannot remove stale {}", path.display()))?;
    Ok(())
}

/// Deletes a network folder. Refuses while it runs, and refuses a non-empty folder that does
/// not look like a network folder (no `network.json`), so a mistyped `--dir` deletes nothing.
pub fn wipe_dir(dir: &Path) -> Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    ensure_not_running(dir)?;
    let empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none());
    if !empty && !network_path(dir).exists() {
        bail!(
            "{} does not look like a testnet folder (no network.json); not deleting it",
            dir.display()
        );
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot delete {}", dir.display()))?;
    Ok(true)
}

/// The last `n` lines of a file (empty if it cannot be read); reads at most its last 256 KiB.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let len = file.metadata().map_or(0, |m| m.len());
        let start = len.saturating_sub(256 * 1024);
        if file.seek(SeekFrom::Start(start)).is_ok() {
            let _ = file.take(256 * 1024).read_to_end(&mut bytes);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    lines[skip..].iter().map(|l| (*l).to_string()).collect()
}
