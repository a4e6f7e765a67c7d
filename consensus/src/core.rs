//! The consensus state machine: events in, actions out. Rounds and timeouts are handled in
//! `core/rounds.rs`, block retrieval in `core/sync.rs`.

mod rounds;
mod sync;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hotledger_crypto::{Digest, PublicKey, Signature};

use crate::block_tree::{BlockTree, Inserted};
use crate::collect::{TimeoutCollector, VoteCollector, VoteOutcome};
use crate::config::{Config, Limits, Params};
use crate::error::{ConsensusError, Result};
use crate::leader::LeaderElection;
use crate::safety::{SafetyData, SafetyRules};
use crate::types::{
    Block, BlockInfo, Commit, Evidence, Height, Message, Proposal, QuorumCert, Round, TimeoutCert,
    Vote,
};
use crate::validators::ValidatorSet;
use crate::verify::Verifier;

/// An input to the core. Time is passed with every event (`Consensus::handle`'s `now_ms`).
#[derive(Debug, Clone)]
pub enum Event {
    /// Begin: enter the first round and arm its timer. Call once after `Consensus::new`.
    Start,
    /// A message from validator `from` (the transport authenticated the sender).
    Message { from: PublicKey, message: Message },
    /// The timer armed by `Action::ScheduleTimeout { round, .. }` fired.
    TimeoutFired { round: Round },
    /// The payload asked for by `Action::RequestPayload { round, .. }`.
    PayloadReady { round: Round, payload: Vec<u8> },
    /// The validators this node has lost its connection to: connected once, not now (the
    /// whole set, replacing the last one). Their rounds are timed out at once instead of after
    /// a timer, and votes that would go to one of them are broadcast and gathered by every node
    /// (see [`crate::pacemaker`]). Keys outside the validator set are ignored.
    Unreachable { validators: Vec<PublicKey> },
}

/// An output of the core, to be carried out **in order**.
///
/// # Contract: persist before send
/// `PersistSafety` must be durable (synced to disk) before any later action of the same batch is
/// carried out. The core places it before every `Send`/`Broadcast` of a vote, timeout or proposal
/// signed under the new safety data, so executing actions in order is enough to guarantee that a
/// crash can never lead this node to sign two conflicting messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Durably store the safety data; the node restarts from it.
    PersistSafety(SafetyData),
    /// Send to one validator.
    Send { to: PublicKey, message: Message },
    /// Send to every other validator.
    Broadcast(Message),
    /// Arm a timer; answer with `Event::TimeoutFired { round }` after `after_ms`, unless the
    /// round has been left (stale timers are ignored, so cancelling is optional).
    ScheduleTimeout { round: Round, after_ms: u64 },
    /// This node leads `round`: build a payload extending `parent` and answer with
    /// `Event::PayloadReady`.
    RequestPayload { round: Round, parent: BlockInfo },
    /// Answer a peer's block request: send `Message::BlockResponse` with the blocks returned by
    /// `Consensus::collect_chain(id, count, committed_lookup)`.
    ServeBlocks {
        to: PublicKey,
        id: Digest,
        count: u32,
    },
    /// Store this uncommitted block durably (no sync needed: the next `PersistSafety` sync
    /// covers it). Emitted for every block that enters the tree, before any vote for it, so a
    /// node restarted together with all the others still holds the certified chain. Blocks at
    /// or below a commit may be deleted.
    StoreBlock(Block),
    /// Blocks are final; apply them in order and store them (atomically).
    Commit(Commit),
    /// A validator signed two conflicting messages.
    ReportMisbehaviour(Evidence),
}

/// The application's check of a proposed block's payload, run before the block is accepted
/// and voted on (for example: transactions decode, signatures verify, limits hold). Blocks
/// fetched during catch-up are not checked: their QC shows a quorum already accepted them.
/// The check must be deterministic for honest nodes that have the same committed state.
pub trait PayloadCheck: Send + std::fmt::Debug {
    fn check(&mut self, block: &Block) -> std::result::Result<(), String>;
}

/// Accepts every payload (the simulator's application).
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAll;

