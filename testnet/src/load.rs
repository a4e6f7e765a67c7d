//! The open-loop load generator and the block watcher.
//!
//! Transfers are signed before the load starts ([`presign`], on all cores), so the generator
//! spends its time on the wire, not on signatures. [`spawn_load`] then sends `rate / 100`
//! transfers every 10 ms as one `submit_transactions` batch, round-robin over the validators,
//! with at most [`MAX_IN_FLIGHT`] requests outstanding: a batch that finds the cap reached is
//! counted as dropped by the client instead of slowing the schedule (open loop). A transfer the
//! node refuses because its mempool is (nearly) full goes to a backlog with every later transfer
//! of its account, and the backlog is sent lowest nonces first on the next ticks (at most
//! `rate / 100` per tick), up to [`MAX_ATTEMPTS`] times per transfer, as a wallet would do:
//! without it every later nonce of that account would wait forever behind the gap.
//! [`spawn_watcher`] follows the committed chain, asking the validators in turn, and turns the
//! first sighting of each submitted hash into a commit latency.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use hotledger_crypto::{Digest, KeyPair, PublicKey};
use hotledger_ledger::{SignedTransaction, Transfer};
use hotledger_node::rpc::{HotledgerApiClient, SubmitOutcome};
use indicatif::{ProgressBar, ProgressStyle};
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::stats::Stats;

/// Most `submit_transactions` requests outstanding at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Most submissions of one transfer refused for a full mempool.
pub const MAX_ATTEMPTS: u32 = 50;
/// Ticks allowed after the last new transfer for the backlog to drain (10 s).
const DRAIN_TICKS: u64 = 1_000;
/// The submit schedule's tick.
pub const TICK: Duration = Duration::from_millis(10);
/// How often the watcher asks for the committed height.
pub const WATCH_EVERY: Duration = Duration::from_millis(20);
/// Most blocks the watcher fetches per poll (it continues on the next poll).
const MAX_BLOCKS_PER_POLL: u64 = 500;
/// How long the watcher waits for one validator's answer before it asks the next one: a
/// crashed or catching-up validator must not delay when commits are seen (and so the measured
/// latencies).
const WATCH_CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// A JSON-RPC client for a loopback node URL.
pub fn client(url: &str) -> Result<HttpClient> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(10))
        .max_request_size(64 * 1024 * 1024)
        .max_response_size(64 * 1024 * 1024)
        .build(url)
        .with_context(|| format!("invalid node URL {url:?}"))
}

/// One transfer ready to send and its hash.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub tx: SignedTransaction,
    pub hash: Digest,
}

/// Transfers refused for a full mempool, and the later transfers of their accounts, held back so
/// that each account's transfers reach the nodes in nonce order, as a wallet sends them: lowest
/// nonces first, and nothing new from an account while an earlier transfer of it waits here.
#[derive(Debug, Default)]
struct Backlog {
    queue: BTreeMap<(u64, [u8; 32]), (Prepared, u32)>,
    /// Per account: transfers in `queue` or sent from it and not yet answered.
    held: HashMap<[u8; 32], usize>,
}

impl Backlog {
    fn holds(&self, p: &Prepared) -> bool {
        self.held.contains_key(p.tx.transfer.from.as_bytes())
    }

    fn push(&mut self, p: Prepared, attempts: u32) {
        let from = p.tx.transfer.from.to_bytes();
        *self.held.entry(from).or_default() += 1;
        self.queue
            .insert((p.tx.transfer.nonce, from), (p, attempts));
    }

    /// Up to `n` transfers to send, lowest nonces first; they stay held until [`Backlog::done`].
    fn take(&mut self, n: usize) -> Vec<(Prepared, u32)> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.queue.pop_first() {
                Some((_, entry)) => out.push(entry),
                None => break,
            }
        }
        out
    }

    /// Puts back a transfer taken from the backlog and not sent; it is still held.
    fn requeue(&mut self, p: Prepared, attempts: u32) {
        let key = (p.tx.transfer.nonce, p.tx.transfer.from.to_bytes());
        self.queue.insert(key, (p, attempts));
    }

    fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// A transfer taken from the backlog was answered.
    fn done(&mut self, p: &Prepared) {
        let from = p.tx.transfer.from.to_bytes();
        if let Some(n) = self.held.get_mut(&from) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.held.remove(&from);
            }
        }
    }
}

/// How long a validator whose request failed gets no new requests.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// Per validator, until when it gets no requests (ms since the load started; 0: never down).
#[derive(Debug)]
struct Down(Vec<AtomicU64>);

impl Down {
    fn new(n: usize) -> Self {
        Down((0..n).map(|_| AtomicU64::new(0)).collect())
    }

