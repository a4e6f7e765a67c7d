//! The consensus state machine: events in, actions out. One file per concern: the inputs and
//! outputs (`events.rs`), proposals (`proposal.rs`), votes (`vote.rs`), certificates and the
//! commit rule (`certificate.rs`), rounds and timeouts (`rounds.rs`), this node's own payload
//! (`payload.rs`) and block retrieval (`sync.rs`).

mod certificate;
mod events;
mod payload;
mod proposal;
mod rounds;
mod sync;
mod vote;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hotledger_crypto::{Digest, PublicKey, Signature};

use crate::block_tree::BlockTree;
use crate::collect::{TimeoutCollector, VoteCollector};
use crate::config::{Config, Limits, Params};
use crate::error::{ConsensusError, Result};
use crate::leader::LeaderElection;
use crate::safety::{SafetyData, SafetyRules};
use crate::types::{Block, BlockInfo, Height, Message, QuorumCert, Round, TimeoutCert, TimeoutMsg};
use crate::validators::ValidatorSet;
use crate::verify::Verifier;

pub use events::{Action, Event};

/// What the node restarts from: its safety data and the last block it committed.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The safety data last persisted through [`Action::PersistSafety`] (the default on first
    /// start).
    pub safety: SafetyData,
    /// The last committed block (the genesis block on first start).
    pub root: BlockInfo,
    /// A QC that certifies `root` or a child of it (the genesis QC, or the last commit proof).
    pub root_qc: QuorumCert,
    /// The uncommitted blocks stored through [`Action::StoreUncommitted`] and not deleted since
    /// (any order; blocks at or below `root`, or that do not connect to it, are dropped).
    pub uncommitted: Vec<Block>,
    /// The last committed blocks, lowest height first, ending with `root`: the last
    /// `Config::history_blocks()` of them, or all there are (none at genesis). Leader reputation
    /// reads them, so a restarted node picks the same leaders as its peers; with fewer, it picks
    /// round-robin leaders and rejects its peers' proposals until it has committed enough.
    pub history: Vec<Block>,
}

impl Recovery {
    /// First start of a chain.
    pub fn genesis(config: &Config) -> Self {
        Recovery {
            safety: SafetyData::default(),
            root: config.genesis,
            root_qc: config.genesis_qc(),
            uncommitted: Vec::new(),
            history: Vec::new(),
        }
    }
}

/// Counters a host may export as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Proposals this node signed.
    pub proposals_made: u64,
    /// Votes this node signed and sent (or counted itself, as the next leader).
    pub votes_sent: u64,
    /// Timeouts this node signed (or re-sent) and broadcast.
    pub timeouts_sent: u64,
    /// QCs this node formed from votes.
    pub qcs_formed: u64,
    /// TCs this node formed from timeouts.
    pub tcs_formed: u64,
    /// Blocks committed.
    pub blocks_committed: u64,
    /// Inputs `handle` rejected with an error.
    pub rejected_messages: u64,
    /// Proposals not voted for because they were timestamped further ahead of this node's
    /// clock than `max_clock_skew_ms` (a clock here or there is off).
    pub proposals_ahead_of_clock: u64,
    /// Proposals kept without a vote because this node could not check their state claim yet
    /// ([`PayloadError::ClaimUnchecked`](crate::PayloadError::ClaimUnchecked)).
    pub proposals_unchecked: u64,
}

