//! The deterministic simulator: virtual time, a seeded network model, and the real consensus
//! core in every node. One run is a pure function of its `SimConfig` and seed.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use hotledger_consensus::{
    proposal_signing_bytes, Action, Block, BlockInfo, BlockResponse, Commit, Config, Consensus,
    Event, Message, Params, Proposal, QuorumCert, Recovery, SafetyData, Validator, ValidatorSet,
};
use hotledger_crypto::{Digest, Domain, KeyPair, PublicKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::checker::{Checker, CommittedBlock, Verdict};
use crate::omission::{self, Omission};
use crate::scenario::{Scenario, SimConfig};

const CHAIN_ID: &str = "hotledger-sim";
/// `consensus.max_orphan_blocks` in the daemon's default configuration.
const DAEMON_MAX_ORPHANS: usize = 4_096;
/// Hard cap on processed events per run, so every run ends by itself.
const MAX_EVENTS: u64 = 20_000_000;

/// The result of one simulated run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub seed: u64,
    pub verdict: Verdict,
    /// Messages put on the wire (one per recipient).
    pub messages: u64,
    /// Mean time from proposal to commit over honest nodes' commits, in virtual ms.
    pub mean_commit_latency_ms: f64,
    pub events: u64,
    pub end_ms: u64,
}

/// What survives a crash.
#[derive(Debug)]
struct Disk {
    safety: SafetyData,
    root: BlockInfo,
    root_qc: QuorumCert,
    blocks: HashMap<Digest, Block>,
    /// Uncommitted blocks stored by `Action::StoreBlock`.
    pending: HashMap<Digest, Block>,
}

