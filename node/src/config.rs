//! `config.toml`: every field has a default and is checked by `validate()` at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::NodeError;

/// The node's configuration file, `<home>/config.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// A name for logs.
    pub moniker: String,
    /// `tracing` filter, e.g. `info` or `hotledger_node=debug,info`.
    pub log_level: String,
    pub p2p: P2pConfig,
    pub rpc: RpcConfig,
    pub metrics: MetricsConfig,
    pub mempool: MempoolConfig,
    pub storage: StorageConfig,
    pub consensus: ConsensusLimits,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// libp2p multiaddr to listen on.
    pub listen: String,
    /// Largest message accepted from a peer, in bytes.
    pub max_message_bytes: usize,
    /// First reconnection delay to a lost validator; doubles up to `reconnect_max_ms`.
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
    /// Invalid messages from one peer before it is disconnected.
    pub max_peer_strikes: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// Address of the JSON-RPC HTTP server.
    pub listen: SocketAddr,
    pub max_request_bytes: u32,
    pub max_connections: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`GET /metrics`); `enabled = false` turns it off.
    pub listen: SocketAddr,
    pub enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MempoolConfig {
    pub max_txs: usize,
    pub max_bytes: usize,
    pub max_per_sender: usize,
    pub max_tx_bytes: usize,
    /// Slots kept for transfers that can execute now: once fewer are free, transfers behind a
    /// nonce gap are refused. Below `max_txs`.
    pub ready_reserve: usize,
    /// Slots kept for transfers other validators gossip: clients' submissions are refused as
    /// "mempool full" once fewer are free, so under overload the excess is refused where it
    /// enters rather than verified again on the consensus loop when a proposal carries it.
    /// Below `max_txs`.
    pub peer_reserve: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// RocksDB folder; relative paths are inside the home.
    pub path: PathBuf,
}

/// Local consensus bounds (the shared protocol parameters are in genesis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusLimits {
    pub max_round_ahead: u64,
    pub max_pending_blocks: usize,
    pub max_orphan_blocks: usize,
    pub max_blocks_per_request: u32,
    /// A leader with an empty mempool waits up to this long for transactions before proposing
    /// (keeps an idle chain from spinning; must stay well below the round timeout).
    pub empty_block_delay_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            moniker: "hotledger".into(),
            log_level: "info".into(),
            p2p: P2pConfig::default(),
            rpc: RpcConfig::default(),
            metrics: MetricsConfig::default(),
            mempool: MempoolConfig::default(),
            storage: StorageConfig::default(),
            consensus: ConsensusLimits::default(),
        }
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: "/ip4/127.0.0.1/tcp/26656".into(),
            max_message_bytes: 16 * 1024 * 1024,
            reconnect_initial_ms: 500,
            reconnect_max_ms: 10_000,
            max_peer_strikes: 20,
        }
    }
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 26657)),
            max_request_bytes: 1024 * 1024,
            max_connections: 256,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 26660)),
            enabled: true,
        }
    }
}

impl Default for MempoolConfig {
    /// The ledger's own defaults, so the two cannot drift apart.
    fn default() -> Self {
        let l = hotledger_ledger::MempoolLimits::default();
        MempoolConfig {
            max_txs: l.max_txs,
            max_bytes: l.max_bytes,
            max_per_sender: l.max_per_sender,
            max_tx_bytes: l.max_tx_bytes,
            ready_reserve: l.ready_reserve,
            peer_reserve: l.peer_reserve,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("data"),
        }
    }
}

impl Default for ConsensusLimits {
    fn default() -> Self {
        let l = hotledger_consensus::Limits::default();
        ConsensusLimits {
            max_round_ahead: l.max_round_ahead,
            max_pending_blocks: l.max_pending_blocks,
            max_orphan_blocks: 4_096,
            max_blocks_per_request: l.max_blocks_per_request,
            empty_block_delay_ms: 200,
        }
    }
}

impl ConsensusLimits {
    pub fn to_limits(&self) -> hotledger_consensus::Limits {
        hotledger_consensus::Limits {
            max_round_ahead: self.max_round_ahead,
            max_pending_blocks: self.max_pending_blocks,
            max_orphan_blocks: self.max_orphan_blocks,
            max_blocks_per_request: self.max_blocks_per_request,
        }
    }
}

