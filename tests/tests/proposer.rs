//! A real one-validator process whose mempool holds only a transfer that cannot execute yet (its
//! sender's previous nonce is missing): the leader must keep its empty-block pace (one block per
//! `consensus.empty_block_delay_ms`, 200 ms by default) instead of proposing empty blocks as fast
//! as it can, and must include the transfer as soon as the gap is filled.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use hotledger_ledger::Transfer;
use hotledger_node::rpc::{HotledgerApiClient, TxState};
use hotledger_tests::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gapped_transfer_does_not_make_the_leader_spin() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut c = Cluster::generate(dir.path(), 1, 2)?;
    c.start_all()?;
    c.wait_for_height(&[0], 2, Duration::from_secs(60)).await?;
    let client = c.client(0)?;
    let chain = client.status().await?.chain_id;
    let (alice, bob) = (c.accounts[0].clone(), c.accounts[1].public());
    let transfer = |nonce| {
        Transfer {
            from: alice.public(),
            to: bob,
            amount: 1,
            nonce,
        }
        .sign(&alice, &chain)
    };
    let gapped = transfer(1);
    // A refusal would be an error here, so the transfer is in the mempool from now on.
    client.submit_transaction(gapped.clone()).await?;

    // Over 3 s, the 200 ms pace allows about 15 blocks; a spinning leader makes hundreds.
    let start_height = client.status().await?.height;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let blocks = client.status().await?.height - start_height;
    ensure!(
        blocks <= 30,
        "{blocks} blocks in 3 s with nothing selectable"
    );
    ensure!(
        blocks >= 3,
        "only {blocks} blocks in 3 s: the empty-block pace stopped"
    );

    // Filling the gap makes both executable: they commit.
    client.submit_transaction(transfer(0)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = client.get_transaction(gapped.hash()).await?.status;
        if state == TxState::Committed {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the transfer behind the gap never committed: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.check_alive()?;
    Ok(())
}
