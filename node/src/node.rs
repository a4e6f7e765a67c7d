//! The running validator: the async shell around the [`Host`](crate::host::Host).
//!
//! `run` opens the home and the store, starts the network, RPC, metrics and gossip-ingest
//! tasks, and then runs one loop that only moves things: frames from peers are decoded into
//! consensus events for the host, the host's outgoing messages are framed for libp2p, its
//! commit reports become metrics and logs, and the host is ticked when its timer or pacing
//! deadline passes or when the mempool admitted transactions while a proposal waits. Every
//! decision (what to persist, send, propose, commit) is the host's, which persists the safety
//! data (synced) before it hands out any message that depends on it.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hotledger_consensus::{Config, Event};
use hotledger_crypto::{KeyPair, PublicKey};
use hotledger_genesis::Genesis;
use hotledger_ledger::{Mempool, MempoolLimits, Origin, SignedTransaction};
use tokio::sync::mpsc;

use crate::config::{LogFormat, NodeConfig, Pruning, Role};
use crate::error::NodeError;
use crate::home::Home;
use crate::host::{Host, HostConfig, Outgoing, Output, Pacing, SharedMempool, SyncMessage};
use crate::metrics::Metrics;
use crate::network::{self, Audience, NetCommand, NetEvent, NetStats, NetworkConfig, PeerInfo};
use crate::shared::{Shared, Status};
use crate::sign_log::SignLog;
use crate::storage::{AdmissionLog, ChainStore, Replay, SafetyFile, SafetyStore, Store};
use crate::wire::WireMessage;

/// Capacity of the queue of this node's accepted transactions to gossip (batches); the queues
/// that carry peers' input are sized by `config.toml`'s `p2p` section. All are bounded.
const GOSSIP_QUEUE: usize = 1_024;
/// Most transactions per gossip frame.
const GOSSIP_BATCH: usize = 4_096;
/// How often a full node gossips again what its mempool still holds (at most [`GOSSIP_BATCH`]
/// transactions): a transfer its clients submitted reaches the validators even if a frame was
/// lost or a validator's mempool was full.
const REGOSSIP_EVERY: Duration = Duration::from_secs(5);
/// How long the loop sleeps when the host needs no tick.
const IDLE_WAKE: Duration = Duration::from_secs(3_600);

/// The time the host is given, in milliseconds since the Unix epoch: the wall clock read once
/// at start-up plus the monotonic time since, so a step of the system clock (NTP, an operator)
/// never shifts round timers or proposal deadlines while the node runs.
#[derive(Clone, Copy, Debug)]
struct Clock {
    wall_ms: u64,
    start: Instant,
}

impl Clock {
    fn new() -> Clock {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Clock {
            wall_ms,
            start: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        let since = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.wall_ms.saturating_add(since)
    }
}

/// Sets up `tracing` from the config's filter (`RUST_LOG` overrides it), in `format`.
fn init_logging(filter: &str, format: LogFormat) {
    let from_env = std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV)
        .ok()
        .and_then(|v| crate::config::log_filter(&v).ok());
    let filter = from_env
        .or_else(|| crate::config::log_filter(filter).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init(),
        LogFormat::Json => fmt.with_ansi(false).json().flatten_event(true).try_init(),
    };
}

/// Runs the node in `home` (a validator, or a full node by `role = "full"`) until SIGINT or
/// SIGTERM; `log_format`, if given, replaces the config's, and `state_sync` turns
/// `statesync.enable` on.
pub async fn run(
    home: &Home,
    log_format: Option<LogFormat>,
    state_sync: bool,
) -> Result<(), NodeError> {
    let mut config = home.load_config()?;
    config.statesync.enable |= state_sync;
    init_logging(&config.log_level, log_format.unwrap_or(config.log_format));
    let genesis = home.load_genesis()?;
    let node_key = home.load_node_key()?;
    let key = match config.role {
        Role::Validator => {
            let key = home.load_validator_key()?;
            if genesis.validator_by_key(&key.public()).is_none() {
                return Err(NodeError::Home {
                    path: home.validator_key_path(),
                    reason: format!(
                        "key {} is not a validator in genesis (a node that only follows the \
                         chain is a full node: role = \"full\" in config.toml)",
                        key.public()
                    ),
                });
            }
            Some(key)
        }
        Role::Full => None,
    };
    let history = host_config(&config, &genesis, key.as_ref())?
        .consensus
        .history_blocks();
    if config.storage.pruning == Pruning::Window && config.storage.keep_blocks < history {
        return Err(NodeError::Config {
            path: home.config_path(),
            reason: format!(
                "storage.keep_blocks = {} is below the {history} committed blocks leader \
                 reputation reads after a restart for this validator set",
                config.storage.keep_blocks
            ),
        });
    }
    let data = home.data_path(&config);
    let store = Store::open(&data, &genesis.hash()).map_err(|source| NodeError::Database {
        path: data.clone(),
        source,
    })?;
    // A full node signs nothing; its (empty) record is named by its node key.
    let safety_key = key.as_ref().unwrap_or(&node_key);
    let safety = open_safety(home, &config, &genesis, safety_key, &store)?;
    let mempool: SharedMempool = Arc::new(Mutex::new(Mempool::new(
        genesis.chain_id.clone(),
        mempool_limits(&config),
    )));
    let host = open_host(
        store.clone(),
        safety,
        mempool,
        &config,
        &genesis,
        key.as_ref(),
    )
    .map_err(
        // A storage failure while opening (a root that does not rebuild, a missing tip) names
        // the database, as a refusal by `Store::open` does.
        |e| match e {
            NodeError::Storage(source) => NodeError::Database {
                path: data.clone(),
                source,
            },
            e => e,
        },
    )?;
    let admission_log = open_admission_log(home, &config, &genesis)?;
    let sign_log = if let (true, Some(key)) = (config.storage.sign_log, &key) {
        let log = SignLog::open(&home.safety_path(&config), key.public())?;
        tracing::info!(
            "logging every signed message to the safety folder's {}",
            crate::sign_log::FILE_NAME
        );
        Some(log)
    } else {
        None
    };
    let (services, mut actor, channels) = start_services(
        &config,
        &genesis,
        &node_key,
        key.as_ref(),
        host,
        admission_log,
    )
    .await?;
    actor.sign_log = sign_log;
    #[cfg(feature = "fault-injection")]
    if let (Some(mode), Some(key)) = (config.fault_injection.mode, &key) {
        tracing::warn!(
            ?mode,
            "FAULT INJECTION: this validator misbehaves on purpose (test builds only)"
        );
        let peers = genesis
            .validators
            .iter()
            .map(|v| v.public_key)
            .filter(|k| *k != key.public())
            .collect();
        actor.faults = Some(crate::faults::Injector::new(
            mode,
            key.clone(),
            genesis.chain_id.clone(),
            peers,
            config.p2p.max_message_bytes,
        ));
    }
    let result = actor.run(channels).await;
    services.stop();
    store.flush()?;
    match &result {
        Ok(()) => tracing::info!("shut down cleanly; storage flushed"),
        Err(e) => tracing::error!("stopped on error: {e}"),
    }
    result
}

