//! A validator's life on real processes: its chain data deleted while it is down, it restarts
//! from its safety record (kept apart from the chain data), catches up by forward sync past an
//! orphan bound far smaller than what it missed, or joins by state sync, and signs again only
//! above what it had signed.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use hotledger_consensus::SafetyData;
use hotledger_node::home::Home;
use hotledger_node::rpc::HotledgerApiClient;
use hotledger_node::storage::{SafetyFile, SafetyStore};
use hotledger_tests::cluster::Cluster;

const WIPED: usize = 3;

/// The safety record of a stopped validator, read from its home.
fn record(home: &Home) -> Result<SafetyData> {
    let config = home.load_config()?;
    let genesis = home.load_genesis()?;
    let key = home.load_validator_key()?;
    SafetyFile::open(&home.safety_path(&config), &genesis.hash(), key.public())?
        .get()?
        .context("the validator has no safety record")
}

/// Waits until the validator's log has a line containing `text`; returns that line.
async fn log_line(c: &Cluster, i: usize, text: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let log = std::fs::read_to_string(c.log_path(i)).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains(text)) {
            return Ok(line.to_string());
        }
        if Instant::now() > deadline {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "validator {i} never logged {text:?} within {timeout:?}; its log ends:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_validator_keeps_its_safety_record_and_signs_only_above_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut c = Cluster::running(dir.path(), 4, 4).await?;
    let all = [0, 1, 2, 3];
    c.wait_for_height(&all, 10, Duration::from_secs(60)).await?;

    c.kill(WIPED)?;
    let home = Home::new(c.home(WIPED));
    let before = record(&home)?;
    ensure!(before.last_voted_round > 0, "validator {WIPED} never voted");
    let data = home.data_path(&home.load_config()?);
    ensure!(data.exists(), "no chain data at {}", data.display());
    std::fs::remove_dir_all(&data)?;

    // Orphan and request bounds far below the blocks it misses: fetching ancestors backwards
    // from the newest QC cannot bring it back, only forward sync can.
    let config_path = home.config_path();
    let config = std::fs::read_to_string(&config_path)?;
    for line in ["max_orphan_blocks = 4096", "max_blocks_per_request = 64"] {
        ensure!(config.contains(line), "no {line:?} in {config}");
    }
    std::fs::write(
        &config_path,
        config
            .replace("max_orphan_blocks = 4096", "max_orphan_blocks = 8")
            .replace("max_blocks_per_request = 64", "max_blocks_per_request = 8"),
    )?;

    // The others go on meanwhile, so the wiped validator has blocks to fetch.
    let height = c.client(0)?.status().await?.height;
    c.wait_for_height(&[0, 1, 2], height + 50, Duration::from_secs(90))
        .await?;

    // Restarted on an empty database, it starts from its record, not from round 0.
    std::fs::remove_file(c.log_path(WIPED)).ok();
    c.start(WIPED)?;
    let line = log_line(&c, WIPED, "safety record loaded", Duration::from_secs(30)).await?;
    let loaded: u64 = line
        .split("last_voted_round=")
        .nth(1)
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .with_context(|| format!("no round in {line}"))?;
    ensure!(
        loaded == before.last_voted_round,
        "restart loaded round {loaded}, the record holds {}: {line}",
        before.last_voted_round
    );
    ensure!(
        log_line(
            &c,
            WIPED,
            "initialised storage from genesis",
            Duration::from_secs(5)
        )
        .await
        .is_ok(),
        "the chain data was not rebuilt from genesis"
    );

    // It catches up with the others by forward sync and takes part again.
    let target = c.client(0)?.status().await?.height;
    c.wait_for_height(&[WIPED], target, Duration::from_secs(90))
        .await?;
    log_line(
        &c,
        WIPED,
        "syncing committed blocks",
        Duration::from_secs(1),
    )
    .await?;
    log_line(&c, WIPED, "caught up by sync", Duration::from_secs(30)).await?;
    let later = c.client(0)?.status().await?.height;
    c.wait_for_height(&all, later + 10, Duration::from_secs(60))
        .await?;
    // The chain it rebuilt is the others' chain, block for block.
    let top = c.client(WIPED)?.status().await?.height;
    for h in (1..=top).step_by(usize::try_from(top / 20).unwrap_or(1).max(1)) {
        let mine = c.client(WIPED)?.get_block(Some(h)).await?.map(|b| b.id);
        let theirs = c.client(0)?.get_block(Some(h)).await?.map(|b| b.id);
        ensure!(mine.is_some() && mine == theirs, "block {h} differs");
    }

    // Everything it signed after the restart is above the old record.
    c.kill(WIPED)?;
    let after = record(&home)?;
    ensure!(
        after.last_voted_round > before.last_voted_round,
        "no vote after the restart: record {} then {}",
        before.last_voted_round,
        after.last_voted_round
    );
    if let Some(vote) = &after.last_vote {
        ensure!(vote.round() > before.last_voted_round);
    }
    Ok(())
}

