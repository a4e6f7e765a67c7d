//! The node host: the daemon's own logic around the consensus core, synchronous and
//! deterministic, so the seeded simulator runs exactly what the daemon runs.
//!
//! A [`Host`] owns the core ([`Consensus`]), a [`ChainStore`] and the block-building state, and
//! takes time as an argument. It reaches the outside only through its inputs and its
//! [`Output`]:
//!
//! ```text
//!   Event (message, timer, unreachable) ──► Host::handle(now_ms) ─┐
//!   now_ms (timer due, mempool grew) ─────► Host::tick(now_ms) ───┤
//!                                                                 ▼
//!        Consensus::handle ──► Ready ──persist (ChainStore, synced)──► remaining actions
//!                                                                        │
//!   CheckPayload ─► payload::Payloads::check ─► Event::PayloadChecked ───┤ (fed back in)
//!   RequestPayload ─► pacing::Pacer ─(due)─► build a payload ─► Event::PayloadReady
//!   Commit ─► commit::apply (execute, state root, one synced batch) ─► CommitReport
//!   ServeBlocks ─► serve::blocks (core + store) ─► Outgoing::Send(BlockResponse)
//!   Send / Broadcast / ReportMisbehaviour ─► Output::{messages, evidence}
//! ```
//!
//! Persist-before-send holds by construction: every batch of core actions goes through
//! [`Ready::persist`], which writes the uncommitted blocks and syncs the safety data before it
//! hands out any other action, so no message can reach [`Output::messages`] before the safety
//! write it depends on.
//!
//! The async loop (`crate::node`) only moves bytes: it decodes frames into [`Event`]s, calls
//! [`Host::handle`] or [`Host::tick`] (when [`Host::wake_at`] passes, or when the mempool
//! admitted something while a proposal waits), frames [`Output::messages`] for libp2p and turns
//! the rest into metrics and logs. The simulator (`hotledger-tests`) calls the same methods on
//! virtual time over [`crate::storage::MemoryStore`].
//!
//! Failure policy: a storage error (or a poisoned lock) is returned as a [`NodeError`] and the
//! node stops; a rejected input is reported in [`Output::rejected`] and changes nothing.

mod commit;
mod pacing;
mod payload;
mod serve;
pub mod statesync;
pub mod sync;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use hotledger_consensus::{
    Action, Config, Consensus, ConsensusError, Event, Evidence, Message, PersistSink, Ready,
    Recovery, Round, SafetyData,
};
use hotledger_consensus::{Block, QuorumCert};
use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::{genesis_state_root, BlockPayload, Eviction, Mempool};

use crate::error::NodeError;
use crate::storage::{ChainStore, CommitTip, SafetyStore, StorageError};

pub use commit::CommitReport;
pub use pacing::Pacing;
pub use statesync::{RestoreError, RestoreSummary, SnapshotOffer};
pub use sync::{SyncError, SyncMessage, SyncSummary};

use pacing::Pacer;
use payload::Payloads;
use statesync::Restorer;
use sync::Syncer;

/// The mempool, shared with the JSON-RPC server and the gossip task that admit into it.
pub type SharedMempool = Arc<Mutex<Mempool>>;

/// What a host needs to start.
#[derive(Debug)]
pub struct HostConfig {
    /// The consensus core's configuration (the host turns its payload checks on).
    pub consensus: Config,
    /// The genesis document's hash: the store refuses another chain's database.
    pub genesis_hash: Digest,
    /// The genesis balances, written to a fresh store.
    pub genesis_accounts: Vec<(PublicKey, u64)>,
    /// Most transactions and payload bytes in a block (the genesis limits).
    pub max_block_txs: usize,
    pub max_block_bytes: usize,
    /// Most bytes of one network message: block responses are cut to half of it.
    pub max_message_bytes: usize,
    pub pacing: Pacing,
    /// Heights at which a snapshot is made (their trees written in full), a multiple of this;
    /// 0: none.
    pub snapshot_every: u64,
    /// A store still at genesis restores a peer's snapshot before following the chain.
    pub state_sync: bool,
}

/// A message to put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// To one validator.
    Send { to: PublicKey, message: Message },
    /// To every other validator.
    Broadcast(Message),
    /// A sync message, to one peer or (`None`) to every peer.
    Sync {
        to: Option<PublicKey>,
        message: SyncMessage,
    },
}

/// An input the core refused (it changed nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The peer it came from, if it came from one.
    pub from: Option<PublicKey>,
    pub error: ConsensusError,
    /// Whether it shows the peer sent what no honest validator sends ([`is_misbehaviour`]).
    pub misbehaviour: bool,
}

