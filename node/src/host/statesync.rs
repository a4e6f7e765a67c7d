//! State sync: a new or wiped node restores the state of a recent snapshot from its peers,
//! chunk by chunk, each chunk checked as it arrives, then block-syncs forward from there.
//!
//! # Protocol
//!
//! ```text
//!   with every status, to every peer:       Snapshots { offers }        complete snapshots held
//!   the restorer, to one offering peer:     Request { from: h, count }  blocks h.. (past certified_by)
//!   the peer (forward sync's serving):      Response { from, blocks, proof }
//!   the restorer, to offering peers:        ChunkRequest { height, index }
//!   the peer, from its store (off its loop): Chunk { height, index, chunk }
//!   the restorer, to one offering peer:     Request { from, count }     the history below h
//! ```
//!
//! The restorer waits [`OFFER_WAIT_MS`] after the first offer (or for offers from f + 1 peers),
//! then takes the highest height that more than one peer offers (the highest offered, if no
//! offer is confirmed). Its root comes from the chain, never from the
//! offer: the blocks from that height past `certified_by` arrive as a forward-sync response,
//! checked as one (ids, links, every QC, the commit proof of the last), and the last one's
//! payload must claim a state root at exactly that height. That root, the block at the
//! snapshot's height and the QC certifying it are the [`RestoreAnchor`], stored before any
//! chunk is asked for. Chunks are then asked of the peers offering that height,
//! [`CHUNKS_IN_FLIGHT`] at once and at most [`PER_PEER`] per peer; each is checked against the
//! anchor's root on arrival ([`hotledger_ledger::verify_chunk`]) and stored (synced), so a
//! restart resumes with the chunks still missing. Meanwhile it fetches the committed blocks
//! leader reputation reads below the snapshot (as forward sync fetches blocks, checked the same
//! way, the last one the parent of the snapshot's block) and stores them as history only
//! ([`crate::storage::ChainStore::put_history`]): without them the node would choose other
//! leaders than its peers until it had committed that many blocks. A chunk that does not verify, an anchor that
//! does not prove, a short answer to the anchor request, or a request unanswered for
//! [`CHUNK_TIMEOUT_MS`] strikes its peer, and the
//! work goes to another; [`MAX_STRIKES`] strikes set a peer aside for [`STRIKE_PAUSE_MS`]. With
//! every chunk held the host builds the tree, checks its root once more and installs it in one
//! synced batch; the forward syncer takes it from there. Peers keep only their newest
//! snapshots: if every peer that held the one being restored answers "not held" (it made newer
//! ones and deleted it) while another is offered, the restorer drops it with its chunks and
//! starts over on the newest ([`Restorer::orphaned`]).

use std::collections::{BTreeMap, BTreeSet};

use hotledger_consensus::{Block, QuorumCert};
use hotledger_crypto::PublicKey;
use hotledger_ledger::{verify_chunk, BlockPayload, SnapshotChunk};
use serde::{Deserialize, Serialize};

use super::sync::{check, Checks, SyncError, SyncMessage, MAX_REQUEST_BLOCKS};
use crate::storage::{RestoreAnchor, SnapshotManifest};

/// Most snapshots a node offers, and takes from one peer's offer.
pub const MAX_OFFERS: usize = 4;
/// How long the restorer waits for more offers after the first.
pub const OFFER_WAIT_MS: u64 = 2_000;
/// After a proven but short anchor answer, the next anchor request waits this long.
pub const ANCHOR_RETRY_MS: u64 = 500;
/// A peer that answered a history request with no blocks is not asked for history again for
/// this long.
pub const NO_HISTORY_PAUSE_MS: u64 = 10_000;
/// With no offer this long after it started, the restorer gives up and the node follows the
/// chain from its own tip (a young chain has no snapshot yet).
pub const NO_OFFER_MS: u64 = 10_000;
/// Chunk requests in flight at once, and per peer.
pub const CHUNKS_IN_FLIGHT: usize = 8;
pub const PER_PEER: usize = 2;
/// A peer is asked for a chunk at most once per this long (half the rate a node serves).
pub const CHUNK_INTERVAL_MS: u64 = 125;
/// A request unanswered this long is asked of another peer, and its peer struck.
pub const CHUNK_TIMEOUT_MS: u64 = 4_000;
/// Strikes after which a peer is set aside for [`STRIKE_PAUSE_MS`].
pub const MAX_STRIKES: u32 = 3;
pub const STRIKE_PAUSE_MS: u64 = 30_000;