/// Opens the admission log (`mempool.log`) and reads what it holds.
fn open_admission_log(
    home: &Home,
    config: &NodeConfig,
    genesis: &Genesis,
) -> Result<Option<(AdmissionLog, Replay)>, NodeError> {
    if !config.mempool.log {
        return Ok(None);
    }
    let path = home.admission_log_path(config);
    let opened = AdmissionLog::open(
        &path,
        genesis.hash(),
        config.mempool.log_sync,
        config.mempool.log_max_bytes,
    )?;
    if opened.1.torn_tail {
        tracing::warn!(
            path = %path.display(),
            "the admission log ends in a record cut short (a crash during an append, which \
             was not acknowledged); the records before it are replayed"
        );
    }
    if opened.1.other_chain {
        tracing::warn!(path = %path.display(), "the admission log is of another chain; ignored");
    }
    Ok(Some(opened))
}

/// Admits the transactions the admission log held (acknowledged before a stop or a crash,
/// perhaps never gossiped), then rewrites the log with what the mempool holds.
fn replay_admissions(shared: &Shared, replay: Replay) -> Result<(), NodeError> {
    let Some(log) = &shared.admission_log else {
        return Ok(());
    };
    let logged = replay.txs.len();
    let mut admitted = 0usize;
    // Peers' quota: these were acknowledged already, and are not refused for the share kept
    // for other validators' transactions.
    for chunk in replay.txs.chunks(shared.max_batch.max(1)) {
        let results = shared
            .admit(chunk.to_vec(), Origin::Peer)
            .map_err(|_| NodeError::Poisoned { what: "mempool" })?;
        admitted = admitted.saturating_add(results.iter().filter(|r| r.is_ok()).count());
    }
    let kept = log.rewrite(|| shared.pending())?;
    if logged > 0 {
        tracing::info!(
            logged,
            admitted,
            kept,
            "admission log replayed (the others were committed already, or refused)"
        );
    }
    Ok(())
}

/// Opens the validator's safety record (apart from the chain data), moving into it the safety
/// state a database of an earlier build holds if the record is new.
fn open_safety(
    home: &Home,
    config: &NodeConfig,
    genesis: &Genesis,
    key: &KeyPair,
    store: &Store,
) -> Result<Arc<dyn SafetyStore>, NodeError> {
    let dir = home.safety_path(config);
    let record = SafetyFile::open(&dir, &genesis.hash(), key.public())?;
    let legacy = store.legacy_safety()?;
    match (record.get()?, legacy) {
        // A database an earlier build signed further with (run again after this one): its
        // rounds win, so nothing it signed is signed again.
        (current, Some(old))
            if current
                .as_ref()
                .is_none_or(|c| old.last_voted_round > c.last_voted_round) =>
        {
            record.put(&old)?;
            tracing::info!(
                path = %dir.display(),
                last_voted_round = old.last_voted_round,
                "safety record moved out of the database into its own folder"
            );
        }
        (Some(data), _) => tracing::info!(
            path = %dir.display(),
            last_voted_round = data.last_voted_round,
            "safety record loaded"
        ),
        (None, _) => tracing::info!(path = %dir.display(), "safety record created"),
    }
    Ok(Arc::new(record))
}

/// Opens the host over the store and logs what it found.
fn open_host(
    store: Store,
    safety: Arc<dyn SafetyStore>,
    mempool: SharedMempool,
    config: &NodeConfig,
    genesis: &Genesis,
    key: Option<&KeyPair>,
) -> Result<Host<Store>, NodeError> {
    let (host, opened) = Host::open(store, safety, mempool, host_config(config, genesis, key)?)?;
    if opened.initialised {
        tracing::info!("initialised storage from genesis");
    }
    match opened.restoring {
        Some(0) => {
            tracing::info!("state sync: restoring a peer's snapshot before following the chain")
        }
        Some(held) => tracing::info!(chunks_held = held, "state sync resumed"),
        None => {}
    }
    if opened.rebuilt > 0 {
        tracing::info!(
            heights = opened.rebuilt,
            "state tree rebuilt after a crash; every root matches its commit"
        );
    }
    match key {
        Some(key) => tracing::info!(
            moniker = %config.moniker,
            chain = %genesis.chain_id,
            height = opened.height,
            last_voted_round = opened.last_voted_round,
            "starting validator {}",
            key.public()
        ),
        None => tracing::info!(
            moniker = %config.moniker,
            chain = %genesis.chain_id,
            height = opened.height,
            "starting full node (following the chain by block sync; no validator key)"
        ),
    }
    Ok(host)
}

