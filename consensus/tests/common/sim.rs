//! A tiny deterministic in-process network of consensus nodes.

use std::collections::VecDeque;
use std::convert::Infallible;

use hotledger_consensus::{
    Action, Block, Config, Consensus, ConsensusError, Event, Evidence, Message, PersistSink, Ready,
    Recovery, SafetyData,
};
use hotledger_crypto::Digest;

use super::{check_persist_before_send, Net};

/// A message in flight: sender index, receiver index, event.
type Envelope = (usize, usize, Event);

/// Decides which messages the network drops: (from, to, message) -> drop?
pub type DropFn = Box<dyn Fn(usize, usize, &Message) -> bool>;

/// A node's disk: what `Ready::persist` wrote for it.
#[derive(Debug, Default)]
pub struct Disk {
    /// The safety data last persisted.
    pub safety: Option<SafetyData>,
    /// Every block stored as uncommitted, in order.
    pub uncommitted: Vec<Block>,
}

impl PersistSink for Disk {
    type Error = Infallible;
    fn store_uncommitted(&mut self, block: &Block) -> Result<(), Infallible> {
        self.uncommitted.push(block.clone());
        Ok(())
    }
    fn persist_safety(&mut self, data: &SafetyData) -> Result<(), Infallible> {
        self.safety = Some(data.clone());
        Ok(())
    }
}

/// Deterministic in-process network of nodes. Messages are delivered FIFO; payload requests are
/// answered at once (when `auto_payload`); block requests are served from the serving node's
/// memory (and its committed blocks when `serve_from_store`); payload checks are answered `Ok`
/// at once; timers never fire unless the test calls `fire_timers`. Each batch goes through
/// `Ready`, so the persistence it asks for reaches the node's `Disk` before anything else.
pub struct Sim {
    pub net: Net,
    pub nodes: Vec<Consensus>,
    /// Each node's disk.
    pub disks: Vec<Disk>,
    pub queue: VecDeque<Envelope>,
    pub now: u64,
    pub auto_payload: bool,
    /// Messages for which this returns true are dropped (from, to, message).
    pub drop: DropFn,
    /// Every block each node committed, in order.
    pub committed: Vec<Vec<Block>>,
    pub evidence: Vec<Vec<Evidence>>,
    /// Every message sent: (from, to, message); a broadcast appears once per receiver.
    pub sent: Vec<(usize, usize, Message)>,
    /// Rejections each node returned.
    pub errors: Vec<Vec<ConsensusError>>,
    pub batches: usize,
    /// Serve block requests also from the serving node's committed blocks (its host store);
    /// otherwise only from memory (a no-op committed lookup).
    pub serve_from_store: bool,
}

impl Sim {
    pub fn new(n: usize) -> Sim {
        Self::with(n, true, Box::new(|_, _, _| false))
    }

    pub fn with(n: usize, auto_payload: bool, drop: DropFn) -> Sim {
        Self::configured(n, auto_payload, drop, |_| {})
    }

    /// A network whose nodes' configs `configure` changed first.
    pub fn configured(
        n: usize,
        auto_payload: bool,
        drop: DropFn,
        configure: impl Fn(&mut Config),
    ) -> Sim {
        let net = Net::new(n);
        let nodes = (0..n)
            .map(|i| {
                let mut config = net.config(i);
                configure(&mut config);
                let recovery = Recovery::genesis(&config);
                Consensus::new(config, recovery).unwrap()
            })
            .collect();
        let mut sim = Sim {
            net,
            nodes,
            disks: (0..n).map(|_| Disk::default()).collect(),
            queue: VecDeque::new(),
            now: 0,
            auto_payload,
            drop,
            committed: vec![Vec::new(); n],
            evidence: vec![Vec::new(); n],
            sent: Vec::new(),
            errors: vec![Vec::new(); n],
            batches: 0,
            serve_from_store: false,
        };
        for i in 0..n {
            sim.deliver(i, Event::Start);
        }
        sim
    }