/// What one call to the host produced, for the caller to carry out or record.
#[derive(Debug, Default)]
pub struct Output {
    /// Messages to send, in order; all persisted state they depend on is already durable.
    pub messages: Vec<Outgoing>,
    /// Blocks committed (executed and written), lowest height first.
    pub committed: Vec<CommitReport>,
    /// Equivocations detected.
    pub evidence: Vec<Evidence>,
    pub rejected: Vec<Rejected>,
    /// Transaction signatures checked by payload checks (those this node had not checked).
    pub verified_txs: u64,
    /// Pending transfers dropped after waiting behind a nonce gap too long.
    pub expired: Vec<(Digest, Eviction)>,
    /// Sync responses refused (the peer is struck).
    pub sync_refused: Vec<(PublicKey, SyncError)>,
    /// The host switched between consensus and sync: `Some(true)` into sync.
    pub sync_switched: Option<bool>,
    /// On switching back to consensus: what the sync did.
    pub synced: Option<SyncSummary>,
    /// Peers' block requests left unanswered: over their rate.
    pub block_requests_dropped: u64,
    /// State-sync responses refused (the peer is struck).
    pub restore_refused: Vec<(PublicKey, RestoreError)>,
    /// A state sync installed its snapshot.
    pub restored: Option<RestoreSummary>,
    /// A state sync chose its snapshot and proved its root.
    pub restore_anchored: Option<crate::storage::SnapshotManifest>,
    /// A state sync stored a chunk: chunks held, and in all.
    pub restore_progress: Option<(u32, u32)>,
    /// A state sync gave up: no peer offered a snapshot ([`statesync::NO_OFFER_MS`]).
    pub restore_abandoned: bool,
    /// The snapshot (its height) a state sync dropped, no peer offering it any more, to
    /// restore a newer one.
    pub restore_started_over: Option<u64>,
    /// Snapshots to make now, off the loop ([`crate::storage::snapshot::create`]).
    pub snapshot_due: Vec<SnapshotDue>,
    /// This node's state differs from one the quorum certified: it stopped voting, proposing
    /// and following the chain (reported once, when found).
    pub diverged: Option<Divergence>,
}

/// A committed block claims a state root at a height where this node executed another: the
/// quorum certified a state this node does not hold (its store is damaged, or its execution
/// differs). The host stops taking part, for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Divergence {
    /// The height whose state the two roots are of.
    pub height: u64,
    /// The root this node executed there.
    pub ours: Digest,
    /// The root the committed block claims.
    pub certified: Digest,
    /// The committed block that claims it.
    pub certified_by: u64,
}

/// A snapshot the host's commits call for: the state at `height`, whose root the committed
/// block at `certified_by` claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotDue {
    pub height: u64,
    pub certified_by: u64,
}

/// What [`Host::open`] found and did, for the start-up log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The store was empty and now holds genesis.
    pub initialised: bool,
    /// Heights whose state-tree nodes a crash had lost and that were recomputed.
    pub rebuilt: u64,
    pub height: u64,
    pub last_voted_round: Round,
    /// A state sync runs (from nothing, or resumed: the chunks held at start).
    pub restoring: Option<u32>,
}

/// The host's view of the chain, for `status` and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// Lowest committed height still held (older blocks are pruned).
    pub earliest: u64,
    pub height: u64,
    pub block_id: Digest,
    pub state_root: Digest,
    pub committed_txs: u64,
    pub round: Round,
    /// Height of the highest certified block known (while syncing, at least the highest
    /// committed height a peer reports).
    pub high_qc_height: u64,
    /// Fetching blocks it missed: orphans held, or the certified chain well ahead of commits.
    pub syncing: bool,
    pub timeouts_sent: u64,
    /// Proposals not voted for because they were timestamped too far ahead of this node's
    /// clock.
    pub proposals_ahead_of_clock: u64,
    /// Stopped: this node's state differs from a certified one.
    pub diverged: Option<Divergence>,
}

/// The validator's logic between the network and the store. See the module docs.
#[derive(Debug)]
pub struct Host<S: ChainStore> {
    core: Consensus,
    /// The core's configuration, to restart it after a sync.
    config: Config,
    syncer: Syncer,
    store: S,
    /// The safety record, apart from the chain data.
    safety: Arc<dyn SafetyStore>,
    /// Uncommitted blocks were put since the store's last synced write.
    unsynced_blocks: bool,
    mempool: SharedMempool,
    payloads: Payloads,
    tip: CommitTip,
    /// The round timer: (round, fires at ms).
    timer: Option<(Round, u64)>,
    pacer: Pacer,
    pacing: Pacing,
    /// The store's earliest held height, as last read.
    earliest: u64,
    /// The time of the last call (for [`Host::view`], which takes none).
    last_now_ms: u64,
    max_message_bytes: usize,
    /// Block requests answered per peer (rate limit).
    served: serve::Served,
    /// The state sync in progress: nothing else runs until it installs its snapshot.
    restorer: Option<Restorer>,
    snapshot_every: u64,
    /// The highest snapshot height called for (or held).
    last_snapshot: u64,
    /// A full node (no validator key): it never runs consensus and follows the chain by block
    /// sync alone, from any peer; a validator takes sync reports from validators only.
    follower: bool,
    /// Set when this node's state differs from a certified one: nothing is fed, sent or
    /// committed any more.
    diverged: Option<Divergence>,
}

