//! Prometheus metrics (`prometheus-client`), served at `GET /metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::NodeError;
use crate::network::NetStats;

/// Every metric the node exports. Handles are cheap clones of shared atomics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub height: Gauge,
    pub round: Gauge,
    pub timeouts: Counter,
    pub proposals_ahead_of_clock: Counter,
    pub committed_blocks: Counter,
    pub committed_txs: Counter,
    pub failed_txs: Counter,
    pub mempool_txs: Gauge,
    pub mempool_bytes: Gauge,
    pub peers: Gauge,
    pub non_validator_peers: Gauge,
    pub syncing: Gauge,
    pub state_diverged: Gauge,
    pub block_interval_seconds: Histogram,
    pub commit_seconds: Histogram,
    pub rejected_messages: Counter,
    pub evidence: Counter,
    pub rejected_txs: Counter,
    pub payload_verified_txs: Counter,
    pub known_signature_txs: Counter,
    pub expired_txs: Counter,
    pub sync_requests_dropped: Counter,
    pub block_requests_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered under `hotledger_*` in the order they are exported.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hotledger");
        let r = &mut registry;
        Metrics {
            // Consensus progress.
            height: gauge(r, "height", "Last committed height"),
            round: gauge(r, "round", "Current consensus round"),
            timeouts: counter(r, "timeouts", "Rounds this node timed out"),
            proposals_ahead_of_clock: counter(
                r,
                "proposals_ahead_of_clock",
                "Proposals not voted for: timestamped further ahead of this node's clock than max_clock_skew_ms",
            ),
            // Commits.
            committed_blocks: counter(r, "committed_blocks", "Blocks committed"),
            committed_txs: counter(r, "committed_txs", "Transactions applied"),
            failed_txs: counter(
                r,
                "failed_txs",
                "Committed transactions that failed execution",
            ),
            // Mempool size.
            mempool_txs: gauge(r, "mempool_txs", "Transactions in the mempool"),
            mempool_bytes: gauge(r, "mempool_bytes", "Bytes in the mempool"),
            // Peers and sync.
            peers: gauge(r, "peers", "Connected validators"),
            non_validator_peers: gauge(
                r,
                "non_validator_peers",
                "Connected peers that are not validators (full nodes)",
            ),
            syncing: gauge(r, "syncing", "1 while fetching missed blocks"),
            state_diverged: gauge(
                r,
                "state_diverged",
                "1 once this node's state differs from a certified one (it stopped)",
            ),
            // Commit timing.
            block_interval_seconds: histogram(
                r,
                "block_interval_seconds",
                "Time between consecutive commits",
                &BLOCK_INTERVAL_BUCKETS,
            ),
            commit_seconds: histogram(
                r,
                "commit_seconds",
                "Time to execute and store one committed block",
                &COMMIT_BUCKETS,
            ),
            // Peers' consensus messages.
            rejected_messages: counter(
                r,
                "rejected_messages",
                "Peer messages rejected by consensus or decoding",
            ),
            evidence: counter(r, "evidence", "Equivocations detected"),
            // Transaction admission.
            rejected_txs: counter(r, "rejected_txs", "Transactions refused by the mempool"),
            payload_verified_txs: counter(r, "payload_verified_txs", PAYLOAD_VERIFIED_HELP),
            known_signature_txs: counter(r, "known_signature_txs", KNOWN_SIGNATURE_HELP),
            expired_txs: counter(r, "expired_txs", EXPIRED_HELP),
            sync_requests_dropped: counter(
                r,
                "sync_requests_dropped",
                "Peers' sync requests dropped: the serving queue was full or the peer over its rate",
            ),
            block_requests_dropped: counter(
                r,
                "block_requests_dropped",
                "Peers' block requests left unanswered: the peer was over its rate",
            ),
            registry,
        }
    }

    /// Exports the network task's counters (`hotledger_p2p_*`); each is shared, not copied, so
    /// the values are read at every scrape.
    pub fn register_network(&mut self, net: &NetStats) {
        #[rustfmt::skip]
        let counters = [
            ("p2p_dropped_inbound", "Peer messages dropped because the inbound queue to the consensus loop was full (p2p.inbound_queue)", &net.dropped_inbound),
            ("p2p_dropped_tx_frames", "Peer transaction frames dropped because the admission queue was full (p2p.inbound_tx_queue)", &net.dropped_tx_frames),
            ("p2p_dropped_outbound", "Messages to peers dropped because the queue to the network task was full (p2p.outbound_queue)", &net.dropped_outbound),
            ("p2p_send_failures", "Messages to peers that failed: no connection, timeout (p2p.request_timeout_ms) or a closed stream", &net.send_failures),
            ("p2p_inbound_failures", "Messages from peers whose stream failed before they were read and acknowledged", &net.inbound_failures),
            ("p2p_dial_failures", "Attempts to connect to a validator that failed", &net.dial_failures),
            ("p2p_disconnects", "Times the last connection to a validator closed", &net.disconnects),
            ("p2p_dead_connections", "Connections closed because a ping went unanswered (p2p.ping_timeout_ms)", &net.dead_connections),
            ("p2p_refused_connections", "Connections closed at once: the peer is not a validator of this chain, or is banned", &net.refused_connections),
            ("p2p_strikes", "Reports of invalid data from a validator (each a strike; undecodable data bans at once)", &net.strikes),
            ("p2p_bans", "Validators disconnected and banned for misbehaviour (p2p.max_peer_strikes, p2p.ban_ms)", &net.bans),
        ];
        for (name, help, counter) in counters {
            self.registry.register(name, help, counter.clone());
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Buckets of `block_interval_seconds`, in seconds.
const BLOCK_INTERVAL_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets of `commit_seconds`, in seconds.
const COMMIT_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

const PAYLOAD_VERIFIED_HELP: &str = "Proposal transactions not in the mempool, so verified in the \
     payload check (on the consensus loop)";
const KNOWN_SIGNATURE_HELP: &str =
    "Gossiped or submitted transactions whose signature the payload \
     check had verified, so not checked again";
const EXPIRED_HELP: &str =
    "Pending transfers dropped after waiting behind a nonce gap for mempool.gap_expiry_ms";

/// A counter registered in `registry` as `name`; the returned handle shares its value.
fn counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    let metric = Counter::default();
    registry.register(name, help, metric.clone());
    metric
}

/// A gauge registered in `registry` as `name`; the returned handle shares its value.
fn gauge(registry: &mut Registry, name: &str, help: &str) -> Gauge {
    let metric = Gauge::default();
    registry.register(name, help, metric.clone());
    metric
}

/// A histogram with `buckets` registered in `registry` as `name`; the returned handle shares
/// its values.
fn histogram(registry: &mut Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let metric = Histogram::new(buckets.iter().copied());
    registry.register(name, help, metric.clone());
    metric
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<crate::shared::Shared>) -> Result<(), NodeError> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.metrics.encode(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::Network(format!("metrics cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "metrics listening");
    axum::serve(listener, app)
        .await
        .map_err(|e| NodeError::Network(format!("metrics server: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_counters_are_exported() {
        let net = NetStats::default();
        let mut metrics = Metrics::new();
        metrics.register_network(&net);
        let counters = [
            ("dropped_inbound", &net.dropped_inbound),
            ("dropped_tx_frames", &net.dropped_tx_frames),
            ("dropped_outbound", &net.dropped_outbound),
            ("send_failures", &net.send_failures),
            ("inbound_failures", &net.inbound_failures),
            ("dial_failures", &net.dial_failures),
            ("disconnects", &net.disconnects),
            ("refused_connections", &net.refused_connections),
            ("strikes", &net.strikes),
            ("bans", &net.bans),
        ];
        let text = metrics.encode();
        for (name, _) in counters {
            assert!(
                text.contains(&format!("hotledger_p2p_{name}_total 0\n")),
                "{name}: {text}"
            );
        }
        for (i, (_, counter)) in counters.iter().enumerate() {
            counter.inc_by(i as u64 + 1);
        }
        let text = metrics.encode();
        for (i, (name, _)) in counters.iter().enumerate() {
            let line = format!("hotledger_p2p_{name}_total {}\n", i + 1);
            assert!(text.contains(&line), "{line}: {text}");
            assert!(
                text.contains(&format!("# HELP hotledger_p2p_{name} ")),
                "{name}"
            );
        }
    }
}
