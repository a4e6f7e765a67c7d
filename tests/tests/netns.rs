//! Four validators on four separate network hosts (Linux network namespaces on one bridge),
//! generated with `hotledger testnet --hosts`: they find each other only at their hosts'
//! addresses, commit signed transfers submitted to each host's JSON-RPC, and agree on every
//! block. Needs root; without it the test says so and passes nothing off as tested.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use hotledger_ledger::{SignedTransaction, Transfer};
use hotledger_node::config::NodeConfig;
use hotledger_node::rpc::{HotledgerApiClient, TxState};
use hotledger_testnet::netns::{self, Hosts};
use hotledger_tests::cluster::Cluster;

const VALIDATORS: usize = 4;
const ACCOUNTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_on_separate_hosts_commit_transfers() -> Result<()> {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED four_validators_on_separate_hosts_commit_transfers: {why}");
        return Ok(());
    }
    let pid = std::process::id();
    let tag = format!("hlt{:x}", pid % 0x10000);
    let subnet = u8::try_from(1 + pid % 250).unwrap();
    let hosts = Hosts::create(&tag, subnet, VALIDATORS)?;
    let dir = tempfile::tempdir()?;
    let hosts_arg = hosts.hosts_arg();
    let mut c = Cluster::generate_with(dir.path(), VALIDATORS, ACCOUNTS, &["--hosts", &hosts_arg])?;

    // Homes for separate hosts: every validator listens on every interface at the default
    // ports, and its peers dial it at its host's address.
    for (i, address) in hosts.addresses.iter().enumerate() {
        let config = NodeConfig::load(&c.home(i).join("config.toml"))?;
        assert_eq!(config.p2p.listen, "/ip4/0.0.0.0/tcp/26656");
        assert_eq!(config.rpc.listen.to_string(), "0.0.0.0:26657");
        assert_eq!(c.rpc_urls[i], format!("http://{address}:26657"));
        let genesis = std::fs::read_to_string(c.home(i).join("genesis.json"))?;
        for other in &hosts.addresses {
            let dialled = format!("/ip4/{other}/tcp/26656");
            assert!(genesis.contains(&dialled), "genesis lacks {dialled}");
        }
    }

    for i in 0..VALIDATORS {
        c.set_launcher(i, hosts.exec_prefix(i));
    }
    c.start_all()?;
    let result = commit_across_the_bridge(&mut c).await;
    // Processes first (Cluster's drop kills them), then the namespaces they ran in.
    drop(c);
    drop(hosts);
    result
}

async fn commit_across_the_bridge(c: &mut Cluster) -> Result<()> {
    let all: Vec<usize> = (0..VALIDATORS).collect();
    c.wait_for_height(&all, 2, Duration::from_secs(90)).await?;
    for i in 0..VALIDATORS {
        let peers = c.client(i)?.status().await?.peers;
        ensure!(
            peers == VALIDATORS - 1,
            "validator {i} has {peers} peers, not {}",
            VALIDATORS - 1
        );
    }

    // Account k sends to account k+1, each through a different host's JSON-RPC.
    let keys = c.accounts.clone();
    let mut hashes = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let tx: SignedTransaction = Transfer {
            from: key.public(),
            to: keys[(k + 1) % keys.len()].public(),
            amount: 1 + k as u64,
            nonce: 0,
        }
        .sign(key, &c.chain_id);
        let hash = c
            .client(k % VALIDATORS)?
            .submit_transaction(tx)
            .await
            .with_context(|| format!("submitting to validator {}", k % VALIDATORS))?;
        hashes.push(hash);
    }

    // Every transfer commits, as seen by every validator.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..VALIDATORS {
        let client = c.client(i)?;
        for h in &hashes {
            loop {
                c.check_alive()?;
                if client.get_transaction(*h).await?.status == TxState::Committed {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("transfer {h} not committed on validator {i} within 60 s");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    let common = c.check_agreement().await?;
    eprintln!(
        "{} transfers committed across the bridge; {common} blocks agree on {VALIDATORS} hosts",
        hashes.len()
    );
    Ok(())
}
