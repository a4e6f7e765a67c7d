//! State shared between the consensus loop, the JSON-RPC server and the metrics endpoint.
//!
//! Locks are held only for short, non-async sections. The consensus loop is the only writer of
//! `status`; the RPC server inserts into the mempool directly (so signature checks of submitted
//! transactions run on RPC worker threads, not on the consensus loop).

use std::sync::{Arc, RwLock};

use hotledger_crypto::Digest;
use hotledger_ledger::{Origin, Rejection, SignedTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};

use crate::host::SharedMempool;
use crate::metrics::Metrics;
use crate::network::NetStats;
use crate::storage::{AdmissionLog, StorageError, Store};

/// What `status` reports; refreshed by the consensus loop after every event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub moniker: String,
    pub chain_id: String,
    pub genesis_hash: Digest,
    /// `validator` or `full` (config.toml's `role`).
    pub role: String,
    /// This node's validator key (hex); empty on a full node.
    pub validator: String,
    /// Lowest committed height whose block is still held (older ones are pruned).
    pub earliest_height: u64,
    /// Last committed height and block.
    pub height: u64,
    pub block_id: Digest,
    pub state_root: Digest,
    pub round: u64,
    /// Height of the highest certified block known.
    pub high_qc_height: u64,
    /// True while this node is fetching blocks it missed.
    pub syncing: bool,
    /// Set when this node's state differs from one the validators certified: it has stopped
    /// taking part in consensus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<crate::host::Divergence>,
    /// Connected validators.
    pub peers: usize,
    /// Connected peers that are not validators (full nodes).
    pub non_validator_peers: usize,
    pub validators: usize,
    pub mempool_txs: usize,
    pub mempool_bytes: usize,
    pub committed_txs: u64,
}

/// Handles shared by every task of a running node.
#[derive(Debug)]
pub struct Shared {
    pub chain_id: String,
    pub store: Store,
    /// The host proposes from it; RPC and the ingest task admit into it.
    pub mempool: SharedMempool,
    /// Signalled after an admission that took something in, so a proposal waiting for
    /// transactions is built at once.
    pub admitted: Notify,
    pub status: RwLock<Status>,
    pub net: Arc<NetStats>,
    pub metrics: Metrics,
    /// Accepted transactions to disseminate to the other validators. Bounded: when full the
    /// transactions stay in this node's mempool and are proposed when it leads.
    pub gossip: mpsc::Sender<Vec<SignedTransaction>>,
    /// Most transactions per `submit_transactions` call.
    pub max_batch: usize,
    /// Where acknowledged submissions are recorded before the answer (`mempool.log`).
    pub admission_log: Option<AdmissionLog>,
}

/// The mempool's lock was poisoned (a thread panicked while holding it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolPoisoned;

impl Shared {
    /// Admits `txs` to the mempool, one result per input in order. The cheap checks and the
    /// insertion take the mempool's lock; the signature checks between them do not, so the
    /// consensus loop (which proposes from the mempool) never waits for a batch verification.
    pub fn admit(
        &self,
        txs: Vec<SignedTransaction>,
        origin: Origin,
    ) -> Result<Vec<Result<Digest, Rejection>>, MempoolPoisoned> {
        let screened =
            self.mempool
                .lock()
                .map_err(|_| MempoolPoisoned)?
                .screen(&self.store, txs, origin);
        self.metrics
            .known_signature_txs
            .inc_by(screened.known() as u64);
        let verified = screened.verify();
        let results = self
            .mempool
            .lock()
            .map_err(|_| MempoolPoisoned)?
            .admit_verified(&self.store, verified);
        if results.iter().any(Result::is_ok) {
            self.admitted.notify_one();
        }
        Ok(results)
    }

    /// Records transactions a client's submission admitted in the admission log (if kept),
    /// before they are acknowledged, and rewrites the log with the mempool's content once it
    /// grew past its bound.
    pub fn record_admitted(&self, txs: &[SignedTransaction]) -> Result<(), StorageError> {
        let Some(log) = &self.admission_log else {
            return Ok(());
        };
        log.append(txs)?;
        if log.oversized()? {
            let kept = log.rewrite(|| self.pending())?;
            tracing::debug!(pending = kept, "admission log rewritten");
        }
        Ok(())
    }

    /// Every transaction pending in the mempool.
    pub fn pending(&self) -> Result<Vec<SignedTransaction>, StorageError> {
        self.mempool
            .lock()
            .map(|m| m.snapshot())
            .map_err(|_| StorageError::Poisoned { what: "mempool" })
    }

    /// A copy of the current status (never holds the lock across an await).
    pub fn status(&self) -> Status {
        self.status
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}