/// One validator's (or observer's) consensus state. See the crate docs for the protocol.
#[derive(Debug)]
pub struct Consensus {
    /// Whether peers' proposals wait for the application's payload check.
    check_payloads: bool,
    /// Verified proposals waiting for their payload check, by block id (bounded; see
    /// `core/payload.rs`).
    parked: BTreeMap<Digest, payload::Parked>,
    chain_id: String,
    genesis: BlockInfo,
    validators: ValidatorSet,
    leaders: LeaderElection,
    params: Params,
    limits: Limits,
    safety: Option<SafetyRules>,
    me: Option<PublicKey>,
    tree: BlockTree,
    round: Round,
    high_qc: QuorumCert,
    high_tc: Option<TimeoutCert>,
    /// Verified QCs of blocks above the root, by block id (so each QC is verified once).
    certified: HashMap<Digest, QuorumCert>,
    /// A verified QC of the root, if one is known.
    root_cert: Option<QuorumCert>,
    /// The highest consecutive QC seen: its parent is committed once the chain to it is local.
    commit_candidate: Option<QuorumCert>,
    /// The root's claim height (see [`crate::claim`]); `None` when the recovery history was too
    /// short to tell (known again from the next consecutive QC).
    root_claim: Option<Height>,
    votes: VoteCollector,
    timeouts: TimeoutCollector,
    /// Signed proposal headers seen per round, for equivocation evidence.
    proposals_seen: BTreeMap<Round, HashMap<PublicKey, (Height, Digest, Signature)>>,
    /// Proposals whose payload the application refused, by round (never checked again).
    payload_refused: BTreeSet<(Round, Digest)>,
    /// Proposals for the current round waiting for their parent; voted on when it arrives.
    awaiting_parent: BTreeMap<Round, (Digest, Option<TimeoutCert>)>,
    /// Blocks asked for and not yet received, with when they were asked for. Entries expire
    /// (see `request_expiry_ms`) so a request that went unanswered can be retried.
    requested: HashMap<Digest, u64>,
    /// The round whose payload was requested (leaders only).
    payload_round: Option<Round>,
    /// Validators the host reports it cannot reach (`Event::Unreachable`).
    unreachable: BTreeSet<PublicKey>,
    /// The last timeout this node signed (re-sent to validators that are reachable again).
    last_timeout: Option<TimeoutMsg>,
    now_ms: u64,
    stats: Stats,
}

impl Consensus {
    /// Builds a consensus instance from validated config and recovery data.
    pub fn new(config: Config, recovery: Recovery) -> Result<Self> {
        config.validate()?;
        check_recovery(&recovery)?;
        let root_claim = recovered_claim(&recovery);
        let mut leaders = LeaderElection::new(config.reputation);
        leaders.record(&config.validators, &recovery.history);
        let me = config.key.as_ref().map(|k| k.public());
        let high_qc = match &recovery.safety.high_qc {
            Some(qc) if qc.round() > recovery.root_qc.round() => qc.clone(),
            _ => recovery.root_qc.clone(),
        };
        let high_tc = recovery.safety.high_tc.clone();
        #[allow(unused_mut)]
        let mut safety = config
            .key
            .map(|key| SafetyRules::new(key, config.chain_id.clone(), recovery.safety));
        #[cfg(feature = "fault-injection")]
        if let Some(s) = safety.as_mut() {
            s.disable(config.disabled_rule);
        }
        let tree = restore_tree(&config.limits, recovery.root, recovery.uncommitted);
        let mut certified = HashMap::new();
        certified.insert(high_qc.data.block.id, high_qc.clone());
        let root_cert =
            (recovery.root_qc.data.block.id == recovery.root.id).then(|| recovery.root_qc.clone());
        Ok(Consensus {
            check_payloads: config.check_payloads,
            parked: BTreeMap::new(),
            chain_id: config.chain_id,
            genesis: config.genesis,
            validators: config.validators,
            leaders,
            params: config.params,
            limits: config.limits,
            safety,
            me,
            tree,
            round: 0,
            high_qc,
            high_tc,
            certified,
            root_cert,
            commit_candidate: None,
            root_claim,
            votes: VoteCollector::default(),
            timeouts: TimeoutCollector::default(),
            proposals_seen: BTreeMap::new(),
            payload_refused: BTreeSet::new(),
            awaiting_parent: BTreeMap::new(),
            requested: HashMap::new(),
            payload_round: None,
            unreachable: BTreeSet::new(),
            last_timeout: None,
            now_ms: 0,
            stats: Stats::default(),
        })
    }

    // ---- read-only views ----------------------------------------------------------------

    /// The round this node is in.
    pub fn round(&self) -> Round {
        self.round
    }