impl PayloadCheck for AcceptAll {
    fn check(&mut self, _block: &Block) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// What the node restarts from: its safety data and the last block it committed.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub safety: SafetyData,
    /// The last committed block (the genesis block on first start).
    pub root: BlockInfo,
    /// A QC that certifies `root` or a child of it (the genesis QC, or the last commit proof).
    pub root_qc: QuorumCert,
    /// Uncommitted blocks stored through `Action::StoreBlock` (any order; stale ones are dropped).
    pub blocks: Vec<Block>,
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
            blocks: Vec::new(),
            history: Vec::new(),
        }
    }
}

/// Counters a host may export as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub proposals_made: u64,
    pub votes_sent: u64,
    pub timeouts_sent: u64,
    pub qcs_formed: u64,
    pub tcs_formed: u64,
    pub blocks_committed: u64,
    pub rejected_messages: u64,
}

/// One validator's (or observer's) consensus state. See the crate docs for the protocol.
#[derive(Debug)]
pub struct Consensus {
    payload_check: Box<dyn PayloadCheck>,
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
    votes: VoteCollector,
    timeouts: TimeoutCollector,
    /// Signed proposal headers seen per round, for equivocation evidence.
    proposals_seen: BTreeMap<Round, HashMap<PublicKey, (Height, Digest, Signature)>>,
    /// Proposals for the current round waiting for their parent; voted on when it arrives.
    awaiting_parent: BTreeMap<Round, (Digest, Option<TimeoutCert>)>,
    /// Blocks asked for and not yet received, with when they were asked for. Entries expire
    /// (see `request_expiry_ms`) so a request that went unanswered can be retried.
    requested: HashMap<Digest, u64>,
    /// The round whose payload was requested (leaders only).
    payload_round: Option<Round>,
    /// Validators the host reports it cannot reach (`Event::Unreachable`).
    unreachable: BTreeSet<PublicKey>,
    now_ms: u64,
    stats: Stats,
}

impl Consensus {
    /// Builds a consensus instance from validated config and recovery data.
    pub fn new(config: Config, recovery: Recovery) -> Result<Self> {
        config.validate()?;
        let rb = &recovery.root_qc.data;
        if rb.block.id != recovery.root.id && rb.parent.id != recovery.root.id {
            return Err(ConsensusError::InvalidConfig(
                "recovery root QC certifies neither the root nor its child".into(),
            ));
        }
        check_history(&recovery.history, &recovery.root)?;
        let mut leaders = LeaderElection::new(config.reputation);
        leaders.record(&config.validators, &recovery.history);
        let me = config.key.as_ref().map(|k| k.public());
        let mut high_qc = recovery.root_qc.clone();
        if let Some(qc) = &recovery.safety.high_qc {
            if qc.round() > high_qc.round() {
                high_qc = qc.clone();
            }
        }
        let high_tc = recovery.safety.high_tc.clone();
        #[allow(unused_mut)]
        let mut safety = config
            .key
            .map(|key| SafetyRules::new(key, config.chain_id.clone(), recovery.safety));
        #[cfg(feature = "fault-injection")]
        if let Some(s) = safety.as_mut() {
            s.disable(config.disabled_rule);
        }
        let tree = restore_tree(&config.limits, recovery.root, recovery.blocks);
        let mut certified = HashMap::new();
        certified.insert(high_qc.data.block.id, high_qc.clone());
        let root_cert = (rb.block.id == recovery.root.id).then(|| recovery.root_qc.clone());
        Ok(Consensus {
            payload_check: Box::new(AcceptAll),
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
            votes: VoteCollector::default(),
            timeouts: TimeoutCollector::default(),
            proposals_seen: BTreeMap::new(),
            awaiting_parent: BTreeMap::new(),
            requested: HashMap::new(),
            payload_round: None,
            unreachable: BTreeSet::new(),
            now_ms: 0,
            stats: Stats::default(),
        })
    }

    /// Installs the application's payload check (the default accepts everything).
    pub fn set_payload_check(&mut self, check: Box<dyn PayloadCheck>) {
        self.payload_check = check;
    }

    // ---- read-only views ----------------------------------------------------------------

    pub fn round(&self) -> Round {
        self.round
    }

    /// The last committed block.
    pub fn committed(&self) -> &BlockInfo {
        self.tree.root()
    }

