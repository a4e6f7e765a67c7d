//! The mempool: verified transfers waiting for a block, bounded globally and per sender.

mod select;

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use hotledger_crypto::{Digest, PublicKey, Signature};
use serde::{Deserialize, Serialize};

use crate::tx::signature_flags;
use crate::{Account, AccountReader, LedgerError, SignedTransaction};

/// Local bounds of the mempool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most transactions held.
    pub max_txs: usize,
    /// Most encoded bytes held.
    pub max_bytes: usize,
    /// Most transactions held per sender.
    pub max_per_sender: usize,
    /// Largest encoded transaction accepted.
    pub max_tx_bytes: usize,
    /// Largest `nonce - account nonce` accepted.
    pub max_nonce_gap: u64,
    /// Slots kept for transactions that can execute now: once fewer than this many are free, a
    /// transfer behind a nonce gap (an earlier nonce of its sender is missing) is refused, so
    /// transfers that cannot execute yet never fill the whole mempool.
    pub ready_reserve: usize,
    /// Slots kept for transactions other validators gossip: a client's submission is refused as
    /// [`Rejection::MempoolFull`] once fewer than this many are free. A peer's transaction is
    /// one a validator already admitted and will propose; refusing it here means verifying it
    /// later on the consensus loop, in the payload check, when the proposal comes. So under
    /// overload the load is shed where clients submit, not between validators.
    pub peer_reserve: usize,
    /// How long a sender's transactions may wait behind a nonce gap (an earlier nonce that never
    /// arrives, e.g. sent to a validator that crashed) before [`Mempool::expire_gapped`] drops
    /// them, in milliseconds; 0 keeps them until the gap fills.
    pub gap_expiry_ms: u64,
}

/// Where a transaction comes from; clients may not use the [`MempoolLimits::peer_reserve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Submitted by a client (JSON-RPC).
    Client,
    /// Gossiped by another validator.
    Peer,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_per_sender: 1_000,
            max_tx_bytes: 1024,
            max_nonce_gap: 1_000,
            ready_reserve: 10_000,
            peer_reserve: 20_000,
            gap_expiry_ms: 60_000,
        }
    }
}

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    /// A transaction with this hash is already held.
    #[error("already in the mempool")]
    Duplicate,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The nonce is below the sender's committed nonce: it can never apply.
    #[error("stale nonce: account is at {expected}, got {got}")]
    StaleNonce {
        /// The sender's committed nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce is more than `max_nonce_gap` above the sender's committed nonce.
    #[error("nonce too far ahead: account is at {expected}, got {got}, max gap {max_gap}")]
    NonceTooFarAhead {
        /// The sender's committed nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
        /// The largest gap admitted.
        max_gap: u64,
    },
    /// Once the mempool is nearly full, only transactions that can execute without a gap.
    #[error(
        "nonce gap while the mempool is nearly full: the sender's next nonce is {next}, got {got}"
    )]
    NonceGap {
        /// The nonce that would execute next.
        next: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The sender has another transaction with this nonce pending.
    #[error("another transaction with nonce {nonce} is pending for this sender")]
    DuplicateNonce {
        /// The nonce taken.
        nonce: u64,
    },
    /// The sender has no committed account.
    #[error("unknown sender")]
    UnknownSender,
    /// The committed balance does not cover the sender's pending amounts with this one.
    #[error("insufficient balance: {balance} < {needed} (pending and this transfer)")]
    InsufficientBalance {
        /// The committed balance.
        balance: u64,
        /// The pending amounts with this one.
        needed: u64,
    },
    /// The encoding is longer than `max_tx_bytes`.
    #[error("oversized transaction: {size} bytes, max {max}")]
    Oversized {
        /// The encoding's length.
        size: usize,
        /// `max_tx_bytes`.
        max: usize,
    },
    /// No room: `max_txs` or `max_bytes` reached (or only the peers' reserve is left).
    #[error("mempool full")]
    MempoolFull,
    /// The sender has `max_per_sender` transactions pending.
    #[error("too many pending transactions for this sender")]
    SenderQueueFull,
    /// A transfer of zero.
    #[error("transfer of zero")]
    ZeroAmount,
    /// A transfer to its own sender.
    #[error("transfer to self")]
    SelfTransfer,
    /// The committed state could not be read.
    #[error("state unavailable: {reason}")]
    State {
        /// The reader's error.
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Pending {
    hash: Digest,
    tx: SignedTransaction,
    size: usize,
    seq: u64,
}

#[derive(Debug, Default)]
struct SenderQueue {
    by_nonce: BTreeMap<u64, Pending>,
    /// Sum of the pending amounts; never above the sender's balance at admission.
    total: u64,
    /// When [`Mempool::expire_gapped`] first saw transactions of this sender behind a gap.
    gapped_since_ms: Option<u64>,
}

/// Why the mempool dropped a pending transaction that did not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Eviction {
    /// Waited longer than `gap_expiry_ms` behind a nonce gap.
    #[error(
        "waited {waited_ms} ms behind a nonce gap: the sender's next nonce is {next}, this is {nonce}"
    )]
    NonceGapExpired {
        /// The sender's next executable nonce.
        next: u64,
        /// The dropped transaction's nonce.
        nonce: u64,
        /// How long it waited.
        waited_ms: u64,
    },
}

