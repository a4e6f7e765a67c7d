//! Applying a committed block: execute its transfers, compute the state root, write the block,
//! its records, the accounts and the new tip in one synced batch.

use hotledger_consensus::{Block, Commit, QuorumCert};
use hotledger_crypto::Digest;
use hotledger_ledger::{compute_state_root, execute, TxError, TxOutcome};

use super::payload::DecodedPayload;
use crate::error::NodeError;
use crate::storage::{BlockWrite, ChainStore, CommitTip, TxRecord};

/// One block committed, for the caller's logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitReport {
    pub height: u64,
    pub id: Digest,
    /// State root after the block.
    pub state_root: Digest,
    /// Transactions in the block.
    pub txs: usize,
    /// Those that applied (the others failed and changed nothing).
    pub applied: u64,
    /// Time spent executing, writing and cleaning the mempool after it (for metrics).
    pub elapsed: std::time::Duration,
}

/// The blocks of a commit, each with the QC that certifies it: its child's, or the commit's
/// proof for the last one.
pub(super) fn certified(commit: &Commit) -> impl Iterator<Item = (&Block, &QuorumCert)> {
    commit.blocks.iter().enumerate().map(|(i, block)| {
        let qc = commit
            .blocks
            .get(i + 1)
            .map_or(&commit.proof, |child| &child.qc);
        (block, qc)
    })
}

/// Executes `block` on the committed state and writes it in one batch, synced if `durable`
/// (see [`BlockWrite::durable`]), its tree written in full if `write_tree` (a snapshot height);
/// returns the new tip and the report.
pub(super) fn apply<S: ChainStore>(
    store: &S,
    tip: &CommitTip,
    block: &Block,
    qc: &QuorumCert,
    decoded: &DecodedPayload,
    durable: bool,
    write_tree: bool,
) -> Result<(CommitTip, CommitReport), NodeError> {
    let exec = execute(store, &decoded.payload.txs)?;
    let (state_root, tree) = compute_state_root(store, block.height, &exec.updates)?;
    let (records, applied) = records(store, block.height, &decoded.hashes, &exec.outcomes)?;
    let tip = CommitTip {
        block: block.info(),
        qc: qc.clone(),
        state_root,
        committed_txs: tip.committed_txs.saturating_add(applied),
    };
    store.commit_block(BlockWrite {
        block,
        state_root,
        records: &records,
        accounts: &exec.updates,
        tree,
        tip: &tip,
        durable,
        write_tree,
    })?;
    let report = CommitReport {
        height: block.height,
        id: block.id,
        state_root,
        txs: decoded.payload.txs.len(),
        applied,
        elapsed: std::time::Duration::ZERO,
    };
    Ok((tip, report))
}

/// The transaction records of a block at `height` and how many of its transactions applied. A
/// repeat of an already committed transaction (it fails on its nonce) keeps its first record.
fn records<S: ChainStore>(
    store: &S,
    height: u64,
    hashes: &[Digest],
    outcomes: &[TxOutcome],
) -> Result<(Vec<(Digest, TxRecord)>, u64), NodeError> {
    let mut records = Vec::with_capacity(hashes.len());
    let mut applied = 0u64;
    for (index, (hash, outcome)) in hashes.iter().zip(outcomes).enumerate() {
        if matches!(outcome, TxOutcome::Applied) {
            applied = applied.saturating_add(1);
        } else if matches!(outcome, TxOutcome::Failed(TxError::BadNonce { .. }))
            && store.tx(hash)?.is_some()
        {
            continue;
        }
        let record = TxRecord {
            height,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            outcome: outcome.clone(),
        };
        records.push((*hash, record));
    }
    Ok((records, applied))
}