impl<S: ChainStore> Host<S> {
    /// Opens the host over `store`: writes genesis into a fresh store, recomputes state-tree
    /// nodes a crash lost (checking every root against its commit), and restarts the core
    /// from the safety record (`safety`, which may be ahead of a store whose chain data was
    /// lost), the commit tip and the stored uncommitted blocks.
    pub fn open(
        store: S,
        safety: Arc<dyn SafetyStore>,
        mempool: SharedMempool,
        config: HostConfig,
    ) -> Result<(Host<S>, Opened), NodeError> {
        let initialised = store.is_fresh()?;
        if initialised {
            init_genesis(&store, &config)?;
        }
        let tip = store.tip()?.ok_or(StorageError::MissingTip)?;
        let rebuilt = rebuild_tree(&store)?;
        let recorded = safety.get()?.unwrap_or_default();
        let validators = config.consensus.validators.len();
        let (restorer, restoring) = match store.restore_anchor()? {
            Some(anchor) => {
                let held = store.snapshot_chunks_held(anchor.manifest.height)?;
                let count = u32::try_from(held.len()).unwrap_or(u32::MAX);
                (
                    Some(Restorer::new(validators, Some(anchor), &held)),
                    Some(count),
                )
            }
            None if config.state_sync && tip.block.height == 0 => {
                (Some(Restorer::new(validators, None, &[])), Some(0))
            }
            None => (None, None),
        };
        let last_snapshot = store
            .snapshots()?
            .iter()
            .map(|m| m.height)
            .max()
            .unwrap_or(0);
        let opened = Opened {
            initialised,
            rebuilt,
            height: tip.block.height,
            last_voted_round: recorded.last_voted_round,
            restoring,
        };
        let mut consensus = config.consensus;
        consensus.check_payloads = true;
        let follower = consensus.key.is_none();
        let recovery = Recovery {
            history: history(&store, &tip, consensus.history_blocks())?,
            safety: recorded,
            root: tip.block,
            root_qc: tip.qc.clone(),
            uncommitted: store.uncommitted_blocks()?,
        };
        let mut payloads = Payloads::new(
            consensus.chain_id.clone(),
            config.max_block_txs,
            config.max_block_bytes,
        );
        #[cfg(feature = "fault-injection")]
        {
            payloads.check_claims =
                consensus.disabled_rule != Some(hotledger_consensus::DisabledRule::StateClaim);
        }
        if let Some(root) = store.genesis_root()? {
            payloads.note_root(0, root);
        }
        payloads.note_root(tip.block.height, tip.state_root);
        let store_earliest = store.earliest()?;
        let syncer = Syncer::new(
            consensus.validators.len(),
            consensus.limits.max_blocks_per_request,
        );
        let host = Host {
            core: Consensus::new(consensus.clone(), recovery)?,
            config: consensus,
            syncer,
            store,
            safety,
            unsynced_blocks: false,
            mempool,
            payloads,
            tip,
            timer: None,
            pacer: Pacer::new(config.pacing),
            pacing: config.pacing,
            earliest: store_earliest,
            last_now_ms: 0,
            max_message_bytes: config.max_message_bytes,
            served: serve::Served::default(),
            restorer,
            snapshot_every: config.snapshot_every,
            last_snapshot,
            follower,
            diverged: None,
        };
        Ok((host, opened))
    }