/// Least time between two sweeps of [`Mempool::expire_gapped`], in milliseconds.
pub const GAP_SWEEP_MS: u64 = 1_000;

/// Verified transactions by hash, per sender by nonce, and in order of arrival. Every operation
/// is O(log n) per transaction (hash maps and B-trees).
#[derive(Debug)]
pub struct Mempool {
    chain_id: String,
    limits: MempoolLimits,
    /// Sender, nonce and signature of each pending transaction (the signature so a proposal's
    /// copy is compared with one lookup: [`Mempool::verified`]).
    index: HashMap<Digest, (PublicKey, u64, Signature)>,
    senders: HashMap<PublicKey, SenderQueue>,
    arrival: BTreeMap<u64, (PublicKey, u64)>,
    next_seq: u64,
    bytes: usize,
    verified: RecentlyVerified,
    /// The clock reading before which [`Mempool::expire_gapped`] does not sweep again.
    next_sweep_ms: u64,
}

/// Most pairs in each of [`RecentlyVerified`]'s two generations.
const VERIFIED_GENERATION: usize = 32_768;

/// Transactions (hash and signature) whose signature this node checked outside the mempool: in
/// a proposal's payload check, when the proposal arrived before the peer's gossip of them. The
/// gossiped copy, arriving later, is then admitted without a second check. Keyed by the pair
/// because a transaction's hash does not cover its signature: a copy with other signature bytes
/// is checked like any other. Two generations, so the memory is bounded and a pair is kept for
/// at least [`VERIFIED_GENERATION`] later notes. Only the transactions of a proposal that this
/// node had not checked are noted, usually a small share of what it admits, so a pair outlasts
/// by far the round or two until its gossiped copy arrives.
#[derive(Debug, Default)]
struct RecentlyVerified {
    current: HashMap<Digest, Signature>,
    previous: HashMap<Digest, Signature>,
}

impl RecentlyVerified {
    fn note(&mut self, hash: Digest, signature: Signature) {
        if self.current.len() >= VERIFIED_GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(hash, signature);
    }

    fn holds(&self, hash: &Digest, signature: &Signature) -> bool {
        self.current
            .get(hash)
            .or_else(|| self.previous.get(hash))
            .is_some_and(|known| known == signature)
    }
}

/// Per-input progress through admission.
#[derive(Debug)]
enum Stage {
    Rejected(Rejection),
    /// Passed the cheap checks; `checked` if this node verified the same signature before (see
    /// [`RecentlyVerified`]).
    Candidate {
        hash: Digest,
        checked: bool,
    },
}