/// Pruning on real processes: with a window of 1,000 blocks every validator deletes what is
/// below it (blocks, records, and the state its early transfers made stale), reports the lowest
/// height it holds, answers a query below it with the typed `-32004` error naming that height,
/// and still answers every height above; a validator restarted after pruning rebuilds its tree
/// and agrees with the others on the accounts and the state root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_the_window_and_refuses_pruned_heights_by_name() -> Result<()> {
    const KEEP: u64 = 1_000;
    let dir = tempfile::tempdir()?;
    let mut c = Cluster::generate(dir.path(), 4, 4)?;
    for i in 0..4 {
        let path = Home::new(c.home(i)).config_path();
        let config = std::fs::read_to_string(&path)?;
        for line in ["keep_blocks = 100000", "empty_block_delay_ms = 200"] {
            ensure!(config.contains(line), "no {line:?} in {config}");
        }
        std::fs::write(
            &path,
            config
                .replace("keep_blocks = 100000", &format!("keep_blocks = {KEEP}"))
                // Empty blocks every few ms, so the chain outgrows the window quickly.
                .replace("empty_block_delay_ms = 200", "empty_block_delay_ms = 2"),
        )?;
    }
    c.start_all()?;
    let all = [0, 1, 2, 3];
    c.wait_for_height(&all, 2, Duration::from_secs(60)).await?;
    // Transfers early in the chain: their versions' stale state falls below the window.
    const ROUNDS: u64 = 20;
    for round in 0..ROUNDS {
        let txs = c.ring_transfers(round, |_| 1);
        for outcome in c.client(0)?.submit_transactions(txs).await? {
            ensure!(outcome.hash.is_some(), "refused: {:?}", outcome.error);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait_for_height(&all, KEEP + 400, Duration::from_secs(240))
        .await?;
    // The pruner runs each second: give it two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in all {
        let client = c.client(i)?;
        let status = client.status().await?;
        let earliest = status.earliest_height;
        ensure!(
            earliest > 1 && status.height - earliest + 1 >= KEEP,
            "validator {i}: earliest {earliest} at height {}",
            status.height
        );
        match client.get_block(Some(earliest - 1)).await {
            Err(jsonrpsee::core::ClientError::Call(e)) => {
                ensure!(e.code() == hotledger_node::rpc::PRUNED, "{e:?}");
                let data: serde_json::Value = serde_json::from_str(e.data().unwrap().get())?;
                ensure!(
                    data["height"] == earliest - 1 && data["earliest"].as_u64() >= Some(earliest),
                    "{data}"
                );
            }
            other => bail!(
                "validator {i}: pruned height {} answered {other:?}",
                earliest - 1
            ),
        }
        // The chain goes on meanwhile (and the window with it): heights well inside it.
        let low = status.height - KEEP + 300;
        for h in [low, (low + status.height) / 2, status.height] {
            ensure!(
                client.get_block(Some(h)).await?.is_some(),
                "validator {i}: height {h} within the window is missing"
            );
        }
    }

    // Restarted after pruning (killed: its tree is rebuilt from what pruning left), it follows
    // the chain and holds the others' accounts and state root.
    c.kill(1)?;
    c.start(1)?;
    let tip = c.client(0)?.status().await?.height;
    c.wait_for_height(&all, tip + 20, Duration::from_secs(120))
        .await?;
    let status = c.client(1)?.status().await?;
    let h = status.height - 10;
    let ours = c.client(1)?.get_block(Some(h)).await?.map(|b| b.state_root);
    for i in [0, 2, 3] {
        let theirs = c.client(i)?.get_block(Some(h)).await?.map(|b| b.state_root);
        ensure!(
            ours.is_some() && ours == theirs,
            "state root at {h}: {ours:?} against validator {i}'s {theirs:?}"
        );
    }
    for key in c.accounts.iter().map(|k| k.public()) {
        let account = c.client(1)?.get_account(key).await?.context("account")?;
        ensure!(
            account.nonce == ROUNDS,
            "account {key}: nonce {}",
            account.nonce
        );
        let theirs = c.client(0)?.get_account(key).await?.context("account")?;
        ensure!(account.balance == theirs.balance, "account {key} differs");
    }
    Ok(())
}