#[derive(Debug)]
struct SimNode {
    key: KeyPair,
    honest: bool,
    core: Option<Consensus>,
    disk: Disk,
    incarnation: u64,
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: PublicKey,
        msg: Message,
    },
    Timer {
        node: usize,
        inc: u64,
        round: u64,
    },
    Payload {
        node: usize,
        inc: u64,
        round: u64,
    },
    Crash {
        node: usize,
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
    queue: BinaryHeap<Queued>,
    seq: u64,
    now: u64,
    checker: Checker,
    messages: u64,
    latency_sum_ms: u64,
    latency_count: u64,
    payload_counter: u64,
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
    /// drives jitter and loss).
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
        let genesis = Config::genesis_block(Digest::of(b"hotledger simulated genesis"), 0);
        let nodes = (0..cfg.nodes())
            .map(|i| {
                let key_index = if i < cfg.validators {
                    i
                } else {
                    i - cfg.validators
                };
                SimNode {
                    key: keys[key_index].clone(),
                    honest: key_index >= cfg.twins
                        && !cfg
                            .omission
                            .as_ref()
                            .is_some_and(|o| o.omitters.contains(&key_index)),
                    core: None,
                    disk: Disk {
                        safety: SafetyData::default(),
                        root: genesis,
                        root_qc: QuorumCert::genesis(genesis),
                        blocks: HashMap::new(),
                        pending: HashMap::new(),
                    },
                    incarnation: 0,
                }
            })
            .collect();
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
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            checker: Checker::default(),
            messages: 0,
            latency_sum_ms: 0,
            latency_count: 0,
            payload_counter: 0,
            debug: std::env::var_os("SIM_DEBUG").is_some(),
            omission,
        };
        for node in 0..sim.nodes.len() {
            if sim.scenario.silent != Some(node) {
                sim.push(0, Ev::Restart { node });
            }
        }
        if let Some(node) = sim.scenario.silent {
            sim.push(sim.cfg.gst_ms, Ev::Restart { node });
        }
        for &(node, down, up) in &sim.scenario.crashes.clone() {
            sim.push(down, Ev::Crash { node });
            sim.push(up, Ev::Restart { node });
        }
        sim.push(sim.cfg.gst_ms, Ev::Gst);
        sim
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

    fn config_for(&self, node: usize) -> Config {
        let n = &self.nodes[node];
        let mut cfg = Config::new(
            CHAIN_ID,
            self.genesis,
            self.validators.clone(),
            Some(n.key.clone()),
        );
        cfg.params = Params {
            base_timeout_ms: self.cfg.base_timeout_ms,
            max_backoff_exponent: self.cfg.max_backoff_exponent,
            ..Params::default()
        };
        // The daemon's orphan bound: a validator silent until GST fetches the whole chain
        // committed without it backwards, as the daemon would.
        cfg.limits.max_orphan_blocks = DAEMON_MAX_ORPHANS;
        if !self.cfg.reputation {
            cfg.reputation.window_blocks = 0;
        }
        if n.honest {
            cfg.disabled_rule = self.cfg.disabled_rule;
        }
        cfg
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
            Ev::Deliver { to, from, msg } => {
                if self.omission.as_mut().is_some_and(|o| o.drops(to, &msg)) {
                    return;
                }
                self.step(to, Event::Message { from, message: msg });
            }
            Ev::Timer { node, inc, round } => {
                if self.nodes[node].incarnation == inc {
                    self.step(node, Event::TimeoutFired { round });
                }
            }
            Ev::Payload { node, inc, round } => {
                if self.nodes[node].incarnation == inc {
                    self.payload_counter += 1;
                    let payload =
                        format!("n{node}/r{round}/p{}", self.payload_counter).into_bytes();
                    self.checker.payload_produced(&payload);
                    self.step(node, Event::PayloadReady { round, payload });
                }
            }
            Ev::Crash { node } => {
                if self.debug {
                    eprintln!("t={} node {node} crashes", self.now);
                }
                let n = &mut self.nodes[node];
                n.core = None;
                n.incarnation += 1;
                self.detect_crashes();
            }
            Ev::Restart { node } => {
                self.restart(node);
                self.detect_crashes();
            }
            Ev::Unreachable => {
                let validators: Vec<PublicKey> = self
                    .validators
                    .validators()
                    .iter()
                    .map(|v| v.key)
                    .filter(|k| {
                        self.nodes
                            .iter()
                            .all(|n| n.key.public() != *k || n.core.is_none())
                    })
                    .collect();
                for node in 0..self.nodes.len() {
                    let validators = validators.clone();
                    self.step(node, Event::Unreachable { validators });
                }
            }
            Ev::Gst => {
                self.checker.mark_gst();
                for node in 0..self.nodes.len() {
                    if self.nodes[node].core.is_none() {
                        self.restart(node);
                    }
                }
                self.detect_crashes();
            }
        }
    }

    /// After a crash or restart: the others learn who is unreachable after the detection delay.
    fn detect_crashes(&mut self) {
        if let Some(delay) = self.cfg.detect_crash_ms {
            self.push(self.now.saturating_add(delay), Ev::Unreachable);
        }
    }

    fn restart(&mut self, node: usize) {
        if self.nodes[node].core.is_some() {
            return;
        }
        let config = self.config_for(node);
        let d = &self.nodes[node].disk;
        let mut history: Vec<Block> = d.blocks.values().cloned().collect();
        history.sort_by_key(|b| b.height);
        let keep = usize::try_from(config.history_blocks()).unwrap_or(usize::MAX);
        history.drain(..history.len().saturating_sub(keep));
        let recovery = Recovery {
            safety: d.safety.clone(),
            root: d.root,
            root_qc: d.root_qc.clone(),
            blocks: d.pending.values().cloned().collect(),
            history,
        };
        match Consensus::new(config, recovery) {
            Ok(core) => {
                self.nodes[node].core = Some(core);
                self.nodes[node].incarnation += 1;
                self.step(node, Event::Start);
            }
            Err(e) => panic!("node {node} cannot restart from its own disk: {e}"),
        }
    }

    fn step(&mut self, node: usize, event: Event) {
        let now = self.now;
        let Some(core) = self.nodes[node].core.as_mut() else {
            return; // down: the message is lost
        };
        if let Ok(actions) = core.handle(now, event) {
            self.execute(node, actions);
        }
    }

    fn execute(&mut self, node: usize, actions: Vec<Action>) {
        let now = self.now;
        let inc = self.nodes[node].incarnation;
        for action in actions {
            if self.debug {
                trace(now, node, &action);
            }
            match action {
                Action::PersistSafety(data) => {
                    let n = &mut self.nodes[node];
                    if n.honest {
                        if let Some(v) = &data.last_vote {
                            self.checker.signed_vote(n.key.public(), v.data);
                        }
                    }
                    n.disk.safety = data;
                }
                Action::Send { to, message } => self.send(node, Some(to), message),
                Action::Broadcast(message) => self.send(node, None, message),
                Action::ScheduleTimeout { round, after_ms } => {
                    self.push(now.saturating_add(after_ms), Ev::Timer { node, inc, round });
                }
                Action::RequestPayload { round, .. } => {
                    let mut wait = self.cfg.payload_delay_ms.max(1);
                    if self.omission.as_ref().is_some_and(|o| o.is_omitter(node)) {
                        wait = wait.max(omission::WAIT_MS);
                    }
                    let at = now.saturating_add(wait);
                    self.push(at, Ev::Payload { node, inc, round });
                }
                Action::ServeBlocks { to, id, count } => {
                    let n = &self.nodes[node];
                    let blocks = match &n.core {
                        Some(core) => {
                            core.collect_chain(&id, count, |i| n.disk.blocks.get(i).cloned())
                        }
                        None => Vec::new(),
                    };
                    if !blocks.is_empty() {
                        self.route(
                            node,
                            Some(to),
                            Message::BlockResponse(BlockResponse { blocks }),
                        );
                    }
                }
                Action::Commit(commit) => self.on_commit(node, commit),
                Action::StoreBlock(block) => {
                    self.nodes[node].disk.pending.insert(block.id, block);
                }
                Action::ReportMisbehaviour(_) => {
                    if self.nodes[node].honest {
                        self.checker.evidence();
                    }
                }
            }
        }
    }

    /// A node's commit: checkers, latency, its disk, and (in an omission run) whether the
    /// target is still a leader candidate at this honest node.
    fn on_commit(&mut self, node: usize, commit: Commit) {
        let now = self.now;
        let honest = self.nodes[node].honest;
        if self.debug {
            let hs: Vec<String> = commit
                .blocks
                .iter()
                .map(|b| format!("{}:{}", b.height, b.id.short()))
                .collect();
            eprintln!("t={now} node {node} commits {hs:?}");
        }
        for block in &commit.blocks {
            if honest {
                self.checker.committed(node, block, now);
                self.latency_sum_ms += now.saturating_sub(block.timestamp_ms);
                self.latency_count += 1;
            }
        }
        let d = &mut self.nodes[node].disk;
        if let Some(last) = commit.blocks.last() {
            d.root = last.info();
            d.root_qc = commit.proof.clone();
        }
        let root_height = d.root.height;
        d.pending.retain(|_, b| b.height > root_height);
        for block in commit.blocks {
            d.blocks.insert(block.id, block);
        }
        self.watch_target(node);
    }

    /// Counts an honest node's view in which the omission target may not lead.
    fn watch_target(&mut self, node: usize) {
        let (Some(o), true) = (&self.omission, self.nodes[node].honest) else {
            return;
        };
        if let Some(core) = &self.nodes[node].core {
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
        match message {
            Message::Proposal(p) if to.is_none() && self.scenario.equivocator == Some(node) => {
                self.equivocate(node, p);
            }
            message => self.route(node, to, message),
        }
    }

    /// Sends `msg` from `from` to the nodes holding key `to` (or to every node with another key),
    /// through the partition and loss model.
    fn route(&mut self, from: usize, to: Option<PublicKey>, msg: Message) {
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

    fn send_one(&mut self, from_group: u8, to: usize, sender: PublicKey, msg: Message) {
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
        self.messages += 1;
        self.push(
            at,
            Ev::Deliver {
                to,
                from: sender,
                msg,
            },
        );
    }

    /// A Byzantine leader: the real proposal to half the nodes, a conflicting one (same round,
    /// different payload, validly signed) to the other half.
    fn equivocate(&mut self, node: usize, p: Proposal) {
        let key = self.nodes[node].key.clone();
        let mut other = p.clone();
        let b = &mut other.block;
        b.payload.extend_from_slice(b"/conflicting");
        self.checker.payload_produced(&b.payload);
        reseal(b, &key, CHAIN_ID);
        let sender = key.public();
        let from_group = self.scenario.group(node, self.now, self.cfg.gst_ms);
        for j in 0..self.nodes.len() {
            if self.nodes[j].key.public() == sender {
                continue;
            }
            let msg = if j % 2 == 0 { p.clone() } else { other.clone() };
            self.send_one(from_group, j, sender, Message::Proposal(msg));
        }
    }
}

/// One line per action of interest, for `SIM_DEBUG` runs.
fn trace(now: u64, node: usize, action: &Action) {
    let what = match action {
        Action::Broadcast(Message::Proposal(p)) => format!(
            "proposes round {} on qc {} tc {:?} signers {:?}",
            p.block.round,
            p.block.qc.round(),
            p.tc.as_ref().map(|t| t.round),
            p.block.qc.votes.iter().map(|v| v.0).collect::<Vec<_>>()
        ),
        Action::Broadcast(Message::Timeout(t)) => format!(
            "times out round {} (high qc {}, vote {})",
            t.round,
            t.high_qc.round(),
            t.vote.is_some()
        ),
        Action::Send {
            message: Message::Vote(v),
            ..
        } => format!("votes round {}", v.round()),
        Action::ScheduleTimeout { round, after_ms } => {
            format!("enters round {round} ({after_ms} ms)")
        }
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
