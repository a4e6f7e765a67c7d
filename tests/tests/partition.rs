//! Four validators on four network hosts (Linux network namespaces on one bridge) split 2|2 by
//! nftables rules that drop every packet between the halves, silently, as a real partition
//! does: TCP connections stay "established" and nothing gets through. Neither half has a
//! quorum, so commits must stop; once the rules are gone every validator must commit again
//! within 10 s (the nodes find the dead connections by their unanswered pings, redial, and
//! re-send the round's timeouts), and every height must hold the same block on every host.
//! Needs root and nftables; without root the test says so and passes nothing off as tested.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use hotledger_node::rpc::HotledgerApiClient;
use hotledger_testnet::netns::{self, Hosts};
use hotledger_tests::cluster::Cluster;

const VALIDATORS: usize = 4;
/// How long the halves are apart: longer than the nodes' ping deadline, so every connection
/// across the cut is found dead and the round timers back off, as in a long outage.
const SPLIT: Duration = Duration::from_secs(14);
/// The liveness bound after the heal.
const RESUME_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_stop_in_a_2_2_partition_and_resume_within_10_s_of_the_heal() -> Result<()> {
    if let Some(why) = netns::unavailable() {
        eprintln!(
            "SKIPPED commits_stop_in_a_2_2_partition_and_resume_within_10_s_of_the_heal: {why}"
        );
        return Ok(());
    }
    if let Some(why) = netns::nft_unavailable() {
        bail!("{why} (scripts/test.sh installs it when run as root)");
    }
    let pid = std::process::id();
    let tag = format!("hlp{:x}", pid % 0x10000);
    // Another subnet than the other namespace test of this suite picks for the same pid.
    let subnet = u8::try_from(1 + (pid + 125) % 250).unwrap();
    let hosts = Hosts::create(&tag, subnet, VALIDATORS)?;
    let dir = tempfile::tempdir()?;
    let hosts_arg = hosts.hosts_arg();
    let mut c = Cluster::generate_with(dir.path(), VALIDATORS, 4, &["--hosts", &hosts_arg])?;
    for i in 0..VALIDATORS {
        c.set_launcher(i, hosts.exec_prefix(i));
    }
    c.start_all()?;
    let result = split_and_heal(&mut c, &hosts).await;
    // Processes first (Cluster's drop kills them), then the namespaces they ran in.
    drop(c);
    drop(hosts);
    result
}

/// Every validator's committed height (0 for one that does not answer).
async fn heights(c: &Cluster) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(VALIDATORS);
    for i in 0..VALIDATORS {
        out.push(c.client(i)?.status().await.map_or(0, |s| s.height));
    }
    Ok(out)
}

async fn split_and_heal(c: &mut Cluster, hosts: &Hosts) -> Result<()> {
    let all: Vec<usize> = (0..VALIDATORS).collect();
    c.wait_for_height(&all, 5, Duration::from_secs(90)).await?;

    hosts.partition(&[&[0, 1], &[2, 3]])?;
    let split_at = Instant::now();
    // Blocks already certified when the cut came may still commit; after a few seconds
    // nothing can.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stopped = heights(c).await?;
    tokio::time::sleep(SPLIT.saturating_sub(split_at.elapsed())).await;
    let before_heal = heights(c).await?;
    c.check_alive()?;
    ensure!(
        before_heal == stopped,
        "a half without a quorum committed: heights {stopped:?} then {before_heal:?}"
    );

    hosts.heal()?;
    let healed_at = Instant::now();
    let mark = before_heal.iter().copied().max().unwrap_or(0);
    let deadline = healed_at + Duration::from_secs(60);
    let resumed = loop {
        let now = heights(c).await?;
        if now.iter().all(|&h| h > mark) {
            break healed_at.elapsed();
        }
        if Instant::now() > deadline {
            bail!("validators at {now:?} did not pass height {mark} within 60 s of the heal");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "split {:.1} s at heights {stopped:?}; every validator committed above {mark} {:.2} s after the heal",
        SPLIT.as_secs_f64(),
        resumed.as_secs_f64()
    );
    ensure!(
        resumed <= RESUME_WITHIN,
        "commits resumed {resumed:?} after the heal (bound {RESUME_WITHIN:?})"
    );

    // Agreement on every block up to the lowest height.
    c.check_agreement().await?;
    c.check_alive()?;
    Ok(())
}