/// The value of `key=` in a log line.
fn field(line: &str, key: &str) -> Result<u64> {
    line.split(&format!("{key}="))
        .nth(1)
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .with_context(|| format!("no {key} in {line}"))
}

/// State sync on real processes. A chain of 100,000 funded accounts makes snapshots every 256
/// heights; a validator whose chain data is deleted restarts with `statesync.enable`, is killed
/// after its first chunks and restarted, resumes with the chunks it had stored, installs the
/// snapshot, block-syncs to the tip and follows the chain, agreeing with the others on every
/// state root it holds and on the accounts. Its safety record stays. Validator 0 serves
/// tampered chunks and blocks (fault mode `tampered-sync`, honest in consensus): the syncing
/// node refuses them, strikes it and completes from the other two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_validator_joins_by_state_sync_resumes_after_a_kill_and_agrees() -> Result<()> {
    const ACCOUNTS: usize = 100_000;
    const TAMPERER: usize = 0;
    let dir = tempfile::tempdir()?;
    let mut c = Cluster::generate(dir.path(), 4, ACCOUNTS)?;
    for i in 0..4 {
        let path = Home::new(c.home(i)).config_path();
        let config = std::fs::read_to_string(&path)?;
        let snapshot = "[snapshot]\ninterval = 10000\nkeep = 2";
        for line in [snapshot, "empty_block_delay_ms = 200"] {
            ensure!(config.contains(line), "no {line:?} in {config}");
        }
        // Snapshots kept long enough (16 × 256 heights) that none being restored is deleted.
        let mut config = config
            .replace(snapshot, "[snapshot]\ninterval = 256\nkeep = 16")
            .replace("empty_block_delay_ms = 200", "empty_block_delay_ms = 2");
        if i == TAMPERER {
            config.push_str("\n[fault_injection]\nmode = \"tampered-sync\"\n");
        }
        std::fs::write(&path, config)?;
    }
    let tamperer = Home::new(c.home(TAMPERER))
        .load_validator_key()?
        .public()
        .short();
    c.start_all()?;
    let all = [0, 1, 2, 3];
    // Two snapshots, the older one a leader-reputation history below the tip.
    c.wait_for_height(&all, 800, Duration::from_secs(300))
        .await?;
    let made = log_line(&c, 0, "snapshot made", Duration::from_secs(30)).await?;
    ensure!(
        field(&made, "accounts")? >= ACCOUNTS as u64,
        "the snapshot misses accounts: {made}"
    );

    c.kill(WIPED)?;
    let home = Home::new(c.home(WIPED));
    let before = record(&home)?;
    let config = home.load_config()?;
    std::fs::remove_dir_all(home.data_path(&config))?;
    let path = home.config_path();
    let text = std::fs::read_to_string(&path)?;
    ensure!(text.contains("[statesync]\nenable = false"), "{text}");
    std::fs::write(
        &path,
        text.replace("[statesync]\nenable = false", "[statesync]\nenable = true"),
    )?;

    // Killed after its first chunks.
    std::fs::remove_file(c.log_path(WIPED)).ok();
    c.start(WIPED)?;
    let chosen = log_line(&c, WIPED, "snapshot chosen", Duration::from_secs(60)).await?;
    let chunks = field(&chosen, "chunks")?;
    ensure!(chunks >= 32, "only {chunks} chunks: nothing to resume");
    log_line(
        &c,
        WIPED,
        "state sync: chunk checked and stored",
        Duration::from_secs(60),
    )
    .await?;
    c.kill(WIPED)?;
    let log = std::fs::read_to_string(c.log_path(WIPED))?;
    ensure!(
        !log.contains("snapshot installed"),
        "the state sync finished before the kill"
    );

    // Restarted (its log kept): it resumes with what it stored, and fetches only the rest.
    c.start(WIPED)?;
    let resumed = log_line(&c, WIPED, "state sync resumed", Duration::from_secs(30)).await?;
    let held = field(&resumed, "chunks_held")?;
    ensure!(
        held >= 1 && held < chunks,
        "resumed with {held} of {chunks}"
    );
    let installed = log_line(&c, WIPED, "snapshot installed", Duration::from_secs(120)).await?;
    // The tamperer was asked, refused and struck (before the kill or after).
    let log = std::fs::read_to_string(c.log_path(WIPED))?;
    ensure!(
        log.lines()
            .any(|l| l.contains("response refused") && l.contains(&format!("peer={tamperer}"))),
        "the tampering validator {tamperer} was never refused"
    );
    let snapshot = field(&installed, "height")?;
    ensure!(
        field(&installed, "fetched")? == chunks - held,
        "fetched other than the missing chunks: {installed}"
    );

    // It block-syncs to the others and follows the chain.
    let target = c.client(0)?.status().await?.height;
    c.wait_for_height(&[WIPED], target, Duration::from_secs(120))
        .await?;
    let later = c.client(0)?.status().await?.height;
    c.wait_for_height(&all, later + 20, Duration::from_secs(120))
        .await?;
    let status = c.client(WIPED)?.status().await?;
    ensure!(
        status.earliest_height == snapshot,
        "earliest {} after a snapshot at {snapshot}",
        status.earliest_height
    );
    ensure!(
        c.client(WIPED)?
            .get_block(Some(snapshot - 1))
            .await
            .is_err(),
        "a height below the snapshot answered"
    );
    // Every state root it holds is the others', from the snapshot's height on.
    let top = status.height;
    for h in (snapshot..=top).step_by(usize::try_from((top - snapshot) / 30).unwrap_or(1).max(1)) {
        let mine = c
            .client(WIPED)?
            .get_block(Some(h))
            .await?
            .map(|b| b.state_root);
        let theirs = c.client(0)?.get_block(Some(h)).await?.map(|b| b.state_root);
        ensure!(
            mine.is_some() && mine == theirs,
            "state root at {h} differs"
        );
    }
    for key in c.accounts.iter().step_by(9_973).map(|k| k.public()) {
        let mine = c.client(WIPED)?.get_account(key).await?;
        let theirs = c.client(0)?.get_account(key).await?;
        let (Some(mine), Some(theirs)) = (mine, theirs) else {
            bail!("account {key} missing");
        };
        ensure!(
            mine.balance == theirs.balance && mine.nonce == theirs.nonce,
            "account {key} differs"
        );
    }

    // It signs again, above what it had signed before the wipe, once it has executed the
    // heights proposals claim (read from its safety record while it runs: each write is a whole
    // slot, and a torn one is skipped).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while record(&home)?.last_voted_round <= before.last_voted_round
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    c.kill(WIPED)?;
    let after = record(&home)?;
    ensure!(
        after.last_voted_round > before.last_voted_round,
        "no vote after the state sync: record {} then {}",
        before.last_voted_round,
        after.last_voted_round
    );
    Ok(())
}

