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
    /// `validator` (the home's validator key is in genesis; it votes and proposes) or `full`
    /// (a full node: it follows the chain by block sync, relays transactions to validators and
    /// serves RPC, and holds no validator key; `hotledger init --full-node` writes one).
    pub role: Role,
    /// `tracing` filter, e.g. `info` or `hotledger_node=debug,info`.
    pub log_level: String,
    /// Log line format: `text` (readable) or `json` (one object per line); `hotledger start
    /// --log-format` overrides it.
    pub log_format: LogFormat,
    pub p2p: P2pConfig,
    pub rpc: RpcConfig,
    pub metrics: MetricsConfig,
    pub mempool: MempoolConfig,
    pub storage: StorageConfig,
    pub snapshot: SnapshotConfig,
    pub statesync: StateSyncConfig,
    pub consensus: ConsensusLimits,
    /// Test-only misbehaviour (feature `fault-injection`); a build without it refuses the section.
    #[cfg(feature = "fault-injection")]
    #[serde(skip_serializing_if = "crate::faults::FaultInjectionConfig::is_off")]
    pub fault_injection: crate::faults::FaultInjectionConfig,
}

/// What a node does in the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Validator,
    /// Follows and serves the chain; votes on nothing.
    Full,
}

/// Most entries of `p2p.peers`.
pub const MAX_CONFIGURED_PEERS: usize = 64;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// libp2p multiaddr to listen on: `/ip4/<address>/tcp/<port>` or `/ip6/<address>/tcp/<port>`
    /// (peers may be reached by DNS names, but a listener binds an IP address).
    pub listen: String,
    /// Largest message accepted from a peer, in bytes.
    pub max_message_bytes: usize,
    /// First reconnection delay to a lost validator, in milliseconds; doubles up to
    /// `reconnect_max_ms`.
    pub reconnect_initial_ms: u64,
    /// Longest reconnection delay to a lost validator, in milliseconds.
    pub reconnect_max_ms: u64,
    /// Invalid messages from one peer before it is disconnected.
    pub max_peer_strikes: u32,
    /// How long a peer disconnected for misbehaviour is refused, in milliseconds.
    pub ban_ms: u64,
    /// One strike against a peer is forgiven per this many milliseconds, so only a burst of
    /// `max_peer_strikes` bans (0: strikes never decay).
    pub strike_decay_ms: u64,
    /// How long a message to a peer may wait for its acknowledgement, in milliseconds; then
    /// the send counts as failed.
    pub request_timeout_ms: u64,
    /// How long a connection with no open stream is kept, in milliseconds.
    pub idle_connection_timeout_ms: u64,
    /// How often each connection is pinged, in milliseconds.
    pub ping_interval_ms: u64,
    /// A connection whose ping is not answered within this many milliseconds is closed as
    /// dead (a partition or a frozen peer drops packets without closing anything), and the
    /// validator is redialled.
    pub ping_timeout_ms: u64,
    /// Longest a dial may take to connect, in milliseconds (a dial into a partition gets no
    /// answer at all); the next one starts after the redial backoff.
    pub dial_timeout_ms: u64,
    /// Most messages in flight on one connection, both directions together (streams).
    pub max_concurrent_streams: usize,
    /// Peers to dial and keep connected besides genesis validators, each a multiaddr ending
    /// in `/p2p/<peer id>` (e.g. `/ip4/10.0.0.5/tcp/26656/p2p/12D3KooW...`): the validators or
    /// full nodes a full node follows, or a validator's own full nodes. At most 64.
    pub peers: Vec<String>,
    /// Most peers that are neither validators nor in `peers` (full nodes joining) connected
    /// at once; further ones are refused. They may sync and send transactions, never
    /// consensus messages. 0 accepts none.
    pub max_non_validator_peers: usize,
    /// Peers' messages waiting for the consensus loop (messages); when it is full, further
    /// ones are dropped and counted in `hotledger_p2p_dropped_inbound_total`.
    pub inbound_queue: usize,
    /// Peers' transaction frames waiting to be decoded and verified (frames); when it is full,
    /// further ones are dropped (the transactions reach this node again in a proposal).
    pub inbound_tx_queue: usize,
    /// Messages to peers waiting for the network task (messages); when it is full, further
    /// ones are dropped (consensus retransmits what matters).
    pub outbound_queue: usize,
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
    /// Most transactions held.
    pub max_txs: usize,
    /// Most encoded transaction bytes held, in bytes.
    pub max_bytes: usize,
    /// Most transactions held per sender.
    pub max_per_sender: usize,
    /// Largest encoded transaction accepted, in bytes.
    pub max_tx_bytes: usize,
    /// Largest distance from a sender's account nonce to a transaction's nonce accepted
    /// (nonces); 0 accepts only each sender's next transaction.
    pub max_nonce_gap: u64,
    /// How long a sender's transfers may wait behind a nonce gap (an earlier nonce that never
    /// arrives) before they are dropped, in milliseconds; 0 keeps them until the gap fills.
    pub gap_expiry_ms: u64,
    /// Slots kept for transfers that can execute now: once fewer are free, transfers behind a
    /// nonce gap are refused. Below `max_txs`.
    pub ready_reserve: usize,
    /// Slots kept for transfers other validators gossip: clients' submissions are refused as
    /// "mempool full" once fewer are free, so under overload the excess is refused where it
    /// enters rather than verified again on the consensus loop when a proposal carries it.
    /// Below `max_txs`.
    pub peer_reserve: usize,
    /// Keep the admission log: every transfer this node acknowledges to a client is appended
    /// to it before the answer leaves and replayed into the mempool at start, so an
    /// acknowledgement survives a crash of this process (see `docs/deploy.md`).
    pub log: bool,
    /// Also sync each append to disk (`fdatasync`), so an acknowledgement survives power loss;
    /// one disk sync per submission call.
    pub log_sync: bool,
    /// The admission log's file; relative paths are inside the home.
    pub log_path: PathBuf,
    /// The log is rewritten with just the pending transactions once it grows past this many
    /// bytes.
    pub log_max_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// RocksDB folder; relative paths are inside the home.
    pub path: PathBuf,
    /// The safety record's folder (what this validator signed, the double-sign guard); relative
    /// paths are inside the home. It must not be inside `path`: deleting or replacing the chain
    /// data must leave it alone.
    pub safety_path: PathBuf,
    /// `"window"`: keep the last `keep_blocks` committed blocks and their transactions' records
    /// and delete older ones in the background; `"nothing"`: keep everything (an archive node).
    pub pruning: Pruning,
    /// With `pruning = "window"`: committed blocks kept below the tip.
    pub keep_blocks: u64,
    /// Append every vote, timeout and proposal this validator sends to `signed.jsonl` in the
    /// safety folder (`crate::sign_log`): for fault tests and audits. Off by default.
    pub sign_log: bool,
}

