//! Payload checks and the decoded payloads of uncommitted blocks.
//!
//! A proposal's payload is accepted when it decodes within the genesis limits, its
//! transactions' signatures verify (each checked once per node: one pending in the mempool with
//! the same signature bytes, or noted by an earlier check, is not checked again), and it claims
//! the state root at exactly the height the chain gives (`hotledger_consensus::claim`), equal to
//! the root this node executed there. A node that has not executed that height cannot check the
//! claim and answers [`PayloadError::ClaimUnchecked`]: the core keeps the block without a vote,
//! so the node never votes on a claim it did not check.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use foldhash::HashMap;
use hotledger_consensus::{Block, PayloadError};
use hotledger_crypto::Digest;
use hotledger_ledger::{
    verify_transactions, BlockPayload, LedgerError, Mempool, SignedTransaction,
};

use super::lock;
use crate::error::NodeError;
use crate::storage::ChainStore;

/// State roots kept in memory for checking proposals' state claims; an older one is read from
/// the store.
const ROOTS_KEPT: usize = 1_024;

/// Bytes kept free in a block for the payload's own fields.
const PAYLOAD_HEADER_BYTES: usize = 256;

/// The state claim a payload must make: its height, by the chain's rule, and the highest
/// height this node has executed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Claim {
    pub(super) height: u64,
    pub(super) executed: u64,
}

/// A block's payload with its transactions' hashes, each computed once per node.
#[derive(Debug)]
pub(crate) struct DecodedPayload {
    pub(crate) payload: BlockPayload,
    pub(crate) hashes: Vec<Digest>,
}

#[derive(Debug)]
pub(super) struct Payloads {
    chain_id: String,
    max_txs: usize,
    max_bytes: usize,
    /// Payloads of uncommitted blocks, decoded once (by the check, or when first needed).
    decoded: HashMap<Digest, Arc<DecodedPayload>>,
    /// Committed state roots by height, the last [`ROOTS_KEPT`].
    roots: BTreeMap<u64, Digest>,
    /// Off only in the simulator's negative control (`DisabledRule::StateClaim`).
    pub(super) check_claims: bool,
}

impl Payloads {
    pub(super) fn new(chain_id: String, max_txs: usize, max_bytes: usize) -> Payloads {
        Payloads {
            chain_id,
            max_txs,
            max_bytes,
            decoded: HashMap::default(),
            roots: BTreeMap::new(),
            check_claims: true,
        }
    }

    /// The committed state root at `height`.
    pub(super) fn note_root(&mut self, height: u64, root: Digest) {
        self.roots.insert(height, root);
        while self.roots.len() > ROOTS_KEPT {
            self.roots.pop_first();
        }
    }

    /// Most transactions and bytes a proposal may select.
    pub(super) fn selection_limits(&self) -> (usize, usize) {
        (
            self.max_txs,
            self.max_bytes.saturating_sub(PAYLOAD_HEADER_BYTES),
        )
    }

