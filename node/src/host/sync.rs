//! Forward block sync: a node far behind fetches committed blocks by height, from several peers
//! at once, each response proven committed on its own, and applies them without the consensus
//! core; close to the tip it hands back to consensus.
//!
//! # Protocol
//!
//! ```text
//!   every STATUS_INTERVAL_MS, to every peer:  Status { low, high }       committed heights held
//!   a node behind, to a peer whose high ≥ h:  Request { from: h, count }  at most MAX_REQUEST_BLOCKS
//!   the peer, from its store (off its loop):  Response { from, blocks, proof }
//! ```
//!
//! A response is `blocks`, consecutive committed blocks from `from`, and `proof`: a QC whose
//! vote data certifies a child of the last block with the parent being that last block, in
//! consecutive rounds: the 2-chain rule's commit proof for the last block, so for every block
//! before it, since each block's id covers its parent's id. The receiver checks each block
//! (its id recomputed over its contents, payload included; its author a validator; its height,
//! round and size), the parent links, every block's QC and the proof against the validator set
//! (batch-verified signatures, 2f+1 voting power). A response that fails any check is refused,
//! its peer struck and the range asked of another; one that proves its blocks is the committed
//! chain at those heights (two committed blocks at one height would break consensus safety), so
//! it needs no agreement with other responses.
//!
//! # Modes
//!
//! The host follows consensus until it is at least [`ENTER_GAP`] blocks behind: `f + 1`
//! validators report committed heights that far above its own, or one does and its core holds a
//! verified QC that high (one lying peer cannot switch it to sync). While syncing the core is
//! not fed (it would commit the same heights again): the host keeps [`PARALLEL`] windows of
//! heights in flight to distinct peers, applies proven blocks in height order, each in its own
//! synced batch, and once no peer it trusts reports more than [`EXIT_GAP`] blocks above its tip
//! it restarts the core from the new tip and the safety record. It switches back to sync
//! whenever it falls behind again.

use std::collections::BTreeMap;

use hotledger_consensus::{Block, ConsensusError, QuorumCert, Verifier};
use hotledger_crypto::PublicKey;
use hotledger_ledger::SnapshotChunk;
use serde::{Deserialize, Serialize};

use super::statesync::SnapshotOffer;

/// How often a node tells its peers which heights it holds.
pub const STATUS_INTERVAL_MS: u64 = 1_000;
/// Blocks behind at which a node switches from consensus to sync.
pub const ENTER_GAP: u64 = 32;
/// Within this many blocks of the highest height a trusted peer reports, back to consensus.
pub const EXIT_GAP: u64 = 4;
/// Windows of heights in flight at once, each to a different peer.
pub const PARALLEL: usize = 4;
/// Most blocks asked for in one request (a response is also cut to a byte budget).
pub const MAX_REQUEST_BLOCKS: u32 = 256;
/// A window not answered within this long is asked of another peer, and its peer struck.
pub const REQUEST_TIMEOUT_MS: u64 = 4_000;
/// Strikes after which a peer is not asked for [`STRIKE_PAUSE_MS`].
pub const MAX_STRIKES: u32 = 3;
pub const STRIKE_PAUSE_MS: u64 = 30_000;
/// A peer that answered a window with no blocks is not asked for that height or above, nor
/// counted as holding them, for this long (its status may be older than a restart, it may be
/// over its serving rate, or it may be lying about what it holds).
pub const EMPTY_PAUSE_MS: u64 = 2_000;

/// Most peers the syncer keeps what it knows of (a full node may hear statuses from many);
/// beyond it, the one reporting the lowest height without a window in flight makes room.
pub const MAX_PEERS: usize = 2_048;

