//! The running validator: opens the home, starts the network, RPC and metrics tasks, and drives
//! the consensus core in one loop.
//!
//! The loop feeds the core one event at a time and carries out its actions strictly in order:
//! `PersistSafety` is a synced RocksDB write that completes before the next action (a send) is
//! even queued, and every committed block is executed and written in one synced batch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use hotledger_consensus::{
    Action, Block, BlockResponse, Commit, Config, Consensus, ConsensusError, Event, Message,
    PayloadCheck, QuorumCert, Recovery,
};
use hotledger_crypto::{Digest, KeyPair, PublicKey};
use hotledger_genesis::Genesis;
use hotledger_ledger::{
    compute_state_root, execute, genesis_state_root, verify_transactions, BlockPayload, Mempool,
    MempoolLimits, Origin, SignedTransaction, TxError, TxOutcome,
};
use tokio::sync::mpsc;

use crate::config::{LogFormat, NodeConfig};
use crate::error::NodeError;
use crate::home::Home;
use crate::metrics::Metrics;
use crate::network::{self, NetCommand, NetEvent, NetStats, NetworkConfig, PeerInfo};
use crate::shared::{Shared, Status};
use crate::storage::{BlockWrite, CommitTip, StorageError, Store, TxRecord};
use crate::wire::WireMessage;

/// Capacity of the queue of this node's accepted transactions to gossip (batches); the queues
/// that carry peers' input are sized by `config.toml`'s `p2p` section. All are bounded.
const GOSSIP_QUEUE: usize = 1_024;
/// Most transactions per gossip frame.
const GOSSIP_BATCH: usize = 4_096;
/// State roots kept in memory for checking proposals' state claims.
const ROOT_CACHE: usize = 1_024;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sets up `tracing` from the config's filter (`RUST_LOG` overrides it), in `format`.
fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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

/// State roots by height, shared by the loop (writer) and the payload check (reader).
type Roots = Arc<RwLock<BTreeMap<u64, Digest>>>;
/// Payloads of uncommitted blocks decoded once (by the payload check, or the first time one of
/// our own blocks is needed) and reused when building proposals and applying commits.
type Decoded = Arc<Mutex<HashMap<Digest, Arc<DecodedPayload>>>>;

/// A block's payload with its transactions' hashes, each computed once per node.
#[derive(Debug)]
struct DecodedPayload {
    payload: BlockPayload,
    hashes: Vec<Digest>,
}

/// The application's check of proposals: the payload decodes within the genesis limits, its
/// transactions' signatures verify (each checked once: those pending in our mempool with the
/// same signature bytes, or noted by an earlier payload check, are not checked again), and its
/// state claim matches our own root at that height when we have it.
#[derive(Debug)]
struct PayloadValidator {
    chain_id: String,
    shared: Arc<Shared>,
    roots: Roots,
    decoded: Decoded,
    max_txs: usize,
    max_bytes: usize,
}

impl PayloadCheck for PayloadValidator {
    fn check(&mut self, block: &Block) -> Result<(), String> {
        let (payload, hashes) =
            BlockPayload::decode_hashed(&block.payload, self.max_txs, self.max_bytes)
                .map_err(|e| e.to_string())?;
        if let Ok(roots) = self.roots.read() {
            if let Some(root) = roots.get(&payload.state_height) {
                if *root != payload.state_root {
                    return Err(format!(
                        "state root claim for height {} is {}, ours is {}",
                        payload.state_height, payload.state_root, root
                    ));
                }
            }
        }
        // Only what this node has not checked: a pending transaction with other signature bytes
        // (its hash does not cover them) is checked like an unknown one.
        let (unverified, unverified_hashes): (Vec<&SignedTransaction>, Vec<Digest>) =
            match self.shared.mempool.lock() {
                Ok(mp) => payload
                    .txs
                    .iter()
                    .zip(&hashes)
                    .filter(|(tx, hash)| !mp.verified(hash, &tx.signature))
                    .unzip(),
                Err(_) => payload.txs.iter().zip(&hashes).unzip(),
            };
        self.shared
            .metrics
            .payload_verified_txs
            .inc_by(unverified.len() as u64);
        verify_transactions(&self.chain_id, &unverified).map_err(|e| e.to_string())?;
        if !unverified.is_empty() {
            // Their gossiped copies, which usually arrive after the proposal, need no second
            // check.
            if let Ok(mut mp) = self.shared.mempool.lock() {
                mp.note_verified(
                    unverified_hashes
                        .into_iter()
                        .zip(unverified.iter().map(|tx| tx.signature)),
                );
            }
        }
        if let Ok(mut d) = self.decoded.lock() {
            d.insert(block.id, Arc::new(DecodedPayload { payload, hashes }));
        }
        Ok(())
    }
}

