//! State snapshots kept for state sync: what a store holds of them, how one is made from the
//! committed state tree, and how a restored one becomes the store's state.
//!
//! A snapshot of height `h` is every account of the state tree's version `h`, cut into
//! `2^depth` chunks by key-hash prefix, each stored with its proof
//! ([`hotledger_ledger::build_snapshot`]). It is made only at a height whose root a committed
//! block's payload claims (`certified_by`): a node restoring it takes the root from that
//! certified block, so every chunk is checked against a root 2f + 1 validators signed for.
//! A made snapshot is materialised (its chunks are written, not read from the tree when
//! served), so it never depends on the tree versions a future pruning may delete.

use std::sync::Arc;

use hotledger_consensus::{Block, QuorumCert};
use hotledger_crypto::Digest;
use hotledger_ledger::{build_snapshot, chunk_depth, snapshot_tree, LedgerError};
use jmt::storage::TreeUpdateBatch;
use jmt::{JellyfishMerkleIterator, KeyHash};
use serde::{Deserialize, Serialize};

use super::{ChainStore, StorageError};

/// What a store holds of one snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// The height whose state it is.
    pub height: u64,
    /// The state root at that height.
    pub root: Digest,
    /// The chunks are the `2^depth` key-hash prefixes of `depth` bits.
    pub depth: u8,
    /// Accounts in all.
    pub accounts: u64,
    /// The committed block whose payload claims `root` at `height`.
    pub certified_by: u64,
    /// Every chunk is held: it can be served.
    pub complete: bool,
}

impl SnapshotManifest {
    /// Its number of chunks.
    pub fn chunks(&self) -> u32 {
        1u32 << self.depth.min(hotledger_ledger::MAX_CHUNK_DEPTH)
    }
}

/// What a state sync must keep from before its first chunk to install the snapshot, even
/// across a restart: the snapshot, the block at its height and the QC certifying that block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreAnchor {
    pub manifest: SnapshotManifest,
    pub block: Block,
    pub qc: QuorumCert,
}

/// Makes the snapshot of `height` (a height whose tree the store wrote in full, and whose root
/// the committed block at `certified_by` claims) and keeps the newest `keep` complete ones.
/// Reads every account of that version: run it off the consensus loop.
pub fn create<S: ChainStore>(
    store: &S,
    height: u64,
    certified_by: u64,
    keep: usize,
) -> Result<SnapshotManifest, StorageError> {
    let root = store
        .block_by_height(height)?
        .ok_or(StorageError::MissingBlock { height })?
        .state_root;
    let iter = JellyfishMerkleIterator::new(Arc::new(store.clone()), height, KeyHash([0; 32]))
        .map_err(tree_error)?;
    let mut leaves = Vec::new();
    for item in iter {
        let (key, value) = item.map_err(tree_error)?;
        leaves.push((key.0, value));
    }
    let accounts = leaves.len() as u64;
    let depth = chunk_depth(accounts);
    let (computed, chunks) = build_snapshot(leaves, depth)?;
    if computed != root {
        return Err(LedgerError::RootMismatch {
            height,
            rebuilt: computed,
            stored: root,
        }
        .into());
    }
    let manifest = SnapshotManifest {
        height,
        root,
        depth,
        accounts,
        certified_by,
        complete: true,
    };
    let chunks: Vec<(u32, hotledger_ledger::SnapshotChunk)> = chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| (u32::try_from(i).unwrap_or(u32::MAX), c))
        .collect();
    store.put_snapshot(&manifest, &chunks)?;
    let mut complete: Vec<u64> = store
        .snapshots()?
        .iter()
        .filter(|m| m.complete)
        .map(|m| m.height)
        .collect();
    complete.sort_unstable();
    let excess = complete.len().saturating_sub(keep.max(1));
    for old in complete.into_iter().take(excess) {
        store.delete_snapshot(old)?;
    }
    Ok(manifest)
}

/// The state tree of a restored snapshot, every chunk held: its nodes, all at the snapshot's
/// height. Fails if a chunk is missing or the tree's root is not the anchor's (every chunk was
/// checked against that root on arrival, so this is a check of the store).
pub fn restored_tree<S: ChainStore>(
    store: &S,
    anchor: &RestoreAnchor,
) -> Result<TreeUpdateBatch, StorageError> {
    let m = &anchor.manifest;
    // Not sized by `m.accounts`: that count came from a peer's offer.
    let mut leaves = Vec::new();
    for index in 0..m.chunks() {
        let chunk = store
            .snapshot_chunk(m.height, index)?
            .ok_or(StorageError::MissingChunk {
                height: m.height,
                index,
            })?;
        leaves.extend(chunk.leaves);
    }
    let (root, tree) = snapshot_tree(m.height, leaves)?;
    if root != m.root {
        return Err(LedgerError::RootMismatch {
            height: m.height,
            rebuilt: root,
            stored: m.root,
        }
        .into());
    }
    Ok(tree)
}

fn tree_error(e: anyhow::Error) -> StorageError {
    StorageError::Ledger(LedgerError::Tree {
        reason: format!("{e:#}"),
    })
}

/// `height ‖ index`, both big-endian: a chunk's key in `snapshots` (a manifest's is `height`).
pub(super) fn chunk_key(height: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&height.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}