/// Sync messages between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMessage {
    /// The committed heights the sender holds (`low..=high`).
    Status { low: u64, high: u64 },
    /// Committed blocks from height `from`, at most `count`.
    Request { from: u64, count: u32 },
    /// Consecutive committed blocks from `from` (none: not held) and the QC proving the last
    /// one committed (see the module docs).
    Response {
        from: u64,
        blocks: Vec<Block>,
        proof: Option<QuorumCert>,
    },
    /// The complete state snapshots the sender holds and serves (state sync, see
    /// [`super::statesync`]).
    Snapshots { offers: Vec<SnapshotOffer> },
    /// Chunk `index` of the snapshot at `height`.
    ChunkRequest { height: u64, index: u32 },
    /// The chunk asked for (none: not held).
    Chunk {
        height: u64,
        index: u32,
        chunk: Option<SnapshotChunk>,
    },
}

impl SyncMessage {
    /// The answer "no blocks from `from` now" (not held, or the server is over its rate).
    pub fn none(from: u64) -> SyncMessage {
        SyncMessage::Response {
            from,
            blocks: Vec::new(),
            proof: None,
        }
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncMessage::Status { .. } => "sync-status",
            SyncMessage::Request { .. } => "sync-request",
            SyncMessage::Response { .. } => "sync-response",
            SyncMessage::Snapshots { .. } => "snapshots",
            SyncMessage::ChunkRequest { .. } => "chunk-request",
            SyncMessage::Chunk { .. } => "chunk",
        }
    }
}

/// What the syncer knows of a peer.
#[derive(Clone, Copy, Debug, Default)]
struct Peer {
    /// The lowest height it holds (it pruned those below).
    low: u64,
    high: u64,
    strikes: u32,
    /// Not asked before this time (ms) after too many strikes.
    paused_until: u64,
    /// A window is in flight to it.
    busy: bool,
    /// It answered a window from this height with no blocks, at a time until
    /// `empty_until` (see [`EMPTY_PAUSE_MS`]).
    empty_from: u64,
    empty_until: u64,
}

impl Peer {
    /// The highest height it can be taken to hold at `now_ms`: its report, less what it just
    /// answered it does not have.
    fn reach(&self, now_ms: u64) -> u64 {
        if now_ms < self.empty_until {
            self.high.min(self.empty_from.saturating_sub(1))
        } else {
            self.high
        }
    }

    /// Not paused for strikes at `now_ms`.
    fn usable(&self, now_ms: u64) -> bool {
        self.paused_until <= now_ms
    }
}

/// A window of heights in flight.
#[derive(Clone, Copy, Debug)]
struct Window {
    peer: PublicKey,
    count: u32,
    sent_ms: u64,
}

/// Blocks proven committed, not applied yet: from one response.
#[derive(Clone, Debug)]
pub(super) struct Proven {
    pub blocks: Vec<Block>,
    /// Commit proof of the last block.
    pub proof: QuorumCert,
}

impl Proven {
    /// The QC certifying `blocks[i]` (its child's), or the proof for the last.
    pub fn certifying(&self, i: usize) -> &QuorumCert {
        self.blocks
            .get(i + 1)
            .map_or(&self.proof, |child| &child.qc)
    }
}

/// What a response is checked against.
#[derive(Clone, Copy, Debug)]
pub(super) struct Checks<'a> {
    /// The chain id, genesis and validator set.
    pub verifier: Verifier<'a>,
    /// The largest payload a block may carry.
    pub max_payload: usize,
}

/// What one sync did, from switching to sync to switching back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    pub blocks: u64,
    /// Transfers applied.
    pub txs: u64,
    /// Host time from switching to sync to switching back (ms).
    pub elapsed_ms: u64,
}

/// The sync state machine (pure: time and the tip are arguments).
#[derive(Debug)]
pub(super) struct Syncer {
    peers: BTreeMap<PublicKey, Peer>,
    windows: BTreeMap<u64, Window>,
    /// Proven responses by first height.
    proven: BTreeMap<u64, Proven>,
    active: bool,
    /// Since when, and what this sync applied so far.
    started_ms: u64,
    summary: SyncSummary,
    next_status_ms: u64,
    /// f + 1 for the validator set: reports from this many peers cannot all be lies.
    honest_reports: usize,
    /// Blocks per request.
    request_blocks: u32,
}