/// A snapshot a peer holds in full and serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOffer {
    pub height: u64,
    /// The committed block whose payload claims the state root at `height`.
    pub certified_by: u64,
    /// The snapshot has `2^depth` chunks.
    pub depth: u8,
    pub accounts: u64,
}

impl From<&SnapshotManifest> for SnapshotOffer {
    fn from(m: &SnapshotManifest) -> Self {
        SnapshotOffer {
            height: m.height,
            certified_by: m.certified_by,
            depth: m.depth,
            accounts: m.accounts,
        }
    }
}

/// Why a state-sync response was refused (its peer is struck).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("the snapshot's anchor blocks do not prove: {0}")]
    Anchor(#[from] SyncError),
    #[error(
        "the block at height {height} claims no state root at the snapshot's height {snapshot}"
    )]
    NoClaim { height: u64, snapshot: u64 },
    #[error("the anchor blocks end at height {end}, before the certifying block {certified_by}")]
    Short { end: u64, certified_by: u64 },
    #[error("an offer of a snapshot of depth {depth} (at most {max})")]
    BadOffer { depth: u8, max: u8 },
    #[error(transparent)]
    Chunk(#[from] hotledger_ledger::LedgerError),
}

/// What a state sync did, for the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    pub height: u64,
    pub accounts: u64,
    pub chunks: u32,
    /// Chunks fetched by this run (fewer than `chunks` after a resume).
    pub fetched: u32,
    pub refused: u32,
    pub elapsed_ms: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct PeerState {
    strikes: u32,
    paused_until: u64,
    /// Not asked for a chunk before this time.
    next_ask_ms: u64,
    /// It answered a history request with no blocks (it may have restored a snapshot itself
    /// and hold none that low): not asked for history before this time.
    no_history_until: u64,
}

/// The state-sync state machine (pure: time is an argument; the host does the storage).
#[derive(Debug)]
pub(super) struct Restorer {
    /// Each peer's offers, as last received.
    offers: BTreeMap<PublicKey, Vec<SnapshotOffer>>,
    first_offer_ms: Option<u64>,
    /// The anchor asked for: the offer and the peer, since when.
    asked: Option<(SnapshotOffer, PublicKey, u64)>,
    anchor: Option<RestoreAnchor>,
    /// Chunks neither held nor in flight.
    missing: BTreeSet<u32>,
    in_flight: BTreeMap<u32, (PublicKey, u64)>,
    peers: BTreeMap<PublicKey, PeerState>,
    honest_offers: usize,
    started_ms: Option<u64>,
    fetched: u32,
    refused: u32,
    last_now_ms: u64,
    /// Leader reputation's history below the snapshot, fetched after the anchor: the heights
    /// `history_next..history_end` are still to fetch (`history_end` is the snapshot's height,
    /// 0 until the anchor is known).
    history_next: u64,
    history_end: u64,
    history_asked: Option<(PublicKey, u64, u64)>,
    history_retry_ms: u64,
    /// No anchor is asked for before this time (after a short answer).
    anchor_retry_ms: u64,
    /// The first tick's time.
    created_ms: Option<u64>,
}

