//! Counters and commit latencies shared by the load generator, the block watcher, the
//! dashboard and the benchmark.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use foldhash::HashMap;
use hotledger_crypto::Digest;
use serde::Serialize;

/// Most latencies kept per interval or window (beyond this, new samples are dropped).
const MAX_SAMPLES: usize = 5_000_000;

/// The `p`-th percentile (0 to 100) of `sorted` (ascending) by nearest rank; `None` if empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // Nearest rank: the smallest value with at least p% of the samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// Sorts `samples` and returns (p50, p95, p99) in the samples' unit.
pub fn summarize(samples: &mut [f64]) -> (Option<f64>, Option<f64>, Option<f64>) {
    samples.sort_by(f64::total_cmp);
    (
        percentile(samples, 50.0),
        percentile(samples, 95.0),
        percentile(samples, 99.0),
    )
}

/// The kind of a mempool rejection message: the text before any `:` with numbers removed,
/// e.g. `"stale nonce: account is at 5, got 3"` → `"stale nonce"`.
pub fn reason_kind(message: &str) -> String {
    let head = message.split(':').next().unwrap_or(message);
    let words: Vec<&str> = head
        .split_whitespace()
        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
        .collect();
    let kind = words.join(" ");
    if kind.is_empty() {
        "unknown".into()
    } else {
        kind
    }
}

/// Monotonic totals since the load started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Transfers the generator scheduled (sent in a request or dropped by the client).
    pub offered: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    /// Batches not sent because [`crate::load::MAX_IN_FLIGHT`] requests were in flight (counted
    /// in transfers).
    pub dropped_by_client: u64,
    /// Transfers given up after their requests failed [`crate::load::MAX_ATTEMPTS`] times
    /// (timeout, connection refused, RPC error).
    pub rpc_errors: u64,
    /// Submissions again of transfers refused for a full mempool (as a wallet would: a later
    /// nonce of the same account cannot commit before it).
    pub resubmitted: u64,
    /// Transfers sent again, to another validator, after their request failed.
    pub failed_over: u64,
    /// All transactions in blocks the watcher saw.
    pub committed: u64,
    /// Of those, the ones this generator submitted (with a latency sample).
    pub committed_ours: u64,
    pub blocks: u64,
}

impl Counters {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut rejected = self.rejected.clone();
        for (kind, n) in &mut rejected {
            *n = n.saturating_sub(earlier.rejected.get(kind).copied().unwrap_or(0));
        }
        rejected.retain(|_, n| *n > 0);
        Counters {
            offered: self.offered.saturating_sub(earlier.offered),
            accepted: self.accepted.saturating_sub(earlier.accepted),
            rejected,
            dropped_by_client: self
                .dropped_by_client
                .saturating_sub(earlier.dropped_by_client),
            rpc_errors: self.rpc_errors.saturating_sub(earlier.rpc_errors),
            resubmitted: self.resubmitted.saturating_sub(earlier.resubmitted),
            failed_over: self.failed_over.saturating_sub(earlier.failed_over),
            committed: self.committed.saturating_sub(earlier.committed),
            committed_ours: self.committed_ours.saturating_sub(earlier.committed_ours),
            blocks: self.blocks.saturating_sub(earlier.blocks),
        }
    }

    /// `"mempool full 10, stale nonce 2"`.
    pub fn rejected_summary(&self) -> String {
        if self.rejected.is_empty() {
            return "none".into();
        }
        let parts: Vec<String> = self
            .rejected
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        parts.join(", ")
    }
}

#[derive(Debug, Default)]
struct Inner {
    counters: Counters,
    /// Submitted, not yet seen committed: hash → submit time.
    pending: HashMap<Digest, Instant>,
    /// Commit latencies in ms since the last `take_interval`.
    interval: Vec<f64>,
    /// Commit latencies in ms since the last `reset_window`.
    window: Vec<f64>,
}

/// Thread-safe statistics of one load run.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain counters: keep using them.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A batch is about to be sent at `at`: remember each hash's submit time.
    pub fn on_send(&self, hashes: &[Digest], at: Instant) {
        let mut s = self.lock();
        s.counters.offered += hashes.len() as u64;
        s.pending.extend(hashes.iter().map(|h| (*h, at)));
    }

    /// The node answered: `None` means accepted, `Some(reason)` rejected.
    pub fn on_outcomes<'a>(&self, outcomes: impl Iterator<Item = (Digest, Option<&'a str>)>) {
        let mut s = self.lock();
        for (hash, error) in outcomes {
            match error {
                None => s.counters.accepted += 1,
                Some(message) => {
                    s.pending.remove(&hash);
                    *s.counters.rejected.entry(reason_kind(message)).or_default() += 1;
                }
            }
        }
    }

    /// `count` refused transfers go back to the queue; they stay pending, so their latency still
    /// counts from the first submission.
    pub fn on_resubmit(&self, count: usize) {
        self.lock().counters.resubmitted += count as u64;
    }

    /// `count` transfers of a failed request go back to the queue, for another validator; they
    /// stay pending, so their latency counts from the first submission.
    pub fn on_failover(&self, count: usize) {
        self.lock().counters.failed_over += count as u64;
    }

    /// The request carrying `hashes` failed as a whole and they are given up.
    pub fn on_request_error(&self, hashes: &[Digest]) {
        let mut s = self.lock();
        s.counters.rpc_errors += hashes.len() as u64;
        for h in hashes {
            s.pending.remove(h);
        }
    }

    pub fn on_dropped(&self, count: usize) {
        let mut s = self.lock();
        s.counters.offered += count as u64;
        s.counters.dropped_by_client += count as u64;
    }

    /// The watcher first saw a committed block with `txs` at `seen`.
    pub fn on_block(&self, txs: &[Digest], seen: Instant) {
        let mut s = self.lock();
        s.counters.blocks += 1;
        s.counters.committed += txs.len() as u64;
        for h in txs {
            if let Some(sent) = s.pending.remove(h) {
                s.counters.committed_ours += 1;
                let ms = seen.saturating_duration_since(sent).as_secs_f64() * 1000.0;
                if s.interval.len() < MAX_SAMPLES {
                    s.interval.push(ms);
                }
                if s.window.len() < MAX_SAMPLES {
                    s.window.push(ms);
                }
            }
        }
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// Transfers submitted and not (yet) seen committed.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// The latencies (ms) recorded since the previous call.
    pub fn take_interval(&self) -> Vec<f64> {
        std::mem::take(&mut self.lock().interval)
    }

    /// Starts a measurement window.
    pub fn reset_window(&self) {
        self.lock().window.clear();
    }

    /// The latencies (ms) recorded since `reset_window`.
    pub fn take_window(&self) -> Vec<f64> {
        std::mem::take(&mut self.lock().window)
    }
}