/// Why a response was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("a sync response of {got} blocks, asked for at most {max}")]
    TooManyBlocks { got: usize, max: u32 },
    #[error("a sync response block at height {got}, expected {expected}")]
    WrongHeight { got: u64, expected: u64 },
    #[error("sync response blocks do not link at height {height}")]
    Unlinked { height: u64 },
    #[error("a sync response without a commit proof for its last block")]
    NoProof,
    #[error("a sync response's block or certificate does not verify: {0}")]
    Invalid(#[from] ConsensusError),
}

impl Syncer {
    pub fn new(validators: usize, request_blocks: u32) -> Syncer {
        Syncer {
            peers: BTreeMap::new(),
            windows: BTreeMap::new(),
            proven: BTreeMap::new(),
            active: false,
            started_ms: 0,
            summary: SyncSummary::default(),
            next_status_ms: 0,
            honest_reports: validators.saturating_sub(1) / 3 + 1,
            request_blocks: request_blocks.clamp(1, MAX_REQUEST_BLOCKS),
        }
    }

    /// Whether the host is syncing (the core is not fed meanwhile).
    pub fn active(&self) -> bool {
        self.active
    }

    /// The highest committed height a peer not paused reports (while syncing: how far there is
    /// to go).
    pub fn best_high(&self, now_ms: u64) -> u64 {
        self.peers
            .values()
            .filter(|p| p.usable(now_ms))
            .map(|p| p.reach(now_ms))
            .max()
            .unwrap_or(0)
    }

