//! Four real `hotledger` processes under a steady load of signed transfers; one validator is
//! SIGKILLed and stays down. With f = 1 of 4 down, the network must keep committing: in a
//! window after the crash it commits at least half the blocks and half the transfers it
//! committed in a window of the same length before it, in the same run.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use hotledger_crypto::KeyPair;
use hotledger_ledger::Transfer;
use hotledger_node::rpc::HotledgerApiClient;
use hotledger_tests::cluster::Cluster;
use jsonrpsee::http_client::HttpClient;

const ACCOUNTS: usize = 30;
const VICTIM: usize = 3;
/// Length of the healthy and of the crashed window.
const WINDOW: Duration = Duration::from_secs(8);
/// Left out after the kill: the connections to the victim fail and leader reputation sees its
/// missed rounds in committed history.
const SETTLE: Duration = Duration::from_secs(3);
/// Rounds of one transfer per account, 5 a second, to the validators that stay up.
const LOAD_ROUNDS: u64 = 150;

/// (height, committed transfers) as validator `i` reports them.
async fn progress(c: &Cluster, i: usize) -> Result<(u64, u64)> {
    let s = c.client(i)?.status().await?;
    Ok((s.height, s.committed_txs))
}

/// Sends one transfer per account every 200 ms to validators 0..3 in turn (never the victim, so
/// no transfer dies with it), until `stop` or `LOAD_ROUNDS` rounds.
fn spawn_load(
    clients: Vec<HttpClient>,
    keys: Vec<KeyPair>,
    chain_id: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut accepted = 0;
        for round in 0..LOAD_ROUNDS {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let started = Instant::now();
            let txs = keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    Transfer {
                        from: k.public(),
                        to: keys[(i + 1) % keys.len()].public(),
                        amount: 1,
                        nonce: round,
                    }
                    .sign(k, &chain_id)
                })
                .collect();
            let client = &clients[round as usize % clients.len()];
            if let Ok(outcomes) = client.submit_transactions(txs).await {
                accepted += outcomes.iter().filter(|o| o.hash.is_some()).count() as u64;
            }
            tokio::time::sleep(Duration::from_millis(200).saturating_sub(started.elapsed())).await;
        }
        accepted
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_crashed_validator_of_four_costs_at_most_half_the_commits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut c = Cluster::running(dir.path(), 4, ACCOUNTS).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let clients = (0..VICTIM)
        .map(|i| c.client(i))
        .collect::<Result<Vec<_>>>()?;
    let load = spawn_load(
        clients,
        c.accounts.clone(),
        c.chain_id.clone(),
        Arc::clone(&stop),
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let healthy_start = progress(&c, 0).await?;
    tokio::time::sleep(WINDOW).await;
    let healthy_end = progress(&c, 0).await?;
    c.kill(VICTIM)?;
    tokio::time::sleep(SETTLE).await;
    let crashed_start = progress(&c, 0).await?;
    tokio::time::sleep(WINDOW).await;
    let crashed_end = progress(&c, 0).await?;
    stop.store(true, Ordering::Relaxed);
    let accepted = load.await?;
    c.check_alive()?;

    let healthy = (
        healthy_end.0 - healthy_start.0,
        healthy_end.1 - healthy_start.1,
    );
    let crashed = (
        crashed_end.0 - crashed_start.0,
        crashed_end.1 - crashed_start.1,
    );
    eprintln!(
        "{} s windows: healthy {} blocks / {} transfers, one of four crashed {} blocks / {} \
         transfers; {accepted} transfers accepted",
        WINDOW.as_secs(),
        healthy.0,
        healthy.1,
        crashed.0,
        crashed.1
    );
    ensure!(healthy.1 > 0, "no transfer committed while all four ran");
    ensure!(
        crashed.0 * 2 >= healthy.0,
        "blocks: {} with one validator down, {} with all four",
        crashed.0,
        healthy.0
    );
    ensure!(
        crashed.1 * 2 >= healthy.1,
        "transfers: {} with one validator down, {} with all four",
        crashed.1,
        healthy.1
    );
    Ok(())
}