impl Restorer {
    /// A state sync from nothing, or (`anchor`) resumed with the chunks `held` already.
    pub fn new(validators: usize, anchor: Option<RestoreAnchor>, held: &[u32]) -> Restorer {
        let missing = anchor.as_ref().map_or_else(BTreeSet::new, |a| {
            let held: BTreeSet<u32> = held.iter().copied().collect();
            (0..a.manifest.chunks())
                .filter(|i| !held.contains(i))
                .collect()
        });
        Restorer {
            offers: BTreeMap::new(),
            first_offer_ms: None,
            asked: None,
            anchor,
            missing,
            in_flight: BTreeMap::new(),
            peers: BTreeMap::new(),
            honest_offers: validators.saturating_sub(1) / 3 + 1,
            started_ms: None,
            fetched: 0,
            refused: 0,
            last_now_ms: 0,
            created_ms: None,
            anchor_retry_ms: 0,
            history_next: 0,
            history_end: 0,
            history_asked: None,
            history_retry_ms: 0,
        }
    }

    /// The anchor, once the snapshot's root is proven.
    pub fn anchor(&self) -> Option<&RestoreAnchor> {
        self.anchor.as_ref()
    }

    /// Chunks held and in all (none before the anchor).
    pub fn progress(&self) -> (u32, u32) {
        let total = self.anchor.as_ref().map_or(0, |a| a.manifest.chunks());
        let pending = self.missing.len().saturating_add(self.in_flight.len());
        let pending = u32::try_from(pending).unwrap_or(u32::MAX);
        (total.saturating_sub(pending), total)
    }

    /// Every chunk is held: the snapshot can be installed.
    pub fn done(&self) -> bool {
        self.anchor.is_some()
            && self.missing.is_empty()
            && self.in_flight.is_empty()
            && self.history_end > 0
            && self.history_next >= self.history_end
    }

    pub fn summary(&self, now_ms: u64) -> RestoreSummary {
        let m = self.anchor.as_ref().map(|a| a.manifest);
        RestoreSummary {
            height: m.map_or(0, |m| m.height),
            accounts: m.map_or(0, |m| m.accounts),
            chunks: m.map_or(0, |m| m.chunks()),
            fetched: self.fetched,
            refused: self.refused,
            elapsed_ms: now_ms.saturating_sub(self.started_ms.unwrap_or(now_ms)),
        }
    }

    /// When the restorer next needs a tick: the end of the offer wait, a request's timeout, or
    /// a peer that may be asked again; only times after the last [`Restorer::requests`] (the
    /// host also wakes every second for its status).
    pub fn wake_at(&self) -> Option<u64> {
        let waits = self
            .in_flight
            .values()
            .map(|(_, sent)| sent.saturating_add(CHUNK_TIMEOUT_MS))
            .chain(
                self.asked
                    .map(|(_, _, sent)| sent.saturating_add(CHUNK_TIMEOUT_MS)),
            )
            .chain(
                self.history_asked
                    .map(|(_, _, sent)| sent.saturating_add(CHUNK_TIMEOUT_MS)),
            )
            .chain((self.history_next < self.history_end).then_some(self.history_retry_ms))
            .chain(
                self.peers
                    .values()
                    .map(|p| p.next_ask_ms)
                    .filter(|t| !self.missing.is_empty() && *t > 0),
            )
            .chain(
                self.first_offer_ms
                    .filter(|_| self.anchor.is_none() && self.asked.is_none())
                    .map(|t| t.saturating_add(OFFER_WAIT_MS)),
            );
        waits.filter(|t| *t > self.last_now_ms).min()
    }

    /// Forgets `peer` (it disconnected): its offers and strikes. A chunk in flight to it times
    /// out and is asked of another.
    pub fn forget(&mut self, peer: &PublicKey) {
        self.offers.remove(peer);
        self.peers.remove(peer);
    }

    pub fn on_offers(
        &mut self,
        now_ms: u64,
        from: PublicKey,
        mut offers: Vec<SnapshotOffer>,
    ) -> Result<(), RestoreError> {
        offers.truncate(MAX_OFFERS);
        if let Some(o) = offers
            .iter()
            .find(|o| o.depth > hotledger_ledger::MAX_CHUNK_DEPTH)
        {
            self.strike(from, now_ms);
            return Err(RestoreError::BadOffer {
                depth: o.depth,
                max: hotledger_ledger::MAX_CHUNK_DEPTH,
            });
        }
        offers.retain(|o| o.certified_by > o.height);
        if offers.is_empty() {
            self.offers.remove(&from);
            return Ok(());
        }
        self.first_offer_ms.get_or_insert(now_ms);
        self.started_ms.get_or_insert(now_ms);
        self.offers.insert(from, offers);
        Ok(())
    }

