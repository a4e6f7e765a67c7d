//! The deterministic simulator: virtual time, a seeded network model, and in every node the
//! daemon's own host ([`hotledger_node::host::Host`]) over the in-memory store: the real
//! consensus core, payload checks, proposal pacing, execution of signed transfers, state roots,
//! mempools and block serving. One run is a pure function of its `SimConfig` and seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

use hotledger_consensus::{
    proposal_signing_bytes, Block, BlockInfo, Config, ConsensusError, Event, Message, Params,
    Proposal, SafetyData, Validator, ValidatorSet,
};
use hotledger_crypto::{Digest, Domain, KeyPair, PublicKey};
use hotledger_ledger::{BlockPayload, Mempool, MempoolLimits, Origin, Transfer};
use hotledger_node::host::{sync, Host, HostConfig, Outgoing, Output, Pacing, SyncMessage};
use hotledger_node::storage::{ChainStore, MemorySafety, MemoryStore, SafetyStore};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::checker::{Checker, CommittedBlock, Verdict};
use crate::load::Client;
use crate::omission::{self, Omission};
use crate::scenario::{Scenario, SimConfig};

const CHAIN_ID: &str = "hotledger-sim";
/// Hard cap on processed events per run, so every run ends by itself.
const MAX_EVENTS: u64 = 20_000_000;
/// Block limits of the simulated chain.
const MAX_BLOCK_TXS: usize = 1_000;
const MAX_BLOCK_BYTES: usize = 1 << 20;
const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The result of one simulated run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub seed: u64,
    pub verdict: Verdict,
    /// Consensus messages put on the wire (one per recipient; sync messages not counted).
    pub messages: u64,
    /// Mean time from proposal to commit over honest nodes' commits, in virtual ms.
    pub mean_commit_latency_ms: f64,
    pub events: u64,
    pub end_ms: u64,
}

#[derive(Debug)]
struct SimNode {
    key: KeyPair,
    honest: bool,
    /// A full node: its host runs without a validator key (`key` only names it).
    full: bool,
    /// `None` while crashed.
    host: Option<Host<MemoryStore>>,
    /// What survives a crash (the host writes it).
    disk: MemoryStore,
    /// The safety record, apart from the chain data: it survives crashes and wipes.
    safety: MemorySafety,
    incarnation: u64,
    /// When a tick is queued for this node's host.
    tick_at: Option<u64>,
}

/// What travels between simulated nodes.
#[derive(Clone, Debug)]
enum Payload {
    Consensus(Message),
    Sync(SyncMessage),
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: PublicKey,
        msg: Payload,
    },
    /// The host's timer or pacing deadline.
    Tick {
        node: usize,
        inc: u64,
    },
    /// The client signs a transfer and submits it to every live node.
    Submit,
    Crash {
        node: usize,
        /// The chain data is lost too (the safety record is not).
        wipe: bool,
    },
    /// Tell every live node which validators have no live node (their connections dropped).
    Unreachable,
    Restart {
        node: usize,
    },
    Gst,
}

#[derive(Debug)]
struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    /// Reversed: `BinaryHeap` pops the earliest event first, ties in insertion order.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// One simulated network.
#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    scenario: Scenario,
    rng: ChaCha8Rng,
    nodes: Vec<SimNode>,
    validators: ValidatorSet,
    genesis: BlockInfo,
    genesis_hash: Digest,
    queue: BinaryHeap<Queued>,
    seq: u64,
    now: u64,
    checker: Checker,
    client: Client,
    messages: u64,
    latency_sum_ms: u64,
    latency_count: u64,
    /// `SIM_DEBUG` set: trace crashes and commits to stderr (read once, not per event).
    debug: bool,
    /// Validators leaving one honest validator out (`SimConfig::omission`).
    omission: Option<Omission>,
}