/// Everything `run` sets up before the loop starts.
struct Runner {
    core: Consensus,
    store: Store,
    shared: Arc<Shared>,
    net: mpsc::Sender<NetCommand>,
    /// Transaction frames from peers, still encoded: decoding and admission happen off the loop.
    ingest: mpsc::Sender<(PublicKey, Vec<u8>)>,
    roots: Roots,
    decoded: Decoded,
    tip: CommitTip,
    timer: Option<(u64, tokio::time::Instant)>,
    /// A proposal waiting for its payload: (round, parent, propose even if empty after).
    pending_payload: Option<(u64, Digest, tokio::time::Instant)>,
    empty_block_delay: Duration,
    /// The mempool's `admitted_total` when a payload build found nothing to select; cleared by
    /// every commit (which can make waiting transactions selectable).
    nothing_selectable: Option<u64>,
    last_commit: Option<Instant>,
    max_block_txs: usize,
    max_block_bytes: usize,
    max_message_bytes: usize,
}

/// Runs the validator in `home` until SIGINT or SIGTERM; `log_format`, if given, replaces the
/// config's.
pub async fn run(home: &Home, log_format: Option<LogFormat>) -> Result<(), NodeError> {
    let config = home.load_config()?;
    init_logging(&config.log_level, log_format.unwrap_or(config.log_format));
    let genesis = home.load_genesis()?;
    let key = home.load_validator_key()?;
    let node_key = home.load_node_key()?;
    let genesis_hash = genesis.hash();
    if genesis.validator_by_key(&key.public()).is_none() {
        return Err(NodeError::Home {
            path: home.validator_key_path(),
            reason: format!("key {} is not a validator in genesis", key.public()),
        });
    }
    let data = home.data_path(&config);
    let store = Store::open(&data, &genesis_hash).map_err(|source| NodeError::Database {
        path: data.clone(),
        source,
    })?;
    if store.is_fresh()? {
        write_genesis_state(&store, &genesis)?;
        tracing::info!(path = %data.display(), "initialised storage from genesis");
    }
    let tip = store.tip()?.ok_or_else(|| NodeError::Database {
        path: data.clone(),
        source: StorageError::MissingTip,
    })?;
    let behind = store.tree_behind()?;
    if !behind.is_empty() {
        tracing::info!(
            from = behind.start(),
            to = behind.end(),
            "rebuilding the state tree's nodes a crash left unwritten"
        );
        let rebuilt = store
            .rebuild_tree(|block| {
                let payload = BlockPayload::decode(&block.payload, usize::MAX, usize::MAX)
                    .map_err(|source| StorageError::UndecodablePayload {
                        height: block.height,
                        source,
                    })?;
                Ok(payload
                    .txs
                    .iter()
                    .flat_map(|tx| [tx.transfer.from, tx.transfer.to])
                    .collect())
            })
            .map_err(|source| NodeError::Database {
                path: data.clone(),
                source,
            })?;
        tracing::info!(
            heights = rebuilt,
            "state tree rebuilt; every root matches its commit"
        );
    }
    let safety = store.safety()?.unwrap_or_default();
    tracing::info!(
        moniker = %config.moniker,
        chain = %genesis.chain_id,
        height = tip.block.height,
        last_voted_round = safety.last_voted_round,
        "starting validator {}",
        key.public()
    );

    let (net_tx, net_rx) = mpsc::channel(config.p2p.outbound_queue);
    let (event_tx, event_rx) = mpsc::channel(config.p2p.inbound_queue);
    let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_QUEUE);
    let (ingest_tx, ingest_rx) = mpsc::channel(config.p2p.inbound_tx_queue);
    let net_stats = Arc::new(NetStats::default());
    let mut metrics = Metrics::new();
    metrics.register_network(&net_stats);
    let mempool = Mempool::new(genesis.chain_id.clone(), mempool_limits(&config));
    let shared = Arc::new(Shared {
        chain_id: genesis.chain_id.clone(),
        store: store.clone(),
        mempool: Mutex::new(mempool),
        status: RwLock::new(Status {
            moniker: config.moniker.clone(),
            chain_id: genesis.chain_id.clone(),
            genesis_hash,
            validator: key.public().to_hex(),
            validators: genesis.validators.len(),
            ..Status::default()
        }),
        net: net_stats.clone(),
        metrics,
        gossip: gossip_tx,
        max_batch: 10_000,
    });

    let network_config = network_config(&config, &genesis, &node_key, genesis_hash)?;
    let net_task = tokio::spawn(network::run(network_config, net_rx, event_tx, net_stats));
    let rpc = crate::rpc::serve(&config.rpc, shared.clone()).await?;
    let metrics_task = config
        .metrics
        .enabled
        .then(|| tokio::spawn(crate::metrics::serve(config.metrics.listen, shared.clone())));
    let ingest_task = tokio::spawn(ingest(shared.clone(), ingest_rx, net_tx.clone()));

    let roots: Roots = Arc::new(RwLock::new(BTreeMap::new()));
    if let (Ok(mut r), Some(g)) = (roots.write(), store.genesis_root()?) {
        r.insert(0, g);
        r.insert(tip.block.height, tip.state_root);
    }
    let params = genesis.consensus_params();
    let mut ccfg = Config::new(
        genesis.chain_id.clone(),
        genesis.genesis_block(),
        genesis.validator_set()?,
        Some(key.clone()),
    );
    ccfg.params = params;
    ccfg.limits = config.consensus.to_limits();
    // The last committed blocks, for leader reputation to choose the same leaders as the peers.
    let from = tip
        .block
        .height
        .saturating_sub(ccfg.history_blocks())
        .saturating_add(1);
    let mut history = Vec::new();
    for height in from..=tip.block.height {
        history.extend(store.block_by_height(height)?.map(|stored| stored.block));
    }
    let recovery = Recovery {
        safety,
        root: tip.block,
        root_qc: tip.qc.clone(),
        blocks: store.uncommitted_blocks()?,
        history,
    };
    let mut core = Consensus::new(ccfg, recovery)?;
    let decoded: Decoded = Arc::new(Mutex::new(HashMap::new()));
    let max_block_txs = usize::try_from(genesis.consensus.max_block_txs).unwrap_or(usize::MAX);
    let max_block_bytes = usize::try_from(genesis.consensus.max_block_bytes).unwrap_or(usize::MAX);
    core.set_payload_check(Box::new(PayloadValidator {
        chain_id: genesis.chain_id.clone(),
        shared: shared.clone(),
        roots: roots.clone(),
        decoded: decoded.clone(),
        max_txs: max_block_txs,
        max_bytes: max_block_bytes,
    }));

    let mut runner = Runner {
        core,
        store: store.clone(),
        shared: shared.clone(),
        net: net_tx,
        ingest: ingest_tx,
        roots,
        decoded,
        tip,
        timer: None,
        pending_payload: None,
        empty_block_delay: Duration::from_millis(config.consensus.empty_block_delay_ms),
        nothing_selectable: None,
        last_commit: None,
        max_block_txs,
        max_block_bytes,
        max_message_bytes: config.p2p.max_message_bytes,
    };
    let result = runner.run_loop(event_rx, gossip_rx).await;

    rpc.stop().ok();
    net_task.abort();
    ingest_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    store.flush()?;
    match &result {
        Ok(()) => tracing::info!("shut down cleanly; storage flushed"),
        Err(e) => tracing::error!("stopped on error: {e}"),
    }
    result
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