    /// Whether a status is due at `now_ms`.
    pub fn status_is_due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_status_ms
    }

    /// The status to broadcast now (`low..=high`: the heights held; none at genesis).
    pub fn status(&mut self, now_ms: u64, low: u64, high: u64) -> SyncMessage {
        self.next_status_ms = now_ms.saturating_add(STATUS_INTERVAL_MS);
        SyncMessage::Status {
            low: if high == 0 { 0 } else { low.max(1) },
            high,
        }
    }

    /// When the syncer next needs a tick: the next status, or the first window's timeout.
    pub fn wake_at(&self) -> u64 {
        let timeout = self
            .windows
            .values()
            .map(|w| w.sent_ms.saturating_add(REQUEST_TIMEOUT_MS))
            .min();
        timeout.map_or(self.next_status_ms, |t| t.min(self.next_status_ms))
    }

    pub fn on_status(&mut self, from: PublicKey, low: u64, high: u64) {
        if !self.peers.contains_key(&from) && self.peers.len() >= MAX_PEERS {
            let lowest = self
                .peers
                .iter()
                .filter(|(_, p)| !p.busy)
                .min_by_key(|(_, p)| p.high)
                .map(|(k, _)| *k);
            match lowest {
                Some(k) => {
                    self.peers.remove(&k);
                }
                None => return,
            }
        }
        let peer = self.peers.entry(from).or_default();
        peer.low = low;
        peer.high = high;
    }

    /// Forgets `peer` (it disconnected): its report, and the window in flight to it, which is
    /// asked of another peer.
    pub fn forget(&mut self, peer: &PublicKey) {
        self.peers.remove(peer);
        self.windows.retain(|_, w| w.peer != *peer);
    }

    /// Whether to switch to sync: see the module docs. `certified` is the height of the
    /// highest QC the core verified.
    pub fn should_enter(&self, now_ms: u64, tip: u64, certified: u64) -> bool {
        if self.active {
            return false;
        }
        let far = tip.saturating_add(ENTER_GAP);
        let reports = self
            .peers
            .values()
            .filter(|p| p.usable(now_ms) && p.reach(now_ms) >= far)
            .count();
        reports >= self.honest_reports || (reports >= 1 && certified >= far)
    }

    pub fn enter(&mut self, now_ms: u64) {
        self.active = true;
        self.started_ms = now_ms;
        self.summary = SyncSummary::default();
    }

    /// Counts a block applied by this sync.
    pub fn applied(&mut self, txs: u64) {
        self.summary.blocks = self.summary.blocks.saturating_add(1);
        self.summary.txs = self.summary.txs.saturating_add(txs);
    }

    /// Whether sync is done at `now_ms`: no proven blocks wait, and no peer that is not paused
    /// can be taken to hold more than [`EXIT_GAP`] blocks above `tip` (windows in flight are
    /// dropped: consensus fetches the last few blocks).
    pub fn should_exit(&self, now_ms: u64, tip: u64) -> bool {
        self.active
            && self.proven.is_empty()
            && !self
                .peers
                .values()
                .any(|p| p.usable(now_ms) && p.reach(now_ms) > tip.saturating_add(EXIT_GAP))
    }

    /// Back to consensus; returns what this sync did.
    pub fn exit(&mut self, now_ms: u64) -> SyncSummary {
        self.active = false;
        self.windows.clear();
        self.proven.clear();
        for peer in self.peers.values_mut() {
            peer.busy = false;
        }
        SyncSummary {
            elapsed_ms: now_ms.saturating_sub(self.started_ms),
            ..self.summary
        }
    }

    /// Times windows out (striking their peers) and asks for the next ones; returns the
    /// requests to send.
    pub fn requests(&mut self, now_ms: u64, tip: u64) -> Vec<(PublicKey, SyncMessage)> {
        let expired: Vec<u64> = self
            .windows
            .iter()
            .filter(|(_, w)| now_ms >= w.sent_ms.saturating_add(REQUEST_TIMEOUT_MS))
            .map(|(from, _)| *from)
            .collect();
        for from in expired {
            if let Some(w) = self.windows.remove(&from) {
                self.strike(w.peer, now_ms);
            }
        }
        let mut out = Vec::new();
        if !self.active {
            return out;
        }
        // Heights covered already (proven or in flight), in order; new windows fill what is
        // not, from the tip up, at most `PARALLEL` windows' worth of heights ahead.
        let mut covered: Vec<(u64, u64)> = self
            .proven
            .iter()
            .map(|(from, p)| (*from, from.saturating_add(p.blocks.len() as u64)))
            .chain(
                self.windows
                    .iter()
                    .map(|(from, w)| (*from, from.saturating_add(u64::from(w.count)))),
            )
            .collect();
        covered.sort_unstable();
        let step = u64::from(self.request_blocks);
        let limit = tip
            .saturating_add(1)
            .saturating_add(step.saturating_mul(2 * PARALLEL as u64));
        let mut next = tip.saturating_add(1);
        let mut ahead = covered.into_iter().peekable();
        while self.windows.len() < PARALLEL && next < limit {
            while let Some(&(a, b)) = ahead.peek() {
                if b <= next {
                    ahead.next();
                } else if a <= next {
                    next = b;
                    ahead.next();
                } else {
                    break;
                }
            }
            if next >= limit {
                break;
            }
            let room = ahead.peek().map_or(step, |&(a, _)| a.saturating_sub(next));
            let count = u32::try_from(room.min(step)).unwrap_or(self.request_blocks);
            let Some(peer) = self.pick(now_ms, next) else {
                break;
            };
            if let Some(p) = self.peers.get_mut(&peer) {
                p.busy = true;
            }
            self.windows.insert(
                next,
                Window {
                    peer,
                    count,
                    sent_ms: now_ms,
                },
            );
            out.push((peer, SyncMessage::Request { from: next, count }));
            next = next.saturating_add(u64::from(count));
        }
        out
    }

    /// A peer that holds `from`, is not busy or paused: the one with the fewest strikes, then
    /// the highest.
    fn pick(&self, now_ms: u64, from: u64) -> Option<PublicKey> {
        self.peers
            .iter()
            .filter(|(_, p)| {
                !p.busy && p.usable(now_ms) && p.low <= from && p.reach(now_ms) >= from
            })
            .min_by_key(|(_, p)| (p.strikes, std::cmp::Reverse(p.reach(now_ms))))
            .map(|(k, _)| *k)
    }

    fn strike(&mut self, peer: PublicKey, now_ms: u64) {
        let p = self.peers.entry(peer).or_default();
        p.busy = false;
        p.strikes = p.strikes.saturating_add(1);
        if p.strikes >= MAX_STRIKES {
            p.strikes = 0;
            p.paused_until = now_ms.saturating_add(STRIKE_PAUSE_MS);
        }
    }

    /// Takes in a response: checks it against the window asked of `from` (see the module docs)
    /// and keeps its blocks if they are proven. A peer whose response is refused is struck.
    pub fn on_response(
        &mut self,
        now_ms: u64,
        peer: PublicKey,
        from: u64,
        blocks: Vec<Block>,
        proof: Option<QuorumCert>,
        checks: &Checks<'_>,
    ) -> Result<(), SyncError> {
        let window = match self.windows.get(&from) {
            Some(w) if w.peer == peer => *w,
            // Late (its window timed out and went to another peer) or never asked for: dropped
            // before any check, so it costs nothing.
            _ => return Ok(()),
        };
        self.windows.remove(&from);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.busy = false;
        }
        if blocks.is_empty() {
            // It does not hold them now (see `EMPTY_PAUSE_MS`): asked of others meanwhile.
            if let Some(p) = self.peers.get_mut(&peer) {
                p.empty_from = from;
                p.empty_until = now_ms.saturating_add(EMPTY_PAUSE_MS);
            }
            return Ok(());
        }
        match check(from, &blocks, proof.as_ref(), window.count, checks) {
            Ok(()) => {}
            Err(e) => {
                self.strike(peer, now_ms);
                return Err(e);
            }
        }
        let proof = proof.ok_or(SyncError::NoProof)?;
        self.proven.insert(from, Proven { blocks, proof });
        Ok(())
    }

    /// The next proven blocks to apply on top of `tip` (the height), in order; blocks at or
    /// below the tip are dropped.
    pub fn take_next(&mut self, tip: u64) -> Option<Proven> {
        loop {
            let (&from, _) = self.proven.iter().next()?;
            if from > tip.saturating_add(1) {
                return None;
            }
            let mut p = self.proven.remove(&from)?;
            let skip =
                usize::try_from(tip.saturating_add(1).saturating_sub(from)).unwrap_or(usize::MAX);
            if skip >= p.blocks.len() {
                continue;
            }
            p.blocks.drain(..skip);
            return Some(p);
        }
    }
}