    /// Feeds `event` to the core and carries out what follows, then proposes if a proposal
    /// is due.
    /// While syncing ([`View::syncing`]) the core is not fed: the event is dropped; a full
    /// node's core is never fed.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Result<Output, NodeError> {
        let mut out = Output::default();
        if self.follower
            || self.syncer.active()
            || self.restorer.is_some()
            || self.diverged.is_some()
        {
            return Ok(out);
        }
        self.feed(now_ms, event, &mut out)?;
        self.propose_if_due(now_ms, &mut out)?;
        Ok(out)
    }

    /// Takes in a peer's sync message ([`sync`]): a status or a response. A request is not
    /// answered here: the caller serves it from the store with [`sync::serve`], off the loop.
    /// A validator ignores what peers that are not validators report and offer (enough
    /// full nodes reporting heights far ahead would otherwise switch it out of consensus); a
    /// full node syncs from any peer, since every response proves itself.
    pub fn handle_sync(
        &mut self,
        now_ms: u64,
        from: PublicKey,
        message: SyncMessage,
    ) -> Result<Output, NodeError> {
        let mut out = Output::default();
        if self.diverged.is_some() || (!self.follower && !self.config.validators.contains(&from)) {
            return Ok(out);
        }
        let checks = sync::Checks {
            verifier: hotledger_consensus::Verifier {
                chain_id: &self.config.chain_id,
                genesis: &self.config.genesis,
                validators: &self.config.validators,
            },
            max_payload: self.config.params.max_payload_bytes,
        };
        match message {
            SyncMessage::Status { low, high } => self.syncer.on_status(from, low, high),
            SyncMessage::Request { .. } | SyncMessage::ChunkRequest { .. } => return Ok(out),
            SyncMessage::Snapshots { offers } => {
                if let Some(r) = self.restorer.as_mut() {
                    if let Err(e) = r.on_offers(now_ms, from, offers) {
                        out.restore_refused.push((from, e));
                    }
                }
            }
            SyncMessage::Response {
                from: height,
                blocks,
                proof,
            } => {
                if let Some(r) = self.restorer.as_mut() {
                    match r.on_anchor_response(
                        now_ms,
                        from,
                        height,
                        &blocks,
                        proof.as_ref(),
                        &checks,
                    ) {
                        Ok(Some(anchor)) => {
                            self.store.put_restore_anchor(&anchor)?;
                            out.restore_anchored = Some(anchor.manifest);
                        }
                        Ok(None) => match r.on_history_response(
                            now_ms,
                            from,
                            height,
                            &blocks,
                            proof.as_ref(),
                            &checks,
                        ) {
                            Ok(Some(history)) => self.store.put_history(&history)?,
                            Ok(None) => {}
                            Err(e) => out.restore_refused.push((from, e)),
                        },
                        Err(RestoreError::Short { .. }) => {}
                        Err(e) => out.restore_refused.push((from, e)),
                    }
                } else if let Err(e) = self
                    .syncer
                    .on_response(now_ms, from, height, blocks, proof, &checks)
                {
                    out.sync_refused.push((from, e));
                }
            }
            SyncMessage::Chunk {
                height,
                index,
                chunk,
            } => {
                if let Some(r) = self.restorer.as_mut() {
                    match r.on_chunk(now_ms, from, height, index, chunk) {
                        Ok(Some(got)) => {
                            if let Some(anchor) = r.anchor() {
                                let manifest = crate::storage::SnapshotManifest {
                                    complete: false,
                                    ..anchor.manifest
                                };
                                self.store.put_snapshot(&manifest, &[got])?;
                                out.restore_progress = Some(r.progress());
                            }
                        }
                        Ok(None) => {}
                        Err(e) => out.restore_refused.push((from, e)),
                    }
                }
            }
        }
        if self.restorer.is_some() {
            self.restore_step(now_ms, &mut out)?;
        } else {
            self.sync_step(now_ms, &mut out)?;
        }
        Ok(out)
    }

    /// Asks for the snapshot's anchor and chunks, and installs it once every chunk is held
    /// (see [`statesync`]); then the core starts on its height.
    fn restore_step(&mut self, now_ms: u64, out: &mut Output) -> Result<(), NodeError> {
        self.last_now_ms = now_ms;
        let Some(r) = self.restorer.as_mut() else {
            return Ok(());
        };
        if r.give_up(now_ms) {
            self.restorer = None;
            out.restore_abandoned = true;
            return self.restart_core(now_ms, out);
        }
        if r.orphaned(now_ms) {
            if let Some(height) = r.start_over() {
                self.store.abandon_restore()?;
                out.restore_started_over = Some(height);
            }
        }
        if !r.done() {
            let history = self.config.history_blocks();
            for (peer, message) in r.requests(now_ms, history) {
                out.messages.push(Outgoing::Sync {
                    to: Some(peer),
                    message,
                });
            }
            return Ok(());
        }
        let summary = r.summary(now_ms);
        let Some(anchor) = r.anchor().cloned() else {
            return Ok(());
        };
        let tree = crate::storage::snapshot::restored_tree(&self.store, &anchor)?;
        self.store.install_snapshot(&anchor, &tree)?;
        self.restorer = None;
        self.tip = self.store.tip()?.ok_or(StorageError::MissingTip)?;
        self.earliest = self.store.earliest()?;
        self.last_snapshot = self.last_snapshot.max(anchor.manifest.height);
        self.payloads
            .note_root(anchor.manifest.height, anchor.manifest.root);
        out.restored = Some(summary);
        self.restart_core(now_ms, out)
    }

    /// Switches to sync when far behind, applies proven blocks, asks for more, and hands back
    /// to consensus when close to the tip (see [`sync`]).
    fn sync_step(&mut self, now_ms: u64, out: &mut Output) -> Result<(), NodeError> {
        self.last_now_ms = now_ms;
        let tip = self.tip.block.height;
        if self.follower && !self.syncer.active() {
            self.syncer.enter(now_ms);
        } else if self
            .syncer
            .should_enter(now_ms, tip, self.core.high_qc().block().height)
        {
            self.syncer.enter(now_ms);
            self.timer = None;
            self.pacer = Pacer::new(self.pacing);
            out.sync_switched = Some(true);
        }
        if !self.syncer.active() {
            return Ok(());
        }
        while let Some(proven) = self.syncer.take_next(self.tip.block.height) {
            for (i, block) in proven.blocks.iter().enumerate() {
                if block.parent().id != self.tip.block.id {
                    // Proven blocks are the committed chain, so they extend our committed
                    // tip; one that does not is from a chain this node is not on.
                    return Err(NodeError::SyncDiverged {
                        height: block.height,
                        tip: self.tip.block.id,
                    });
                }
                // One sync per proven range, with its last block.
                let durable = i + 1 == proven.blocks.len();
                let Some(report) =
                    self.commit(now_ms, block, proven.certifying(i), durable, out)?
                else {
                    return Ok(());
                };
                // Decoded for the commit only: the core, not fed while syncing, never holds it
                // (a full node syncs for good, so nothing else would let it go).
                self.payloads.forget(&block.id);
                self.syncer.applied(report.applied);
                out.committed.push(report);
            }
        }
        if !self.follower && self.syncer.should_exit(now_ms, self.tip.block.height) {
            out.synced = Some(self.syncer.exit(now_ms));
            self.restart_core(now_ms, out)?;
            out.sync_switched = Some(false);
            return Ok(());
        }
        for (peer, message) in self.syncer.requests(now_ms, self.tip.block.height) {
            out.messages.push(Outgoing::Sync {
                to: Some(peer),
                message,
            });
        }
        Ok(())
    }

    /// Restarts the core on the tip a sync reached, from the safety record.
    fn restart_core(&mut self, now_ms: u64, out: &mut Output) -> Result<(), NodeError> {
        let recovery = Recovery {
            history: history(&self.store, &self.tip, self.config.history_blocks())?,
            safety: self.safety.get()?.unwrap_or_default(),
            root: self.tip.block,
            root_qc: self.tip.qc.clone(),
            uncommitted: self.store.uncommitted_blocks()?,
        };
        self.core = Consensus::new(self.config.clone(), recovery)?;
        let core = &self.core;
        self.payloads.retain(|id| core.block(id).is_some());
        self.pacer = Pacer::new(self.pacing);
        if self.follower {
            return Ok(());
        }
        self.feed(now_ms, Event::Start, out)
    }

    /// Forgets what the syncers know of `peer` (a non-validator that disconnected).
    pub fn forget_peer(&mut self, peer: &PublicKey) {
        self.syncer.forget(peer);
        if let Some(r) = self.restorer.as_mut() {
            r.forget(peer);
        }
    }

    /// Fires the round timer if it is due and proposes if a proposal is due (call when
    /// [`Host::wake_at`] has passed, or when the mempool admitted transactions).
    pub fn tick(&mut self, now_ms: u64) -> Result<Output, NodeError> {
        let mut out = Output::default();
        if self.diverged.is_some() {
            return Ok(out);
        }
        if self.syncer.status_is_due(now_ms) {
            // Read when sent: the pruner moves it, off the loop.
            self.earliest = self.store.earliest()?;
            let message = self
                .syncer
                .status(now_ms, self.earliest, self.tip.block.height);
            out.messages.push(Outgoing::Sync { to: None, message });
            let mut offers: Vec<SnapshotOffer> = self
                .store
                .snapshots()?
                .iter()
                .filter(|m| m.complete)
                .map(SnapshotOffer::from)
                .collect();
            if !offers.is_empty() {
                offers.sort_unstable_by_key(|o| std::cmp::Reverse(o.height));
                offers.truncate(statesync::MAX_OFFERS);
                out.messages.push(Outgoing::Sync {
                    to: None,
                    message: SyncMessage::Snapshots { offers },
                });
            }
        }
        if self.restorer.is_some() {
            self.restore_step(now_ms, &mut out)?;
            return Ok(out);
        }
        self.sync_step(now_ms, &mut out)?;
        if self.syncer.active() {
            return Ok(out);
        }
        if let Some((round, at)) = self.timer {
            if now_ms >= at {
                self.timer = None;
                self.feed(now_ms, Event::TimeoutFired { round }, &mut out)?;
            }
        }
        self.propose_if_due(now_ms, &mut out)?;
        Ok(out)
    }

    /// When the host next needs a [`Host::tick`] (ms, the caller's clock): the round timer or
    /// the proposal pacing deadline, whichever is first.
    pub fn wake_at(&self, now_ms: u64) -> Option<u64> {
        let timer = self.timer.map(|(_, at)| at);
        let core = match (timer, self.pacer.wake_at(now_ms)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut sync = self.syncer.wake_at();
        if let Some(at) = self.restorer.as_ref().and_then(Restorer::wake_at) {
            sync = sync.min(at);
        }
        Some(core.map_or(sync, |at| at.min(sync)))
    }

    /// Whether a proposal waits for transactions (the caller wakes the host when some arrive).
    pub fn awaiting_transactions(&self) -> bool {
        self.pacer.waiting()
    }

    /// The consensus core (read-only).
    pub fn core(&self) -> &Consensus {
        &self.core
    }

    /// The mempool the host proposes from.
    pub fn mempool(&self) -> &SharedMempool {
        &self.mempool
    }

    /// The store the host writes.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Chain position, round and sync state.
    pub fn view(&self) -> View {
        let mut high_qc_height = self.core.high_qc().block().height;
        if self.syncer.active() {
            // The core is not fed while syncing: the peers' heights say how far the chain is.
            high_qc_height = high_qc_height.max(self.syncer.best_high(self.last_now_ms));
        }
        let orphans = self.core.pending_blocks().1;
        View {
            earliest: self.earliest,
            height: self.tip.block.height,
            block_id: self.tip.block.id,
            state_root: self.tip.state_root,
            committed_txs: self.tip.committed_txs,
            round: self.core.round(),
            high_qc_height,
            // A full node always syncs, a second or so behind the validators: it is syncing
            // while peers report more blocks than a validator would sync for.
            syncing: if self.follower {
                self.restorer.is_some()
                    || high_qc_height > self.tip.block.height.saturating_add(sync::ENTER_GAP)
            } else {
                self.syncer.active()
                    || self.restorer.is_some()
                    || orphans > 0
                    || high_qc_height > self.tip.block.height.saturating_add(3)
            },
            timeouts_sent: self.core.stats().timeouts_sent,
            proposals_ahead_of_clock: self.core.stats().proposals_ahead_of_clock,
            diverged: self.diverged,
        }
    }

    /// Runs `event` and every event its actions feed back (payload check results), each batch
    /// persisted before anything else in it is carried out.
    fn feed(&mut self, now_ms: u64, event: Event, out: &mut Output) -> Result<(), NodeError> {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            if self.diverged.is_some() {
                return Ok(());
            }
            let (from, checked) = match &event {
                Event::Message { from, .. } => (Some(*from), None),
                Event::PayloadChecked { id, .. } => (None, Some(*id)),
                _ => (None, None),
            };
            let handled = self.core.handle(now_ms, event);
            if let Some(id) = checked {
                // A checked block that did not enter the tree (refused on resume, or the tree
                // is full) is not kept decoded: only blocks in the tree are built on or
                // committed.
                if self.core.block(&id).is_none() {
                    self.payloads.forget(&id);
                }
            }
            let actions = match handled {
                Ok(actions) => actions,
                Err(error) => {
                    out.rejected.push(Rejected {
                        from,
                        misbehaviour: is_misbehaviour(&error),
                        error,
                    });
                    continue;
                }
            };
            let mut sink = Persister {
                store: &self.store,
                safety: self.safety.as_ref(),
                unsynced_blocks: &mut self.unsynced_blocks,
            };
            let rest = Ready::new(actions).persist(&mut sink)?;
            for action in rest {
                self.carry_out(now_ms, action, out, &mut events)?;
            }
        }
        Ok(())
    }

    fn carry_out(
        &mut self,
        now_ms: u64,
        action: Action,
        out: &mut Output,
        events: &mut VecDeque<Event>,
    ) -> Result<(), NodeError> {
        if self.diverged.is_some() {
            // Nothing after the divergence is carried out: no vote or proposal may rest on it.
            return Ok(());
        }
        match action {
            Action::Send { to, message } => out.messages.push(Outgoing::Send { to, message }),
            Action::Broadcast(message) => out.messages.push(Outgoing::Broadcast(message)),
            Action::ScheduleTimeout { round, after_ms } => {
                self.timer = Some((round, now_ms.saturating_add(after_ms)));
            }
            Action::RequestPayload { round, parent } => {
                self.pacer.request(round, parent.id, now_ms)
            }
            Action::ServeBlocks { to, id, count } => {
                if !self.served.allow(to, now_ms) {
                    out.block_requests_dropped = out.block_requests_dropped.saturating_add(1);
                    return Ok(());
                }
                let budget = self.max_message_bytes / 2;
                if let Some(message) = serve::blocks(&self.core, &self.store, id, count, budget)? {
                    out.messages.push(Outgoing::Send { to, message });
                }
            }
            Action::CheckPayload {
                block,
                state_height,
                ..
            } => {
                let claim = payload::Claim {
                    height: state_height,
                    executed: self.tip.block.height,
                };
                let (result, verified) =
                    self.payloads
                        .check(&block, claim, &self.store, &self.mempool)?;
                out.verified_txs = out.verified_txs.saturating_add(verified);
                events.push_back(Event::PayloadChecked {
                    id: block.id,
                    result,
                });
            }
            Action::Commit(commit) => {
                self.pacer.state_changed();
                for (block, qc) in commit::certified(&commit) {
                    match self.commit(now_ms, block, qc, true, out)? {
                        Some(report) => out.committed.push(report),
                        None => return Ok(()),
                    }
                }
                let core = &self.core;
                self.payloads.retain(|id| core.block(id).is_some());
            }
            Action::ReportMisbehaviour(evidence) => out.evidence.push(evidence),
            // Taken out of the batch and written by `Ready::persist` before anything else.
            Action::PersistSafety(_) | Action::StoreUncommitted(_) => {}
        }
        Ok(())
    }

    /// Executes and writes one committed block, then updates the mempool and the caches.
    /// `None` when the block's certified state claim differs from this node's root there: the
    /// host stops ([`Divergence`]) without writing it.
    fn commit(
        &mut self,
        now_ms: u64,
        block: &Block,
        qc: &QuorumCert,
        durable: bool,
        out: &mut Output,
    ) -> Result<Option<CommitReport>, NodeError> {
        let started = std::time::Instant::now();
        let decoded = self.payloads.decoded(block);
        if let Some(divergence) = self.diverges(block, &decoded.payload)? {
            self.diverged = Some(divergence);
            out.diverged = Some(divergence);
            return Ok(None);
        }
        let every = self.snapshot_every;
        let write_tree = every > 0 && block.height.is_multiple_of(every);
        let (tip, report) = commit::apply(
            &self.store,
            &self.tip,
            block,
            qc,
            &decoded,
            durable,
            write_tree,
        )?;
        // A block claiming the root at a snapshot height certifies that root: the snapshot
        // can be made, and restorers can check it.
        let claimed = decoded.payload.state_height;
        if every > 0
            && claimed > self.last_snapshot
            && claimed.is_multiple_of(every)
            && claimed < block.height
        {
            self.last_snapshot = claimed;
            out.snapshot_due.push(SnapshotDue {
                height: claimed,
                certified_by: block.height,
            });
        }
        if durable {
            // The commit's batch is synced: the writes before it are durable.
            self.unsynced_blocks = false;
        }
        self.tip = tip;
        self.payloads.note_root(block.height, report.state_root);
        let mut mempool = lock(&self.mempool)?;
        mempool.remove_committed(
            &self.store,
            decoded.hashes.iter().copied().zip(&decoded.payload.txs),
        )?;
        out.expired
            .extend(mempool.expire_gapped(&self.store, now_ms)?);
        // Measured for the commit-time metric only; nothing the host decides depends on it.
        Ok(Some(CommitReport {
            elapsed: started.elapsed(),
            ..report
        }))
    }

    /// Whether committed `block`'s state claim, which a quorum certified, differs from the
    /// root this node executed at that height (a claim at a height whose root it no longer
    /// holds, or has not executed, cannot be compared).
    fn diverges(
        &self,
        block: &Block,
        payload: &BlockPayload,
    ) -> Result<Option<Divergence>, NodeError> {
        let height = payload.state_height;
        if height > self.tip.block.height || !self.payloads.check_claims {
            return Ok(None);
        }
        let Some(ours) = self.payloads.root_at(height, &self.store)? else {
            return Ok(None);
        };
        Ok((ours != payload.state_root).then_some(Divergence {
            height,
            ours,
            certified: payload.state_root,
            certified_by: block.height,
        }))
    }

    /// Builds and hands in the payload of a pending proposal once the pacer says it is due.
    fn propose_if_due(&mut self, now_ms: u64, out: &mut Output) -> Result<(), NodeError> {
        if !self.pacer.waiting() {
            return Ok(());
        }
        let (waiting, admitted) = {
            let mempool = lock(&self.mempool)?;
            (mempool.len(), mempool.admitted_total())
        };
        let Some((round, parent)) = self.pacer.due(now_ms, self.core.round(), waiting, admitted)
        else {
            return Ok(());
        };
        // The claim this proposal must make; unknown (the chain below the high QC is not
        // local), no valid proposal can be built, and the round times out.
        let Some(claim) = self.core.proposal_claim() else {
            return Ok(());
        };
        let Some(root) = self.payloads.root_at(claim, &self.store)? else {
            return Ok(());
        };
        let (payload, txs) = self.build_payload(&parent, claim, root)?;
        if !self.pacer.accept(now_ms, txs, admitted) {
            return Ok(());
        }
        let ready = Event::PayloadReady {
            round,
            parent,
            payload,
        };
        self.feed(now_ms, ready, out)
    }

    /// A payload extending `parent`: mempool transactions not already in an uncommitted
    /// ancestor, with the state claim (`claim` and the root this node executed there). If the
    /// chain from
    /// `parent` down to our last commit is not all local (we are catching up), the ancestors'
    /// transactions are unknown, so the payload carries none rather than risk proposing one
    /// twice. Returns the encoded payload and its transaction count.
    fn build_payload(
        &mut self,
        parent: &Digest,
        claim: u64,
        root: Digest,
    ) -> Result<(Vec<u8>, usize), NodeError> {
        let mut exclude = foldhash::HashSet::default();
        let mut cursor = *parent;
        let mut complete = *parent == self.tip.block.id;
        while let Some(block) = self.core.block(&cursor) {
            if complete {
                break;
            }
            exclude.extend(self.payloads.decoded(block).hashes.iter().copied());
            cursor = block.parent().id;
            complete = cursor == self.tip.block.id;
        }
        let txs = if complete {
            let (max_txs, budget) = self.payloads.selection_limits();
            lock(&self.mempool)?.select(&self.store, max_txs, budget, &exclude)
        } else {
            Vec::new()
        };
        let count = txs.len();
        let payload = BlockPayload::new(claim, root, txs);
        Ok((payload.encode(), count))
    }
}