fn write_genesis_state(store: &Store, genesis: &Genesis) -> Result<(), NodeError> {
    let balances: Vec<(PublicKey, u64)> = genesis
        .accounts
        .iter()
        .map(|a| (a.public_key, a.balance))
        .collect();
    let (root, tree) = genesis_state_root(&balances)?;
    let block = genesis.genesis_block();
    let tip = CommitTip {
        block,
        qc: QuorumCert::genesis(block),
        state_root: root,
        committed_txs: 0,
    };
    Ok(store.init_genesis(&genesis.hash(), &tree, &tip)?)
}

fn network_config(
    config: &NodeConfig,
    genesis: &Genesis,
    node_key: &KeyPair,
    genesis_hash: Digest,
) -> Result<NetworkConfig, NodeError> {
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
    if !validators.iter().any(|v| v.peer_id == me) {
        return Err(bad(format!(
            "this node's peer id {me} is not listed in genesis"
        )));
    }
    Ok(NetworkConfig {
        keypair,
        listen: config
            .p2p
            .listen
            .parse()
            .map_err(|e| bad(format!("p2p.listen: {e}")))?,
        validators,
        genesis_hash,
        max_message_bytes: config.p2p.max_message_bytes,
        reconnect_initial: Duration::from_millis(config.p2p.reconnect_initial_ms),
        reconnect_max: Duration::from_millis(config.p2p.reconnect_max_ms),
        max_strikes: config.p2p.max_peer_strikes,
        ban: Duration::from_millis(config.p2p.ban_ms),
        request_timeout: Duration::from_millis(config.p2p.request_timeout_ms),
        idle_connection_timeout: Duration::from_millis(config.p2p.idle_connection_timeout_ms),
        max_concurrent_streams: config.p2p.max_concurrent_streams,
    })
}