    fn mark(&self, i: usize, now: Duration) {
        let until = u64::try_from((now + DOWN_FOR).as_millis()).unwrap_or(u64::MAX);
        if let Some(slot) = self.0.get(i) {
            slot.store(until, Ordering::Relaxed);
        }
    }

    /// The validator for tick `tick`: round-robin, skipping those marked down (all down: the
    /// round-robin one).
    fn pick(&self, tick: usize, now: Duration) -> usize {
        let n = self.0.len().max(1);
        let now = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        (0..n)
            .map(|k| (tick + k) % n)
            .find(|&i| {
                self.0
                    .get(i)
                    .is_some_and(|d| d.load(Ordering::Relaxed) <= now)
            })
            .unwrap_or(tick % n)
    }
}

/// The node's refusals that a wallet answers by sending the same transfer again later: a full
/// mempool (`Rejection::MempoolFull`), or a nonce gap while it is nearly full
/// (`Rejection::NonceGap`, when an earlier nonce of the account was itself refused).
fn is_retryable(message: &str) -> bool {
    message.contains("mempool full") || message.contains("mempool is nearly full")
}

/// Each account's next nonce, asked once from `node` (at most 32 requests at a time).
pub async fn fetch_nonces(node: &HttpClient, keys: &[KeyPair]) -> Result<Vec<u64>> {
    futures::stream::iter(keys.iter().map(|k| k.public()))
        .map(|public| async move {
            let account = node
                .get_account(public)
                .await
                .with_context(|| format!("cannot read account {public}"))?;
            Ok::<u64, anyhow::Error>(account.map_or(0, |a| a.nonce))
        })
        .buffered(32)
        .try_collect()
        .await
}

/// Signs `count` transfers on all cores: transfer `k` is sent by account `i = k mod M` to
/// account `(i + 1) mod M`, amount 1, nonce `nonces[i] + k / M`. Shows a progress bar if
/// `show` is set.
pub fn presign(
    keys: &[KeyPair],
    nonces: &[u64],
    chain_id: &str,
    count: usize,
    show: bool,
) -> Vec<Prepared> {
    let m = keys.len();
    if m < 2 || nonces.len() != m || count == 0 {
        return Vec::new();
    }
    let publics: Vec<_> = keys.iter().map(KeyPair::public).collect();
    let bar = signing_bar(count, show);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads);
    let done = AtomicU64::new(0);
    let signer = Signer {
        keys,
        publics: &publics,
        nonces,
        chain_id,
        bar: &bar,
        done: &done,
    };
    let parts: Vec<Vec<Prepared>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * chunk).min(count)..((t + 1) * chunk).min(count);
                let signer = &signer;
                scope.spawn(move || signer.sign(range))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    bar.finish_and_clear();
    parts.into_iter().flatten().collect()
}

fn signing_bar(count: usize, show: bool) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(count as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "signing {bar:40} {pos}/{len} transfers ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// What every signing thread of [`presign`] shares.
struct Signer<'a> {
    keys: &'a [KeyPair],
    publics: &'a [PublicKey],
    nonces: &'a [u64],
    chain_id: &'a str,
    bar: &'a ProgressBar,
    done: &'a AtomicU64,
}

impl Signer<'_> {
    /// Transfers `range` of [`presign`]'s sequence, in order.
    fn sign(&self, range: std::ops::Range<usize>) -> Vec<Prepared> {
        let m = self.keys.len();
        let mut out = Vec::with_capacity(range.len());
        for k in range {
            let i = k % m;
            let tx = Transfer {
                from: self.publics[i],
                to: self.publics[(i + 1) % m],
                amount: 1,
                nonce: self.nonces[i] + (k / m) as u64,
            }
            .sign(&self.keys[i], self.chain_id);
            out.push(Prepared {
                hash: tx.hash(),
                tx,
            });
            if out.len() % 1024 == 0 {
                self.done.fetch_add(1024, Ordering::Relaxed);
                self.bar.set_position(self.done.load(Ordering::Relaxed));
            }
        }
        out
    }
}

/// What the load generator knows about its progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Pre-signed transfers not yet scheduled.
    pub left: AtomicU64,
}

/// Sends `txs` at `rate` per second over `clients` until `stop` turns true, `duration` ends
/// or the transfers run out; then waits for the requests in flight (each has a 10 s timeout).
pub fn spawn_load(
    txs: Vec<Prepared>,
    rate: u64,
    clients: Vec<HttpClient>,
    stats: Arc<Stats>,
    progress: Arc<Progress>,
    duration: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if clients.is_empty() {
            return;
        }
        let start = Instant::now();
        let deadline = duration.map(|d| start + d);
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let requests = Requests {
            stats,
            backlog: Arc::default(),
            down: Arc::new(Down::new(clients.len())),
            start,
        };
        let mut schedule = Schedule::new(txs, rate, progress);
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for tick in 0..schedule.max_ticks() {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            let drained = schedule.drained(&requests.backlog);
            if *stop.borrow() || deadline.is_some_and(|d| Instant::now() >= d) || drained {
                break;
            }
            let batch = schedule.batch(tick, &requests);
            if batch.is_empty() {
                continue;
            }
            let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                requests.not_sent(batch);
                continue;
            };
            let target = requests.down.pick(tick as usize, start.elapsed());
            let client = clients[target].clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                requests.submit(&client, target, batch).await;
                drop(permit);
            });
        }
        // Wait (bounded by the request timeout) for the requests still in flight.
        let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(Duration::from_secs(12), in_flight.acquire_many(all)).await;
    })
}

