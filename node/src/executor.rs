//! Applies committed blocks off the consensus loop, strictly in commit order, on its own thread:
//! execution, the state root, **one synced write batch per block**, then the mempool clean-up.
//!
//! The loop hands over each block the core commits ([`CommitJob`]) and goes on voting and
//! proposing; the executor answers with the new commit tip ([`Executed`]). Until then the loop
//! still treats the block's transactions as taken (a proposal never repeats them) and serves the
//! block to peers from memory. A crash before the write loses nothing: the block is still in the
//! `pending` column family, so the restarted core commits it again from the last stored tip.

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use hotledger_consensus::{Block, QuorumCert};
use hotledger_crypto::Digest;
use hotledger_ledger::{compute_state_root, execute, BlockPayload, TxError, TxOutcome};
use tokio::sync::mpsc;

use crate::error::NodeError;
use crate::shared::Shared;
use crate::storage::{BlockWrite, CommitTip, Store, StoredBlock, TxRecord};

/// State roots by height, shared by the executor (writer) and the payload check (reader).
pub(crate) type Roots = Arc<RwLock<BTreeMap<u64, Digest>>>;

/// State roots kept in memory for checking proposals' state claims.
const ROOT_CACHE: usize = 1_024;

/// A block's payload with its transactions' hashes, each computed once per node.
#[derive(Debug)]
pub(crate) struct DecodedPayload {
    pub payload: BlockPayload,
    pub hashes: Vec<Digest>,
}

impl DecodedPayload {
    pub fn new(payload: BlockPayload) -> Self {
        let hashes = payload.tx_hashes();
        DecodedPayload { payload, hashes }
    }
}

/// One committed block to apply.
#[derive(Debug)]
pub(crate) struct CommitJob {
    pub block: Block,
    /// Certifies `block` (or its child): what a restart recovers from.
    pub qc: QuorumCert,
    pub payload: Arc<DecodedPayload>,
    /// The last block of its commit (for the log).
    pub last: bool,
}

/// What the executor tells the loop.
#[derive(Debug)]
pub(crate) enum Executed {
    /// `id` is durably applied; `tip` is the new commit tip.
    Block { id: Digest, tip: CommitTip },
    /// Applying failed; the executor has stopped.
    Failed(NodeError),
}

/// Starts the executor thread from the stored commit `tip`. It stops when `jobs` is closed
/// (after applying everything queued) or after a failure.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    roots: Roots,
    tip: CommitTip,
    jobs: std_mpsc::Receiver<CommitJob>,
    done: mpsc::UnboundedSender<Executed>,
) -> Result<JoinHandle<()>, NodeError> {
    std::thread::Builder::new()
        .name("executor".into())
        .spawn(move || {
            let mut executor = Executor {
                store: shared.store.clone(),
                shared,
                roots,
                tip,
                last_commit: None,
            };
            while let Ok(job) = jobs.recv() {
                let id = job.block.id;
                match executor.apply(job) {
                    Ok(tip) => {
                        let _ = done.send(Executed::Block { id, tip });
                    }
                    Err(e) => {
                        let _ = done.send(Executed::Failed(e));
                        return;
                    }
                }
            }
        })
        .map_err(|e| NodeError::Storage {
            path: std::path::PathBuf::from("executor"),
            reason: format!("cannot start the executor thread: {e}"),
        })
}

struct Executor {
    store: Store,
    shared: Arc<Shared>,
    roots: Roots,
    tip: CommitTip,
    last_commit: Option<Instant>,
}

impl Executor {
    /// Executes and stores one committed block in its own synced write batch.
    fn apply(&mut self, job: CommitJob) -> Result<CommitTip, NodeError> {
        let started = Instant::now();
        let CommitJob {
            block,
            qc,
            payload: decoded,
            last,
        } = job;
        let payload = &decoded.payload;
        let exec = execute(&self.store, &payload.txs)?;
        let (state_root, tree) = compute_state_root(&self.store, block.height, &exec.updates)?;
        let mut records = Vec::with_capacity(decoded.hashes.len());
        let mut applied = 0u64;
        for (index, (hash, outcome)) in decoded.hashes.iter().zip(&exec.outcomes).enumerate() {
            if matches!(outcome, TxOutcome::Applied) {
                applied += 1;
            } else if matches!(outcome, TxOutcome::Failed(TxError::BadNonce { .. }))
                && self.store.tx(hash)?.is_some()
            {
                continue; // a repeat of a committed transaction keeps its first record
            }
            records.push((
                *hash,
                TxRecord {
                    height: block.height,
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    outcome: outcome.clone(),
                },
            ));
        }
        let tip = CommitTip {
            block: block.info(),
            qc,
            state_root,
            committed_txs: self.tip.committed_txs.saturating_add(applied),
        };
        let stored = StoredBlock {
            block,
            state_root,
            tx_hashes: decoded.hashes.clone(),
        };
        self.store.commit_block(BlockWrite {
            stored: &stored,
            records: &records,
            accounts: &exec.updates,
            tree: &tree,
            tip: &tip,
        })?;
        self.tip = tip.clone();
        if let Ok(mut roots) = self.roots.write() {
            roots.insert(stored.block.height, state_root);
            while roots.len() > ROOT_CACHE {
                roots.pop_first();
            }
        }
        if let Ok(mut mp) = self.shared.mempool.lock() {
            mp.remove_committed(&self.store, decoded.hashes.iter().copied().zip(&payload.txs))?;
        }
        let m = &self.shared.metrics;
        m.committed_blocks.inc();
        m.committed_txs.inc_by(applied);
        m.failed_txs.inc_by(exec.outcomes.len() as u64 - applied);
        m.commit_seconds.observe(started.elapsed().as_secs_f64());
        if let Some(previous) = self.last_commit.replace(Instant::now()) {
            m.block_interval_seconds.observe(previous.elapsed().as_secs_f64());
        }
        tracing::info!(
            height = stored.block.height,
            id = %stored.block.id.short(),
            txs = payload.txs.len(),
            applied,
            last,
            "committed"
        );
        Ok(tip)
    }
}