/// Whether a rejection shows the peer sent something no honest validator sends. A leader
/// schedule that differs from ours is no proof: a validator whose committed history lags (just
/// restarted, or back from a partition) computes other leaders and failed leaders until it
/// catches up; those rejections are made before any signature is checked.
pub fn is_misbehaviour(e: &ConsensusError) -> bool {
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

/// The chain store and the safety record as the core's persistence sink. Blocks are put
/// unsynced; before a safety write the chain store is synced if blocks were put since its last
/// synced write, so every block is durable before a vote for it can leave.
struct Persister<'a, S> {
    store: &'a S,
    safety: &'a dyn SafetyStore,
    unsynced_blocks: &'a mut bool,
}

impl<S: ChainStore> PersistSink for Persister<'_, S> {
    type Error = StorageError;

    fn store_uncommitted(&mut self, block: &Block) -> Result<(), StorageError> {
        self.store.put_uncommitted(block)?;
        *self.unsynced_blocks = true;
        Ok(())
    }

    fn persist_safety(&mut self, data: &SafetyData) -> Result<(), StorageError> {
        if *self.unsynced_blocks {
            self.store.sync()?;
            *self.unsynced_blocks = false;
        }
        self.safety.put(data)
    }
}

/// The mempool's guard; a poisoned lock (a thread panicked holding it) stops the node.
fn lock(mempool: &Mutex<Mempool>) -> Result<MutexGuard<'_, Mempool>, NodeError> {
    mempool
        .lock()
        .map_err(|_| NodeError::Poisoned { what: "mempool" })
}