    /// The last committed block.
    pub fn committed(&self) -> &BlockInfo {
        self.tree.root()
    }

    /// The highest QC this node knows.
    pub fn high_qc(&self) -> &QuorumCert {
        &self.high_qc
    }

    /// The highest TC this node knows, if any.
    pub fn high_tc(&self) -> Option<&TimeoutCert> {
        self.high_tc.as_ref()
    }

    /// The validator set.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// The leader of `round`, as this node computes it from its committed history.
    pub fn leader(&self, round: Round) -> PublicKey {
        self.leaders.leader(&self.validators, round)
    }

    /// The validators that may lead `round` under leader reputation (see [`crate::leader`]).
    pub fn leader_candidates(&self, round: Round) -> Vec<PublicKey> {
        self.leaders.candidates(&self.validators, round)
    }

    /// This node's current safety data (`None` for an observer).
    pub fn safety_data(&self) -> Option<&SafetyData> {
        self.safety.as_ref().map(SafetyRules::data)
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// An uncommitted block held in memory.
    pub fn block(&self, id: &Digest) -> Option<&Block> {
        self.tree.get(id)
    }

    /// The height whose state root `block`'s payload must claim ([`crate::claim`]): `None` when
    /// the chain below it is not known here (its parent is missing and its QC commits nothing).
    pub fn state_claim(&self, block: &Block) -> Option<Height> {
        self.claim_of_child(&block.qc)
    }

    /// The height whose state root this node's next proposal (on its highest QC) must claim.
    pub fn proposal_claim(&self) -> Option<Height> {
        self.claim_of_child(&self.high_qc)
    }

    /// The claim height of a block carrying `qc`: walks down from the certified block through
    /// the tree (at most its size) to a consecutive QC or the root.
    fn claim_of_child(&self, qc: &QuorumCert) -> Option<Height> {
        crate::claim::claim_height(qc, || {
            let mut id = qc.data.block.id;
            loop {
                if id == self.tree.root().id {
                    return self.root_claim;
                }
                let block = self.tree.get(&id)?;
                if block.qc.data.is_consecutive() {
                    return Some(block.qc.data.parent.height);
                }
                id = block.parent().id;
            }
        })
    }

    /// Number of peers' proposals waiting for their payload check ([`Action::CheckPayload`]).
    pub fn parked_proposals(&self) -> usize {
        self.parked.len()
    }

    /// Number of uncommitted blocks and orphans held (for bounds checks and metrics).
    pub fn pending_blocks(&self) -> (usize, usize) {
        (self.tree.len(), self.tree.orphan_count())
    }

    /// Blocks for a `ServeBlocks` action: `id` and its ancestors, newest first, from memory or
    /// from `committed` (the host's store), at most `count`.
    pub fn collect_chain(
        &self,
        id: &Digest,
        count: u32,
        committed: impl Fn(&Digest) -> Option<Block>,
    ) -> Vec<Block> {
        let count = count.min(self.limits.max_blocks_per_request) as usize;
        self.tree.collect_chain(id, count, committed)
    }

    fn verifier(&self) -> Verifier<'_> {
        Verifier {
            chain_id: &self.chain_id,
            genesis: &self.genesis,
            validators: &self.validators,
        }
    }

    // ---- the event loop ------------------------------------------------------------------