/// Most gossip frames verified as one batch: frames that queued up while the previous batch was
/// being verified are admitted together, since small batches cost more per signature (`cargo
/// bench -p hotledger-crypto --bench verify`; the figures are in `testnet/PROFILING.md`). Only
/// frames already queued are gathered: the task never waits for more, so a frame's
/// verification is not delayed to fill a batch.
const INGEST_COALESCE: usize = 8;

/// Decodes and admits transaction frames gossiped by peers, off the consensus loop (their
/// signatures are batch-verified here, on a blocking thread). A frame that does not decode gets
/// its sender disconnected, as on the loop.
async fn ingest(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<(PublicKey, Vec<u8>)>,
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
            let mut refused: Vec<(PublicKey, NodeError)> = Vec::new();
            for (from, bytes) in frames {
                match WireMessage::decode(&bytes) {
                    Ok(WireMessage::Transactions(batch)) => txs.extend(batch),
                    Ok(WireMessage::Consensus(m)) => refused.push((
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

/// Whether a rejection shows the peer sent something no honest validator sends. A leader
/// schedule that differs from ours is no proof: a validator whose committed history lags (just
/// restarted, or back from a partition) computes other leaders and failed leaders until it
/// catches up; those rejections are made before any signature is checked.
fn is_misbehaviour(e: &ConsensusError) -> bool {
    !matches!(
        e,
        ConsensusError::StaleRound { .. }
            | ConsensusError::RoundTooFarAhead { .. }
            | ConsensusError::Full { .. }
            | ConsensusError::UnrequestedBlocks { .. }
            | ConsensusError::InvalidPayload { .. }
            | ConsensusError::NotLeader { .. }
            | ConsensusError::NotNextLeader { .. }
            | ConsensusError::WrongFailedLeaders { .. }
    )
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

impl Runner {
    async fn run_loop(
        &mut self,
        mut events: mpsc::Receiver<NetEvent>,
        mut gossip: mpsc::Receiver<Vec<SignedTransaction>>,
    ) -> Result<(), NodeError> {
        self.dispatch(Event::Start)?;
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            let deadline = self.timer.map_or_else(
                || tokio::time::Instant::now() + Duration::from_secs(3600),
                |(_, at)| at,
            );
            tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!("shutdown requested");
                    return Ok(());
                }
                ev = events.recv() => {
                    let Some(NetEvent::Message { from, bytes }) = ev else {
                        return Err(NodeError::Network("network task stopped".into()));
                    };
                    self.on_network(from, bytes)?;
                }
                txs = gossip.recv() => {
                    if let Some(mut txs) = txs {
                        while txs.len() < GOSSIP_BATCH {
                            match gossip.try_recv() {
                                Ok(more) => txs.extend(more),
                                Err(_) => break,
                            }
                        }
                        if let Some(bytes) = frame(WireMessage::Transactions(txs)) {
                            let _ = self.net.try_send(NetCommand::Broadcast { bytes });
                        }
                    }
                }
                _ = self.shared.net.lost_changed.notified() => {
                    let validators = self.shared.net.lost_validators();
                    if !validators.is_empty() {
                        tracing::info!(validators = validators.len(), "validators unreachable");
                    }
                    self.dispatch(Event::Unreachable { validators })?;
                }
                _ = tokio::time::sleep_until(deadline), if self.timer.is_some() => {
                    if let Some((round, _)) = self.timer.take() {
                        self.dispatch(Event::TimeoutFired { round })?;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(2)), if self.pending_payload.is_some() => {}
            }
            self.maybe_propose()?;
            self.refresh_status();
        }
    }

    fn on_network(&mut self, from: PublicKey, bytes: Vec<u8>) -> Result<(), NodeError> {
        if WireMessage::is_transactions(&bytes) {
            // A full queue drops the batch: it is only a copy of what the peer will propose.
            if self.ingest.try_send((from, bytes)).is_err() {
                self.shared.net.dropped_tx_frames.inc();
            }
            return Ok(());
        }
        match WireMessage::decode(&bytes) {
            Ok(WireMessage::Consensus(message)) => self.dispatch(Event::Message { from, message }),
            Ok(WireMessage::Transactions(_)) => Ok(()), // (not reached: routed above)
            Err(reason) => {
                tracing::warn!(peer = %from.short(), %reason, "undecodable message");
                self.shared.metrics.rejected_messages.inc();
                let _ = self.net.try_send(NetCommand::Penalize {
                    peer: from,
                    severe: true,
                });
                Ok(())
            }
        }
    }

    /// Feeds one event to the core and carries out its actions in order.
    fn dispatch(&mut self, event: Event) -> Result<(), NodeError> {
        let from = match &event {
            Event::Message { from, .. } => Some(*from),
            _ => None,
        };
        match self.core.handle(now_ms(), event) {
            Ok(actions) => {
                for action in actions {
                    self.execute(action)?;
                }
            }
            Err(e) => {
                self.shared.metrics.rejected_messages.inc();
                tracing::debug!(peer = ?from.map(|p| p.short()), error = %e, "rejected");
                if let (Some(peer), true) = (from, is_misbehaviour(&e)) {
                    let _ = self.net.try_send(NetCommand::Penalize {
                        peer,
                        severe: false,
                    });
                }
            }
        }
        Ok(())
    }

    fn send(&self, command: NetCommand) {
        if self.net.try_send(command).is_err() {
            self.shared.net.dropped_outbound.inc();
            tracing::warn!("network queue full; message dropped");
        }
    }

    /// Proposes once transactions are waiting, or when the empty-block delay has passed.
    fn maybe_propose(&mut self) -> Result<(), NodeError> {
        let Some((round, parent, deadline)) = self.pending_payload else {
            return Ok(());
        };
        if round != self.core.round() {
            self.pending_payload = None; // the round moved on
            return Ok(());
        }
        let (waiting, admitted) = self
            .shared
            .mempool
            .lock()
            .map_or((0, 0), |mp| (mp.len(), mp.admitted_total()));
        let early = tokio::time::Instant::now() < deadline;
        // Before the deadline, propose only once something is selectable: transactions can wait
        // in the mempool that cannot go yet (a nonce gap, or already in an ancestor block).
        if early && (waiting == 0 || self.nothing_selectable == Some(admitted)) {
            return Ok(());
        }
        let (payload, txs) = self.build_payload(&parent);
        if early && txs == 0 {
            self.nothing_selectable = Some(admitted);
            return Ok(());
        }
        self.pending_payload = None;
        self.dispatch(Event::PayloadReady { round, payload })
    }

    fn execute(&mut self, action: Action) -> Result<(), NodeError> {
        match action {
            Action::PersistSafety(data) => self.store.put_safety(&data)?,
            Action::Send { to, message } => {
                tracing::trace!(to = %to.short(), kind = message.kind(), "send");
                if let Some(bytes) = frame(WireMessage::Consensus(message)) {
                    self.send(NetCommand::Send { to, bytes });
                }
            }
            Action::Broadcast(message) => {
                tracing::trace!(kind = message.kind(), "broadcast");
                if let Some(bytes) = frame(WireMessage::Consensus(message)) {
                    self.send(NetCommand::Broadcast { bytes });
                }
            }
            Action::ScheduleTimeout { round, after_ms } => {
                tracing::debug!(round, after_ms, "round timer");
                let at = tokio::time::Instant::now() + Duration::from_millis(after_ms);
                self.timer = Some((round, at));
            }
            Action::RequestPayload { round, parent } => {
                // Built by the loop (`maybe_propose`), not here: the payload must see the effects
                // of every action of this batch, and the loop must get to run between blocks.
                let deadline = tokio::time::Instant::now() + self.empty_block_delay;
                self.pending_payload = Some((round, parent.id, deadline));
                self.nothing_selectable = None; // another parent excludes other transactions
            }
            Action::ServeBlocks { to, id, count } => self.serve_blocks(to, id, count),
            Action::StoreBlock(block) => self.store.put_uncommitted(&block)?,
            Action::Commit(commit) => self.apply_commit(commit)?,
            Action::ReportMisbehaviour(evidence) => {
                self.shared.metrics.evidence.inc();
                tracing::warn!(culprit = %evidence.culprit(), ?evidence, "equivocation detected");
            }
        }
        Ok(())
    }

    /// The decoded payload of `block`, from the cache or decoded now. A certified payload that
    /// does not decode (only possible with a Byzantine quorum) counts as empty on every node.
    fn payload_of(&self, block: &Block) -> Arc<DecodedPayload> {
        if let Some(p) = self
            .decoded
            .lock()
            .ok()
            .and_then(|d| d.get(&block.id).cloned())
        {
            return p;
        }
        let (payload, hashes) = BlockPayload::decode_hashed(&block.payload, usize::MAX, usize::MAX)
            .unwrap_or_else(|_| (BlockPayload::new(0, Digest::ZERO, Vec::new()), Vec::new()));
        let payload = Arc::new(DecodedPayload { payload, hashes });
        if let Ok(mut d) = self.decoded.lock() {
            d.insert(block.id, payload.clone());
        }
        payload
    }

    /// A payload extending `parent`: mempool transactions not already in an uncommitted ancestor.
    /// If the chain from `parent` down to our last commit is not all local (we are catching up),
    /// the ancestors' transactions are unknown, so the payload carries none rather than risk
    /// proposing one twice.
    fn build_payload(&self, parent: &Digest) -> (Vec<u8>, usize) {
        let mut exclude = HashSet::new();
        let mut cursor = *parent;
        let mut complete = false;
        while let Some(block) = self.core.block(&cursor) {
            exclude.extend(self.payload_of(block).hashes.iter().copied());
            cursor = block.parent().id;
            if cursor == self.tip.block.id {
                complete = true;
                break;
            }
        }
        complete |= *parent == self.tip.block.id;
        // Leave room for the payload's own fields within the block byte limit.
        let budget = self.max_block_bytes.saturating_sub(256);
        let txs = match (complete, self.shared.mempool.lock()) {
            (true, Ok(mp)) => mp.select(&self.store, self.max_block_txs, budget, &exclude),
            _ => Vec::new(),
        };
        let count = txs.len();
        let payload = BlockPayload::new(self.tip.block.height, self.tip.state_root, txs).encode();
        (payload, count)
        // (Our own block's payload is decoded once, by the next `payload_of` that needs it.)
    }

    /// Answers a block request from memory and storage, within the message size limit.
    fn serve_blocks(&mut self, to: PublicKey, id: Digest, count: u32) {
        let store = &self.store;
        let mut blocks = self
            .core
            .collect_chain(&id, count, |id| store.block_by_id(id).ok().flatten());
        let budget = self.max_message_bytes / 2;
        let mut used = 0usize;
        let keep = blocks
            .iter()
            .take_while(|b| {
                used = used.saturating_add(b.payload.len() + 1024);
                used <= budget
            })
            .count()
            .max(1);
        blocks.truncate(keep);
        if !blocks.is_empty() {
            let message = Message::BlockResponse(BlockResponse { blocks });
            if let Some(bytes) = frame(WireMessage::Consensus(message)) {
                self.send(NetCommand::Send { to, bytes });
            }
        }
    }

    /// Executes and stores each committed block in its own synced write batch.
    fn apply_commit(&mut self, commit: Commit) -> Result<(), NodeError> {
        self.nothing_selectable = None;
        let n = commit.blocks.len();
        for (i, block) in commit.blocks.iter().enumerate() {
            let started = Instant::now();
            let decoded = self.payload_of(block);
            let payload = &decoded.payload;
            let exec = execute(&self.store, &payload.txs)?;
            let (state_root, tree) = compute_state_root(&self.store, block.height, &exec.updates)?;
            let hashes = &decoded.hashes;
            let mut records = Vec::with_capacity(hashes.len());
            let mut applied = 0u64;
            for (index, (hash, outcome)) in hashes.iter().zip(&exec.outcomes).enumerate() {
                if matches!(outcome, TxOutcome::Applied) {
                    applied += 1;
                } else if matches!(outcome, TxOutcome::Failed(TxError::BadNonce { .. }))
                    && self.store.tx(hash)?.is_some()
                {
                    continue; // a repeat of a committed transaction keeps its first record
                }
                records.push((
                    *hash,
                    TxRecord {
                        height: block.height,
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        outcome: outcome.clone(),
                    },
                ));
            }
            let qc = match commit.blocks.get(i + 1) {
                Some(child) => child.qc.clone(),
                None => commit.proof.clone(),
            };
            let tip = CommitTip {
                block: block.info(),
                qc,
                state_root,
                committed_txs: self.tip.committed_txs.saturating_add(applied),
            };
            self.store.commit_block(BlockWrite {
                block,
                state_root,
                records: &records,
                accounts: &exec.updates,
                tree,
                tip: &tip,
            })?;
            self.tip = tip;
            if let Ok(mut roots) = self.roots.write() {
                roots.insert(block.height, state_root);
                while roots.len() > ROOT_CACHE {
                    roots.pop_first();
                }
            }
            if let Ok(mut mp) = self.shared.mempool.lock() {
                mp.remove_committed(&self.store, hashes.iter().copied().zip(&payload.txs))?;
                let expired = mp.expire_gapped(&self.store, now_ms())?;
                if let Some((hash, why)) = expired.first() {
                    self.shared.metrics.expired_txs.inc_by(expired.len() as u64);
                    tracing::info!(count = expired.len(), first = %hash, %why, "pending transfers expired behind nonce gaps");
                }
            }
            let m = &self.shared.metrics;
            m.committed_blocks.inc();
            m.committed_txs.inc_by(applied);
            m.failed_txs.inc_by(exec.outcomes.len() as u64 - applied);
            m.commit_seconds.observe(started.elapsed().as_secs_f64());
            if let Some(last) = self.last_commit.replace(Instant::now()) {
                m.block_interval_seconds
                    .observe(last.elapsed().as_secs_f64());
            }
            tracing::info!(
                height = block.height,
                id = %block.id.short(),
                txs = payload.txs.len(),
                applied,
                last = i + 1 == n,
                "committed"
            );
        }
        // Forget uncommitted-block bookkeeping for blocks that can no longer commit.
        let core = &self.core;
        if let Ok(mut d) = self.decoded.lock() {
            d.retain(|id, _| core.block(id).is_some());
        }
        Ok(())
    }

    fn refresh_status(&self) {
        let (orphans, high) = (
            self.core.pending_blocks().1,
            self.core.high_qc().block().height,
        );
        let syncing = orphans > 0 || high > self.tip.block.height.saturating_add(3);
        let (mp_txs, mp_bytes) = match self.shared.mempool.lock() {
            Ok(mp) => (mp.len(), mp.bytes()),
            Err(_) => (0, 0),
        };
        let peers = self
            .shared
            .net
            .connected_validators
            .load(std::sync::atomic::Ordering::Relaxed);
        let m = &self.shared.metrics;
        m.height
            .set(i64::try_from(self.tip.block.height).unwrap_or(i64::MAX));
        m.round
            .set(i64::try_from(self.core.round()).unwrap_or(i64::MAX));
        m.mempool_txs.set(i64::try_from(mp_txs).unwrap_or(i64::MAX));
        m.mempool_bytes
            .set(i64::try_from(mp_bytes).unwrap_or(i64::MAX));
        m.peers.set(i64::try_from(peers).unwrap_or(i64::MAX));
        m.syncing.set(i64::from(syncing));
        let sent = self.core.stats().timeouts_sent;
        let counted = m.timeouts.get();
        if sent > counted {
            m.timeouts.inc_by(sent - counted);
        }
        if let Ok(mut s) = self.shared.status.write() {
            s.height = self.tip.block.height;
            s.block_id = self.tip.block.id;
            s.state_root = self.tip.state_root;
            s.round = self.core.round();
            s.high_qc_height = high;
            s.syncing = syncing;
            s.peers = peers;
            s.mempool_txs = mp_txs;
            s.mempool_bytes = mp_bytes;
            s.committed_txs = self.tip.committed_txs;
        }
    }
}