/// Full nodes on real processes. Validators admit one non-validator peer each
/// (`p2p.max_non_validator_peers = 1`). Full node A follows the chain from the validators; full
/// node B, refused by every validator (their one place is A's), follows through A alone, the
/// peer its `p2p.peers` names. Transfers submitted to B's RPC reach the validators through A
/// (each relays what a non-validator sent it) and commit; both full nodes hold the validators'
/// blocks, state roots and accounts, report their role and peers, and catch up after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_nodes_follow_the_chain_relay_transfers_and_serve_rpc() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut c = Cluster::generate(dir.path(), 4, 8)?;
    for i in 0..4 {
        let path = Home::new(c.home(i)).config_path();
        let config = std::fs::read_to_string(&path)?;
        let line = "max_non_validator_peers = 16";
        ensure!(config.contains(line), "no {line:?} in {config}");
        std::fs::write(&path, config.replace(line, "max_non_validator_peers = 1"))?;
    }
    c.start_all()?;
    let validators = [0, 1, 2, 3];
    c.wait_for_height(&validators, 5, Duration::from_secs(60))
        .await?;

    let (a, a_address) = c.add_full_node(&[])?;
    c.start(a)?;
    log_line(&c, a, "starting full node", Duration::from_secs(30)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = c.client(a)?.status().await;
        if s.as_ref().is_ok_and(|s| s.peers == 4) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "full node A never reached 4 validators: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (b, _) = c.add_full_node(&["--peer".to_string(), a_address])?;
    c.start(b)?;
    let tip = c.client(0)?.status().await?.height;
    c.wait_for_height(&[a, b], tip, Duration::from_secs(60))
        .await?;

    let status_a = c.client(a)?.status().await?;
    // B keeps redialling the validators, and each refusal closes a connection just opened: a
    // status read in that instant counts one; the next ones do not.
    let mut status_b = c.client(b)?.status().await?;
    for _ in 0..10 {
        if status_b.peers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status_b = c.client(b)?.status().await?;
    }
    ensure!(
        status_a.role == "full" && status_a.validator.is_empty(),
        "{status_a:?}"
    );
    ensure!(
        status_a.peers == 4 && status_a.non_validator_peers == 1,
        "A: {} validators, {} others",
        status_a.peers,
        status_a.non_validator_peers
    );
    ensure!(
        status_b.peers == 0 && status_b.non_validator_peers == 1,
        "B: {} validators (all should refuse it), {} others",
        status_b.peers,
        status_b.non_validator_peers
    );
    for i in validators {
        let s = c.client(i)?.status().await?;
        ensure!(
            s.role == "validator" && s.peers == 3 && s.non_validator_peers == 1,
            "validator {i}: {} validators, {} others",
            s.peers,
            s.non_validator_peers
        );
    }

    // Transfers through B's RPC: B relays to A, A to the validators.
    let mut hashes = Vec::new();
    const ROUNDS: u64 = 5;
    for round in 0..ROUNDS {
        let txs = c.ring_transfers(round, |i| 10 + i as u64);
        for outcome in c.client(b)?.submit_transactions(txs).await? {
            hashes.push(
                outcome
                    .hash
                    .with_context(|| format!("refused: {:?}", outcome.error))?,
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for hash in &hashes {
        loop {
            c.check_alive()?;
            let tx = c.client(0)?.get_transaction(*hash).await?;
            if tx.height.is_some() {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "transfer {hash} never committed: {tx:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The full nodes hold the validators' chain, and answer for the transfers and accounts.
    let tip = c.client(0)?.status().await?.height;
    c.wait_for_height(&[a, b], tip, Duration::from_secs(30))
        .await?;
    for h in (1..=tip).step_by(usize::try_from(tip / 10).unwrap_or(1).max(1)) {
        let theirs = c.client(0)?.get_block(Some(h)).await?.context("block")?;
        for f in [a, b] {
            let ours = c.client(f)?.get_block(Some(h)).await?.context("block")?;
            ensure!(
                ours.id == theirs.id && ours.state_root == theirs.state_root,
                "full node {f} differs at height {h}"
            );
        }
    }
    for hash in &hashes {
        let theirs = c.client(0)?.get_transaction(*hash).await?;
        let ours = c.client(b)?.get_transaction(*hash).await?;
        ensure!(
            ours == theirs,
            "transfer {hash}: {ours:?} against {theirs:?}"
        );
    }
    for key in c.accounts.iter().map(|k| k.public()) {
        let theirs = c.client(0)?.get_account(key).await?.context("account")?;
        for f in [a, b] {
            let ours = c.client(f)?.get_account(key).await?.context("account")?;
            ensure!(
                ours.nonce == ROUNDS && ours.balance == theirs.balance,
                "full node {f}, account {key}: {ours:?} against {theirs:?}"
            );
        }
    }

    // B killed and restarted catches up through A again.
    c.kill(b)?;
    let tip = c.client(0)?.status().await?.height;
    c.wait_for_height(&validators, tip + 20, Duration::from_secs(60))
        .await?;
    c.start(b)?;
    let tip = c.client(0)?.status().await?.height;
    c.wait_for_height(&[b], tip, Duration::from_secs(60))
        .await?;
    let status_b = c.client(b)?.status().await?;
    ensure!(
        !status_b.syncing,
        "B caught up but says it is syncing: {status_b:?}"
    );
    Ok(())
}