/// The host's configuration from the node's config and genesis.
fn host_config(
    config: &NodeConfig,
    genesis: &Genesis,
    key: Option<&KeyPair>,
) -> Result<HostConfig, NodeError> {
    let mut consensus = Config::new(
        genesis.chain_id.clone(),
        genesis.genesis_block(),
        genesis.validator_set()?,
        key.cloned(),
    );
    consensus.params = genesis.consensus_params();
    consensus.limits = config.consensus.to_limits();
    Ok(HostConfig {
        consensus,
        genesis_hash: genesis.hash(),
        genesis_accounts: genesis
            .accounts
            .iter()
            .map(|a| (a.public_key, a.balance))
            .collect(),
        max_block_txs: usize::try_from(genesis.consensus.max_block_txs).unwrap_or(usize::MAX),
        max_block_bytes: usize::try_from(genesis.consensus.max_block_bytes).unwrap_or(usize::MAX),
        max_message_bytes: config.p2p.max_message_bytes,
        pacing: Pacing {
            empty_block_delay_ms: config.consensus.empty_block_delay_ms,
            min_delay_ms: 0,
        },
        snapshot_every: config.snapshot.interval,
        state_sync: config.statesync.enable,
    })
}

/// The background tasks of a running node, stopped on shutdown.
struct Services {
    rpc: jsonrpsee::server::ServerHandle,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Services {
    fn stop(self) {
        self.rpc.stop().ok();
        for task in self.tasks {
            task.abort();
        }
    }
}

/// What the loop receives from the services.
struct Channels {
    events: mpsc::Receiver<NetEvent>,
    gossip: mpsc::Receiver<Vec<SignedTransaction>>,
}

/// Starts the network, RPC, metrics and ingest tasks, sharing the host's store and mempool,
/// and builds the loop around `host`.
async fn start_services(
    config: &NodeConfig,
    genesis: &Genesis,
    node_key: &KeyPair,
    key: Option<&KeyPair>,
    host: Host<Store>,
    admission_log: Option<(AdmissionLog, Replay)>,
) -> Result<(Services, Actor, Channels), NodeError> {
    let (admission_log, replay) = admission_log.unzip();
    let (net_tx, net_rx) = mpsc::channel(config.p2p.outbound_queue);
    let (event_tx, event_rx) = mpsc::channel(config.p2p.inbound_queue);
    let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_QUEUE);
    let (ingest_tx, ingest_rx) = mpsc::channel(config.p2p.inbound_tx_queue);
    let net_stats = Arc::new(NetStats::default());
    let mut metrics = Metrics::new();
    metrics.register_network(&net_stats);
    let shared = Arc::new(Shared {
        chain_id: genesis.chain_id.clone(),
        store: host.store().clone(),
        mempool: host.mempool().clone(),
        admitted: tokio::sync::Notify::new(),
        status: RwLock::new(Status {
            moniker: config.moniker.clone(),
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            role: match key {
                Some(_) => "validator".into(),
                None => "full".into(),
            },
            validator: key.map(|k| k.public().to_hex()).unwrap_or_default(),
            validators: genesis.validators.len(),
            ..Status::default()
        }),
        net: net_stats.clone(),
        metrics,
        gossip: gossip_tx,
        max_batch: 10_000,
        admission_log,
    });
    // Before the RPC server answers: what was acknowledged is pending again first.
    if let Some(replay) = replay {
        replay_admissions(&shared, replay)?;
    }
    let network_config = network_config(config, genesis, node_key)?;
    let mut tasks = vec![
        tokio::spawn(network::run(network_config, net_rx, event_tx, net_stats)).abort_handle(),
    ];
    let rpc = crate::rpc::serve(&config.rpc, shared.clone()).await?;
    if config.metrics.enabled {
        let serve = crate::metrics::serve(config.metrics.listen, shared.clone());
        tasks.push(tokio::spawn(serve).abort_handle());
    }
    tasks.push(tokio::spawn(ingest(shared.clone(), ingest_rx, net_tx.clone())).abort_handle());
    if config.storage.pruning == Pruning::Window {
        let prune = prune(shared.clone(), config.storage.keep_blocks);
        tasks.push(tokio::spawn(prune).abort_handle());
    }
    let (serve_tx, serve_rx) = mpsc::channel(SERVE_QUEUE);
    // A few MiB per response, and never more than half a frame.
    let budget = (config.p2p.max_message_bytes / 2).min(4 << 20);
    #[cfg(feature = "fault-injection")]
    let tamper = config.fault_injection.mode == Some(crate::faults::FaultMode::TamperedSync);
    #[cfg(not(feature = "fault-injection"))]
    let tamper = false;
    let serve = serve_sync(shared.clone(), serve_rx, net_tx.clone(), budget, tamper);
    tasks.push(tokio::spawn(serve).abort_handle());
    let actor = Actor {
        host,
        shared,
        net: net_tx,
        ingest: ingest_tx,
        serve: serve_tx,
        gossip_to: if key.is_some() {
            Audience::Validators
        } else {
            Audience::Everyone
        },
        snapshot_keep: config.snapshot.keep,
        clock: Clock::new(),
        last_commit: None,
        clock_warned: None,
        sign_log: None,
        #[cfg(feature = "fault-injection")]
        faults: None,
    };
    let channels = Channels {
        events: event_rx,
        gossip: gossip_rx,
    };
    Ok((Services { rpc, tasks }, actor, channels))
}