/// State snapshots this node makes and serves to peers joining by state sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// A snapshot of the state at every height that is a multiple of this (made once a
    /// committed block certifies that height's root); 0: none are made or served.
    pub interval: u64,
    /// The newest snapshots kept; older ones are deleted.
    pub keep: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            interval: 10_000,
            keep: 2,
        }
    }
}

/// Joining by state sync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSyncConfig {
    /// A node whose chain data is empty restores its peers' newest snapshot, then block-syncs
    /// from its height, instead of replaying every block from genesis (`hotledger start
    /// --state-sync` turns it on too).
    pub enable: bool,
}

/// Shortest `snapshot.interval` (a snapshot per this many heights at most).
pub const MIN_SNAPSHOT_INTERVAL: u64 = 16;

/// What the node deletes of its committed history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pruning {
    /// Blocks and transaction records older than `storage.keep_blocks` (the state tree is kept).
    #[default]
    Window,
    /// Nothing: an archive node.
    Nothing,
}

/// Longest `log_level` filter.
pub const MAX_LOG_FILTER_BYTES: usize = 1024;

/// A `tracing` filter from `directives` (the syntax of `RUST_LOG`), at most
/// [`MAX_LOG_FILTER_BYTES`]. Span field values are matched as literal strings, not as regular
/// expressions: compiling one (`{f=.......}`) can take gigabytes. The error says what is wrong
/// with `directives` ("is 2000 bytes; ...").
pub fn log_filter(directives: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    if directives.len() > MAX_LOG_FILTER_BYTES {
        return Err(format!(
            "is {} bytes; at most {MAX_LOG_FILTER_BYTES}",
            directives.len()
        ));
    }
    tracing_subscriber::EnvFilter::builder()
        .with_regex(false)
        .parse(directives)
        .map_err(|e| format!("{directives:?} is not a valid filter: {e}"))
}