/// Transactions after [`Mempool::screen`]: the candidates' signatures are still unchecked.
#[derive(Debug)]
#[must_use = "screened transactions are admitted through `verify` and `admit_verified`"]
pub struct Screened {
    chain_id: String,
    origin: Origin,
    txs: Vec<SignedTransaction>,
    stages: Vec<Stage>,
}

/// Transactions after [`Screened::verify`]; the only input of [`Mempool::admit_verified`], so
/// nothing reaches the mempool without a signature check.
#[derive(Debug)]
#[must_use = "verified transactions are admitted through `admit_verified`"]
pub struct Verified {
    chain_id: String,
    origin: Origin,
    txs: Vec<SignedTransaction>,
    stages: Vec<Stage>,
}

impl Screened {
    /// Checks the candidates' signatures in one batch (one at a time only after a batch
    /// failure, to name the bad ones). Needs no lock: it touches nothing shared.
    pub fn verify(self) -> Verified {
        let Screened {
            chain_id,
            origin,
            txs,
            mut stages,
        } = self;
        let unchecked = |stage: &Stage| matches!(stage, Stage::Candidate { checked: false, .. });
        let candidates: Vec<&SignedTransaction> = txs
            .iter()
            .zip(&stages)
            .filter(|(_, stage)| unchecked(stage))
            .map(|(tx, _)| tx)
            .collect();
        let mut flags = signature_flags(&chain_id, &candidates).into_iter();
        for stage in &mut stages {
            if unchecked(stage) && !flags.next().unwrap_or(false) {
                *stage = Stage::Rejected(Rejection::BadSignature);
            }
        }
        Verified {
            chain_id,
            origin,
            txs,
            stages,
        }
    }

    /// How many transactions passed the cheap checks.
    pub fn candidates(&self) -> usize {
        self.stages
            .iter()
            .filter(|s| matches!(s, Stage::Candidate { .. }))
            .count()
    }

    /// How many of the candidates [`Screened::verify`] will not check, because this node
    /// checked the same signatures before ([`Mempool::note_verified`]).
    pub fn known(&self) -> usize {
        self.stages
            .iter()
            .filter(|s| matches!(s, Stage::Candidate { checked: true, .. }))
            .count()
    }
}

impl Mempool {
    /// An empty mempool for transactions signed for `chain_id`.
    pub fn new(chain_id: String, limits: MempoolLimits) -> Self {
        Mempool {
            chain_id,
            limits,
            index: HashMap::new(),
            senders: HashMap::new(),
            arrival: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            verified: RecentlyVerified::default(),
            next_sweep_ms: 0,
        }
    }

    /// The limits it was created with.
    pub fn limits(&self) -> &MempoolLimits {
        &self.limits
    }

    /// Admits transactions; one result (the hash, or why not) per input, in order.
    ///
    /// The three steps of [`Mempool::screen`], [`Screened::verify`] and
    /// [`Mempool::admit_verified`] in one call, for transactions from a peer. A node that shares
    /// its mempool between threads calls them separately, so the signatures are checked without
    /// holding the mempool's lock.
    pub fn insert_batch(
        &mut self,
        state: &impl AccountReader,
        txs: Vec<SignedTransaction>,
    ) -> Vec<Result<Digest, Rejection>> {
        let verified = self.screen(state, txs, Origin::Peer).verify();
        self.admit_verified(state, verified)
    }