    /// Checks a proposed block's payload; returns the result and how many signatures it
    /// verified. The mempool's lock is taken only to find the transactions this node has not
    /// checked and to note those it checks, never during the verification itself. An accepted
    /// payload is kept decoded for building on it and committing it (until
    /// [`Payloads::forget`] or a commit's [`Payloads::retain`]).
    pub(super) fn check<S: ChainStore>(
        &mut self,
        block: &Block,
        claim: Claim,
        store: &S,
        mempool: &Mutex<Mempool>,
    ) -> Result<(Result<(), PayloadError>, u64), NodeError> {
        let (payload, hashes) =
            match BlockPayload::decode_hashed(&block.payload, self.max_txs, self.max_bytes) {
                Ok(decoded) => decoded,
                Err(e) => return Ok((Err(malformed(e)), 0)),
            };
        if let Err(error) = self.check_claim(&payload, claim, store)? {
            return Ok((Err(error), 0));
        }
        let unverified: Vec<usize> = {
            let mp = lock(mempool)?;
            (0..payload.txs.len())
                .filter(|&i| !mp.verified(&hashes[i], &payload.txs[i].signature))
                .collect()
        };
        let txs: Vec<&SignedTransaction> = unverified.iter().map(|&i| &payload.txs[i]).collect();
        let verified = txs.len() as u64;
        if let Err(e) = verify_transactions(&self.chain_id, &txs) {
            let error = match e {
                LedgerError::BadSignature { index } => PayloadError::BadSignature {
                    index: unverified.get(index).copied().unwrap_or(index),
                },
                other => malformed(other),
            };
            return Ok((Err(error), verified));
        }
        if !unverified.is_empty() {
            // Their gossiped copies, which usually arrive after the proposal, need no second
            // check.
            lock(mempool)?.note_verified(
                unverified
                    .iter()
                    .map(|&i| (hashes[i], payload.txs[i].signature)),
            );
        }
        self.decoded
            .insert(block.id, Arc::new(DecodedPayload { payload, hashes }));
        Ok((Ok(()), verified))
    }

    /// The payload must claim exactly `claim.height`, which this node must have executed, and
    /// the root it executed there.
    fn check_claim<S: ChainStore>(
        &self,
        payload: &BlockPayload,
        claim: Claim,
        store: &S,
    ) -> Result<Result<(), PayloadError>, NodeError> {
        if !self.check_claims {
            return Ok(Ok(()));
        }
        let height = claim.height;
        if payload.state_height != height {
            return Ok(Err(PayloadError::WrongStateHeight {
                claimed: payload.state_height,
                expected: height,
            }));
        }
        let unchecked = PayloadError::ClaimUnchecked {
            height,
            executed: claim.executed,
        };
        if height > claim.executed {
            return Ok(Err(unchecked));
        }
        let Some(ours) = self.root_at(height, store)? else {
            return Ok(Err(unchecked));
        };
        if ours != payload.state_root {
            return Ok(Err(PayloadError::WrongStateRoot {
                height,
                claimed: payload.state_root,
                ours,
            }));
        }
        Ok(Ok(()))
    }

    /// The state root this node committed at `height`, from memory or the store; `None` when
    /// it holds none there (pruned, or below a restored snapshot).
    pub(super) fn root_at<S: ChainStore>(
        &self,
        height: u64,
        store: &S,
    ) -> Result<Option<Digest>, NodeError> {
        if let Some(root) = self.roots.get(&height) {
            return Ok(Some(*root));
        }
        if height == 0 {
            return Ok(store.genesis_root()?);
        }
        Ok(store.block_by_height(height)?.map(|b| b.state_root))
    }

    /// Forgets the decoded payload of a block that did not enter the tree.
    pub(super) fn forget(&mut self, id: &Digest) {
        self.decoded.remove(id);
    }

    /// The decoded payload of `block`, from the cache or decoded now. A certified payload that
    /// does not decode (only possible with a Byzantine quorum) counts as empty on every node.
    pub(super) fn decoded(&mut self, block: &Block) -> Arc<DecodedPayload> {
        if let Some(p) = self.decoded.get(&block.id) {
            return p.clone();
        }
        let (payload, hashes) = BlockPayload::decode_hashed(&block.payload, usize::MAX, usize::MAX)
            .unwrap_or_else(|_| (BlockPayload::new(0, Digest::ZERO, Vec::new()), Vec::new()));
        let decoded = Arc::new(DecodedPayload { payload, hashes });
        self.decoded.insert(block.id, decoded.clone());
        decoded
    }

    /// Forgets the payloads of blocks `keep` says no longer matter.
    pub(super) fn retain(&mut self, keep: impl Fn(&Digest) -> bool) {
        self.decoded.retain(|id, _| keep(id));
    }
}

fn malformed(e: LedgerError) -> PayloadError {
    PayloadError::Malformed {
        detail: e.to_string(),
    }
}