    /// Feeds one event at local time `now_ms`; returns the actions to carry out, in order.
    ///
    /// A rejected message yields `Err` and changes nothing that matters for safety; the host
    /// logs it and may penalise the sender.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Result<Vec<Action>> {
        self.now_ms = self.now_ms.max(now_ms);
        let mut out = Vec::new();
        let result = match event {
            Event::Start => {
                let first = self.entry_round()?;
                self.enter_round(first, &mut out);
                // A restarted node re-sends the vote of the round it stopped in, and, as that
                // round's leader, the proposal it made in it.
                self.resend_last_vote(&mut out);
                self.resend_own_proposal(&mut out);
                Ok(())
            }
            Event::Message { from, message } => self.on_message(from, message, &mut out),
            Event::TimeoutFired { round } => self.on_timer(round, &mut out),
            Event::PayloadReady {
                round,
                parent,
                payload,
            } => self.on_payload(round, parent, payload, &mut out),
            Event::Unreachable { validators } => {
                self.on_unreachable(validators, &mut out);
                Ok(())
            }
            Event::PayloadChecked { id, result } => self.on_payload_checked(id, result, &mut out),
        };
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.stats.rejected_messages += 1;
                // Handlers verify before they change state, so a rejection has no actions. Should
                // one ever follow a change, the actions still go out: dropping a commit or a
                // persist would desynchronise the host from the core.
                debug_assert!(out.is_empty(), "rejected input produced actions: {e}");
                if out.is_empty() {
                    Err(e)
                } else {
                    Ok(out)
                }
            }
        }
    }

    fn entry_round(&self) -> Result<Round> {
        let qc_next = self
            .high_qc
            .round()
            .checked_add(1)
            .ok_or(ConsensusError::Overflow)?;
        let tc_next = match &self.high_tc {
            Some(tc) => tc.round.checked_add(1).ok_or(ConsensusError::Overflow)?,
            None => 0,
        };
        Ok(qc_next.max(tc_next))
    }

    fn on_message(
        &mut self,
        from: PublicKey,
        message: Message,
        out: &mut Vec<Action>,
    ) -> Result<()> {
        match message {
            Message::Proposal(p) => self.on_proposal(from, p, out),
            Message::Vote(v) => self.on_vote(v, out),
            Message::Timeout(t) => self.on_timeout(from, t, out),
            Message::BlockRequest(r) => self.on_block_request(from, r, out),
            Message::BlockResponse(r) => self.on_block_response(from, r, out),
        }
    }

    /// Rejects rounds more than `max_round_ahead` beyond ours.
    fn check_not_too_far(&self, round: Round) -> Result<()> {
        if round > self.round.saturating_add(self.limits.max_round_ahead) {
            return Err(ConsensusError::RoundTooFarAhead {
                round,
                current: self.round,
            });
        }
        Ok(())
    }
}

/// The block tree over `root` with the uncommitted blocks from our own disk, inserted as stored;
/// stale or disconnected blocks are simply skipped.
fn restore_tree(limits: &Limits, root: BlockInfo, mut blocks: Vec<Block>) -> BlockTree {
    let mut tree = BlockTree::new(root, limits.max_pending_blocks, limits.max_orphan_blocks);
    blocks.sort_by_key(|b| b.height);
    for block in blocks {
        let _ = tree.insert(block);
    }
    tree
}

/// The root's claim height from the recovery history (which ends at the root): the genesis
/// block claims 0; otherwise the newest commit the history's QCs make, `None` if they make
/// none and the history does not reach back to genesis.
fn recovered_claim(recovery: &Recovery) -> Option<Height> {
    if recovery.root.height == 0 {
        return Some(0);
    }
    let history = &recovery.history;
    let reaches_genesis = history.first().is_some_and(|b| b.height == 1);
    let below = reaches_genesis.then_some(0);
    if history.last().is_some_and(|b| b.id == recovery.root.id) {
        crate::claim::chain_claim(history.iter().map(|b| &b.qc), below)
    } else {
        None
    }
}

/// The recovery root QC must certify the root or its child, and the history must be
/// consecutive committed blocks ending at the root.
fn check_recovery(recovery: &Recovery) -> Result<()> {
    let rb = &recovery.root_qc.data;
    if rb.block.id != recovery.root.id && rb.parent.id != recovery.root.id {
        return Err(ConsensusError::InvalidConfig(
            "recovery root QC certifies neither the root nor its child".into(),
        ));
    }
    let (history, root) = (&recovery.history, &recovery.root);
    let chained = history.windows(2).all(|w| w[1].parent().id == w[0].id);
    let ends_at_root = history.last().is_none_or(|b| b.id == root.id);
    if chained && ends_at_root {
        Ok(())
    } else {
        Err(ConsensusError::InvalidConfig(
            "recovery history is not a chain of committed blocks ending at the root".into(),
        ))
    }
}