fn mempool_limits(config: &NodeConfig) -> MempoolLimits {
    MempoolLimits {
        max_txs: config.mempool.max_txs,
        max_bytes: config.mempool.max_bytes,
        max_per_sender: config.mempool.max_per_sender,
        max_tx_bytes: config.mempool.max_tx_bytes,
        max_nonce_gap: config.mempool.max_nonce_gap,
        gap_expiry_ms: config.mempool.gap_expiry_ms,
        ready_reserve: config.mempool.ready_reserve,
        peer_reserve: config.mempool.peer_reserve,
    }
}

fn network_config(
    config: &NodeConfig,
    genesis: &Genesis,
    node_key: &KeyPair,
) -> Result<NetworkConfig, NodeError> {
    let genesis_hash = genesis.hash();
    let bad = |reason: String| NodeError::Network(reason);
    let mut secret = *node_key.secret_bytes();
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|e| bad(format!("node key: {e}")))?;
    let mut validators = Vec::new();
    for v in &genesis.validators {
        let peer_id = v
            .peer_id
            .parse()
            .map_err(|e| bad(format!("validator {}: peer id: {e}", v.name)))?;
        let addresses = v
            .addresses
            .iter()
            .map(|a| {
                a.parse()
                    .map_err(|e| bad(format!("validator {}: {a}: {e}", v.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        validators.push(PeerInfo {
            key: v.public_key,
            peer_id,
            addresses,
        });
    }
    let me = keypair.public().to_peer_id();
    let listed = validators.iter().any(|v| v.peer_id == me);
    match config.role {
        Role::Validator if !listed => {
            return Err(bad(format!(
                "this node's peer id {me} is not listed in genesis"
            )))
        }
        Role::Full if listed => {
            return Err(bad(format!(
                "this full node's peer id {me} is a validator's in genesis: a full node needs \
                 its own node key (hotledger init --full-node makes one)"
            )))
        }
        _ => {}
    }
    let peers = config
        .p2p
        .peers
        .iter()
        .map(|p| {
            crate::config::parse_peer(p)
                .map(|(id, addr)| (id, vec![addr]))
                .map_err(|why| bad(format!("p2p.peers: {why}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NetworkConfig {
        keypair,
        listen: config
            .p2p
            .listen
            .parse()
            .map_err(|e| bad(format!("p2p.listen: {e}")))?,
        validators,
        peers,
        max_non_validator_peers: config.p2p.max_non_validator_peers,
        genesis_hash,
        max_message_bytes: config.p2p.max_message_bytes,
        reconnect_initial: Duration::from_millis(config.p2p.reconnect_initial_ms),
        reconnect_max: Duration::from_millis(config.p2p.reconnect_max_ms),
        max_strikes: config.p2p.max_peer_strikes,
        ban: Duration::from_millis(config.p2p.ban_ms),
        strike_decay: Duration::from_millis(config.p2p.strike_decay_ms),
        request_timeout: Duration::from_millis(config.p2p.request_timeout_ms),
        idle_connection_timeout: Duration::from_millis(config.p2p.idle_connection_timeout_ms),
        ping_interval: Duration::from_millis(config.p2p.ping_interval_ms),
        ping_timeout: Duration::from_millis(config.p2p.ping_timeout_ms),
        dial_timeout: Duration::from_millis(config.p2p.dial_timeout_ms),
        max_concurrent_streams: config.p2p.max_concurrent_streams,
    })
}

/// Least time between two warnings about proposals ahead of this node's clock.
const CLOCK_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The loop around the host: it owns the host and the queues to the other tasks.
struct Actor {
    host: Host<Store>,
    shared: Arc<Shared>,
    net: mpsc::Sender<NetCommand>,
    /// Transaction frames from peers (and whether the peer is a validator), still encoded:
    /// decoding and admission happen off the loop.
    ingest: mpsc::Sender<(PublicKey, bool, Vec<u8>)>,
    /// Peers' sync requests (peer, from, count), answered off the loop.
    serve: mpsc::Sender<(PublicKey, SyncMessage)>,
    /// Whom this node's transactions are gossiped to: a validator's go to validators, a full
    /// node's to every peer (validators, or the full nodes it follows).
    gossip_to: Audience,
    /// Snapshots kept (`snapshot.keep`).
    snapshot_keep: usize,
    clock: Clock,
    last_commit: Option<Instant>,
    /// When the last warning about proposals ahead of this node's clock was logged.
    clock_warned: Option<Instant>,
    /// `storage.sign_log`: what this validator signs, appended before it is sent.
    sign_log: Option<SignLog>,
    /// Test-only misbehaviour (`[fault_injection]`).
    #[cfg(feature = "fault-injection")]
    faults: Option<crate::faults::Injector>,
}

impl Actor {
    async fn run(&mut self, mut ch: Channels) -> Result<(), NodeError> {
        self.handle(Event::Start)?;
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        let full_node = self.gossip_to == Audience::Everyone;
        let mut regossip = tokio::time::interval(REGOSSIP_EVERY);
        regossip.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = self.clock.now_ms();
            let wake = self.host.wake_at(now).map_or(IDLE_WAKE, |at| {
                Duration::from_millis(at.saturating_sub(now))
            });
            let awaiting_txs = self.host.awaiting_transactions();
            tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!("shutdown requested");
                    return Ok(());
                }
                ev = ch.events.recv() => match ev {
                    Some(NetEvent::Message { from, validator, bytes }) => {
                        self.on_frame(from, validator, bytes)?;
                    }
                    Some(NetEvent::PeerGone { key }) => self.host.forget_peer(&key),
                    None => return Err(NodeError::Network("network task stopped".into())),
                },
                txs = ch.gossip.recv() => {
                    if let Some(txs) = txs {
                        self.gossip(txs, &mut ch.gossip);
                    }
                }
                _ = self.shared.net.lost_changed.notified() => {
                    let validators = self.shared.net.lost_validators();
                    if !validators.is_empty() {
                        tracing::info!(validators = validators.len(), "validators unreachable");
                    }
                    self.handle(Event::Unreachable { validators })?;
                }
                _ = tokio::time::sleep(wake) => self.tick()?,
                _ = regossip.tick(), if full_node => self.regossip(),
                _ = self.shared.admitted.notified(), if awaiting_txs => self.tick()?,
            }
            self.refresh_status();
        }
    }

    /// A frame from a peer: transactions go to the ingest task, consensus messages to the host
    /// (from validators only: a non-validator sending one is struck).
    fn on_frame(
        &mut self,
        from: PublicKey,
        validator: bool,
        bytes: Vec<u8>,
    ) -> Result<(), NodeError> {
        if WireMessage::is_transactions(&bytes) {
            // A full queue drops the batch: a validator's is only a copy of what it will
            // propose; a full node's client is told its transfer was admitted there, not here.
            if self.ingest.try_send((from, validator, bytes)).is_err() {
                self.shared.net.dropped_tx_frames.inc();
            }
            return Ok(());
        }
        match WireMessage::decode(&bytes) {
            Ok(WireMessage::Consensus(_)) if !validator => {
                self.refuse_frame(from, NodeError::ConsensusFromNonValidator);
                Ok(())
            }
            Ok(WireMessage::Consensus(message)) => self.handle(Event::Message { from, message }),
            Ok(WireMessage::Sync(
                request @ (SyncMessage::Request { .. } | SyncMessage::ChunkRequest { .. }),
            )) => {
                // Served off the loop; a full queue answers "none now", so the peer asks another
                // at once rather than time out and strike this node.
                let none = none_now(&request);
                if self.serve.try_send((from, request)).is_err() {
                    self.shared.metrics.sync_requests_dropped.inc();
                    if let Some(message) = none {
                        self.send(Outgoing::Sync {
                            to: Some(from),
                            message,
                        });
                    }
                }
                Ok(())
            }
            Ok(WireMessage::Sync(message)) => {
                let out = self.host.handle_sync(self.clock.now_ms(), from, message)?;
                self.deliver(out)
            }
            // Not reached: `decode` refuses a frame whose first byte does not name its variant,
            // so every transactions frame was routed above. One that were is refused.
            Ok(WireMessage::Transactions(_)) => {
                self.refuse_frame(
                    from,
                    NodeError::MisroutedFrame {
                        got: "transactions",
                        expected: "consensus or sync",
                    },
                );
                Ok(())
            }
            Err(reason) => {
                self.refuse_frame(from, reason);
                Ok(())
            }
        }
    }

    /// A peer's frame that does not decode: counted, logged, and the peer struck.
    fn refuse_frame(&self, from: PublicKey, reason: NodeError) {
        tracing::warn!(peer = %from.short(), %reason, "refused message");
        self.shared.metrics.rejected_messages.inc();
        self.penalize(from, true);
    }

    /// Broadcasts this node's accepted transactions, gathering what queued up into one frame.
    fn gossip(
        &mut self,
        mut txs: Vec<SignedTransaction>,
        queue: &mut mpsc::Receiver<Vec<SignedTransaction>>,
    ) {
        while txs.len() < GOSSIP_BATCH {
            match queue.try_recv() {
                Ok(more) => txs.extend(more),
                Err(_) => break,
            }
        }
        if let Some(bytes) = frame(WireMessage::Transactions(txs)) {
            let _ = self.net.try_send(NetCommand::Broadcast {
                bytes,
                to: self.gossip_to,
            });
        }
    }

    /// A full node's pending transactions, gossiped again (see [`REGOSSIP_EVERY`]).
    fn regossip(&mut self) {
        let Ok(mut pending) = self.shared.pending() else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        pending.truncate(GOSSIP_BATCH);
        tracing::debug!(txs = pending.len(), "gossiping pending transactions again");
        if let Some(bytes) = frame(WireMessage::Transactions(pending)) {
            let _ = self.net.try_send(NetCommand::Broadcast {
                bytes,
                to: self.gossip_to,
            });
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), NodeError> {
        let out = self.host.handle(self.clock.now_ms(), event)?;
        self.deliver(out)
    }

    fn tick(&mut self) -> Result<(), NodeError> {
        let out = self.host.tick(self.clock.now_ms())?;
        self.deliver(out)
    }

    /// Carries out what the host produced: messages to the network, the rest to metrics and logs.
    fn deliver(&mut self, mut out: Output) -> Result<(), NodeError> {
        for outgoing in std::mem::take(&mut out.messages) {
            #[cfg(feature = "fault-injection")]
            if let Some(faults) = self.faults.as_mut() {
                let rewritten = faults.rewrite(outgoing);
                for message in rewritten.messages {
                    self.send_signed(message)?;
                }
                for command in rewritten.frames {
                    let _ = self.net.try_send(command);
                }
                continue;
            }
            self.send_signed(outgoing)?;
        }
        let m = &self.shared.metrics;
        m.payload_verified_txs.inc_by(out.verified_txs);
        for r in &out.rejected {
            m.rejected_messages.inc();
            tracing::debug!(peer = ?r.from.map(|p| p.short()), error = %r.error, "rejected");
            if let (Some(peer), true) = (r.from, r.misbehaviour) {
                self.penalize(peer, false);
            }
        }
        for (peer, error) in &out.sync_refused {
            m.rejected_messages.inc();
            tracing::warn!(peer = %peer.short(), %error, "sync response refused");
            self.penalize(*peer, false);
        }
        for (peer, error) in &out.restore_refused {
            m.rejected_messages.inc();
            tracing::warn!(peer = %peer.short(), %error, "state sync response refused");
            self.penalize(*peer, false);
        }
        if let Some(m) = out.restore_anchored {
            tracing::info!(
                height = m.height,
                root = %m.root,
                certified_by = m.certified_by,
                accounts = m.accounts,
                chunks = m.chunks(),
                "state sync: snapshot chosen, its root proven by a certified block"
            );
        }
        if let Some((held, total)) = out.restore_progress {
            // About every tenth of the way.
            if held == 1 || held.is_multiple_of((total / 10).max(1)) {
                tracing::info!(
                    chunks_held = held,
                    chunks = total,
                    "state sync: chunk checked and stored"
                );
            }
        }
        if let Some(height) = out.restore_started_over {
            tracing::warn!(
                height,
                "state sync: no peer serves the snapshot being restored any more; its chunks are \
                 dropped and a newer one is restored"
            );
        }
        if let Some(d) = out.diverged {
            m.state_diverged.set(1);
            tracing::error!(
                height = d.height,
                ours = %d.ours,
                certified = %d.certified,
                certified_by = d.certified_by,
                "this node's state differs from the state the validators certified: it has \
                 stopped voting, proposing and committing (check the disk; restore the data \
                 folder by state sync)"
            );
        }
        if out.restore_abandoned {
            tracing::warn!(
                height = self.host.view().height,
                "state sync: no peer offers a snapshot; following the chain from this node's tip"
            );
        }
        if let Some(done) = out.restored {
            tracing::info!(
                height = done.height,
                accounts = done.accounts,
                chunks = done.chunks,
                fetched = done.fetched,
                refused = done.refused,
                secs = done.elapsed_ms as f64 / 1_000.0,
                "state sync: snapshot installed, every chunk checked against the certified root"
            );
        }
        for due in out.snapshot_due.iter().copied() {
            let store = self.shared.store.clone();
            let keep = self.snapshot_keep;
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                match crate::storage::snapshot::create(&store, due.height, due.certified_by, keep) {
                    Ok(m) => tracing::info!(
                        height = m.height,
                        accounts = m.accounts,
                        chunks = m.chunks(),
                        secs = started.elapsed().as_secs_f64(),
                        "snapshot made"
                    ),
                    Err(e) => {
                        tracing::error!(height = due.height, error = %e, "cannot make a snapshot")
                    }
                }
            });
        }
        match out.sync_switched {
            Some(true) => tracing::info!(
                height = self.host.view().height,
                "far behind the other validators: syncing committed blocks"
            ),
            Some(false) => {
                let done = out.synced.unwrap_or_default();
                let secs = done.elapsed_ms as f64 / 1_000.0;
                tracing::info!(
                    height = self.host.view().height,
                    blocks = done.blocks,
                    transfers = done.txs,
                    secs,
                    transfers_per_sec = (done.txs as f64 / secs.max(0.001)).round(),
                    "caught up by sync: following consensus again"
                )
            }
            None => {}
        }
        if out.block_requests_dropped > 0 {
            m.block_requests_dropped.inc_by(out.block_requests_dropped);
        }
        for evidence in &out.evidence {
            self.shared.metrics.evidence.inc();
            tracing::warn!(culprit = %evidence.culprit(), ?evidence, "equivocation detected");
            // Two conflicting messages under one key: proof, whoever relayed them.
            self.penalize(*evidence.culprit(), false);
        }
        if let Some((hash, why)) = out.expired.first() {
            let count = out.expired.len();
            self.shared.metrics.expired_txs.inc_by(count as u64);
            tracing::info!(count, first = %hash, %why, "pending transfers expired behind nonce gaps");
        }
        self.record_commits(&out);
        Ok(())
    }

    /// Logs what this validator signed in `outgoing` (`storage.sign_log`), then sends it.
    fn send_signed(&mut self, outgoing: Outgoing) -> Result<(), NodeError> {
        if let Some(log) = self.sign_log.as_mut() {
            match &outgoing {
                Outgoing::Send { message, .. } | Outgoing::Broadcast(message) => {
                    log.record(message)?
                }
                Outgoing::Sync { .. } => {}
            }
        }
        self.send(outgoing);
        Ok(())
    }

    /// Metrics and a log line per committed block.
    fn record_commits(&mut self, out: &Output) {
        let Some(last) = out.committed.last() else {
            return;
        };
        let m = &self.shared.metrics;
        for report in &out.committed {
            m.committed_blocks.inc();
            m.committed_txs.inc_by(report.applied);
            m.failed_txs
                .inc_by((report.txs as u64).saturating_sub(report.applied));
            m.commit_seconds.observe(report.elapsed.as_secs_f64());
            if let Some(previous) = self.last_commit.replace(Instant::now()) {
                m.block_interval_seconds
                    .observe(previous.elapsed().as_secs_f64());
            }
            tracing::info!(
                height = report.height,
                id = %report.id.short(),
                txs = report.txs,
                applied = report.applied,
                last = report.height == last.height,
                "committed"
            );
        }
    }

    fn send(&self, outgoing: Outgoing) {
        let command = match outgoing {
            Outgoing::Send { to, message } => {
                tracing::trace!(to = %to.short(), kind = message.kind(), "send");
                frame(WireMessage::Consensus(message)).map(|bytes| NetCommand::Send { to, bytes })
            }
            Outgoing::Broadcast(message) => {
                tracing::trace!(kind = message.kind(), "broadcast");
                frame(WireMessage::Consensus(message)).map(|bytes| NetCommand::Broadcast {
                    bytes,
                    to: Audience::Validators,
                })
            }
            Outgoing::Sync { to, message } => {
                tracing::trace!(to = ?to.map(|k| k.short()), kind = message.kind(), "sync send");
                frame(WireMessage::Sync(message)).map(|bytes| match to {
                    Some(to) => NetCommand::Send { to, bytes },
                    None => NetCommand::Broadcast {
                        bytes,
                        to: Audience::Everyone,
                    },
                })
            }
        };
        if let Some(command) = command {
            if self.net.try_send(command).is_err() {
                self.shared.net.dropped_outbound.inc();
                tracing::warn!("network queue full; message dropped");
            }
        }
    }

    fn penalize(&self, peer: PublicKey, severe: bool) {
        let _ = self.net.try_send(NetCommand::Penalize { peer, severe });
    }

    /// Publishes the host's view to `status` and the gauges.
    fn refresh_status(&mut self) {
        let view = self.host.view();
        let (mp_txs, mp_bytes) = match self.shared.mempool.lock() {
            Ok(mp) => (mp.len(), mp.bytes()),
            Err(_) => (0, 0),
        };
        let net = &self.shared.net;
        let peers = net
            .connected_validators
            .load(std::sync::atomic::Ordering::Relaxed);
        let non_validator_peers = net
            .connected_non_validators
            .load(std::sync::atomic::Ordering::Relaxed);
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let m = &self.shared.metrics;
        m.height.set(gauge(view.height));
        m.round.set(gauge(view.round));
        m.mempool_txs.set(gauge(mp_txs as u64));
        m.mempool_bytes.set(gauge(mp_bytes as u64));
        m.peers.set(gauge(peers as u64));
        m.non_validator_peers.set(gauge(non_validator_peers as u64));
        m.syncing.set(i64::from(view.syncing));
        let counted = m.timeouts.get();
        if view.timeouts_sent > counted {
            m.timeouts.inc_by(view.timeouts_sent - counted);
        }
        let counted = m.proposals_ahead_of_clock.get();
        if view.proposals_ahead_of_clock > counted {
            m.proposals_ahead_of_clock
                .inc_by(view.proposals_ahead_of_clock - counted);
            if self
                .clock_warned
                .is_none_or(|t| t.elapsed() >= CLOCK_WARNING_EVERY)
            {
                self.clock_warned = Some(Instant::now());
                tracing::warn!(
                    proposals = view.proposals_ahead_of_clock,
                    "proposals timestamped further ahead of this node's clock than \
                     max_clock_skew_ms are not voted for: check this host's clock (NTP)"
                );
            }
        }
        if let Ok(mut s) = self.shared.status.write() {
            s.earliest_height = view.earliest;
            s.height = view.height;
            s.block_id = view.block_id;
            s.state_root = view.state_root;
            s.round = view.round;
            s.high_qc_height = view.high_qc_height;
            s.syncing = view.syncing;
            s.diverged = view.diverged;
            s.peers = peers;
            s.non_validator_peers = non_validator_peers;
            s.mempool_txs = mp_txs;
            s.mempool_bytes = mp_bytes;
            s.committed_txs = view.committed_txs;
        }
    }
}

/// How often the pruner looks for heights below the retention window.
const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// Most heights the pruner deletes in one synced batch.
const PRUNE_BATCH: u64 = 500;

/// Deletes committed blocks and transaction records more than `keep` blocks below the tip, in
/// the background, in bounded batches on a blocking thread. A storage failure stops pruning
/// (logged) and leaves the rest of the node to the consensus loop's own failure policy.
async fn prune(shared: Arc<Shared>, keep: u64) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        every.tick().await;
        let store = shared.store.clone();
        let step = tokio::task::spawn_blocking(move || -> Result<Option<(u64, u64)>, NodeError> {
            let tip = store.tip()?.map_or(0, |t| t.block.height);
            let below = tip.saturating_sub(keep).saturating_add(1);
            let before = store.earliest()?;
            let after = store.prune(below, PRUNE_BATCH)?;
            Ok((after > before).then_some((before, after)))
        })
        .await;
        match step {
            Ok(Ok(Some((from, to)))) => {
                tracing::debug!(from, to, "pruned committed blocks below the window")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "pruning failed; pruning stops");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "pruning task failed; pruning stops");
                return;
            }
        }
    }
}