impl Sim {
    pub fn new(cfg: SimConfig, seed: u64) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scenario = Scenario::draw(&cfg, &mut rng);
        Self::build(cfg, scenario, rng)
    }

    /// A network with the given faults instead of ones drawn from the seed (the seed still
    /// drives jitter, loss and the client's transfers).
    pub fn with_scenario(cfg: SimConfig, scenario: Scenario, seed: u64) -> Sim {
        Self::build(cfg, scenario, ChaCha8Rng::seed_from_u64(seed))
    }

    fn build(cfg: SimConfig, scenario: Scenario, rng: ChaCha8Rng) -> Sim {
        let keys: Vec<KeyPair> = (0..cfg.validators)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
                KeyPair::from_seed(seed)
            })
            .collect();
        let validators = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator {
                    key: k.public(),
                    power: 1,
                })
                .collect(),
        )
        .unwrap_or_else(|e| panic!("simulator validator set: {e}"));
        let genesis_hash = Digest::of(b"hotledger simulated genesis");
        let genesis = Config::genesis_block(genesis_hash, 0);
        let mut nodes: Vec<SimNode> = (0..cfg.nodes())
            .map(|i| {
                let key_index = if i < cfg.validators {
                    i
                } else {
                    i - cfg.validators
                };
                SimNode {
                    key: keys[key_index].clone(),
                    full: false,
                    honest: key_index >= cfg.twins + cfg.forgers
                        && !cfg
                            .omission
                            .as_ref()
                            .is_some_and(|o| o.omitters.contains(&key_index)),
                    host: None,
                    disk: MemoryStore::new(),
                    safety: MemorySafety::new(),
                    incarnation: 0,
                    tick_at: None,
                }
            })
            .collect();
        for i in 0..cfg.full_nodes {
            let mut seed = [0xf0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            nodes.push(SimNode {
                key: KeyPair::from_seed(seed),
                honest: true,
                full: true,
                host: None,
                disk: MemoryStore::new(),
                safety: MemorySafety::new(),
                incarnation: 0,
                tick_at: None,
            });
        }
        let omission = cfg.omission.clone().map(|spec| {
            let target = keys[spec.target].public();
            let own = spec.omitters.iter().map(|&i| keys[i].clone()).collect();
            Omission::new(spec, target, own)
        });
        let mut sim = Sim {
            cfg,
            scenario,
            rng,
            nodes,
            validators,
            genesis,
            genesis_hash,
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            checker: Checker::default(),
            client: Client::new(),
            messages: 0,
            latency_sum_ms: 0,
            latency_count: 0,
            debug: std::env::var_os("SIM_DEBUG").is_some(),
            omission,
        };
        sim.schedule_faults();
        sim
    }

    fn schedule_faults(&mut self) {
        for node in 0..self.nodes.len() {
            if self.scenario.silent != Some(node) {
                self.push(0, Ev::Restart { node });
            }
        }
        if let Some(node) = self.scenario.silent {
            self.push(self.cfg.gst_ms, Ev::Restart { node });
        }
        for (i, &(node, down, up)) in self.scenario.crashes.clone().iter().enumerate() {
            let wipe = self.scenario.wipes.contains(&i);
            self.push(down, Ev::Crash { node, wipe });
            self.push(up, Ev::Restart { node });
        }
        self.push(self.cfg.gst_ms, Ev::Gst);
        if self.cfg.tx_interval_ms > 0 {
            self.push(self.cfg.tx_interval_ms, Ev::Submit);
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn honest(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].honest)
            .collect()
    }

    fn config_for(&self, node: usize) -> HostConfig {
        let n = &self.nodes[node];
        let mut cfg = Config::new(
            CHAIN_ID,
            self.genesis,
            self.validators.clone(),
            (!n.full).then(|| n.key.clone()),
        );
        cfg.params = Params {
            base_timeout_ms: self.cfg.base_timeout_ms,
            max_backoff_exponent: self.cfg.max_backoff_exponent,
            ..Params::default()
        };
        // The daemon's orphan bound by default.
        cfg.limits.max_orphan_blocks = self.cfg.max_orphan_blocks;
        if !self.cfg.reputation {
            cfg.reputation.window_blocks = 0;
        }
        if n.honest {
            cfg.disabled_rule = self.cfg.disabled_rule;
        }
        let omitter = self.omission.as_ref().is_some_and(|o| o.is_omitter(node));
        HostConfig {
            consensus: cfg,
            genesis_hash: self.genesis_hash,
            genesis_accounts: self.client.genesis_accounts(),
            max_block_txs: MAX_BLOCK_TXS,
            max_block_bytes: MAX_BLOCK_BYTES,
            max_message_bytes: MAX_MESSAGE_BYTES,
            pacing: Pacing {
                empty_block_delay_ms: self.cfg.payload_delay_ms.max(1),
                // An omitter leader waits for the votes it means to rebuild its QC from.
                min_delay_ms: if omitter { omission::WAIT_MS } else { 0 },
            },
            snapshot_every: self.cfg.snapshot_every,
            // A restart, not the network's first start (when nobody has snapshots).
            state_sync: self.cfg.state_sync && self.now > 0,
        }
    }

    /// Runs until `end_ms` (virtual), or until every honest node has recovered after GST when
    /// `stop_when_recovered` is set.
    pub fn run(mut self, end_ms: u64, stop_when_recovered: bool, seed: u64) -> RunReport {
        let events = self.run_events(end_ms, stop_when_recovered);
        self.report(events, seed)
    }

    /// Runs until `end_ms` and returns, with the report, the blocks honest nodes committed
    /// (the first honest commit at each height, lowest height first).
    pub fn run_chain(mut self, end_ms: u64, seed: u64) -> (RunReport, Vec<CommittedBlock>) {
        let events = self.run_events(end_ms, false);
        let chain = self.checker.chain();
        (self.report(events, seed), chain)
    }

    fn run_events(&mut self, end_ms: u64, stop_when_recovered: bool) -> u64 {
        let mut events = 0;
        let honest = self.honest();
        while let Some(q) = self.queue.pop() {
            if q.at > end_ms || events >= MAX_EVENTS {
                break;
            }
            self.now = q.at;
            events += 1;
            self.dispatch(q.ev);
            if stop_when_recovered && events % 256 == 0 {
                // A safety violation settles the run; so does every honest node recovering.
                if !self.checker.verdict.safe()
                    || (self.now > self.cfg.gst_ms && self.checker.finish_peek(&honest))
                {
                    break;
                }
            }
        }
        events
    }

    fn report(&mut self, events: u64, seed: u64) -> RunReport {
        let verdict = self.checker.finish(&self.honest(), self.cfg.gst_ms);
        RunReport {
            seed,
            verdict,
            messages: self.messages,
            mean_commit_latency_ms: if self.latency_count == 0 {
                0.0
            } else {
                self.latency_sum_ms as f64 / self.latency_count as f64
            },
            events,
            end_ms: self.now,
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver {
                to,
                from,
                msg: Payload::Consensus(msg),
            } => {
                if self.omission.as_mut().is_some_and(|o| o.drops(to, &msg)) {
                    return;
                }
                self.step(to, Event::Message { from, message: msg });
            }
            Ev::Deliver {
                to,
                from,
                msg: Payload::Sync(msg),
            } => self.deliver_sync(to, from, msg),
            Ev::Tick { node, inc } => {
                if self.nodes[node].incarnation == inc {
                    if self.nodes[node].tick_at == Some(self.now) {
                        self.nodes[node].tick_at = None;
                    }
                    self.tick(node);
                }
            }
            Ev::Submit => self.submit(),
            Ev::Crash { node, wipe } => self.crash(node, wipe),
            Ev::Restart { node } => {
                self.restart(node);
                self.detect_crashes();
            }
            Ev::Unreachable => self.tell_unreachable(),
            Ev::Gst => {
                self.checker.mark_gst();
                for node in 0..self.nodes.len() {
                    if self.nodes[node].host.is_none() {
                        self.restart(node);
                    }
                }
                self.detect_crashes();
            }
        }
    }

    /// A process crash: the host and its mempool are gone; the disk keeps what a crash keeps
    /// (synced writes and what they cover; not the state-tree nodes held in memory). With
    /// `wipe`, the chain data is gone too, as if the operator deleted `data/`; the safety
    /// record stays.
    fn crash(&mut self, node: usize, wipe: bool) {
        if self.debug {
            eprintln!("t={} node {node} crashes (wipe: {wipe})", self.now);
        }
        let n = &mut self.nodes[node];
        if n.host.take().is_some() {
            n.disk = if wipe {
                self.checker.wiped(node);
                MemoryStore::new()
            } else {
                n.disk.crash()
            };
        }
        n.incarnation += 1;
        n.tick_at = None;
        self.detect_crashes();
    }

    fn tell_unreachable(&mut self) {
        let validators: Vec<PublicKey> = self
            .validators
            .validators()
            .iter()
            .map(|v| v.key)
            .filter(|k| {
                self.nodes
                    .iter()
                    .all(|n| n.key.public() != *k || n.host.is_none())
            })
            .collect();
        for node in 0..self.nodes.len() {
            let validators = validators.clone();
            self.step(node, Event::Unreachable { validators });
        }
    }

    /// After a crash or restart: the others learn who is unreachable after the detection delay.
    fn detect_crashes(&mut self) {
        if let Some(delay) = self.cfg.detect_crash_ms {
            self.push(self.now.saturating_add(delay), Ev::Unreachable);
        }
    }

    /// Starts a node's host over its disk: genesis on the first start, the state-tree rebuild
    /// after a crash, the core's recovery from the stored safety data and blocks.
    fn restart(&mut self, node: usize) {
        if self.nodes[node].host.is_some() {
            return;
        }
        let config = self.config_for(node);
        let mempool = Arc::new(Mutex::new(Mempool::new(
            CHAIN_ID.to_string(),
            MempoolLimits::default(),
        )));
        let disk = self.nodes[node].disk.clone();
        let safety = Arc::new(self.nodes[node].safety.clone());
        match Host::open(disk, safety, mempool, config) {
            Ok((host, opened)) => {
                self.checker.rebuilt(opened.rebuilt);
                self.nodes[node].host = Some(host);
                self.nodes[node].incarnation += 1;
                self.step(node, Event::Start);
            }
            Err(e) => panic!("node {node} cannot restart from its own disk: {e}"),
        }
    }

    fn step(&mut self, node: usize, event: Event) {
        let now = self.now;
        let Some(host) = self.nodes[node].host.as_mut() else {
            return; // down: the message is lost
        };
        match host.handle(now, event) {
            Ok(out) => self.carry_out(node, out),
            Err(e) => panic!("node {node}: storage failed in memory: {e}"),
        }
    }

    /// A sync message: a request is served from the node's disk (as the daemon does off its
    /// loop), anything else goes to its host.
    fn deliver_sync(&mut self, node: usize, from: PublicKey, msg: SyncMessage) {
        let now = self.now;
        if self.nodes[node].host.is_none() {
            return; // down: the message is lost
        }
        let answer = sync::answer(&self.nodes[node].disk, &msg, MAX_MESSAGE_BYTES / 2)
            .unwrap_or_else(|e| panic!("node {node}: serving sync failed in memory: {e}"));
        if let Some(mut answer) = answer {
            if self.is_forger(node) {
                // A Byzantine server, as the daemon's `tampered-sync` fault mode.
                hotledger_node::faults::tamper_sync(&mut answer);
            }
            self.route(node, Some(from), Payload::Sync(answer));
            return;
        }
        let Some(host) = self.nodes[node].host.as_mut() else {
            return;
        };
        match host.handle_sync(now, from, msg) {
            Ok(out) => self.carry_out(node, out),
            Err(e) => panic!("node {node}: storage failed in memory: {e}"),
        }
    }

    fn tick(&mut self, node: usize) {
        let now = self.now;
        let Some(host) = self.nodes[node].host.as_mut() else {
            return;
        };
        match host.tick(now) {
            Ok(out) => self.carry_out(node, out),
            Err(e) => panic!("node {node}: storage failed in memory: {e}"),
        }
    }

    /// The client signs one transfer and submits it to every live node's mempool.
    fn submit(&mut self) {
        let (from, tx) = self.client.next(&mut self.rng, CHAIN_ID);
        let mut admitted = false;
        for node in 0..self.nodes.len() {
            let Some(host) = self.nodes[node].host.as_ref() else {
                continue;
            };
            let store = host.store().clone();
            let results = host
                .mempool()
                .lock()
                .map(|mut mp| {
                    let screened = mp.screen(&store, vec![tx.clone()], Origin::Client);
                    mp.admit_verified(&store, screened.verify())
                })
                .unwrap_or_default();
            if results.iter().any(Result::is_ok) {
                admitted = true;
                self.tick(node); // a proposal waiting for transactions goes now
            }
        }
        if admitted {
            self.client.admitted(from, &tx);
        }
        let next = self.now.saturating_add(self.cfg.tx_interval_ms);
        self.push(next, Ev::Submit);
    }

    /// Carries out a host's output: checks, then its messages onto the simulated network, then
    /// a tick at the host's next deadline.
    fn carry_out(&mut self, node: usize, out: Output) {
        if self.debug {
            for m in &out.messages {
                trace(self.now, node, m);
            }
        }
        if self.nodes[node].honest {
            self.check_persisted(node, &out);
            self.checker
                .sync(out.sync_switched == Some(true), out.sync_refused.len());
            self.checker
                .restore(out.restored.is_some(), out.restore_refused.len());
            if std::env::var_os("SIM_DEBUG").is_some() {
                for (peer, e) in &out.restore_refused {
                    eprintln!(
                        "node {node} refused a snapshot response of {}: {e}",
                        peer.short()
                    );
                }
            }
            if std::env::var_os("SIM_DEBUG").is_some() {
                if let Some(r) = &out.restored {
                    eprintln!("node {node} t={} restored {r:?}", self.now);
                }
                if out.restore_abandoned {
                    eprintln!("node {node} t={} gave up state sync", self.now);
                }
                if let Some(s) = out.sync_switched {
                    eprintln!("node {node} t={} sync switched {s}", self.now);
                }
                for m in &out.messages {
                    if let Outgoing::Sync {
                        to: Some(to),
                        message:
                            m @ (SyncMessage::Request { .. } | SyncMessage::ChunkRequest { .. }),
                    } = m
                    {
                        eprintln!("node {node} t={} asks {}: {m:?}", self.now, to.short());
                    }
                }
            }
            if out.restored.is_some() {
                if let Ok(Some(tip)) = self.nodes[node].disk.tip() {
                    self.checker
                        .restored(node, tip.block.height, tip.block.id, tip.state_root);
                }
            }
            if !out.evidence.is_empty() {
                self.checker.evidence();
            }
            for r in &out.rejected {
                if matches!(r.error, ConsensusError::InvalidPayload { .. }) {
                    self.checker.payload_refused();
                    if std::env::var_os("SIM_DEBUG").is_some() {
                        eprintln!("t={} node {node} refused: {}", self.now, r.error);
                    }
                }
            }
        }
        if !out.committed.is_empty() {
            self.on_commit(node, &out);
        }
        // Made at once here; the daemon makes them off its loop.
        for due in &out.snapshot_due {
            hotledger_node::storage::snapshot::create(
                &self.nodes[node].disk,
                due.height,
                due.certified_by,
                4,
            )
            .unwrap_or_else(|e| panic!("node {node}: making a snapshot failed in memory: {e}"));
        }
        for m in out.messages {
            match m {
                Outgoing::Send { to, message } => self.send(node, Some(to), message),
                Outgoing::Broadcast(message) => self.send(node, None, message),
                Outgoing::Sync { to, message } => self.route(node, to, Payload::Sync(message)),
            }
        }
        self.schedule_tick(node);
    }

    /// Every vote, timeout and proposal an honest host hands out is covered by its durable
    /// safety record, and every vote it signed is recorded for the conflicting-vote check.
    fn check_persisted(&mut self, node: usize, out: &Output) {
        let n = &self.nodes[node];
        let safety: SafetyData = match n.safety.get() {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => panic!("node {node}: safety read failed in memory: {e}"),
        };
        let key = n.key.public();
        if let Some(v) = &safety.last_vote {
            self.checker.signed_vote(key, v.data);
        }
        for m in &out.messages {
            let message = match m {
                Outgoing::Send { message, .. } | Outgoing::Broadcast(message) => message,
                Outgoing::Sync { .. } => continue,
            };
            match message {
                Message::Vote(v) if v.author == key => self.checker.signed_vote(key, v.data),
                Message::Timeout(t) => {
                    if let Some(v) = t.vote.as_ref().filter(|v| v.author == key) {
                        self.checker.signed_vote(key, v.data);
                    }
                }
                _ => {}
            }
            let covered = match message {
                Message::Vote(v) => v.round() <= safety.last_voted_round,
                Message::Timeout(t) => t.round <= safety.highest_timeout_round,
                Message::Proposal(p) if p.block.author == n.key.public() => {
                    p.block.round <= safety.last_proposed_round
                }
                _ => true,
            };
            if !covered {
                self.checker.unpersisted_send();
            }
        }
    }

    fn schedule_tick(&mut self, node: usize) {
        let now = self.now;
        let n = &mut self.nodes[node];
        let Some(at) = n.host.as_ref().and_then(|h| h.wake_at(now)) else {
            return;
        };
        let at = at.max(now.saturating_add(1));
        if n.tick_at.is_some_and(|queued| queued <= at && queued > now) {
            return;
        }
        n.tick_at = Some(at);
        let inc = n.incarnation;
        self.push(at, Ev::Tick { node, inc });
    }

    /// A node's commits: the checkers (blocks, state roots, transactions), latency, and (in an
    /// omission run) whether the target is still a leader candidate at this honest node.
    fn on_commit(&mut self, node: usize, out: &Output) {
        let now = self.now;
        if !self.nodes[node].honest {
            return;
        }
        for report in &out.committed {
            let stored = match self.nodes[node].disk.block_by_height(report.height) {
                Ok(Some(stored)) => stored,
                other => panic!(
                    "node {node}: committed height {} not stored: {other:?}",
                    report.height
                ),
            };
            let block = &stored.block;
            if self.debug {
                eprintln!(
                    "t={now} node {node} commits {}:{}",
                    block.height,
                    block.id.short()
                );
            }
            let (txs, txs_known) = payload_txs(&block.payload, &self.client);
            self.checker.committed(node, block, &txs, txs_known, now);
            self.checker
                .state_root(block.height, stored.state_root, report.applied);
            if let Ok(p) = BlockPayload::decode(&block.payload, usize::MAX, usize::MAX) {
                self.checker
                    .root_claim(block.height, p.state_height, p.state_root);
            }
            self.latency_sum_ms += now.saturating_sub(block.timestamp_ms);
            self.latency_count += 1;
        }
        self.watch_target(node);
    }

    /// Counts an honest node's view in which the omission target may not lead.
    fn watch_target(&mut self, node: usize) {
        let (Some(o), true) = (&self.omission, self.nodes[node].honest) else {
            return;
        };
        if let Some(host) = &self.nodes[node].host {
            let core = host.core();
            if !core.leader_candidates(core.round()).contains(&o.target()) {
                self.checker.target_excluded();
            }
        }
    }

    /// Sends a node's message, bent by its Byzantine role if it has one.
    fn send(&mut self, node: usize, to: Option<PublicKey>, message: Message) {
        let message = match (message, self.omission.as_mut()) {
            (Message::Proposal(p), Some(o)) if o.is_omitter(node) => {
                let key = &self.nodes[node].key;
                Message::Proposal(o.rewrite(p, key, CHAIN_ID, &self.validators))
            }
            (Message::Vote(v), Some(o)) if o.is_omitter(node) => {
                Message::Vote(o.redirect_vote(v, &self.nodes[node].key, CHAIN_ID))
            }
            (message, _) => message,
        };
        if let (Message::Proposal(p), Some(o)) = (&message, self.omission.as_mut()) {
            o.note_proposal(p);
        }
        let message = match message {
            Message::Proposal(p) if self.is_forger(node) => Message::Proposal(self.forge(node, p)),
            message => message,
        };
        match message {
            Message::Proposal(p) if to.is_none() && self.scenario.equivocator == Some(node) => {
                self.equivocate(node, p);
            }
            message => self.route(node, to, Payload::Consensus(message)),
        }
    }

    /// Sends `msg` from `from` to the nodes holding key `to` (or to every node with another key),
    /// through the partition and loss model.
    fn route(&mut self, from: usize, to: Option<PublicKey>, msg: Payload) {
        let sender = self.nodes[from].key.public();
        let from_group = self.scenario.group(from, self.now, self.cfg.gst_ms);
        for j in 0..self.nodes.len() {
            let key = self.nodes[j].key.public();
            let addressed = match to {
                Some(k) => k == key && j != from,
                None => key != sender,
            };
            if !addressed {
                continue;
            }
            self.send_one(from_group, j, sender, msg.clone());
        }
    }

    fn send_one(&mut self, from_group: u8, to: usize, sender: PublicKey, msg: Payload) {
        let before_gst = self.now < self.cfg.gst_ms;
        if before_gst {
            if self.scenario.group(to, self.now, self.cfg.gst_ms) != from_group {
                return;
            }
            let drop = self.scenario.drop_per_mille;
            if drop > 0 && self.rng.gen_range(0..1000) < drop {
                return;
            }
        }
        let jitter = if self.scenario.jitter_ms > 0 {
            self.rng.gen_range(0..=self.scenario.jitter_ms)
        } else {
            0
        };
        let at = self.now + self.scenario.delay_ms.max(1) + jitter;
        // Consensus messages only: the communication measurement is about the protocol.
        if matches!(msg, Payload::Consensus(_)) {
            self.messages += 1;
        }
        self.push(
            at,
            Ev::Deliver {
                to,
                from: sender,
                msg,
            },
        );
    }

    fn is_forger(&self, node: usize) -> bool {
        let key = self.nodes[node].key.public();
        self.validators.validators()[self.cfg.twins..self.cfg.twins + self.cfg.forgers]
            .iter()
            .any(|v| v.key == key)
    }

    /// A forger's proposal: its own block with one more transfer whose signature is forged
    /// (signed by the forger's key): in turn a new transfer between the client's accounts, and
    /// a copy of the client's last admitted transfer (same hash, other signature bytes: a node
    /// that checked the genuine one must still check this one).
    fn forge(&mut self, node: usize, mut p: Proposal) -> Proposal {
        let key = self.nodes[node].key.clone();
        if p.block.author != key.public() {
            return p;
        }
        let Ok(mut payload) = BlockPayload::decode(&p.block.payload, usize::MAX, usize::MAX) else {
            return p;
        };
        if self.cfg.root_liars {
            // Even rounds: a wrong root at the honest claim's height. Odd rounds: the honest
            // root claimed one height above, which no voter has executed yet.
            let (height, root) = if p.block.round.is_multiple_of(2) {
                let mut root = *payload.state_root.as_bytes();
                root[0] ^= 1;
                (payload.state_height, Digest(root))
            } else {
                (payload.state_height.saturating_add(1), payload.state_root)
            };
            let payload = BlockPayload::new(height, root, payload.txs);
            p.block.payload = payload.encode();
            reseal(&mut p.block, &key, CHAIN_ID);
            return p;
        }
        let copy = self
            .client
            .last_admitted()
            .filter(|tx| payload.txs.iter().all(|t| t.hash() != tx.hash()))
            .map(|tx| tx.transfer.clone());
        let transfer = match copy {
            Some(transfer) if p.block.round.is_multiple_of(2) => transfer,
            _ => {
                let accounts = self.client.genesis_accounts();
                Transfer {
                    from: accounts[0].0,
                    to: accounts[1].0,
                    amount: 1,
                    nonce: self.rng.gen_range(0..1_000_000),
                }
            }
        };
        payload.txs.push(transfer.sign(&key, CHAIN_ID));
        let payload = BlockPayload::new(payload.state_height, payload.state_root, payload.txs);
        p.block.payload = payload.encode();
        reseal(&mut p.block, &key, CHAIN_ID);
        p
    }

    /// A Byzantine leader: the real proposal to half the nodes, a conflicting one (same round
    /// and payload, another timestamp, validly signed) to the other half.
    fn equivocate(&mut self, node: usize, p: Proposal) {
        let key = self.nodes[node].key.clone();
        let mut other = p.clone();
        let b = &mut other.block;
        b.timestamp_ms = b.timestamp_ms.saturating_add(1);
        reseal(b, &key, CHAIN_ID);
        let sender = key.public();
        let from_group = self.scenario.group(node, self.now, self.cfg.gst_ms);
        for j in 0..self.nodes.len() {
            if self.nodes[j].key.public() == sender {
                continue;
            }
            let msg = if j % 2 == 0 { p.clone() } else { other.clone() };
            self.send_one(
                from_group,
                j,
                sender,
                Payload::Consensus(Message::Proposal(msg)),
            );
        }
    }
}

