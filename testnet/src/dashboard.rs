//! The live view of a running network, redrawn every second: one line per validator and the
//! load's throughput, latency and rejections. On a terminal it is an `indicatif` multi-line
//! display (messages are printed above it); otherwise one summary line every 5 seconds.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hotledger_node::rpc::{HotledgerApiClient, Status};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jsonrpsee::http_client::HttpClient;

use crate::load::Progress;
use crate::network::Network;
use crate::stats::{self, Counters, Stats};

/// Plain (non-terminal) output prints a summary this often.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Dashboard {
    multi: MultiProgress,
    lines: Vec<ProgressBar>,
    tty: bool,
    start: Instant,
    last_at: Instant,
    last_plain: Instant,
    last: Counters,
    /// "2000 tx/s" or "off".
    load: String,
}

/// Numbers with thousands separators: 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0} ms"))
}

impl Dashboard {
    pub fn new(validators: usize, load: String) -> Dashboard {
        let tty = std::io::stdout().is_terminal();
        let multi = MultiProgress::with_draw_target(if tty {
            ProgressDrawTarget::stdout_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        });
        let style =
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
        let lines = (0..validators + 5)
            .map(|_| multi.add(ProgressBar::new(1).with_style(style.clone())))
            .collect();
        let now = Instant::now();
        Dashboard {
            multi,
            lines,
            tty,
            start: now,
            last_at: now,
            last_plain: now,
            last: Counters::default(),
            load,
        }
    }

    /// Prints `text` above the live view (or plainly).
    pub fn println(&self, text: &str) {
        if self.tty {
            let _ = self.multi.println(text);
        } else {
            println!("{text}");
        }
    }

    /// Removes the live view from the screen.
    pub fn finish(&self) {
        for line in &self.lines {
            line.finish_and_clear();
        }
    }

    /// Polls the validators' status and redraws.
    pub async fn refresh(
        &mut self,
        net: &Network,
        clients: &[HttpClient],
        stats: &Stats,
        progress: &Progress,
    ) {
        let statuses = poll_statuses(clients).await;
        let frame = self.frame(statuses, stats, progress);
        let mut text = Vec::with_capacity(self.lines.len());
        text.push(self.title(net, &frame));
        text.extend(validator_rows(net, &frame.statuses));
        text.extend(load_lines(&frame, stats));
        if self.tty {
            for (line, t) in self.lines.iter().zip(text) {
                line.set_message(t);
            }
        } else if frame.now.duration_since(self.last_plain) >= PLAIN_EVERY {
            self.last_plain = frame.now;
            print_plain(&frame);
        }
    }

    /// The figures of this refresh, and the interval since the last one.
    fn frame(
        &mut self,
        statuses: Vec<Option<Status>>,
        stats: &Stats,
        progress: &Progress,
    ) -> Frame {
        let now = Instant::now();
        let dt = now.duration_since(self.last_at).as_secs_f64().max(0.001);
        self.last_at = now;
        let counters = stats.counters();
        let delta = counters.since(&self.last);
        self.last = counters.clone();
        let mut lat = stats.take_interval();
        let (p50, _, p99) = stats::summarize(&mut lat);
        Frame {
            statuses,
            now,
            dt,
            counters,
            delta,
            samples: lat.len(),
            p50,
            p99,
            up: now.duration_since(self.start).as_secs(),
            left: progress.left.load(Ordering::Relaxed),
        }
    }

    fn title(&self, net: &Network, f: &Frame) -> String {
        let up = f.up;
        format!(
            "hotledger testnet  {}  up {:02}:{:02}:{:02}  load {}{}   (Ctrl-C stops)",
            net.info.chain_id,
            up / 3600,
            up / 60 % 60,
            up % 60,
            self.load,
            if self.load == "off" {
                String::new()
            } else {
                format!(" ({} pre-signed left)", thousands(f.left))
            },
        )
    }
}

