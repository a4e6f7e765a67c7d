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
    pub committed_blocks: Counter,
    pub committed_txs: Counter,
    pub failed_txs: Counter,
    pub mempool_txs: Gauge,
    pub mempool_bytes: Gauge,
    pub peers: Gauge,
    pub syncing: Gauge,
    pub block_interval_seconds: Histogram,
    pub commit_seconds: Histogram,
    pub rejected_messages: Counter,
    pub evidence: Counter,
    pub rejected_txs: Counter,
    pub payload_verified_txs: Counter,
    pub known_signature_txs: Counter,
    pub expired_txs: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hotledger");
        let height = Gauge::default();
        let round = Gauge::default();
        let timeouts = Counter::default();
        let committed_blocks = Counter::default();
        let committed_txs = Counter::default();
        let failed_txs = Counter::default();
        let mempool_txs = Gauge::default();
        let mempool_bytes = Gauge::default();
        let peers = Gauge::default();
        let syncing = Gauge::default();
        let block_interval_seconds =
            Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let commit_seconds = Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]);
        let rejected_messages = Counter::default();
        let evidence = Counter::default();
        let rejected_txs = Counter::default();
        let payload_verified_txs = Counter::default();
        let known_signature_txs = Counter::default();
        registry.register("height", "Last committed height", height.clone());
        registry.register("round", "Current consensus round", round.clone());
        registry.register("timeouts", "Rounds this node timed out", timeouts.clone());
        registry.register(
            "committed_blocks",
            "Blocks committed",
            committed_blocks.clone(),
        );
        registry.register(
            "committed_txs",
            "Transactions applied",
            committed_txs.clone(),
        );
        registry.register(
            "failed_txs",
            "Committed transactions that failed execution",
            failed_txs.clone(),
        );
        registry.register(
            "mempool_txs",
            "Transactions in the mempool",
            mempool_txs.clone(),
        );
        registry.register(
            "mempool_bytes",
            "Bytes in the mempool",
            mempool_bytes.clone(),
        );
        registry.register("peers", "Connected validators", peers.clone());
        registry.register("syncing", "1 while fetching missed blocks", syncing.clone());
        registry.register(
            "block_interval_seconds",
            "Time between consecutive commits",
            block_interval_seconds.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time to execute and store one committed block",
            commit_seconds.clone(),
        );
        registry.register(
            "rejected_messages",
            "Peer messages rejected by consensus or decoding",
            rejected_messages.clone(),
        );
        registry.register("evidence", "Equivocations detected", evidence.clone());
        registry.register(
            "rejected_txs",
            "Transactions refused by the mempool",
            rejected_txs.clone(),
        );
        registry.register(
            "payload_verified_txs",
            "Proposal transactions not in the mempool, so verified in the payload check (on the \
             consensus loop)",
            payload_verified_txs.clone(),
        );
        registry.register(
            "known_signature_txs",
            "Gossiped or submitted transactions whose signature the payload check had verified, so \
             not checked again",
            known_signature_txs.clone(),
        );
        let expired_txs = Counter::default();
        registry.register(
            "expired_txs",
            "Pending transfers dropped after waiting behind a nonce gap for mempool.gap_expiry_ms",
            expired_txs.clone(),
        );
        Metrics {
            registry,
            height,
            round,
            timeouts,
            committed_blocks,
            committed_txs,
            failed_txs,
            mempool_txs,
            mempool_bytes,
            peers,
            syncing,
            block_interval_seconds,
            commit_seconds,
            rejected_messages,
            evidence,
            rejected_txs,
            payload_verified_txs,
            known_signature_txs,
            expired_txs,
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