/// The hashes of a committed payload's transactions, and whether every one is a transaction
/// the client signed (an undecodable certified payload counts as empty on every node, as the
/// host executes it).
fn payload_txs(payload: &[u8], client: &Client) -> (Vec<Digest>, bool) {
    match BlockPayload::decode(payload, usize::MAX, usize::MAX) {
        Ok(p) => {
            let hashes: Vec<Digest> = p.txs.iter().map(|tx| tx.hash()).collect();
            let known = p
                .txs
                .iter()
                .zip(&hashes)
                .all(|(tx, hash)| client.signed(hash, &tx.signature));
            (hashes, known)
        }
        Err(_) => (Vec::new(), true),
    }
}

/// One line per message of interest, for `SIM_DEBUG` runs.
fn trace(now: u64, node: usize, m: &Outgoing) {
    let what = match m {
        Outgoing::Broadcast(Message::Proposal(p)) => format!(
            "proposes round {} on qc {} tc {:?} signers {:?}",
            p.block.round,
            p.block.qc.round(),
            p.tc.as_ref().map(|t| t.round),
            p.block.qc.votes.iter().map(|v| v.0).collect::<Vec<_>>()
        ),
        Outgoing::Broadcast(Message::Timeout(t)) => format!(
            "times out round {} (high qc {}, vote {})",
            t.round,
            t.high_qc.round(),
            t.vote.is_some()
        ),
        Outgoing::Send {
            message: Message::Vote(v),
            ..
        } => format!("votes round {}", v.round()),
        _ => return,
    };
    eprintln!("t={now} node {node} {what}");
}

/// Runs one seed of a scenario run (faults, GST, liveness bound), stopping early once every
/// honest node has recovered.
pub fn run_seed(cfg: &SimConfig, seed: u64) -> RunReport {
    let end = cfg.gst_ms + cfg.liveness_bound_ms;
    Sim::new(cfg.clone(), seed).run(end, true, seed)
}

/// Runs a clean network for `duration_ms` of virtual time (for the scale measurement).
pub fn run_clean(cfg: &SimConfig, seed: u64, duration_ms: u64) -> RunReport {
    let mut cfg = cfg.clone();
    cfg.faults = false;
    cfg.gst_ms = 0;
    Sim::new(cfg, seed).run(duration_ms, false, seed)
}

/// After a block's fields were changed: its id computed again and the proposal signed again by
/// `key`, as a Byzantine author would.
pub(crate) fn reseal(b: &mut Block, key: &KeyPair, chain_id: &str) {
    b.id = Block::compute_id(
        b.round,
        b.height,
        b.timestamp_ms,
        &b.author,
        &b.qc,
        &b.failed_leaders,
        &b.payload,
    );
    b.signature = key.sign(
        Domain::Proposal,
        chain_id,
        &proposal_signing_bytes(b.round, b.height, &b.id),
    );
}