    /// The cheap checks against the committed `state` and the mempool (size, duplicate, zero
    /// amount, self transfer, the global limits for `origin`, sender, nonce window, balance, then
    /// the sender's pending transactions, as [`Mempool::admit_verified`] will check them), which
    /// decide whose signature is worth checking: a transfer the mempool would refuse anyway costs
    /// no verification (under overload, most refusals are `NonceGap` and `MempoolFull`, and
    /// clients send them again). Changes nothing.
    pub fn screen(
        &self,
        state: &impl AccountReader,
        txs: Vec<SignedTransaction>,
        origin: Origin,
    ) -> Screened {
        let mut accounts: HashMap<PublicKey, Account> = HashMap::new();
        let near_full = self.near_full();
        // Near full, each sender's next gapless nonce as if this batch's earlier candidates were
        // admitted (as `admit_verified` will do, in order): consecutive nonces in one batch pass.
        let mut next_ready: HashMap<PublicKey, u64> = HashMap::new();
        let stages = txs
            .iter()
            .map(|tx| {
                let checked = self
                    .precheck(state, &mut accounts, tx, tx.hash(), origin)
                    .and_then(|(hash, _)| {
                        let t = &tx.transfer;
                        let hint = next_ready.get(&t.from).copied();
                        self.check_pending(&accounts, tx, hint)?;
                        if near_full {
                            // Passing near full means `nonce` was the next gapless one.
                            let next = t.nonce.saturating_add(1);
                            next_ready.insert(t.from, self.next_ready_nonce(&t.from, next));
                        }
                        Ok(hash)
                    });
                match checked {
                    Ok(hash) => Stage::Candidate {
                        hash,
                        checked: self.verified.holds(&hash, &tx.signature),
                    },
                    Err(rejection) => Stage::Rejected(rejection),
                }
            })
            .collect();
        Screened {
            chain_id: self.chain_id.clone(),
            origin,
            txs,
            stages,
        }
    }

    /// Admits what [`Screened::verify`] passed: the cheap checks again (the state or the mempool
    /// may have changed since [`Mempool::screen`]), then each is checked against the sender's
    /// pending transactions (no duplicate nonce, queue limit, gap near full, balance covering all
    /// pending amounts). One result per input of `screen`, in order.
    pub fn admit_verified(
        &mut self,
        state: &impl AccountReader,
        verified: Verified,
    ) -> Vec<Result<Digest, Rejection>> {
        let Verified {
            chain_id,
            origin,
            txs,
            stages,
        } = verified;
        let same_chain = chain_id == self.chain_id;
        let mut accounts: HashMap<PublicKey, Account> = HashMap::new();
        txs.into_iter()
            .zip(stages)
            .map(|(tx, stage)| match stage {
                Stage::Rejected(rejection) => Err(rejection),
                Stage::Candidate { .. } if !same_chain => Err(Rejection::BadSignature),
                Stage::Candidate { hash, .. } => {
                    let (hash, size) = self.precheck(state, &mut accounts, &tx, hash, origin)?;
                    self.admit(&accounts, tx, hash, size)
                }
            })
            .collect()
    }

    /// The checks that need no signature and no pending-queue state, the global limits among
    /// them: a client's transaction may not take the last `peer_reserve` slots.
    fn precheck(
        &self,
        state: &impl AccountReader,
        accounts: &mut HashMap<PublicKey, Account>,
        tx: &SignedTransaction,
        hash: Digest,
        origin: Origin,
    ) -> Result<(Digest, usize), Rejection> {
        let t = &tx.transfer;
        let size = tx.encoded_len();
        if size > self.limits.max_tx_bytes {
            return Err(Rejection::Oversized {
                size,
                max: self.limits.max_tx_bytes,
            });
        }
        if self.index.contains_key(&hash) {
            return Err(Rejection::Duplicate);
        }
        if t.amount == 0 {
            return Err(Rejection::ZeroAmount);
        }
        if t.from == t.to {
            return Err(Rejection::SelfTransfer);
        }
        let max_txs = match origin {
            Origin::Client => self.limits.max_txs.saturating_sub(self.limits.peer_reserve),
            Origin::Peer => self.limits.max_txs,
        };
        let bytes = self.bytes.checked_add(size);
        if self.index.len() >= max_txs || bytes.is_none_or(|bytes| bytes > self.limits.max_bytes) {
            return Err(Rejection::MempoolFull);
        }
        let account = sender_account(state, accounts, &t.from)?;
        let Some(gap) = t.nonce.checked_sub(account.nonce) else {
            return Err(Rejection::StaleNonce {
                expected: account.nonce,
                got: t.nonce,
            });
        };
        if gap > self.limits.max_nonce_gap {
            return Err(Rejection::NonceTooFarAhead {
                expected: account.nonce,
                got: t.nonce,
                max_gap: self.limits.max_nonce_gap,
            });
        }
        if t.amount > account.balance {
            return Err(Rejection::InsufficientBalance {
                balance: account.balance,
                needed: t.amount,
            });
        }
        Ok((hash, size))
    }