fn init_genesis<S: ChainStore>(store: &S, config: &HostConfig) -> Result<(), NodeError> {
    let (root, tree) = genesis_state_root(&config.genesis_accounts)?;
    let block = config.consensus.genesis;
    let tip = CommitTip {
        block,
        qc: QuorumCert::genesis(block),
        state_root: root,
        committed_txs: 0,
    };
    store.init_genesis(&config.genesis_hash, &tree, &tip)?;
    Ok(())
}

/// Recomputes the state-tree nodes a crash left unwritten; returns the heights rebuilt.
fn rebuild_tree<S: ChainStore>(store: &S) -> Result<u64, NodeError> {
    if store.tree_behind()?.is_empty() {
        return Ok(0);
    }
    // The accounts a block may have changed: its transfers' senders and recipients. A payload
    // that does not decode counts as empty on every node (`payload::Payloads::decoded`).
    let rebuilt = store.rebuild_tree(|block| {
        Ok(BlockPayload::decode(&block.payload, usize::MAX, usize::MAX)
            .map(|p| {
                p.txs
                    .iter()
                    .flat_map(|tx| [tx.transfer.from, tx.transfer.to])
                    .collect()
            })
            .unwrap_or_default())
    })?;
    Ok(rebuilt)
}

/// The last committed blocks, for leader reputation to choose the same leaders as the peers.
fn history<S: ChainStore>(
    store: &S,
    tip: &CommitTip,
    blocks: u64,
) -> Result<Vec<Block>, NodeError> {
    let from = tip.block.height.saturating_sub(blocks).saturating_add(1);
    let mut history = Vec::new();
    for height in from..=tip.block.height {
        match store.block_by_height(height)? {
            Some(stored) => history.push(stored.block),
            // Below a restored snapshot: the history its state sync fetched.
            None => history.extend(store.history_block(height)?),
        }
    }
    Ok(history)
}