/// Checks a response's blocks and proof (see the module docs).
pub(super) fn check(
    from: u64,
    blocks: &[Block],
    proof: Option<&QuorumCert>,
    max: u32,
    checks: &Checks<'_>,
) -> Result<(), SyncError> {
    let Checks {
        verifier,
        max_payload,
    } = checks;
    let max_payload = *max_payload;
    let max = max.saturating_add(PROOF_SLACK);
    if blocks.len() > max as usize {
        return Err(SyncError::TooManyBlocks {
            got: blocks.len(),
            max,
        });
    }
    let proof = proof.ok_or(SyncError::NoProof)?;
    let mut expected = from;
    for (i, block) in blocks.iter().enumerate() {
        if block.height != expected {
            return Err(SyncError::WrongHeight {
                got: block.height,
                expected,
            });
        }
        if i > 0 && block.parent().id != blocks[i - 1].id {
            return Err(SyncError::Unlinked {
                height: block.height,
            });
        }
        expected = expected.saturating_add(1);
    }
    // Cheap structure first, then signatures.
    let last = blocks.last().ok_or(SyncError::NoProof)?;
    if proof.data.parent != last.info() || !proof.data.is_consecutive() {
        return Err(SyncError::NoProof);
    }
    for block in blocks {
        verifier.verify_block(block, max_payload)?;
    }
    for block in blocks {
        verifier.verify_qc(&block.qc)?;
    }
    verifier.verify_qc(proof)?;
    Ok(())
}