    /// The checks against the sender's pending transactions, after [`Mempool::precheck`] (which
    /// always runs just before, under the same lock); the sum of the sender's pending amounts
    /// with this one. `next_ready` overrides the sender's next gapless nonce (see
    /// [`Mempool::screen`]).
    fn check_pending(
        &self,
        accounts: &HashMap<PublicKey, Account>,
        tx: &SignedTransaction,
        next_ready: Option<u64>,
    ) -> Result<u64, Rejection> {
        let t = &tx.transfer;
        let account = accounts.get(&t.from).ok_or(Rejection::UnknownSender)?;
        let queue = self.senders.get(&t.from);
        let (pending, total) = queue.map_or((0, 0), |q| (q.by_nonce.len(), q.total));
        if queue.is_some_and(|q| q.by_nonce.contains_key(&t.nonce)) {
            return Err(Rejection::DuplicateNonce { nonce: t.nonce });
        }
        if pending >= self.limits.max_per_sender {
            return Err(Rejection::SenderQueueFull);
        }
        if self.near_full() {
            // Only here (the mempool is nearly full) is the O(pending) walk worth it.
            let next = next_ready.unwrap_or_else(|| self.next_ready_nonce(&t.from, account.nonce));
            if t.nonce != next {
                return Err(Rejection::NonceGap { next, got: t.nonce });
            }
        }
        let needed = total.checked_add(t.amount);
        let Some(needed) = needed.filter(|needed| *needed <= account.balance) else {
            return Err(Rejection::InsufficientBalance {
                balance: account.balance,
                needed: needed.unwrap_or(u64::MAX),
            });
        };
        Ok(needed)
    }