    /// Hands `event` to node `i` and carries out the resulting actions.
    pub fn deliver(&mut self, i: usize, event: Event) {
        self.now += 1;
        match self.nodes[i].handle(self.now, event) {
            Ok(actions) => self.apply(i, actions),
            Err(e) => self.errors[i].push(e),
        }
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        self.batches += 1;
        let me = self.net.pk(i);
        if let Err(e) = check_persist_before_send(&me, &actions) {
            panic!("node {i}: {e}");
        }
        let last_timer = actions.iter().rev().find_map(|a| match a {
            Action::ScheduleTimeout { round, .. } => Some(*round),
            _ => None,
        });
        let round = self.nodes[i].round();
        assert!(
            last_timer.is_none_or(|r| r == round),
            "node {i}: the batch's last timer is for round {last_timer:?}, the node is in {round}"
        );
        let Ok(actions) = Ready::new(actions).persist(&mut self.disks[i]);
        for action in actions {
            match action {
                Action::PersistSafety(_) | Action::StoreUncommitted(_) => {
                    panic!("node {i}: Ready handed out a persistence action")
                }
                Action::ScheduleTimeout { .. } => {}
                Action::CheckPayload { block, .. } => {
                    let event = Event::PayloadChecked {
                        id: block.id,
                        result: Ok(()),
                    };
                    self.queue.push_back((i, i, event));
                }
                Action::Send { to, message } => {
                    let to = self.net.index_of(&to);
                    self.post(i, to, message);
                }
                Action::Broadcast(message) => {
                    for to in (0..self.nodes.len()).filter(|&to| to != i) {
                        self.post(i, to, message.clone());
                    }
                }
                Action::RequestPayload { round, parent } => {
                    if self.auto_payload {
                        let payload = format!("node {i} round {round}").into_bytes();
                        let ready = Event::PayloadReady {
                            round,
                            parent: parent.id,
                            payload,
                        };
                        self.queue.push_back((i, i, ready));
                    }
                }
                Action::ServeBlocks { to, id, count } => {
                    let blocks = if self.serve_from_store {
                        let store = &self.committed[i];
                        self.nodes[i].collect_chain(&id, count, |id| {
                            store.iter().find(|b| b.id == *id).cloned()
                        })
                    } else {
                        self.nodes[i].collect_chain(&id, count, |_| None)
                    };
                    if !blocks.is_empty() {
                        let to = self.net.index_of(&to);
                        let message =
                            Message::BlockResponse(hotledger_consensus::BlockResponse { blocks });
                        self.post(i, to, message);
                    }
                }
                Action::Commit(c) => self.committed[i].extend(c.blocks),
                Action::ReportMisbehaviour(e) => self.evidence[i].push(e),
            }
        }
    }

    fn post(&mut self, from: usize, to: usize, message: Message) {
        self.sent.push((from, to, message.clone()));
        if !(self.drop)(from, to, &message) {
            let from_pk = self.net.pk(from);
            self.queue.push_back((
                from,
                to,
                Event::Message {
                    from: from_pk,
                    message,
                },
            ));
        }
    }

    /// Delivers one queued event; false when the queue is empty.
    pub fn step(&mut self) -> bool {
        let Some((_, to, event)) = self.queue.pop_front() else {
            return false;
        };
        self.deliver(to, event);
        true
    }

    /// Steps until `done` holds (true) or the queue empties / `max_steps` pass (false).
    pub fn run_until(&mut self, max_steps: usize, done: impl Fn(&Sim) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }

    /// Fires every node's timer for its current round.
    pub fn fire_timers(&mut self) {
        for i in 0..self.nodes.len() {
            let round = self.nodes[i].round();
            self.deliver(i, Event::TimeoutFired { round });
        }
    }

    pub fn min_committed(&self) -> usize {
        self.committed.iter().map(Vec::len).min().unwrap_or(0)
    }

    /// Asserts every node's commit log is a contiguous chain from height 1 and that all logs
    /// agree on their common prefix.
    pub fn assert_consistent_commits(&self) {
        for (i, log) in self.committed.iter().enumerate() {
            let mut parent = self.net.genesis.id;
            for (k, b) in log.iter().enumerate() {
                assert_eq!(b.height, k as u64 + 1, "node {i}: heights not contiguous");
                assert_eq!(b.parent().id, parent, "node {i}: block {k} does not chain");
                parent = b.id;
            }
        }
        let shortest = self.min_committed();
        for log in &self.committed[1..] {
            let ids: Vec<Digest> = log[..shortest].iter().map(|b| b.id).collect();
            let first: Vec<Digest> = self.committed[0][..shortest].iter().map(|b| b.id).collect();
            assert_eq!(ids, first, "nodes committed different blocks");
        }
    }
}