/// One refresh's figures.
struct Frame {
    statuses: Vec<Option<Status>>,
    now: Instant,
    /// Seconds since the previous refresh.
    dt: f64,
    counters: Counters,
    /// `counters` since the previous refresh.
    delta: Counters,
    /// Latency samples in the interval, and their p50 and p99.
    samples: usize,
    p50: Option<f64>,
    p99: Option<f64>,
    /// Seconds since the dashboard started.
    up: u64,
    /// Pre-signed transfers not yet scheduled.
    left: u64,
}

impl Frame {
    /// `n` over the interval, per second, with thousands separators.
    fn per_sec(&self, n: u64) -> String {
        thousands((n as f64 / self.dt).round() as u64)
    }
}

/// Every validator's status, `None` for one that does not answer within 700 ms.
async fn poll_statuses(clients: &[HttpClient]) -> Vec<Option<Status>> {
    futures::future::join_all(clients.iter().map(|c| async move {
        tokio::time::timeout(Duration::from_millis(700), c.status())
            .await
            .ok()
            .and_then(Result::ok)
    }))
    .await
}

/// The validators' table: a header and one row each.
fn validator_rows(net: &Network, statuses: &[Option<Status>]) -> Vec<String> {
    let mut text = vec![format!(
        "  {:<14} {:>8} {:>6} {:>9} {:>9} {:>6} {:>9} {:>8}",
        "validator", "pid", "state", "height", "round", "peers", "mempool", "syncing"
    )];
    for (i, v) in net.info.validators.iter().enumerate() {
        let state = if net.alive(i) { "alive" } else { "DEAD" };
        let row = match (statuses.get(i).and_then(Option::as_ref), net.alive(i)) {
            (Some(s), _) => format!(
                "{:>9} {:>9} {:>6} {:>9} {:>8}",
                s.height,
                s.round,
                s.peers,
                thousands(s.mempool_txs as u64),
                if s.syncing { "yes" } else { "no" }
            ),
            (None, true) => format!("{:>9}", "no answer"),
            (None, false) => String::new(),
        };
        text.push(format!(
            "  {:<14} {:>8} {:>6} {row}",
            v.name, net.pids[i], state
        ));
    }
    text
}

/// Throughput, latency and the load's outcomes.
fn load_lines(f: &Frame, stats: &Stats) -> [String; 3] {
    let (counters, delta) = (&f.counters, &f.delta);
    [
        format!(
            "  committed {} tx/s ({} blocks/s)   total {} tx in {} blocks",
            f.per_sec(delta.committed),
            format_args!("{:.1}", delta.blocks as f64 / f.dt),
            thousands(counters.committed),
            thousands(counters.blocks)
        ),
        format!(
            "  commit latency (last interval, {} samples)  p50 {}  p99 {}   awaiting commit {}",
            f.samples,
            ms(f.p50),
            ms(f.p99),
            thousands(stats.pending() as u64)
        ),
        format!(
            "  submitted {} tx/s   accepted {}   rejected {} ({})   dropped by client {}   failed over {}   given up {}",
            f.per_sec(delta.offered),
            thousands(counters.accepted),
            thousands(counters.rejected_total()),
            counters.rejected_summary(),
            thousands(counters.dropped_by_client),
            thousands(counters.failed_over),
            thousands(counters.rpc_errors)
        ),
    ]
}

/// The summary line of non-terminal output.
fn print_plain(f: &Frame) {
    let heights: Vec<String> = f
        .statuses
        .iter()
        .map(|s| {
            s.as_ref()
                .map_or_else(|| "-".into(), |s| s.height.to_string())
        })
        .collect();
    println!(
        "[{:>4}s] heights {}  committed {} tx/s  p50 {}  p99 {}  accepted {}  rejected {}  dropped {}",
        f.up,
        heights.join("/"),
        f.per_sec(f.delta.committed),
        ms(f.p50),
        ms(f.p99),
        f.counters.accepted,
        f.counters.rejected_total(),
        f.counters.dropped_by_client
    );
}
