//! Four real `hotledger` processes on loopback: 1,200 signed transfers over JSON-RPC,
//! one validator SIGKILLed mid-load and restarted, then agreement, exactly-once execution,
//! supply conservation and catch-up are checked.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use hotledger_crypto::Digest;
use hotledger_ledger::{SignedTransaction, Transfer};
use hotledger_node::rpc::{HotledgerApiClient, TxState};
use hotledger_tests::cluster::Cluster;

const ACCOUNTS: usize = 40;
const ROUNDS: u64 = 30; // transfers per account: 40 x 30 = 1,200
const KILLED: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_commit_transfers_and_survive_a_kill() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut c = Cluster::running(dir.path(), 4, ACCOUNTS).await?;

    let keys = c.accounts.clone();
    let client0 = c.client(0)?;
    let mut supply_before = 0u64;
    for k in &keys {
        let a = client0.get_account(k.public()).await?;
        supply_before += a.map_or(0, |a| a.balance);
    }
    ensure!(supply_before > 0, "accounts are not funded");

    // Round r: every account sends nonce r to the next account, to one live validator.
    let mut accepted: HashMap<Digest, SignedTransaction> = HashMap::new();
    let mut rejected = Vec::new();
    for round in 0..ROUNDS {
        if round == 10 {
            // Stop using the victim, let its gossip drain, then kill it mid-load.
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.kill(KILLED)?;
        }
        if round == 20 {
            c.start(KILLED)?;
        }
        let live: Vec<usize> = if (10..20).contains(&round) {
            vec![0, 1, 2]
        } else {
            vec![0, 1, 2, 3]
        };
        let target = live[(round as usize) % live.len()];
        let txs: Vec<SignedTransaction> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Transfer {
                    from: k.public(),
                    to: keys[(i + 1) % keys.len()].public(),
                    amount: 1 + (round + i as u64) % 7,
                    nonce: round,
                }
                .sign(k, &c.chain_id)
            })
            .collect();
        let client = c.client(target)?;
        let outcomes = match client.submit_transactions(txs.clone()).await {
            Ok(o) => o,
            Err(e) if target == KILLED => {
                // The restarted validator may still be opening its store: use another.
                eprintln!("validator {target} not ready ({e}); submitting to 0");
                c.client(0)?.submit_transactions(txs.clone()).await?
            }
            Err(e) => return Err(e.into()),
        };
        for (tx, o) in txs.into_iter().zip(outcomes) {
            match (o.hash, o.error) {
                (Some(h), _) => {
                    accepted.insert(h, tx);
                }
                (None, e) => rejected.push(e.unwrap_or_default()),
            }
        }
        c.check_alive()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every transfer is valid and sent once, so every one must be accepted (the nonce check below
    // needs all of them anyway).
    ensure!(
        rejected.is_empty() && accepted.len() == (ACCOUNTS as u64 * ROUNDS) as usize,
        "{} accepted; rejections: {:?}",
        accepted.len(),
        &rejected[..rejected.len().min(5)]
    );

    // Every accepted transfer gets committed; a client resubmits what a node lost.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last_resubmit = Instant::now();
    loop {
        c.check_alive()?;
        let mut pending = Vec::new();
        for (h, tx) in &accepted {
            if client0.get_transaction(*h).await?.status != TxState::Committed {
                pending.push(tx.clone());
            }
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("{} accepted transfers never committed", pending.len());
        }
        if last_resubmit.elapsed() > Duration::from_secs(10) {
            let _ = client0.submit_transactions(pending).await;
            last_resubmit = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The restarted validator catches up with the others.
    let target = client0.status().await?.height;
    c.wait_for_height(&[0, 1, 2, 3], target, Duration::from_secs(120))
        .await?;

    // Agreement: same block id and state root at every height on all four.
    let mut heights = Vec::new();
    for i in 0..4 {
        heights.push(c.client(i)?.status().await?.height);
    }
    let common = heights.iter().copied().min().unwrap_or(0);
    ensure!(common >= target, "heights {heights:?} below {target}");
    let clients: Vec<_> = (0..4).map(|i| c.client(i)).collect::<Result<_>>()?;
    let mut seen: HashMap<Digest, u32> = HashMap::new();
    for h in 1..=common {
        let b0 = clients[0]
            .get_block(Some(h))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no block {h}"))?;
        for (i, cl) in clients.iter().enumerate().skip(1) {
            let b = cl
                .get_block(Some(h))
                .await?
                .ok_or_else(|| anyhow::anyhow!("validator {i}: no block {h}"))?;
            ensure!(
                b.id == b0.id,
                "validator {i} has block {} at height {h}, validator 0 has {}",
                b.id,
                b0.id
            );
            ensure!(
                b.state_root == b0.state_root,
                "state roots differ at height {h}"
            );
        }
        for tx in b0.txs {
            *seen.entry(tx).or_default() += 1;
        }
    }
    // Exactly once: each accepted transfer is in exactly one committed block, applied.
    for h in accepted.keys() {
        ensure!(
            seen.get(h) == Some(&1),
            "transfer {h} committed {:?} times",
            seen.get(h)
        );
        let st = client0.get_transaction(*h).await?;
        ensure!(
            matches!(st.outcome, Some(hotledger_ledger::TxOutcome::Applied)),
            "transfer {h} did not apply: {:?}",
            st.outcome
        );
    }
    // Supply unchanged, and every sender's nonce counts its applied transfers.
    let mut supply_after = 0u64;
    for k in &keys {
        let a = client0
            .get_account(k.public())
            .await?
            .ok_or_else(|| anyhow::anyhow!("account vanished"))?;
        supply_after += a.balance;
        ensure!(
            a.nonce == ROUNDS,
            "account nonce {} after {ROUNDS} transfers",
            a.nonce
        );
    }
    ensure!(
        supply_after == supply_before,
        "supply changed: {supply_before} -> {supply_after}"
    );
    eprintln!(
        "committed {} transfers in {} blocks; heights {heights:?}; {} rejected at submission",
        accepted.len(),
        common,
        rejected.len()
    );
    Ok(())
}