    pub fn high_qc(&self) -> &QuorumCert {
        &self.high_qc
    }

    pub fn high_tc(&self) -> Option<&TimeoutCert> {
        self.high_tc.as_ref()
    }

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

    pub fn safety_data(&self) -> Option<&SafetyData> {
        self.safety.as_ref().map(SafetyRules::data)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// An uncommitted block held in memory.
    pub fn block(&self, id: &Digest) -> Option<&Block> {
        self.tree.get(id)
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
                // A restarted node re-sends the vote of the round it stopped in.
                self.resend_last_vote(&mut out);
                Ok(())
            }
            Event::Message { from, message } => self.on_message(from, message, &mut out),
            Event::TimeoutFired { round } => self.on_timer(round, &mut out),
            Event::PayloadReady { round, payload } => self.on_payload(round, payload, &mut out),
            Event::Unreachable { validators } => {
                self.on_unreachable(validators, &mut out);
                Ok(())
            }
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

    fn resend_last_vote(&self, out: &mut Vec<Action>) {
        let Some(vote) = self.safety_data().and_then(|s| s.last_vote.clone()) else {
            return;
        };
        if vote.round() == self.round {
            if let Some(next) = vote.round().checked_add(1) {
                let to = self.leader(next);
                out.push(Action::Send {
                    to,
                    message: Message::Vote(vote),
                });
            }
        }
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

    // ---- certificates --------------------------------------------------------------------

    /// Verifies a QC unless this very QC, signers included, was verified before. (Its signers
    /// matter beyond the quorum: leader reputation reads them.)
    fn verify_qc_once(&self, qc: &QuorumCert) -> Result<()> {
        if self.certified.get(&qc.data.block.id) == Some(qc) || self.root_cert.as_ref() == Some(qc)
        {
            return Ok(());
        }
        self.verifier().verify_qc(qc)
    }

    /// Verifies a TC and its high QC, unless it is the very TC we already hold. Returns whether
    /// it is newer than our highest TC. Every TC the core acts on, including one that justifies
    /// a vote, has passed this check.
    fn verify_tc_once(&self, tc: &TimeoutCert) -> Result<bool> {
        if self.high_tc.as_ref() == Some(tc) {
            return Ok(false);
        }
        self.verifier().verify_tc_signatures(tc)?;
        self.verify_qc_once(&tc.high_qc)?;
        Ok(self.high_tc.as_ref().is_none_or(|h| h.round < tc.round))
    }

    /// Takes a verified QC into account: high QC, commit candidate, round, block fetch.
    fn process_qc(&mut self, qc: &QuorumCert, from: Option<PublicKey>, out: &mut Vec<Action>) {
        let root = *self.tree.root();
        if qc.data.block.height > root.height {
            self.certified
                .entry(qc.data.block.id)
                .or_insert_with(|| qc.clone());
            if qc.data.is_consecutive()
                && qc.data.parent.height > root.height
                && self
                    .commit_candidate
                    .as_ref()
                    .is_none_or(|c| c.data.parent.height < qc.data.parent.height)
            {
                self.commit_candidate = Some(qc.clone());
            }
            if !self.tree.contains(&qc.data.block.id) {
                if let Some(peer) = from {
                    self.request_block(peer, qc.data.block.id, out);
                }
            }
        }
        if qc.round() > self.high_qc.round() {
            self.high_qc = qc.clone();
        }
        // Commit before entering the next round, so a leader builds its payload on top of the
        // state this QC just committed.
        self.try_commit(out);
        if let Some(next) = qc.round().checked_add(1) {
            self.enter_round(next, out);
        }
    }

    fn process_tc(&mut self, tc: TimeoutCert, out: &mut Vec<Action>) {
        let next = tc.round.checked_add(1);
        if self.high_tc.as_ref().is_none_or(|h| h.round < tc.round) {
            self.high_tc = Some(tc);
        }
        if let Some(next) = next {
            self.enter_round(next, out);
        }
    }

    /// Commits the candidate's parent and everything below it, once the chain is local
    /// (2-chain rule: a certified block whose parent is one round below commits the parent).
    fn try_commit(&mut self, out: &mut Vec<Action>) {
        let Some(candidate) = &self.commit_candidate else {
            return;
        };
        if candidate.data.parent.height <= self.tree.root().height {
            self.commit_candidate = None;
            return;
        }
        let Some(blocks) = self.tree.commit(&candidate.data.parent.id) else {
            return; // the chain to the root is not local yet; fetched blocks retry this
        };
        let Some(proof) = self.commit_candidate.take() else {
            return;
        };
        let root = *self.tree.root();
        self.root_cert = self.certified.remove(&root.id);
        self.certified
            .retain(|_, q| q.data.block.height > root.height);
        self.leaders.record(&self.validators, &blocks);
        self.stats.blocks_committed += blocks.len() as u64;
        out.push(Action::Commit(Commit { blocks, proof }));
    }

    // ---- messages ---------------------------------------------------------------------------
    fn on_vote(&mut self, vote: Vote, out: &mut Vec<Action>) -> Result<()> {
        let round = vote.round();
        let next = round.checked_add(1).ok_or(ConsensusError::Overflow)?;
        // The next leader gathers the votes. Any validator takes them in, though: votes are
        // broadcast when the next leader is unreachable, and one may arrive before this node
        // has learnt that itself. (Each is verified once; a validator has one vote a round.)
        if self.me.is_none() {
            return Err(ConsensusError::NotNextLeader { round });
        }
        if next < self.round {
            return Err(ConsensusError::StaleRound {
                round,
                current: self.round,
            });
        }
        self.check_not_too_far(round)?;
        self.verifier().verify_vote(&vote)?;
        self.count_vote(vote, None, out);
        Ok(())
    }

    /// Adds a verified vote; `from` (a peer that holds the block) is asked for the block if a
    /// QC forms on one this node lacks.
    fn count_vote(&mut self, vote: Vote, from: Option<PublicKey>, out: &mut Vec<Action>) {
        let Ok(power) = self.validators.power(&vote.author) else {
            return;
        };
        match self.votes.add(vote, power, self.validators.quorum()) {
            VoteOutcome::Certified(qc) => {
                self.stats.qcs_formed += 1;
                let fresh = qc.round() > self.high_qc.round();
                self.process_qc(&qc, from, out);
                if fresh {
                    self.skip_unled_round(qc.round(), out);
                }
            }
            VoteOutcome::Equivocation(evidence) => out.push(Action::ReportMisbehaviour(*evidence)),
            VoteOutcome::Counted | VoteOutcome::Duplicate => {}
        }
    }

    fn on_proposal(&mut self, from: PublicKey, p: Proposal, out: &mut Vec<Action>) -> Result<()> {
        let block = &p.block;
        let leader = self.leader(block.round);
        if block.author != leader {
            let not_leader = ConsensusError::NotLeader {
                round: block.round,
                author: block.author,
                expected: leader,
            };
            return match self.take_certificates(from, &p, out)? {
                true => Ok(()),
                false => Err(not_leader),
            };
        }
        let expected =
            self.leaders
                .failed_leaders(&self.validators, block.parent().round, block.round);
        if block.failed_leaders != expected {
            let wrong = ConsensusError::WrongFailedLeaders {
                round: block.round,
                got: block.failed_leaders.clone(),
                expected,
            };
            return match self.take_certificates(from, &p, out)? {
                true => Ok(()),
                false => Err(wrong),
            };
        }
        // A proposal may be any number of rounds ahead: its certificates, verified below, justify
        // the jump (a node back from a long partition follows them). Nothing changes until the
        // whole proposal is verified.
        self.verifier()
            .verify_block(block, self.params.max_payload_bytes)?;
        self.check_clock_skew(block)?;
        self.check_justification(block, p.tc.as_ref())?;
        self.verify_qc_once(&block.qc)?;
        let new_tc = match &p.tc {
            Some(tc) => self.verify_tc_once(tc)?,
            None => false,
        };
        let (id, round) = (block.id, block.round);
        if self.tree.get(&block.id).is_none() && Some(block.author) != self.me {
            self.payload_check
                .check(block)
                .map_err(|reason| ConsensusError::InvalidPayload { reason })?;
        }
        let inserted = self.tree.insert(block.clone())?;
        // Equivocation is reported, and the block is still processed: it may get certified by
        // others, and the safety rules alone decide whether we vote (one vote per round).
        self.note_proposal(&p.block, out);
        if let (true, Some(tc)) = (new_tc, &p.tc) {
            self.process_qc(&tc.high_qc.clone(), Some(from), out);
            self.process_tc(tc.clone(), out);
        }
        self.process_qc(&p.block.qc, Some(from), out);
        match inserted {
            Inserted::Added(ids) => {
                self.store_blocks(&ids, out);
                self.after_insert(&ids, out);
            }
            Inserted::Known | Inserted::BelowRoot => {}
            Inserted::Orphan { missing } => {
                if round == self.round {
                    self.awaiting_parent.insert(round, (id, p.tc.clone()));
                }
                self.request_block(from, missing, out);
            }
        }
        if round == self.round && self.tree.get(&id).is_some() {
            self.try_vote(&id, p.tc.as_ref(), out);
        }
        Ok(())
    }

    /// A proposal whose author is not the leader this node computes is not voted on, nor is its
    /// block kept, but its certificates, verified on their own as a timeout's are, still move
    /// the node on: a node whose committed history lags computes other leaders than its peers
    /// until their QCs let it commit and catch up. Returns whether they brought anything new.
    fn take_certificates(
        &mut self,
        from: PublicKey,
        p: &Proposal,
        out: &mut Vec<Action>,
    ) -> Result<bool> {
        if !self.validators.contains(&p.block.author) {
            return Ok(false);
        }
        let qc = &p.block.qc;
        let new_qc = qc.round() > self.high_qc.round();
        let tc =
            p.tc.as_ref()
                .filter(|tc| self.high_tc.as_ref().is_none_or(|h| h.round < tc.round));
        if !new_qc && tc.is_none() {
            return Ok(false);
        }
        self.verify_qc_once(qc)?;
        if let Some(tc) = tc {
            self.verify_tc_once(tc)?;
            self.process_qc(&tc.high_qc.clone(), Some(from), out);
            self.process_tc(tc.clone(), out);
        }
        self.process_qc(qc, Some(from), out);
        Ok(true)
    }

    /// A block may not be timestamped further ahead of this node's clock than the allowed skew.
    fn check_clock_skew(&self, block: &Block) -> Result<()> {
        let max_ts = self.now_ms.saturating_add(self.params.max_clock_skew_ms);
        if block.timestamp_ms > max_ts {
            return Err(ConsensusError::BadTimestamp {
                got: block.timestamp_ms,
                min: block.parent().timestamp_ms,
                max: max_ts,
            });
        }
        Ok(())
    }

    /// A block of round r must carry a QC of round r-1, or a TC of round r-1.
    fn check_justification(&self, block: &Block, tc: Option<&TimeoutCert>) -> Result<()> {
        let qc_round = block.qc.round();
        let by_qc = qc_round.checked_add(1) == Some(block.round);
        let by_tc = tc.is_some_and(|t| t.round.checked_add(1) == Some(block.round));
        if by_qc || by_tc {
            Ok(())
        } else {
            Err(ConsensusError::UnjustifiedRound {
                round: block.round,
                qc_round,
                tc_round: tc.map(|t| t.round),
            })
        }
    }

    /// Records the signed header; on a second, different proposal from the same leader in the
    /// same round, reports evidence.
    fn note_proposal(&mut self, block: &Block, out: &mut Vec<Action>) {
        let seen = self.proposals_seen.entry(block.round).or_default();
        match seen.get(&block.author) {
            Some((h, id, sig)) if *id != block.id => {
                out.push(Action::ReportMisbehaviour(Evidence::ConflictingProposals {
                    author: block.author,
                    round: block.round,
                    first: (*h, *id, *sig),
                    second: (block.height, block.id, block.signature),
                }));
            }
            Some(_) => {}
            None => {
                seen.insert(block.author, (block.height, block.id, block.signature));
            }
        }
    }

    /// Votes for `id` (in the tree, current round) if the safety rules allow; persists first.
    fn try_vote(&mut self, id: &Digest, tc: Option<&TimeoutCert>, out: &mut Vec<Action>) {
        let Some(block) = self.tree.get(id) else {
            return;
        };
        if block.round != self.round {
            return;
        }
        let high_qc = self.high_qc.clone();
        let high_tc = self.high_tc.clone();
        let Some(safety) = self.safety.as_mut() else {
            return;
        };
        safety.record_certificates(&high_qc, high_tc.as_ref());
        let Ok(vote) = safety.vote(block, tc) else {
            return; // already voted or timed out this round, or unsafe: stay silent
        };
        out.push(Action::PersistSafety(safety.data().clone()));
        self.stats.votes_sent += 1;
        let Some(next) = vote.round().checked_add(1) else {
            return;
        };
        let to = self.leader(next);
        if Some(to) == self.me {
            self.count_vote(vote, None, out);
        } else if self.is_unreachable(&to) {
            self.gather_everywhere(vote, out);
        } else {
            out.push(Action::Send {
                to,
                message: Message::Vote(vote),
            });
        }
    }

    /// Asks the host to store blocks that just entered the tree (before any vote for them).
    fn store_blocks(&self, ids: &[Digest], out: &mut Vec<Action>) {
        for id in ids {
            if let Some(block) = self.tree.get(id) {
                out.push(Action::StoreBlock(block.clone()));
            }
        }
    }

    /// After blocks entered the tree: vote for a waiting proposal, commit what became local.
    fn after_insert(&mut self, ids: &[Digest], out: &mut Vec<Action>) {
        if let Some((id, tc)) = self.awaiting_parent.get(&self.round).cloned() {
            if ids.contains(&id) {
                self.awaiting_parent.remove(&self.round);
                self.try_vote(&id, tc.as_ref(), out);
            }
        }
        self.try_commit(out);
    }

    fn on_payload(&mut self, round: Round, payload: Vec<u8>, out: &mut Vec<Action>) -> Result<()> {
        if self.payload_round != Some(round) || round != self.round {
            return Ok(()); // the round moved on; the payload is dropped
        }
        if payload.len() > self.params.max_payload_bytes {
            return Err(ConsensusError::PayloadTooLarge {
                got: payload.len(),
                max: self.params.max_payload_bytes,
            });
        }
        self.payload_round = None;
        let qc = self.high_qc.clone();
        let tc = if qc.round().checked_add(1) == Some(round) {
            None
        } else {
            match &self.high_tc {
                Some(tc) if tc.round.checked_add(1) == Some(round) => Some(tc.clone()),
                _ => return Ok(()), // cannot justify this round; let it time out
            }
        };
        let high_tc = self.high_tc.clone();
        let Some(safety) = self.safety.as_mut() else {
            return Ok(());
        };
        let parent = *qc.block();
        let height = parent
            .height
            .checked_add(1)
            .ok_or(ConsensusError::Overflow)?;
        let timestamp_ms = self.now_ms.max(parent.timestamp_ms);
        let author = safety.public();
        let failed_leaders = self
            .leaders
            .failed_leaders(&self.validators, parent.round, round);
        let id = Block::compute_id(
            round,
            height,
            timestamp_ms,
            &author,
            &qc,
            &failed_leaders,
            &payload,
        );
        let mut block = Block {
            id,
            round,
            height,
            timestamp_ms,
            author,
            qc,
            failed_leaders,
            payload,
            signature: hotledger_crypto::Signature([0; 64]),
        };
        safety.record_certificates(&self.high_qc, high_tc.as_ref());
        block.signature = safety.sign_proposal(&block)?;
        out.push(Action::PersistSafety(safety.data().clone()));
        let proposal = Proposal { block, tc };
        out.push(Action::Broadcast(Message::Proposal(proposal.clone())));
        self.stats.proposals_made += 1;
        // Our own proposal goes through the same path as anyone's (it is verified cheaply).
        // (It cannot fail on our own signature; if the block tree is full we still sent it.)
        if let Some(me) = self.me {
            let _ = self.on_proposal(me, proposal, out);
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

/// Recovery history must be consecutive committed blocks ending at the root.
fn check_history(history: &[Block], root: &BlockInfo) -> Result<()> {
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