    /// [`Mempool::check_pending`], then the insertion.
    fn admit(
        &mut self,
        accounts: &HashMap<PublicKey, Account>,
        tx: SignedTransaction,
        hash: Digest,
        size: usize,
    ) -> Result<Digest, Rejection> {
        let needed = self.check_pending(accounts, &tx, None)?;
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1).ok_or(Rejection::MempoolFull)?;
        let (from, nonce, signature) = (tx.transfer.from, tx.transfer.nonce, tx.signature);
        let queue = self.senders.entry(from).or_default();
        queue.total = needed;
        queue.by_nonce.insert(
            nonce,
            Pending {
                hash,
                tx,
                size,
                seq,
            },
        );
        self.index.insert(hash, (from, nonce, signature));
        self.arrival.insert(seq, (from, nonce));
        self.bytes = self.bytes.saturating_add(size);
        Ok(hash)
    }

    /// No more than `ready_reserve` slots free: transfers behind a nonce gap are refused.
    fn near_full(&self) -> bool {
        self.limits.max_txs.saturating_sub(self.index.len()) <= self.limits.ready_reserve
    }

    /// The first nonce of `sender` from `committed` on that is not pending: the only one that
    /// can join without a gap.
    fn next_ready_nonce(&self, sender: &PublicKey, committed: u64) -> u64 {
        let mut next = committed;
        if let Some(queue) = self.senders.get(sender) {
            for nonce in queue.by_nonce.range(committed..).map(|(n, _)| *n) {
                if nonce != next {
                    break;
                }
                next = next.saturating_add(1);
            }
        }
        next
    }

    fn pending(&self, sender: &PublicKey, nonce: u64) -> Option<&Pending> {
        self.senders.get(sender)?.by_nonce.get(&nonce)
    }

    /// True if a transaction with this hash is pending.
    /// The next nonce `sender` can use: `committed` (its committed account nonce) plus its
    /// pending transactions that follow it without a gap. A wallet's next transfer with this
    /// nonce executes once those before it do.
    pub fn next_nonce(&self, sender: &PublicKey, committed: u64) -> u64 {
        let Some(queue) = self.senders.get(sender) else {
            return committed;
        };
        let mut next = committed;
        for &nonce in queue.by_nonce.range(committed..).map(|(n, _)| n) {
            if nonce != next {
                break;
            }
            match next.checked_add(1) {
                Some(n) => next = n,
                None => break,
            }
        }
        next
    }

    /// Drops every pending transaction that has waited behind a nonce gap for
    /// [`MempoolLimits::gap_expiry_ms`] or longer, and returns them with the reason. `now_ms` is
    /// the caller's clock (milliseconds, any epoch, not decreasing); a sender's gap is timed from
    /// the first sweep that saw it, and a gap that closes resets it. Sweeps at most every
    /// [`GAP_SWEEP_MS`] (an earlier call returns nothing), reading each sender's account once.
    pub fn expire_gapped(
        &mut self,
        state: &impl AccountReader,
        now_ms: u64,
    ) -> Result<Vec<(Digest, Eviction)>, LedgerError> {
        let max = self.limits.gap_expiry_ms;
        if max == 0 || now_ms < self.next_sweep_ms {
            return Ok(Vec::new());
        }
        self.next_sweep_ms = now_ms.saturating_add(GAP_SWEEP_MS);
        let mut expired = Vec::new();
        let senders: Vec<PublicKey> = self.senders.keys().copied().collect();
        for sender in senders {
            let committed = state.account(&sender)?.map_or(0, |a| a.nonce);
            let next = self.next_nonce(&sender, committed);
            let Some(queue) = self.senders.get_mut(&sender) else {
                continue;
            };
            // `next` itself is not pending, so anything from it on waits behind the gap.
            let behind: Vec<(u64, Digest)> = queue
                .by_nonce
                .range(next..)
                .map(|(n, p)| (*n, p.hash))
                .collect();
            if behind.is_empty() {
                queue.gapped_since_ms = None;
                continue;
            }
            let waited_ms = now_ms.saturating_sub(*queue.gapped_since_ms.get_or_insert(now_ms));
            if waited_ms < max {
                continue;
            }
            queue.gapped_since_ms = None;
            for (nonce, hash) in behind {
                self.remove_entry(&sender, nonce);
                expired.push((
                    hash,
                    Eviction::NonceGapExpired {
                        next,
                        nonce,
                        waited_ms,
                    },
                ));
            }
        }
        Ok(expired)
    }

    /// True if a transaction with this hash is pending.
    pub fn contains(&self, hash: &Digest) -> bool {
        self.index.contains_key(hash)
    }

    /// True if this node checked exactly this transaction's signature before: it is pending
    /// with the same signature bytes, or was noted by [`Mempool::note_verified`]. A proposal's
    /// copy with other signature bytes (the hash does not cover them) is not.
    pub fn verified(&self, hash: &Digest, signature: &Signature) -> bool {
        self.index
            .get(hash)
            .is_some_and(|(_, _, pending)| pending == signature)
            || self.verified.holds(hash, signature)
    }

    /// Remembers transactions whose signatures the caller checked (a proposal's payload check),
    /// so their gossiped copies are admitted without a second check. Bounded: see
    /// [`RecentlyVerified`].
    pub fn note_verified(&mut self, checked: impl IntoIterator<Item = (Digest, Signature)>) {
        for (hash, signature) in checked {
            self.verified.note(hash, signature);
        }
    }

    /// The pending transaction with this hash.
    pub fn get(&self, hash: &Digest) -> Option<&SignedTransaction> {
        let (sender, nonce, _) = self.index.get(hash)?;
        self.pending(sender, *nonce).map(|p| &p.tx)
    }

    /// Removes one transaction.
    pub fn remove(&mut self, hash: &Digest) -> Option<SignedTransaction> {
        let (sender, nonce, _) = *self.index.get(hash)?;
        self.remove_entry(&sender, nonce)
    }

    fn remove_entry(&mut self, sender: &PublicKey, nonce: u64) -> Option<SignedTransaction> {
        let queue = self.senders.get_mut(sender)?;
        let pending = queue.by_nonce.remove(&nonce)?;
        queue.total = queue.total.saturating_sub(pending.tx.transfer.amount);
        if queue.by_nonce.is_empty() {
            self.senders.remove(sender);
        }
        self.index.remove(&pending.hash);
        self.arrival.remove(&pending.seq);
        self.bytes = self.bytes.saturating_sub(pending.size);
        Some(pending.tx)
    }

    /// After a commit: drops the committed transactions (given with their hashes, which the
    /// caller already has), then for each of their senders every
    /// transaction made stale by the new account nonce, and the highest nonces until the
    /// pending amounts fit the new balance (all of them if the sender has no account).
    /// Reader errors leave that sender's queue as is; the first one is returned.
    pub fn remove_committed<'a>(
        &mut self,
        state: &impl AccountReader,
        committed: impl IntoIterator<Item = (Digest, &'a SignedTransaction)>,
    ) -> Result<(), LedgerError> {
        let mut senders = HashSet::new();
        for (hash, tx) in committed {
            self.remove(&hash);
            senders.insert(tx.transfer.from);
        }
        let mut first_error = None;
        for sender in senders {
            match state.account(&sender) {
                Ok(account) => self.prune_sender(&sender, account),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn prune_sender(&mut self, sender: &PublicKey, account: Option<Account>) {
        let Some(queue) = self.senders.get(sender) else {
            return;
        };
        let Some(account) = account else {
            let all: Vec<u64> = queue.by_nonce.keys().copied().collect();
            for n in all {
                self.remove_entry(sender, n);
            }
            return;
        };
        let mut drop = Vec::new();
        let mut total = queue.total;
        for (n, p) in queue.by_nonce.range(..account.nonce) {
            total = total.saturating_sub(p.tx.transfer.amount);
            drop.push(*n);
        }
        for (n, p) in queue.by_nonce.range(account.nonce..).rev() {
            if total <= account.balance {
                break;
            }
            total = total.saturating_sub(p.tx.transfer.amount);
            drop.push(*n);
        }
        for n in drop {
            self.remove_entry(sender, n);
        }
    }

    /// How many transactions were ever admitted: changes whenever something new could be
    /// proposed, so a proposer that found nothing to select can wait for it to move.
    pub fn admitted_total(&self) -> u64 {
        self.next_seq
    }

    /// Every pending transaction, oldest arrival first (what an admission log is rewritten
    /// with).
    pub fn snapshot(&self) -> Vec<SignedTransaction> {
        self.arrival
            .values()
            .filter_map(|(sender, nonce)| self.pending(sender, *nonce).map(|p| p.tx.clone()))
            .collect()
    }

    /// Number of transactions held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Sum of the encoded sizes of the transactions held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The committed account of `from`, read once per batch (`accounts` keeps what was read).
fn sender_account(
    state: &impl AccountReader,
    accounts: &mut HashMap<PublicKey, Account>,
    from: &PublicKey,
) -> Result<Account, Rejection> {
    if let Some(account) = accounts.get(from) {
        return Ok(*account);
    }
    match state.account(from) {
        Ok(Some(account)) => Ok(*accounts.entry(*from).or_insert(account)),
        Ok(None) => Err(Rejection::UnknownSender),
        Err(err) => Err(Rejection::State {
            reason: err.to_string(),
        }),
    }
}
