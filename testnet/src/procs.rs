//! Process facts from `/proc` (Linux), signals, and where the `hotledger` binary of a cargo
//! build is.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The fields of `/proc/<pid>/stat` after the command name: index 0 is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Start time of `pid` in clock ticks since boot (field 22), if it exists.
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The process exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|f| f.first().cloned())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// User plus system CPU time of `pid` in clock ticks (fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let f = stat_fields(pid)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident memory (`VmHWM`) of `pid` in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if that fails).
pub fn clock_ticks_per_sec() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// CPU share between two `cpu_ticks` readings over `wall_secs`, in % of one core.
pub fn cpu_percent(ticks_before: u64, ticks_after: u64, wall_secs: f64) -> f64 {
    if wall_secs <= 0.0 {
        return 0.0;
    }
    let secs = ticks_after.saturating_sub(ticks_before) as f64 / clock_ticks_per_sec() as f64;
    100.0 * secs / wall_secs
}

/// Sends SIGTERM (or SIGKILL) to `pid`; false if it does not exist or may not be signalled.
pub fn signal(pid: u32, force: bool) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    let sig = if force {
        Signal::SIGKILL
    } else {
        Signal::SIGTERM
    };
    kill(Pid::from_raw(raw), sig).is_ok()
}

/// Locates the `hotledger` binary: `$HOTLEDGER_BIN` when set, else the one the same cargo build
/// made beside this test or program (`target/<profile>/hotledger`, for a test in
/// `target/<profile>/deps/` or a program in `target/<profile>/`). `cargo test --workspace` builds it,
/// because `hotledger-node` has integration tests; nothing is built here, since a `cargo build`
/// of one package resolves other features and would compile RocksDB a second time.
pub fn hotledger_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("HOTLEDGER_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let dir = exe.parent().context("the executable has no folder")?;
    let beside = dir.join("hotledger");
    if beside.is_file() {
        return Ok(beside);
    }
    // target/<profile>/deps/<test> → target/<profile>/hotledger
    let bin = dir
        .parent()
        .context("test executable has no profile folder")?
        .join("hotledger");
    if !bin.is_file() {
        bail!(
            "{} does not exist: run the tests with `cargo test --workspace` (which builds it), \
             or set HOTLEDGER_BIN to a hotledger binary",
            bin.display()
        );
    }
    Ok(bin)
}