    fn usable(&self, peer: &PublicKey, now_ms: u64) -> bool {
        self.peers
            .get(peer)
            .is_none_or(|p| p.paused_until <= now_ms)
    }

    fn strike(&mut self, peer: PublicKey, now_ms: u64) {
        let p = self.peers.entry(peer).or_default();
        p.strikes = p.strikes.saturating_add(1);
        if p.strikes >= MAX_STRIKES {
            p.strikes = 0;
            p.paused_until = now_ms.saturating_add(STRIKE_PAUSE_MS);
        }
    }

    /// Peers not set aside that offer a snapshot at `height` (of `depth` chunks bits).
    fn offering(&self, now_ms: u64, height: u64, depth: u8) -> Vec<PublicKey> {
        self.offers
            .iter()
            .filter(|(peer, offers)| {
                self.usable(peer, now_ms)
                    && offers
                        .iter()
                        .any(|o| o.height == height && o.depth == depth)
            })
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Whether the snapshot being restored can no longer be finished: chunks are missing,
    /// none is in flight, no peer not set aside offers it any more (each that held it answered
    /// a chunk request with "not held", having deleted it for newer ones), and one offers
    /// another. The host then abandons it ([`Restorer::start_over`]).
    pub fn orphaned(&self, now_ms: u64) -> bool {
        let Some(anchor) = &self.anchor else {
            return false;
        };
        let height = anchor.manifest.height;
        let usable: Vec<&Vec<SnapshotOffer>> = self
            .offers
            .iter()
            .filter(|(peer, _)| self.usable(peer, now_ms))
            .map(|(_, offers)| offers)
            .collect();
        !self.missing.is_empty()
            && self.in_flight.is_empty()
            && !usable.iter().any(|o| o.iter().any(|o| o.height == height))
            && usable.iter().any(|o| o.iter().any(|o| o.height != height))
    }

    /// Drops the snapshot being restored, its chunks and its history's progress: the next
    /// requests choose a snapshot again from the offers. Returns the height dropped.
    pub fn start_over(&mut self) -> Option<u64> {
        let anchor = self.anchor.take()?;
        self.missing.clear();
        self.in_flight.clear();
        self.asked = None;
        self.anchor_retry_ms = 0;
        self.history_next = 0;
        self.history_end = 0;
        self.history_asked = None;
        self.history_retry_ms = 0;
        Some(anchor.manifest.height)
    }

    /// Whether to give up: no snapshot chosen and none offered for [`NO_OFFER_MS`].
    pub fn give_up(&mut self, now_ms: u64) -> bool {
        let created = *self.created_ms.get_or_insert(now_ms);
        self.anchor.is_none()
            && self.asked.is_none()
            && self.offers.is_empty()
            && now_ms >= created.saturating_add(NO_OFFER_MS)
    }

    /// Times out requests (striking their peers) and makes the next ones. `history`: the
    /// committed blocks leader reputation reads, fetched below the snapshot.
    pub fn requests(&mut self, now_ms: u64, history: u64) -> Vec<(PublicKey, SyncMessage)> {
        self.last_now_ms = now_ms;
        let mut out = Vec::new();
        if let Some((_, peer, sent)) = self.asked {
            if now_ms >= sent.saturating_add(CHUNK_TIMEOUT_MS) {
                self.asked = None;
                self.strike(peer, now_ms);
            }
        }
        let expired: Vec<u32> = self
            .in_flight
            .iter()
            .filter(|(_, (_, sent))| now_ms >= sent.saturating_add(CHUNK_TIMEOUT_MS))
            .map(|(i, _)| *i)
            .collect();
        for index in expired {
            if let Some((peer, _)) = self.in_flight.remove(&index) {
                self.strike(peer, now_ms);
                self.missing.insert(index);
            }
        }
        if let Some((peer, _, sent)) = self.history_asked {
            if now_ms >= sent.saturating_add(CHUNK_TIMEOUT_MS) {
                self.history_asked = None;
                self.strike(peer, now_ms);
            }
        }
        match &self.anchor {
            None => {
                if self.asked.is_none() {
                    if let Some(ask) = self.ask_anchor(now_ms) {
                        out.push(ask);
                    }
                }
            }
            Some(anchor) => {
                let m = anchor.manifest;
                let peers = self.offering(now_ms, m.height, m.depth);
                if self.history_end == 0 {
                    self.history_end = m.height;
                    self.history_next = m.height.saturating_sub(history.saturating_sub(1)).max(1);
                }
                if self.history_next < self.history_end
                    && self.history_asked.is_none()
                    && now_ms >= self.history_retry_ms
                {
                    let pick = peers
                        .iter()
                        .filter(|p| {
                            self.peers
                                .get(*p)
                                .is_none_or(|s| s.no_history_until <= now_ms)
                        })
                        .min_by_key(|p| self.peers.get(*p).map_or(0, |s| s.strikes))
                        .copied();
                    if let Some(peer) = pick {
                        let left = self.history_end - self.history_next;
                        let count = u32::try_from(left.min(u64::from(MAX_REQUEST_BLOCKS)))
                            .unwrap_or(MAX_REQUEST_BLOCKS);
                        self.history_asked = Some((peer, self.history_next, now_ms));
                        out.push((
                            peer,
                            SyncMessage::Request {
                                from: self.history_next,
                                count,
                            },
                        ));
                    }
                }
                let mut load: BTreeMap<PublicKey, usize> = BTreeMap::new();
                for (peer, _) in self.in_flight.values() {
                    *load.entry(*peer).or_default() += 1;
                }
                while self.in_flight.len() < CHUNKS_IN_FLIGHT {
                    let Some(&index) = self.missing.iter().next() else {
                        break;
                    };
                    let Some(peer) = peers
                        .iter()
                        .filter(|p| load.get(*p).copied().unwrap_or(0) < PER_PEER)
                        .filter(|p| self.peers.get(*p).is_none_or(|s| s.next_ask_ms <= now_ms))
                        .min_by_key(|p| {
                            (
                                self.peers.get(*p).map_or(0, |s| s.strikes),
                                load.get(*p).copied().unwrap_or(0),
                            )
                        })
                        .copied()
                    else {
                        break;
                    };
                    self.missing.remove(&index);
                    *load.entry(peer).or_default() += 1;
                    self.peers.entry(peer).or_default().next_ask_ms =
                        now_ms.saturating_add(CHUNK_INTERVAL_MS);
                    self.in_flight.insert(index, (peer, now_ms));
                    out.push((
                        peer,
                        SyncMessage::ChunkRequest {
                            height: m.height,
                            index,
                        },
                    ));
                }
            }
        }
        out
    }

    /// Asks for the blocks proving the highest snapshot offered, once offers have had time to
    /// arrive: of those offered by more than one peer if any is (one peer alone cannot then
    /// steer the node to a snapshot nobody else holds), and of a peer with fewer strikes first.
    fn ask_anchor(&mut self, now_ms: u64) -> Option<(PublicKey, SyncMessage)> {
        let first = self.first_offer_ms?;
        if now_ms < self.anchor_retry_ms {
            return None;
        }
        if self.offers.len() < self.honest_offers && now_ms < first.saturating_add(OFFER_WAIT_MS) {
            return None;
        }
        let (peer, offer) = self
            .offers
            .iter()
            .filter(|(peer, _)| self.usable(peer, now_ms))
            .flat_map(|(peer, offers)| offers.iter().map(move |o| (*peer, *o)))
            .filter(|(_, o)| o.certified_by - o.height < u64::from(MAX_REQUEST_BLOCKS))
            .max_by_key(|(peer, o)| {
                (
                    self.offering(now_ms, o.height, o.depth).len() > 1,
                    o.height,
                    std::cmp::Reverse(self.peers.get(peer).map_or(0, |s| s.strikes)),
                )
            })?;
        self.asked = Some((offer, peer, now_ms));
        // As many blocks as a request may ask for, not just to `certified_by`: a server proves
        // a range's last block by the QC two blocks above it, or by its commit tip's proof, so a
        // range reaching its tip is provable even when the chain has stopped (as it does when
        // f + 1 validators are restoring at once), and `certified_by` is below its tip.
        Some((
            peer,
            SyncMessage::Request {
                from: offer.height,
                count: MAX_REQUEST_BLOCKS,
            },
        ))
    }

    /// Takes in a forward-sync response: the anchor if it answers the request for one (see the
    /// module docs). Returns the anchor to store, or `None` if the response was not for it.
    pub fn on_anchor_response(
        &mut self,
        now_ms: u64,
        peer: PublicKey,
        from: u64,
        blocks: &[Block],
        proof: Option<&QuorumCert>,
        checks: &Checks<'_>,
    ) -> Result<Option<RestoreAnchor>, RestoreError> {
        let Some((offer, asked_of, _)) = self.asked else {
            return Ok(None);
        };
        if asked_of != peer || from != offer.height || self.anchor.is_some() {
            return Ok(None);
        }
        self.asked = None;
        if blocks.is_empty() {
            // It no longer holds those blocks: its offer is set aside, not struck.
            if let Some(offers) = self.offers.get_mut(&peer) {
                offers.retain(|o| o.height != offer.height);
            }
            return Ok(None);
        }
        let result = anchor_of(offer, from, blocks, proof, MAX_REQUEST_BLOCKS, checks);
        match result {
            Ok(anchor) => {
                self.missing = (0..anchor.manifest.chunks()).collect();
                self.anchor = Some(anchor.clone());
                Ok(Some(anchor))
            }
            Err(e @ RestoreError::Short { .. }) => {
                // Honest while the server's chain has not gone two blocks past `certified_by`;
                // struck all the same, so a peer that always answers short is set aside after
                // MAX_STRIKES and the next asked.
                self.anchor_retry_ms = now_ms.saturating_add(ANCHOR_RETRY_MS);
                self.strike(peer, now_ms);
                Err(e)
            }
            Err(e) => {
                // Not this peer's offer again: another one (or another peer's) is tried.
                if let Some(offers) = self.offers.get_mut(&peer) {
                    offers.retain(|o| o.height != offer.height);
                }
                self.refused = self.refused.saturating_add(1);
                self.strike(peer, now_ms);
                Err(e)
            }
        }
    }

    /// Takes in a forward-sync response for the history below the snapshot: blocks proven
    /// committed (checked as forward sync checks them) below the snapshot's height, the last
    /// of them the parent of the one above when it reaches it. Returns the blocks to store, or
    /// `None` if the response was not for the history.
    pub fn on_history_response(
        &mut self,
        now_ms: u64,
        peer: PublicKey,
        from: u64,
        blocks: &[Block],
        proof: Option<&QuorumCert>,
        checks: &Checks<'_>,
    ) -> Result<Option<Vec<Block>>, RestoreError> {
        let (Some((asked_of, asked_from, _)), Some(anchor)) = (self.history_asked, &self.anchor)
        else {
            return Ok(None);
        };
        if asked_of != peer || asked_from != from {
            return Ok(None);
        }
        self.history_asked = None;
        if blocks.is_empty() {
            self.peers.entry(peer).or_default().no_history_until =
                now_ms.saturating_add(NO_HISTORY_PAUSE_MS);
            self.history_retry_ms = now_ms.saturating_add(ANCHOR_RETRY_MS);
            return Ok(None);
        }
        let left = self.history_end.saturating_sub(from);
        let count = u32::try_from(left.min(u64::from(MAX_REQUEST_BLOCKS))).unwrap_or(1);
        let kept: Vec<Block> = blocks
            .iter()
            .filter(|b| b.height < self.history_end)
            .cloned()
            .collect();
        let linked = match kept.last() {
            Some(last) if last.height.saturating_add(1) == self.history_end => {
                anchor.block.parent().id == last.id
            }
            _ => true,
        };
        let linked = if linked {
            Ok(())
        } else {
            Err(SyncError::Unlinked {
                height: self.history_end,
            })
        };
        let checked = check(from, blocks, proof, count, checks).and(linked);
        if let Err(e) = checked.map_err(RestoreError::from) {
            self.refused = self.refused.saturating_add(1);
            self.strike(peer, now_ms);
            return Err(e);
        }
        self.history_next = from.saturating_add(kept.len() as u64);
        Ok(Some(kept))
    }

    /// Takes in a chunk: checks it against the anchor's root. Returns the chunk to store, or
    /// `None` if it was not asked of that peer (dropped unchecked) or the peer had none.
    pub fn on_chunk(
        &mut self,
        now_ms: u64,
        peer: PublicKey,
        height: u64,
        index: u32,
        chunk: Option<SnapshotChunk>,
    ) -> Result<Option<(u32, SnapshotChunk)>, RestoreError> {
        let Some(anchor) = &self.anchor else {
            return Ok(None);
        };
        let m = anchor.manifest;
        match self.in_flight.get(&index) {
            Some((asked, _)) if *asked == peer && height == m.height => {}
            _ => return Ok(None),
        }
        self.in_flight.remove(&index);
        let Some(chunk) = chunk else {
            // It no longer holds the snapshot: asked of others from now on.
            self.missing.insert(index);
            if let Some(offers) = self.offers.get_mut(&peer) {
                offers.retain(|o| o.height != m.height);
            }
            return Ok(None);
        };
        if let Err(e) = verify_chunk(&m.root, m.depth, index, &chunk) {
            self.missing.insert(index);
            self.refused = self.refused.saturating_add(1);
            self.strike(peer, now_ms);
            return Err(e.into());
        }
        self.fetched = self.fetched.saturating_add(1);
        Ok(Some((index, chunk)))
    }
}

/// The anchor a response proves for `offer` (see the module docs).
fn anchor_of(
    offer: SnapshotOffer,
    from: u64,
    blocks: &[Block],
    proof: Option<&QuorumCert>,
    count: u32,
    checks: &Checks<'_>,
) -> Result<RestoreAnchor, RestoreError> {
    check(from, blocks, proof, count, checks)?;
    let end = from.saturating_add(blocks.len() as u64).saturating_sub(1);
    if end < offer.certified_by {
        // The server cannot prove the certifying block committed yet (it needs two blocks
        // above it): not a lie.
        return Err(RestoreError::Short {
            end,
            certified_by: offer.certified_by,
        });
    }
    let no_claim = || RestoreError::NoClaim {
        height: offer.certified_by,
        snapshot: offer.height,
    };
    let offset = usize::try_from(offer.certified_by - offer.height).map_err(|_| no_claim())?;
    let certifying = blocks.get(offset).ok_or_else(no_claim)?;
    let payload = BlockPayload::decode(&certifying.payload, usize::MAX, checks.max_payload)
        .map_err(|_| no_claim())?;
    if payload.state_height != offer.height {
        return Err(no_claim());
    }
    let block = blocks.first().ok_or_else(no_claim)?.clone();
    // The QC certifying the snapshot's block: its child's (offset >= 1 since certified_by >
    // height).
    let qc = blocks.get(1).ok_or_else(no_claim)?.qc.clone();
    Ok(RestoreAnchor {
        manifest: SnapshotManifest {
            height: offer.height,
            root: payload.state_root,
            depth: offer.depth,
            accounts: offer.accounts,
            certified_by: offer.certified_by,
            complete: false,
        },
        block,
        qc,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hotledger_consensus::BlockInfo;
    use hotledger_crypto::{Digest, KeyPair, Signature};

    use super::*;

    fn peer(seed: u8) -> PublicKey {
        KeyPair::from_seed([seed; 32]).public()
    }

    fn offer(height: u64) -> SnapshotOffer {
        SnapshotOffer {
            height,
            certified_by: height + 2,
            depth: 2,
            accounts: 100,
        }
    }

    /// A restorer anchored at `height` (4 chunks), none held yet.
    fn anchored(height: u64) -> Restorer {
        let info = BlockInfo {
            id: Digest::of(b"snapshot block"),
            round: height,
            height,
            timestamp_ms: 0,
        };
        let anchor = RestoreAnchor {
            manifest: SnapshotManifest {
                height,
                root: Digest::of(b"root"),
                depth: 2,
                accounts: 100,
                certified_by: height + 2,
                complete: false,
            },
            block: Block {
                id: info.id,
                round: height,
                height,
                timestamp_ms: 0,
                author: peer(9),
                qc: QuorumCert::genesis(info),
                failed_leaders: Vec::new(),
                payload: Vec::new(),
                signature: Signature([0; 64]),
            },
            qc: QuorumCert::genesis(info),
        };
        Restorer::new(4, Some(anchor), &[])
    }

    /// The anchor asked for is of a snapshot more than one peer offers, over a higher one that
    /// a single peer offers; with no offer confirmed, the highest.
    #[test]
    fn an_anchor_two_peers_offer_is_preferred_over_a_higher_lone_one() {
        let mut r = Restorer::new(4, None, &[]);
        let (a, b, c) = (peer(1), peer(2), peer(3));
        r.on_offers(0, a, vec![offer(1024)]).unwrap();
        r.on_offers(0, b, vec![offer(1024)]).unwrap();
        r.on_offers(0, c, vec![offer(4096)]).unwrap();
        let asked = r.requests(OFFER_WAIT_MS + 1, 1);
        assert!(
            asked
                .iter()
                .any(|(p, m)| [a, b].contains(p)
                    && matches!(m, SyncMessage::Request { from: 1024, .. })),
            "{asked:?}"
        );
        assert!(
            !asked
                .iter()
                .any(|(_, m)| matches!(m, SyncMessage::Request { from: 4096, .. })),
            "{asked:?}"
        );

        let mut lone = Restorer::new(4, None, &[]);
        lone.on_offers(0, a, vec![offer(1024)]).unwrap();
        lone.on_offers(0, c, vec![offer(4096)]).unwrap();
        let asked = lone.requests(OFFER_WAIT_MS + 1, 1);
        assert!(
            asked
                .iter()
                .any(|(p, m)| *p == c && matches!(m, SyncMessage::Request { from: 4096, .. })),
            "{asked:?}"
        );
    }

    #[test]
    fn a_snapshot_no_peer_serves_any_more_is_dropped_for_a_newer_one() {
        let mut r = anchored(1024);
        let (a, b) = (peer(1), peer(2));
        r.on_offers(0, a, vec![offer(1024)]).unwrap();
        r.on_offers(0, b, vec![offer(1024)]).unwrap();
        let asked = r.requests(1, 1);
        let chunks: Vec<(PublicKey, u32)> = asked
            .iter()
            .filter_map(|(p, m)| match m {
                SyncMessage::ChunkRequest { index, .. } => Some((*p, *index)),
                _ => None,
            })
            .collect();
        assert_eq!(chunks.len(), 2, "one per peer at a time: {asked:?}");
        assert!(!r.orphaned(1), "both peers still offer it");

        // Both answer "not held" for everything asked: they deleted it.
        for (p, index) in chunks {
            assert_eq!(r.on_chunk(2, p, 1024, index, None).unwrap(), None);
        }
        assert!(
            !r.orphaned(2),
            "nothing newer is offered by a peer that holds it yet"
        );
        r.on_offers(3, b, vec![offer(1280), offer(1536)]).unwrap();
        assert!(r.orphaned(3));
        assert_eq!(r.start_over(), Some(1024));
        assert!(r.anchor().is_none());
        assert_eq!(r.progress(), (0, 0));
        assert!(!r.orphaned(3) && !r.done());
        // The next anchor asked for is the newest offered.
        let next = r.requests(OFFER_WAIT_MS + 10, 1);
        assert!(
            next.iter()
                .any(|(p, m)| *p == b && matches!(m, SyncMessage::Request { from: 1536, .. })),
            "{next:?}"
        );
    }
}
