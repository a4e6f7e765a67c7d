//! Faults on real processes that the acknowledgement promise must survive.
//!
//! A transfer behind a nonce gap is admitted and acknowledged but cannot commit until the gap
//! fills, so a one-validator network holds it only in its mempool: a SIGKILL of the validator
//! right after the acknowledgement is exactly the crash that loses it unless the admission log
//! replays it. The same run with `mempool.log = false` is the control: there it must be lost.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use hotledger_ledger::{SignedTransaction, Transfer};
use hotledger_node::rpc::HotledgerApiClient;
use hotledger_tests::cluster::Cluster;

/// The validator's committed height (0 while it does not answer).
async fn height(c: &Cluster) -> u64 {
    match c.client(0) {
        Ok(client) => client.status().await.map_or(0, |s| s.height),
        Err(_) => 0,
    }
}

/// The sender's committed nonce once the chain settled: 2 if both transfers committed.
async fn run(log: bool) -> Result<u64> {
    let dir = tempfile::tempdir()?;
    let mut c = Cluster::generate(dir.path(), 1, 2)?;
    if !log {
        let path = c.home(0).join("config.toml");
        let text = std::fs::read_to_string(&path)?;
        ensure!(
            text.contains("\nlog = true\n"),
            "config.toml has no mempool.log"
        );
        std::fs::write(&path, text.replace("\nlog = true\n", "\nlog = false\n"))?;
    }
    c.start_all()?;
    c.wait_for_height(&[0], 2, Duration::from_secs(60)).await?;
    let (sender, recipient) = (c.accounts[0].clone(), c.accounts[1].public());
    let chain_id = c.chain_id.clone();
    let transfer = |nonce: u64| -> SignedTransaction {
        Transfer {
            from: sender.public(),
            to: recipient,
            amount: 10,
            nonce,
        }
        .sign(&sender, &chain_id)
    };

    // Acknowledged, and unable to commit before nonce 0 comes.
    let gapped = transfer(1);
    let hash = c.client(0)?.submit_transaction(gapped.clone()).await?;
    ensure!(hash == gapped.hash());
    c.kill(0)?;
    c.start(0)?;
    c.wait_for_height(&[0], 1, Duration::from_secs(60)).await?;
    let restarted = height(&c).await;
    c.wait_for_height(&[0], restarted + 2, Duration::from_secs(60))
        .await?;

    c.client(0)?.submit_transaction(transfer(0)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nonce = c
            .client(0)?
            .get_account(sender.public())
            .await?
            .map_or(0, |a| a.nonce);
        if nonce == 2 {
            return Ok(2);
        }
        if nonce == 1 {
            // The gap filled; give the chain a few blocks to take the next one too.
            let now = height(&c).await;
            c.wait_for_height(&[0], now + 5, Duration::from_secs(30))
                .await?;
            let settled = c
                .client(0)?
                .get_account(sender.public())
                .await?
                .map_or(0, |a| a.nonce);
            return Ok(settled);
        }
        if Instant::now() > deadline {
            bail!("the sender's nonce is {nonce} 30 s after the second transfer");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_transfer_survives_a_kill_of_the_validator_that_acknowledged_it(
) -> Result<()> {
    let with_log = run(true).await?;
    ensure!(
        with_log == 2,
        "with the admission log the acknowledged transfer was lost (sender nonce {with_log})"
    );
    let without = run(false).await?;
    ensure!(
        without == 1,
        "control: without the admission log the sender's nonce is {without}, not 1 (the test \
         no longer makes the crash lose anything)"
    );
    Ok(())
}