/// Fewest blocks `storage.keep_blocks` may keep: enough for leader reputation's history after
/// a restart and for peers catching up by sync.
pub const MIN_KEEP_BLOCKS: u64 = 1_000;

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
            role: Role::default(),
            log_level: "info".into(),
            log_format: LogFormat::default(),
            p2p: P2pConfig::default(),
            rpc: RpcConfig::default(),
            metrics: MetricsConfig::default(),
            mempool: MempoolConfig::default(),
            storage: StorageConfig::default(),
            snapshot: SnapshotConfig::default(),
            statesync: StateSyncConfig::default(),
            consensus: ConsensusLimits::default(),
            #[cfg(feature = "fault-injection")]
            fault_injection: Default::default(),
        }
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: "/ip4/127.0.0.1/tcp/26656".into(),
            max_message_bytes: 16 * 1024 * 1024,
            reconnect_initial_ms: 500,
            reconnect_max_ms: 2_000,
            max_peer_strikes: 20,
            ban_ms: 60_000,
            strike_decay_ms: 60_000,
            request_timeout_ms: 10_000,
            idle_connection_timeout_ms: 3_600_000,
            ping_interval_ms: 1_000,
            ping_timeout_ms: 3_000,
            dial_timeout_ms: 3_000,
            max_concurrent_streams: 1_024,
            peers: Vec::new(),
            max_non_validator_peers: 16,
            inbound_queue: 8_192,
            inbound_tx_queue: 256,
            outbound_queue: 8_192,
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
            max_nonce_gap: l.max_nonce_gap,
            gap_expiry_ms: l.gap_expiry_ms,
            ready_reserve: l.ready_reserve,
            peer_reserve: l.peer_reserve,
            log: true,
            log_sync: false,
            log_path: PathBuf::from("mempool/admitted.log"),
            log_max_bytes: 64 << 20,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("data"),
            safety_path: PathBuf::from("safety"),
            pruning: Pruning::Window,
            keep_blocks: 100_000,
            sign_log: false,
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
        if let Err(why) = log_filter(&self.log_level) {
            return Err(format!("log_level {why}"));
        }
        validate_listen(&self.p2p.listen)?;
        let p2p = &self.p2p;
        #[rustfmt::skip]
        let ranges: [(&str, u64, u64, u64); 26] = [
            ("p2p.max_message_bytes", p2p.max_message_bytes as u64, 1024, 256 << 20),
            ("p2p.reconnect_initial_ms", p2p.reconnect_initial_ms, 10, 60_000),
            ("p2p.reconnect_max_ms", p2p.reconnect_max_ms, p2p.reconnect_initial_ms, 3_600_000),
            ("p2p.ban_ms", p2p.ban_ms, 1_000, 86_400_000),
            ("p2p.strike_decay_ms", p2p.strike_decay_ms, 0, 86_400_000),
            ("p2p.request_timeout_ms", p2p.request_timeout_ms, 100, 600_000),
            ("p2p.idle_connection_timeout_ms", p2p.idle_connection_timeout_ms, 1_000, 86_400_000),
            ("p2p.ping_interval_ms", p2p.ping_interval_ms, 100, 600_000),
            ("p2p.ping_timeout_ms", p2p.ping_timeout_ms, 100, 600_000),
            ("p2p.dial_timeout_ms", p2p.dial_timeout_ms, 100, 600_000),
            ("p2p.max_concurrent_streams", p2p.max_concurrent_streams as u64, 1, 65_536),
            ("p2p.max_non_validator_peers", p2p.max_non_validator_peers as u64, 0, 1_024),
            ("p2p.inbound_queue", p2p.inbound_queue as u64, 1, 1 << 20),
            ("p2p.inbound_tx_queue", p2p.inbound_tx_queue as u64, 1, 65_536),
            ("p2p.outbound_queue", p2p.outbound_queue as u64, 1, 1 << 20),
            ("rpc.max_request_bytes", u64::from(self.rpc.max_request_bytes), 1024, 64 << 20),
            ("rpc.max_connections", u64::from(self.rpc.max_connections), 1, 100_000),
            ("mempool.max_txs", self.mempool.max_txs as u64, 1, 10_000_000),
            ("mempool.max_bytes", self.mempool.max_bytes as u64, 1024, 16 << 30),
            ("mempool.max_per_sender", self.mempool.max_per_sender as u64, 1, 1_000_000),
            ("mempool.max_tx_bytes", self.mempool.max_tx_bytes as u64, 128, 1 << 20),
            ("mempool.max_nonce_gap", self.mempool.max_nonce_gap, 0, 1_000_000),
            ("mempool.gap_expiry_ms", self.mempool.gap_expiry_ms, 0, 86_400_000),
            ("mempool.ready_reserve", self.mempool.ready_reserve as u64, 0, (self.mempool.max_txs as u64).saturating_sub(1)),
            ("mempool.peer_reserve", self.mempool.peer_reserve as u64, 0, (self.mempool.max_txs as u64).saturating_sub(1)),
            ("mempool.log_max_bytes", self.mempool.log_max_bytes, 1 << 20, 16 << 30),
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
        if self.storage.keep_blocks < MIN_KEEP_BLOCKS {
            return Err(format!(
                "storage.keep_blocks = {} must be at least {MIN_KEEP_BLOCKS}",
                self.storage.keep_blocks
            ));
        }
        if self.snapshot.interval != 0 && self.snapshot.interval < MIN_SNAPSHOT_INTERVAL {
            return Err(format!(
                "snapshot.interval = {} must be 0 (off) or at least {MIN_SNAPSHOT_INTERVAL}",
                self.snapshot.interval
            ));
        }
        if self.snapshot.keep == 0 || self.snapshot.keep > 16 {
            return Err(format!(
                "snapshot.keep = {} must be in 1..=16",
                self.snapshot.keep
            ));
        }
        if self.mempool.log && self.mempool.log_path.as_os_str().is_empty() {
            return Err("mempool.log_path must not be empty while mempool.log is on".into());
        }
        if self.storage.safety_path.as_os_str().is_empty() {
            return Err("storage.safety_path must not be empty".into());
        }
        if self.storage.safety_path.starts_with(&self.storage.path) {
            return Err(format!(
                "storage.safety_path {} is inside storage.path {}: the safety record must \
                 outlive the chain data",
                self.storage.safety_path.display(),
                self.storage.path.display()
            ));
        }
        if self.p2p.peers.len() > MAX_CONFIGURED_PEERS {
            return Err(format!(
                "p2p.peers has {} entries; at most {MAX_CONFIGURED_PEERS}",
                self.p2p.peers.len()
            ));
        }
        for peer in &self.p2p.peers {
            parse_peer(peer).map_err(|why| format!("p2p.peers: {why}"))?;
        }
        self.consensus
            .to_limits()
            .validate()
            .map_err(|e| format!("consensus: {e}"))
    }
}