impl NodeConfig {
    /// Reads and validates `path`; errors name the file and the field.
    pub fn load(path: &Path) -> Result<NodeConfig, NodeError> {
        let text = std::fs::read_to_string(path).map_err(|source| NodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|e| NodeError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        config.validate().map_err(|reason| NodeError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(config)
    }

    /// Writes the file (used by `init` and `testnet`).
    pub fn save(&self, path: &Path) -> Result<(), NodeError> {
        let text = toml::to_string_pretty(self).map_err(|e| NodeError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|source| NodeError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Names the first field that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.moniker.is_empty() || self.moniker.len() > 64 {
            return Err(format!("moniker {:?} must be 1 to 64 bytes", self.moniker));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(format!(
                "log_level {:?} is not a valid filter",
                self.log_level
            ));
        }
        if self.p2p.listen.parse::<libp2p::Multiaddr>().is_err() {
            return Err(format!(
                "p2p.listen {:?} is not a multiaddr",
                self.p2p.listen
            ));
        }
        #[rustfmt::skip]
        let ranges: [(&str, u64, u64, u64); 11] = [
            ("p2p.max_message_bytes", self.p2p.max_message_bytes as u64, 1024, 256 << 20),
            ("p2p.reconnect_initial_ms", self.p2p.reconnect_initial_ms, 10, 60_000),
            ("p2p.reconnect_max_ms", self.p2p.reconnect_max_ms, self.p2p.reconnect_initial_ms, 3_600_000),
            ("rpc.max_request_bytes", u64::from(self.rpc.max_request_bytes), 1024, 64 << 20),
            ("rpc.max_connections", u64::from(self.rpc.max_connections), 1, 100_000),
            ("mempool.max_txs", self.mempool.max_txs as u64, 1, 10_000_000),
            ("mempool.max_bytes", self.mempool.max_bytes as u64, 1024, 16 << 30),
            ("mempool.max_per_sender", self.mempool.max_per_sender as u64, 1, 1_000_000),
            ("mempool.max_tx_bytes", self.mempool.max_tx_bytes as u64, 128, 1 << 20),
            ("mempool.ready_reserve", self.mempool.ready_reserve as u64, 0, (self.mempool.max_txs as u64).saturating_sub(1)),
            ("mempool.peer_reserve", self.mempool.peer_reserve as u64, 0, (self.mempool.max_txs as u64).saturating_sub(1)),
        ];
        for (field, value, min, max) in ranges {
            if value < min || value > max {
                return Err(format!("{field} = {value} must be in {min}..={max}"));
            }
        }
        if self.consensus.empty_block_delay_ms > 60_000 {
            return Err(format!(
                "consensus.empty_block_delay_ms = {} must be at most 60000",
                self.consensus.empty_block_delay_ms
            ));
        }
        if self.p2p.max_peer_strikes == 0 {
            return Err("p2p.max_peer_strikes must be positive".into());
        }
        if self.storage.path.as_os_str().is_empty() {
            return Err("storage.path must not be empty".into());
        }
        self.consensus
            .to_limits()
            .validate()
            .map_err(|e| format!("consensus: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = NodeConfig::default();
        assert_eq!(c.validate(), Ok(()));
        let text = toml::to_string_pretty(&c).unwrap();
        assert_eq!(toml::from_str::<NodeConfig>(&text).unwrap(), c);
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = NodeConfig::default();
        c.mempool.max_txs = 0;
        assert!(c.validate().unwrap_err().contains("mempool.max_txs"));
        let mut c = NodeConfig::default();
        c.p2p.listen = "not a multiaddr".into();
        assert!(c.validate().unwrap_err().contains("p2p.listen"));
        let mut c = NodeConfig::default();
        c.log_level = "[".into();
        assert!(c.validate().unwrap_err().contains("log_level"));
    }

    #[test]
    fn the_ready_reserve_must_leave_room_in_the_mempool() {
        let mut c = NodeConfig::default();
        c.mempool.max_txs = 100;
        c.mempool.ready_reserve = 100;
        let err = c.validate().unwrap_err();
        assert!(err.contains("mempool.ready_reserve = 100"), "{err}");
        c.mempool.ready_reserve = 99;
        c.mempool.peer_reserve = 100;
        let err = c.validate().unwrap_err();
        assert!(err.contains("mempool.peer_reserve = 100"), "{err}");
        c.mempool.peer_reserve = 99;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_fields_and_bad_types_are_rejected() {
        assert!(toml::from_str::<NodeConfig>("bogus = 1").is_err());
        assert!(toml::from_str::<NodeConfig>("[rpc]\nlisten = 5").is_err());
        // Missing fields take defaults.
        let c: NodeConfig = toml::from_str("moniker = \"v0\"").unwrap();
        assert_eq!(c.rpc, RpcConfig::default());
    }
}