/// One transfer of a batch: the transfer, its submissions before this one, and whether it was
/// taken from the backlog.
type Entry = (Prepared, u32, bool);

/// The pre-signed transfers and how many of them are due by each tick.
struct Schedule {
    txs: std::vec::IntoIter<Prepared>,
    total: usize,
    sent: usize,
    rate: u64,
    progress: Arc<Progress>,
}

impl Schedule {
    fn new(txs: Vec<Prepared>, rate: u64, progress: Arc<Progress>) -> Schedule {
        let total = txs.len();
        progress.left.store(total as u64, Ordering::Relaxed);
        Schedule {
            txs: txs.into_iter(),
            total,
            sent: 0,
            rate,
            progress,
        }
    }

    /// At most one tick per 10 ms of the transfers at this rate, then the backlog's drain.
    fn max_ticks(&self) -> u64 {
        self.total as u64 * 100 / self.rate.max(1) + 2 + DRAIN_TICKS
    }

    /// Every transfer is scheduled and the backlog is empty.
    fn drained(&self, backlog: &std::sync::Mutex<Backlog>) -> bool {
        self.sent >= self.total && backlog.lock().map_or(true, |b| b.is_empty())
    }

    /// Tick `tick`'s batch: backlog re-sends first, then the new transfers due, except those of
    /// accounts the backlog holds (they join it, to keep each account's nonce order).
    fn batch(&mut self, tick: u64, requests: &Requests) -> Vec<Entry> {
        // Exactly `rate` per second over 100 ticks, spreading the remainder.
        let due = (u128::from(self.rate) * u128::from(tick + 1) / 100) as usize;
        let fresh: Vec<Prepared> = self
            .txs
            .by_ref()
            .take(due.saturating_sub(self.sent))
            .collect();
        self.sent += fresh.len();
        let left = (self.total - self.sent) as u64;
        self.progress.left.store(left, Ordering::Relaxed);
        let mut batch: Vec<Entry> = Vec::new();
        if let Ok(mut b) = requests.backlog.lock() {
            // At most one tick's worth of the rate in re-sends (also once the new transfers
            // have run out and only the backlog drains).
            let budget = usize::try_from(self.rate / 100)
                .unwrap_or(usize::MAX)
                .max(1);
            batch.extend(b.take(budget).into_iter().map(|(p, n)| (p, n, true)));
            for p in fresh {
                if b.holds(&p) {
                    requests.stats.on_send(&[p.hash], Instant::now());
                    b.push(p, 0);
                } else {
                    batch.push((p, 0, false));
                }
            }
        }
        batch
    }
}

/// What the generator's requests share.
#[derive(Clone)]
struct Requests {
    stats: Arc<Stats>,
    backlog: Arc<std::sync::Mutex<Backlog>>,
    down: Arc<Down>,
    start: Instant,
}

impl Requests {
    /// `MAX_IN_FLIGHT` requests are outstanding: the backlog's transfers go back to it, the new
    /// ones are dropped.
    fn not_sent(&self, batch: Vec<Entry>) {
        let mut dropped = 0;
        if let Ok(mut b) = self.backlog.lock() {
            for (p, n, from_backlog) in batch {
                if from_backlog {
                    b.requeue(p, n);
                } else {
                    dropped += 1;
                }
            }
        }
        self.stats.on_dropped(dropped);
    }

    /// Sends `batch` to validator `target` and settles each transfer with its answer.
    async fn submit(&self, client: &HttpClient, target: usize, batch: Vec<Entry>) {
        let new: Vec<Digest> = batch
            .iter()
            .filter(|(_, _, from_backlog)| !from_backlog)
            .map(|(p, _, _)| p.hash)
            .collect();
        self.stats.on_send(&new, Instant::now());
        let request: Vec<SignedTransaction> = batch.iter().map(|(p, _, _)| p.tx.clone()).collect();
        match client.submit_transactions(request).await {
            // One outcome per transfer, or the answer is unusable.
            Ok(outcomes) if outcomes.len() == batch.len() => self.answered(batch, &outcomes),
            Ok(_) | Err(_) => self.failed(target, batch),
        }
    }