/// The answer to a peer's request from `store`, off the consensus loop: blocks ([`serve`]) or
/// a snapshot chunk. Other messages are not requests: `None`.
pub fn answer<S: crate::storage::ChainStore>(
    store: &S,
    request: &SyncMessage,
    budget: usize,
) -> Result<Option<SyncMessage>, crate::storage::StorageError> {
    match *request {
        SyncMessage::Request { from, count } => serve(store, from, count, budget).map(Some),
        SyncMessage::ChunkRequest { height, index } => {
            // Only a complete snapshot is served (one being restored is not yet checked whole).
            let complete = store
                .snapshots()?
                .iter()
                .any(|m| m.height == height && m.complete);
            let chunk = if complete {
                store.snapshot_chunk(height, index)?
            } else {
                None
            };
            Ok(Some(SyncMessage::Chunk {
                height,
                index,
                chunk,
            }))
        }
        _ => Ok(None),
    }
}

/// Blocks a server may add past the asked count to reach a block it can prove committed.
pub const PROOF_SLACK: u32 = 64;

/// Answers `Request { from, count }` from the committed chain in `store`: consecutive blocks
/// from `from`, cut to `budget` bytes (never below one block), ending at a block this store
/// can prove committed, with that proof (see the module docs). No blocks if it holds none
/// from `from`, or cannot prove any within [`PROOF_SLACK`] blocks past the count.
pub fn serve<S: crate::storage::ChainStore>(
    store: &S,
    from: u64,
    count: u32,
    budget: usize,
) -> Result<SyncMessage, crate::storage::StorageError> {
    let none = SyncMessage::none(from);
    let Some(tip) = store.tip()? else {
        return Ok(none);
    };
    let high = tip.block.height;
    if from == 0 || from > high {
        return Ok(none);
    }
    let count = count.clamp(1, MAX_REQUEST_BLOCKS);
    let wanted_end = from
        .saturating_add(u64::from(count))
        .saturating_sub(1)
        .min(high);
    let slack_end = wanted_end.saturating_add(u64::from(PROOF_SLACK)).min(high);
    let mut blocks: Vec<Block> = Vec::new();
    let mut used = 0usize;
    let mut height = from;
    // The wanted blocks (or as many as the budget holds), and the two above the last that
    // carry its proof.
    let first_pass = wanted_end.saturating_add(2).min(high);
    while height <= first_pass {
        let Some(stored) = store.block_by_height(height)? else {
            return Ok(none);
        };
        used = used.saturating_add(stored.block.payload.len().saturating_add(1_024));
        blocks.push(stored.block);
        height = height.saturating_add(1);
        if used > budget && blocks.len() >= 3 {
            break;
        }
    }
    // Then on, a block at a time, until some block is provable.
    loop {
        if let Some(end) = proven_end(&blocks, &tip, slack_end) {
            return Ok(cut(from, blocks, end, &tip));
        }
        // The slack may double the budget (a frame holds twice it), no more.
        if height > slack_end.saturating_add(2).min(high) || used > budget.saturating_mul(2) {
            return Ok(none);
        }
        let Some(stored) = store.block_by_height(height)? else {
            return Ok(none);
        };
        used = used.saturating_add(stored.block.payload.len().saturating_add(1_024));
        blocks.push(stored.block);
        height = height.saturating_add(1);
    }
}

/// The highest index in `blocks` (consecutive committed blocks), at height `max` at most,
/// whose commit proof is at hand: the QC in the block two above it, when consecutive, or the
/// tip's proof for the tip.
fn proven_end(blocks: &[Block], tip: &crate::storage::CommitTip, max: u64) -> Option<usize> {
    (0..blocks.len()).rev().find(|&i| {
        let block = &blocks[i];
        if block.height > max {
            return false;
        }
        if block.height == tip.block.height {
            return tip.qc.data.parent.id == block.id && tip.qc.data.is_consecutive();
        }
        blocks
            .get(i + 2)
            .is_some_and(|b| b.qc.data.is_consecutive() && b.qc.data.parent.id == block.id)
    })
}

/// The response of `blocks[..=end]` with its proof.
fn cut(
    from: u64,
    mut blocks: Vec<Block>,
    end: usize,
    tip: &crate::storage::CommitTip,
) -> SyncMessage {
    let proof = if blocks[end].height == tip.block.height {
        tip.qc.clone()
    } else {
        blocks[end + 2].qc.clone()
    };
    blocks.truncate(end + 1);
    SyncMessage::Response {
        from,
        blocks,
        proof: Some(proof),
    }
}

