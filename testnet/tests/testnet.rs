//! Fast checks of `hotledger-testnet`: argument parsing, percentiles, a 5-second single
//! validator run against the debug `hotledger` binary, and `wipe` refusing a running network.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use clap::Parser;
use hotledger_testnet::cli::{Cli, Command as Sub};
use hotledger_testnet::files::{self, PidEntry, PidFile};
use hotledger_testnet::procs;
use hotledger_testnet::stats::{percentile, reason_kind, summarize};

fn testnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotledger-testnet"))
        .args(args)
        .output()
        .expect("run hotledger-testnet")
}

#[test]
fn parses_arguments_and_prints_help() {
    let cli = Cli::try_parse_from(["hotledger-testnet", "run"]).unwrap();
    let Sub::Run(run) = cli.command else {
        panic!("not run")
    };
    assert_eq!((run.validators, run.rate, run.accounts), (4, 1000, 1000));
    assert_eq!((run.duration, run.no_load, run.fresh), (None, false, false));
    assert_eq!(run.dir, PathBuf::from("./.testnet"));

    let cli = Cli::try_parse_from([
        "hotledger-testnet",
        "run",
        "--validators",
        "1",
        "--no-load",
        "--duration",
        "5",
        "--bin",
        "/x/hotledger",
    ])
    .unwrap();
    let Sub::Run(run) = cli.command else {
        panic!("not run")
    };
    assert_eq!(
        (run.validators, run.duration, run.no_load),
        (1, Some(5), true)
    );
    assert_eq!(run.bin.bin, Some(PathBuf::from("/x/hotledger")));

    let cli = Cli::try_parse_from([
        "hotledger-testnet",
        "bench",
        "--rates",
        "100,200",
        "--step-secs",
        "3",
    ])
    .unwrap();
    let Sub::Bench(bench) = cli.command else {
        panic!("not bench")
    };
    assert_eq!(
        (bench.rates, bench.step_secs, bench.warmup_secs),
        (vec![100, 200], 3, 5)
    );

    let cli = Cli::try_parse_from([
        "hotledger-testnet",
        "bench",
        "--crash",
        "1",
        "--restart",
        "--wipe",
        "--state-sync",
        "--accounts",
        "100000",
        "--snapshot-interval",
        "2000",
    ])
    .unwrap();
    let Sub::Bench(bench) = cli.command else {
        panic!("not bench")
    };
    assert!(bench.wipe && bench.state_sync);
    assert_eq!(
        (bench.accounts, bench.snapshot_interval),
        (Some(100_000), Some(2_000))
    );

    for bad in [
        &["hotledger-testnet", "run", "--validators", "0"][..],
        // A wipe needs a restart, a state sync a wipe.
        &["hotledger-testnet", "bench", "--crash", "1", "--wipe"],
        &[
            "hotledger-testnet",
            "bench",
            "--crash",
            "1",
            "--restart",
            "--state-sync",
        ],
        &["hotledger-testnet", "run", "--rate", "0"],
        &["hotledger-testnet", "run", "--accounts", "1"],
        &["hotledger-testnet", "bench", "--rates", "10,x"],
        &["hotledger-testnet", "frobnicate"],
    ] {
        assert!(Cli::try_parse_from(bad).is_err(), "{bad:?} parsed");
    }

    let out = testnet(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "status", "stop", "wipe", "bench"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    let out = testnet(&["run", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--validators",
        "--dir",
        "--rate",
        "--duration",
        "--no-load",
        "--accounts",
        "--bin",
    ] {
        assert!(help.contains(flag), "run --help lacks {flag}");
    }
    assert!(!testnet(&["run", "--validators", "0"]).status.success());
}

#[test]
fn latency_percentiles() {
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(percentile(&[7.0], 0.0), Some(7.0));
    assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 50.0), Some(50.0));
    assert_eq!(percentile(&v, 95.0), Some(95.0));
    assert_eq!(percentile(&v, 99.0), Some(99.0));
    assert_eq!(percentile(&v, 100.0), Some(100.0));
    assert_eq!(percentile(&v, 0.0), Some(1.0));
    assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.0));
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 51.0), Some(3.0));
    // summarize sorts first.
    let mut samples = vec![900.0, 100.0, 500.0, 300.0, 700.0];
    assert_eq!(
        summarize(&mut samples),
        (Some(500.0), Some(900.0), Some(900.0))
    );
    assert_eq!(samples, vec![100.0, 300.0, 500.0, 700.0, 900.0]);

    assert_eq!(
        reason_kind("stale nonce: account is at 5, got 3"),
        "stale nonce"
    );
    assert_eq!(reason_kind("mempool full"), "mempool full");
    assert_eq!(
        reason_kind("another transaction with nonce 7 is pending for this sender"),
        "another transaction with nonce is pending for this sender"
    );
    assert_eq!(reason_kind(""), "unknown");
}

#[test]
fn runs_one_validator_without_load() {
    let bin = hotledger_testnet::procs::hotledger_binary().expect("the hotledger binary");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let dir_s = dir.to_str().unwrap();
    let out = testnet(&[
        "run",
        "--validators",
        "1",
        "--no-load",
        "--duration",
        "5",
        "--accounts",
        "10",
        "--dir",
        dir_s,
        "--bin",
        bin.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("http://127.0.0.1:"),
        "no RPC URL printed:\n{stdout}"
    );
    assert!(
        stdout.contains("hotledger query status --node"),
        "no query hint:\n{stdout}"
    );
    let log = files::log_path(&dir, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.is_empty(), "{} is empty", log.display());
    assert!(
        !files::pids_path(&dir).exists(),
        "pids.json left behind after a clean stop"
    );
    // Stopped: status still works and wipe deletes the folder.
    assert!(testnet(&["status", "--dir", dir_s]).status.success());
    assert!(testnet(&["wipe", "--dir", dir_s]).status.success());
    assert!(!dir.exists());
}

#[test]
fn wipe_refuses_while_pids_are_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        files::network_path(&dir),
        r#"{"chain_id":"x","validators":[]}"#,
    )
    .unwrap();
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    let pids = PidFile {
        supervisor: std::process::id(),
        started_at_ms: 0,
        validators: vec![PidEntry {
            name: "validator-0".into(),
            pid,
            start_ticks: procs::start_ticks(pid),
            rpc_url: "http://127.0.0.1:1".into(),
            log: dir.join("logs/validator-0.log"),
        }],
    };
    files::write_pids(&dir, &pids).unwrap();
    let dir_s = dir.to_str().unwrap();

    let out = testnet(&["wipe", "--dir", dir_s]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !out.status.success(),
        "wipe succeeded while pid {pid} was alive"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("running"));
    assert!(dir.exists());

    // The same pid file is stale once the process is gone: wipe goes ahead.
    let out = testnet(&["wipe", "--dir", dir_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.exists());

    // A folder that is not a testnet is never deleted.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("important.txt"), "keep").unwrap();
    assert!(!testnet(&["wipe", "--dir", other.to_str().unwrap()])
        .status
        .success());
    assert!(other.join("important.txt").exists());
}