/// Capacity of the queue of peers' sync requests waiting to be served.
const SERVE_QUEUE: usize = 32;
/// Most sync requests served per peer per second; more are dropped (an honest peer keeps one
/// window in flight to each peer).
const SERVE_PER_PEER_PER_SEC: u32 = 8;
/// Most snapshot chunks served per peer per second (twice what a restorer asks,
/// `host::statesync::CHUNK_INTERVAL_MS`).
const SERVE_CHUNKS_PER_PEER_PER_SEC: u32 = 16;

/// The "none now" answer to a sync request (the peer asks another at once rather than time
/// out): for blocks only. A chunk request is left to time out, a chunk's "none" meaning "not
/// held".
fn none_now(request: &SyncMessage) -> Option<SyncMessage> {
    match request {
        SyncMessage::Request { from, .. } => Some(SyncMessage::none(*from)),
        _ => None,
    }
}

/// Answers peers' sync requests (blocks and snapshot chunks) from the store, off the consensus
/// loop, on a blocking thread, one at a time, at most [`SERVE_PER_PEER_PER_SEC`] a second for
/// each peer. `tamper` (fault injection's `tampered-sync` only) alters each answer.
async fn serve_sync(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<(PublicKey, SyncMessage)>,
    net: mpsc::Sender<NetCommand>,
    budget: usize,
    tamper: bool,
) {
    let mut served: std::collections::HashMap<(PublicKey, bool), (Instant, u32)> =
        Default::default();
    while let Some((peer, request)) = rx.recv().await {
        let now = Instant::now();
        served.retain(|_, (since, _)| now.duration_since(*since) < Duration::from_secs(1));
        let chunk = matches!(request, SyncMessage::ChunkRequest { .. });
        let (_, n) = served.entry((peer, chunk)).or_insert((now, 0));
        let limit = if chunk {
            SERVE_CHUNKS_PER_PEER_PER_SEC
        } else {
            SERVE_PER_PEER_PER_SEC
        };
        if *n >= limit {
            // Over its rate: "none now", so it asks another peer at once (see `on_frame`).
            shared.metrics.sync_requests_dropped.inc();
            if let Some(bytes) = none_now(&request).and_then(|m| frame(WireMessage::Sync(m))) {
                let _ = net.try_send(NetCommand::Send { to: peer, bytes });
            }
            continue;
        }
        *n += 1;
        let store = shared.store.clone();
        let answer = tokio::task::spawn_blocking(move || {
            crate::host::sync::answer(&store, &request, budget)
        })
        .await;
        match answer {
            Ok(Ok(None)) => {}
            #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
            Ok(Ok(Some(mut message))) => {
                #[cfg(feature = "fault-injection")]
                if tamper {
                    crate::faults::tamper_sync(&mut message);
                }
                #[cfg(not(feature = "fault-injection"))]
                let _ = tamper;
                if let Some(bytes) = frame(WireMessage::Sync(message)) {
                    let _ = net.try_send(NetCommand::Send { to: peer, bytes });
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot read blocks to serve a sync request"),
            Err(e) => tracing::error!(error = %e, "sync serving task failed"),
        }
    }
}

/// Most gossip frames verified as one batch: frames that queued up while the previous batch was
/// being verified are admitted together, since small batches cost more per signature (`cargo
/// bench -p hotledger-crypto --bench verify`; the figures are in `testnet/PROFILING.md`). Only
/// frames already queued are gathered: the task never waits for more, so a frame's
/// verification is not delayed to fill a batch.
const INGEST_COALESCE: usize = 8;

/// Decodes and admits transaction frames gossiped by peers, off the consensus loop (their
/// signatures are batch-verified here, on a blocking thread). A frame that does not decode gets
/// its sender disconnected, as on the loop. Transactions from a validator are a copy of what it
/// will propose and go no further; those a non-validator relays (a full node's clients') are
/// admitted as a client's would be (without the slots kept for validators' gossip) and gossiped
/// on, as this node's own.
async fn ingest(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<(PublicKey, bool, Vec<u8>)>,
    net: mpsc::Sender<NetCommand>,
) {
    while let Some(first) = rx.recv().await {
        let mut frames = vec![first];
        while frames.len() < INGEST_COALESCE {
            match rx.try_recv() {
                Ok(frame) => frames.push(frame),
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        let refused = tokio::task::spawn_blocking(move || {
            let mut txs = Vec::new();
            let mut relayed = Vec::new();
            let mut refused: Vec<(PublicKey, NodeError)> = Vec::new();
            for (from, validator, bytes) in frames {
                match WireMessage::decode(&bytes) {
                    Ok(WireMessage::Transactions(batch)) if validator => txs.extend(batch),
                    Ok(WireMessage::Transactions(batch)) => relayed.extend(batch),
                    Ok(m @ (WireMessage::Consensus(_) | WireMessage::Sync(_))) => refused.push((
                        from,
                        NodeError::MisroutedFrame {
                            got: m.kind(),
                            expected: "transactions",
                        },
                    )),
                    Err(reason) => {
                        shared.metrics.rejected_messages.inc();
                        refused.push((from, reason));
                    }
                }
            }
            if !txs.is_empty() {
                let _ = shared.admit(txs, Origin::Peer);
            }
            if !relayed.is_empty() {
                if let Ok(results) = shared.admit(relayed.clone(), Origin::Client) {
                    let admitted: Vec<SignedTransaction> = relayed
                        .into_iter()
                        .zip(results)
                        .filter(|(_, r)| r.is_ok())
                        .map(|(tx, _)| tx)
                        .collect();
                    if !admitted.is_empty() {
                        let _ = shared.gossip.try_send(admitted);
                    }
                }
            }
            refused
        })
        .await
        .unwrap_or_default();
        for (from, reason) in refused {
            tracing::warn!(peer = %from.short(), %reason, "undecodable transaction frame");
            let _ = net.try_send(NetCommand::Penalize {
                peer: from,
                severe: true,
            });
        }
    }
}

/// A message's frame, or `None` (logged) if it cannot be encoded: nothing is sent then, rather
/// than an empty frame a peer would take for garbage.
fn frame(message: WireMessage) -> Option<Arc<Vec<u8>>> {
    match message.encode() {
        Ok(bytes) => Some(Arc::new(bytes)),
        Err(e) => {
            tracing::error!(error = %e, "message not sent");
            None
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