/// A `p2p.peers` entry: the address to dial and the peer id it ends with (an ed25519 key's).
pub fn parse_peer(peer: &str) -> Result<(libp2p::PeerId, libp2p::Multiaddr), String> {
    use libp2p::multiaddr::Protocol;
    let mut addr = peer
        .parse::<libp2p::Multiaddr>()
        .map_err(|e| format!("{peer:?} is not a multiaddr: {e}"))?;
    let Some(Protocol::P2p(peer_id)) = addr.pop() else {
        return Err(format!(
            "{peer:?} does not end with /p2p/<peer id> (the peer's id, as `hotledger keys \
             show` or its genesis entry gives it)"
        ));
    };
    if crate::network::peer_key(&peer_id).is_none() {
        return Err(format!(
            "{peer:?}: peer id {peer_id} is not of an ed25519 key"
        ));
    }
    if addr.iter().next().is_none() {
        return Err(format!("{peer:?} names no address before /p2p/"));
    }
    Ok((peer_id, addr))
}

/// `p2p.listen` must be an address a TCP listener binds: an IP address and a port.
fn validate_listen(listen: &str) -> Result<(), String> {
    use libp2p::multiaddr::Protocol;
    let addr = listen
        .parse::<libp2p::Multiaddr>()
        .map_err(|e| format!("p2p.listen {listen:?} is not a multiaddr: {e}"))?;
    let mut parts = addr.iter();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Protocol::Ip4(_) | Protocol::Ip6(_)), Some(Protocol::Tcp(_)), None) => Ok(()),
        (Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_)), ..) => Err(format!(
            "p2p.listen {listen:?} names a host: a listener binds an IP address, e.g. \
             /ip4/0.0.0.0/tcp/26656 (peers may still dial this node by its DNS name)"
        )),
        _ => Err(format!(
            "p2p.listen {listen:?} must be /ip4/<address>/tcp/<port> or /ip6/<address>/tcp/<port>"
        )),
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
    fn configured_peers_must_name_an_address_and_an_ed25519_peer_id() {
        let id = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let mut c = NodeConfig {
            role: Role::Full,
            ..NodeConfig::default()
        };
        c.p2p.peers = vec![format!("/dns4/validator-0/tcp/26656/p2p/{id}")];
        assert_eq!(c.validate(), Ok(()));
        let (peer, addr) = parse_peer(&c.p2p.peers[0]).unwrap();
        assert_eq!(
            (peer, addr.to_string()),
            (id, "/dns4/validator-0/tcp/26656".into())
        );
        let text = toml::to_string_pretty(&c).unwrap();
        assert!(text.contains("role = \"full\""), "{text}");
        assert_eq!(toml::from_str::<NodeConfig>(&text).unwrap(), c);

        for (peer, says) in [
            (
                "/ip4/127.0.0.1/tcp/26656".to_string(),
                "does not end with /p2p/",
            ),
            (format!("/p2p/{id}"), "names no address"),
            (
                format!("/p2p/{}", libp2p::PeerId::random()),
                "not of an ed25519 key",
            ),
            ("not an address".to_string(), "is not a multiaddr"),
        ] {
            c.p2p.peers = vec![peer];
            let err = c.validate().unwrap_err();
            assert!(
                err.starts_with("p2p.peers: ") && err.contains(says),
                "{err}"
            );
        }
        c.p2p.peers = vec![format!("/ip4/127.0.0.1/tcp/1/p2p/{id}"); MAX_CONFIGURED_PEERS + 1];
        assert!(c.validate().unwrap_err().contains("at most 64"));
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
        c.log_level = "info,".repeat(300);
        assert!(c
            .validate()
            .unwrap_err()
            .contains("log_level is 1500 bytes"));
    }

    #[test]
    fn a_span_field_value_in_log_level_is_a_literal() {
        // As a regular expression, this value's dense automaton would take gigabytes (found by
        // the config fuzz target; fuzz/corpus/config keeps the input).
        let mut c = NodeConfig::default();
        c.log_level = format!(
            "[otledger{{noBBmax_byeBB={}{}!{}/..metBt0= }}{}^BBBnfo",
            "M".repeat(37),
            ".".repeat(33),
            ".".repeat(32),
            "B".repeat(27)
        );
        assert!(c.validate().unwrap_err().contains("is not a valid filter"));
        c.log_level = format!("[span{{field=M{}}}]=debug,info", ".".repeat(65));
        assert_eq!(c.validate(), Ok(()));
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

    /// Each peer bound: below its minimum and above its maximum, the error names the field.
    #[test]
    fn peer_bounds_are_checked() {
        type Set = fn(&mut NodeConfig, u64);
        #[rustfmt::skip]
        let fields: [(&str, Set, Option<u64>, u64); 12] = [
            ("p2p.ban_ms", |c, v| c.p2p.ban_ms = v, Some(999), 86_400_001),
            ("p2p.ping_interval_ms", |c, v| c.p2p.ping_interval_ms = v, Some(99), 600_001),
            ("p2p.ping_timeout_ms", |c, v| c.p2p.ping_timeout_ms = v, Some(99), 600_001),
            ("p2p.dial_timeout_ms", |c, v| c.p2p.dial_timeout_ms = v, Some(99), 600_001),
            ("p2p.request_timeout_ms", |c, v| c.p2p.request_timeout_ms = v, Some(99), 600_001),
            ("p2p.idle_connection_timeout_ms", |c, v| c.p2p.idle_connection_timeout_ms = v, Some(999), 86_400_001),
            ("p2p.max_concurrent_streams", |c, v| c.p2p.max_concurrent_streams = v as usize, Some(0), 65_537),
            ("p2p.inbound_queue", |c, v| c.p2p.inbound_queue = v as usize, Some(0), (1 << 20) + 1),
            ("p2p.inbound_tx_queue", |c, v| c.p2p.inbound_tx_queue = v as usize, Some(0), 65_537),
            ("p2p.outbound_queue", |c, v| c.p2p.outbound_queue = v as usize, Some(0), (1 << 20) + 1),
            ("mempool.max_nonce_gap", |c, v| c.mempool.max_nonce_gap = v, None, 1_000_001),
            ("mempool.gap_expiry_ms", |c, v| c.mempool.gap_expiry_ms = v, None, 86_400_001),
        ];
        for (name, set, below, above) in fields {
            for value in below.into_iter().chain([above]) {
                let mut c = NodeConfig::default();
                set(&mut c, value);
                let err = c.validate().unwrap_err();
                assert!(err.contains(&format!("{name} = {value}")), "{name}: {err}");
            }
            let mut c = NodeConfig::default();
            set(&mut c, below.map_or(0, |v| v + 1));
            assert_eq!(c.validate(), Ok(()), "{name} at its minimum");
            set(&mut c, above - 1);
            assert_eq!(c.validate(), Ok(()), "{name} at its maximum");
        }
    }

    #[test]
    fn the_default_peer_bounds() {
        let p = P2pConfig::default();
        assert_eq!(p.ban_ms, 60_000);
        assert_eq!(p.request_timeout_ms, 10_000);
        assert_eq!(p.idle_connection_timeout_ms, 3_600_000);
        // A dead connection is found within 4 s, and a lost validator dialled every 2 s.
        assert_eq!(
            (p.ping_interval_ms, p.ping_timeout_ms, p.dial_timeout_ms),
            (1_000, 3_000, 3_000)
        );
        assert_eq!((p.reconnect_initial_ms, p.reconnect_max_ms), (500, 2_000));
        assert_eq!(p.max_concurrent_streams, 1_024);
        assert_eq!(
            (p.inbound_queue, p.inbound_tx_queue, p.outbound_queue),
            (8_192, 256, 8_192)
        );
        assert_eq!(
            MempoolConfig::default().max_nonce_gap,
            hotledger_ledger::MempoolLimits::default().max_nonce_gap
        );
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        assert_eq!(NodeConfig::default().log_format, LogFormat::Text);
        let c: NodeConfig = toml::from_str("log_format = \"json\"").unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        let err = toml::from_str::<NodeConfig>("log_format = \"xml\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("log_format") && err.contains("json"), "{err}");
    }

    #[test]
    fn the_listen_address_is_an_ip_address_and_a_tcp_port() {
        let mut c = NodeConfig::default();
        for ok in [
            "/ip4/0.0.0.0/tcp/26656",
            "/ip6/::/tcp/0",
            "/ip4/10.0.0.1/tcp/1",
        ] {
            c.p2p.listen = ok.into();
            assert_eq!(c.validate(), Ok(()), "{ok}");
        }
        for name in [
            "/dns/v0.example/tcp/26656",
            "/dns4/localhost/tcp/1",
            "/dns6/h/tcp/1",
        ] {
            c.p2p.listen = name.into();
            let err = c.validate().unwrap_err();
            assert!(
                err.contains("p2p.listen") && err.contains("binds an IP"),
                "{err}"
            );
        }
        for bad in [
            "/ip4/1.2.3.4/udp/1",
            "/ip4/1.2.3.4",
            "/ip4/1.2.3.4/tcp/1/tcp/2",
        ] {
            c.p2p.listen = bad.into();
            assert!(c.validate().unwrap_err().contains("p2p.listen"), "{bad}");
        }
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