    /// Each transfer refused for a (nearly) full mempool goes back to the backlog, up to
    /// `MAX_ATTEMPTS` submissions; the others are settled.
    fn answered(&self, batch: Vec<Entry>, outcomes: &[SubmitOutcome]) {
        let mut answered = Vec::new();
        let mut again = 0;
        if let Ok(mut b) = self.backlog.lock() {
            for ((p, attempts, from_backlog), outcome) in batch.into_iter().zip(outcomes) {
                if from_backlog {
                    b.done(&p);
                }
                let error = outcome.error.as_deref();
                if error.is_some_and(is_retryable) && attempts + 1 < MAX_ATTEMPTS {
                    again += 1;
                    b.push(p, attempts + 1);
                } else {
                    answered.push((p.hash, error));
                }
            }
        }
        self.stats.on_outcomes(answered.into_iter());
        if again > 0 {
            self.stats.on_resubmit(again);
        }
    }

    /// The validator is unreachable, overloaded or answered nonsense: leave it alone for a
    /// while and send the same transfers (same nonces) to another one, as a wallet fails over.
    fn failed(&self, target: usize, batch: Vec<Entry>) {
        self.down.mark(target, self.start.elapsed());
        let mut given_up = Vec::new();
        let mut again = 0;
        if let Ok(mut b) = self.backlog.lock() {
            for (p, attempts, from_backlog) in batch {
                if from_backlog {
                    b.done(&p);
                }
                if attempts + 1 < MAX_ATTEMPTS {
                    again += 1;
                    b.push(p, attempts + 1);
                } else {
                    given_up.push(p.hash);
                }
            }
        }
        self.stats.on_failover(again);
        self.stats.on_request_error(&given_up);
    }
}

/// Follows the committed chain: every [`WATCH_EVERY`], `status` on one validator, then
/// `get_block(h)` for each new height from the same validator, reported to `stats`. Each poll
/// goes to the next validator, so the watcher's queries (a block's JSON lists every transaction
/// hash) load all validators alike instead of slowing one. Runs until `stop` turns true or for
/// `max_run` at most. A validator that does not answer within [`WATCH_CALL_TIMEOUT`] is
/// passed over for that poll.
pub fn spawn_watcher(
    clients: Vec<HttpClient>,
    stats: Arc<Stats>,
    max_run: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if clients.is_empty() {
            return;
        }
        let mut watcher = Watcher {
            stats,
            last: None,
            stalled: 0,
        };
        let mut current = 0usize;
        let mut ticker = tokio::time::interval(WATCH_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let max_polls = max_run.as_millis() / WATCH_EVERY.as_millis() + 1;
        for _ in 0..max_polls {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            current = current.wrapping_add(1);
            watcher.poll(&clients[current % clients.len()]).await;
        }
    })
}

/// The block watcher's place in the chain.
struct Watcher {
    stats: Arc<Stats>,
    /// The last height reported; `None` before the first poll answered.
    last: Option<u64>,
    /// Polls since the tip last moved.
    stalled: u64,
}

impl Watcher {
    /// Reports the blocks `node` committed since the last poll (at most
    /// [`MAX_BLOCKS_PER_POLL`]); stops at the first block it does not return in time.
    async fn poll(&mut self, node: &HttpClient) {
        let Some(tip) = self.tip(node).await else {
            return;
        };
        let from = match self.last {
            Some(h) => h + 1,
            None => {
                // Blocks committed before the watcher started carry no submitted hashes.
                self.last = Some(tip);
                return;
            }
        };
        let to = tip.min(from + MAX_BLOCKS_PER_POLL - 1);
        for h in from..=to {
            match tokio::time::timeout(WATCH_CALL_TIMEOUT, node.get_block(Some(h))).await {
                Ok(Ok(Some(block))) => {
                    self.stats.on_block(&block.txs, Instant::now());
                    self.last = Some(h);
                }
                _ => break,
            }
        }
    }

    /// `node`'s committed height, `None` if it does not answer in time.
    async fn tip(&mut self, node: &HttpClient) -> Option<u64> {
        let status = tokio::time::timeout(WATCH_CALL_TIMEOUT, node.status())
            .await
            .ok()?
            .ok()?;
        let mut tip = status.height;
        self.stalled += 1;
        if self.last.is_some_and(|l| tip > l) {
            self.stalled = 0;
        } else if self.last.is_none() || self.stalled.is_multiple_of(25) {
            // `status` has not moved for 0.5 s: ask the store's tip (a lone validator's
            // loop may not refresh its status while it commits).
            let newest = tokio::time::timeout(WATCH_CALL_TIMEOUT, node.get_block(None)).await;
            if let Ok(Ok(Some(block))) = newest {
                tip = tip.max(block.height);
            }
        }
        Some(tip)
    }
}