#[cfg(test)]
mod tests {
    use hotledger_crypto::KeyPair;

    use super::*;

    fn key(seed: u8) -> PublicKey {
        KeyPair::from_seed([seed; 32]).public()
    }

    fn windows(requests: &[(PublicKey, SyncMessage)]) -> Vec<(PublicKey, u64, u32)> {
        requests
            .iter()
            .map(|(peer, m)| match m {
                SyncMessage::Request { from, count } => (*peer, *from, *count),
                other => panic!("not a request: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn one_lying_peer_cannot_switch_a_node_to_sync_but_f_plus_one_reports_can() {
        let mut s = Syncer::new(4, 64);
        s.on_status(key(1), 1, 1_000_000);
        assert!(
            !s.should_enter(0, 10, 11),
            "one report without a certified height"
        );
        assert!(
            s.should_enter(0, 10, 10 + ENTER_GAP),
            "one report and a QC that high"
        );
        s.on_status(key(2), 1, 10 + ENTER_GAP);
        assert!(s.should_enter(0, 10, 11), "f + 1 = 2 reports");
        s.on_status(key(2), 1, 10 + ENTER_GAP - 1);
        assert!(!s.should_enter(0, 10, 11));
    }

    #[test]
    fn windows_go_to_distinct_peers_that_hold_them_and_time_out_to_others() {
        let mut s = Syncer::new(4, 64);
        for i in 1..=5 {
            s.on_status(key(i), 1, 1_000);
        }
        s.on_status(key(6), 1, 100); // holds only the first two windows
        s.enter(0);
        let asked = windows(&s.requests(0, 10));
        assert_eq!(asked.len(), PARALLEL);
        let froms: Vec<u64> = asked.iter().map(|w| w.1).collect();
        assert_eq!(froms, vec![11, 75, 139, 203]);
        let peers: std::collections::BTreeSet<PublicKey> = asked.iter().map(|w| w.0).collect();
        assert_eq!(peers.len(), PARALLEL, "one window per peer");
        assert!(asked.iter().all(|w| w.2 == 64));
        assert!(
            s.requests(1, 10).is_empty(),
            "nothing more while all are in flight"
        );
        // Unanswered: struck, and asked again of peers not struck.
        let again = windows(&s.requests(REQUEST_TIMEOUT_MS, 10));
        assert_eq!(again.len(), PARALLEL);
        for (peer, from, _) in &again {
            let first = asked.iter().find(|w| w.1 == *from).map(|w| w.0);
            assert_ne!(
                Some(*peer),
                first,
                "window {from} asked of the same peer again"
            );
        }
    }

    #[test]
    fn an_empty_answer_lowers_the_peers_height_and_exit_waits_for_trusted_peers() {
        let mut s = Syncer::new(4, 64);
        s.on_status(key(1), 1, 500);
        s.enter(0);
        let asked = windows(&s.requests(0, 10));
        assert_eq!(asked.len(), 1, "one peer, one window");
        let genesis = hotledger_consensus::BlockInfo {
            id: hotledger_crypto::Digest([0; 32]),
            round: 0,
            height: 0,
            timestamp_ms: 0,
        };
        let validators =
            hotledger_consensus::ValidatorSet::new(vec![hotledger_consensus::Validator {
                key: key(1),
                power: 1,
            }])
            .unwrap();
        let checks = Checks {
            verifier: Verifier {
                chain_id: "c",
                genesis: &genesis,
                validators: &validators,
            },
            max_payload: 1 << 20,
        };
        s.on_response(1, key(1), 11, Vec::new(), None, &checks)
            .unwrap();
        assert!(
            s.should_exit(1, 10),
            "the peer holds nothing above 10 for now"
        );
        assert!(
            !s.should_exit(1 + EMPTY_PAUSE_MS, 10),
            "its report counts again after the pause"
        );
        // A response nobody asked for is dropped unchecked.
        s.on_response(1, key(2), 11, Vec::new(), None, &checks)
            .unwrap();
    }
}
