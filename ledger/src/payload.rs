//! What a block's opaque consensus payload holds, and its bounded decoding.

use foldhash::HashSetExt;
use hotledger_crypto::{merkle_root, Digest};
use serde::{Deserialize, Serialize};

use crate::{LedgerError, SignedTransaction};

/// The ledger content of one block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockPayload {
    /// The committed height whose state root this payload claims: the one the chain gives
    /// (`hotledger_consensus::claim`), checked by every voter.
    pub state_height: u64,
    /// The state root after `state_height`.
    pub state_root: Digest,
    /// [`merkle_root`] of the transaction hashes, in order.
    pub txs_root: Digest,
    /// The transactions, executed in this order.
    pub txs: Vec<SignedTransaction>,
}

/// The smallest encoded transaction: two keys, two one-byte varints and a signature.
const MIN_TX_LEN: usize = 32 + 32 + 1 + 1 + 64;

/// The fixed-size prefix of an encoded payload, decoded first so that the transaction count is
/// checked before any transaction is. Postcard encodes a struct as its fields in order and a
/// `Vec` as a varint length followed by its elements, so this is a prefix of [`BlockPayload`].
#[derive(Deserialize)]
struct Header {
    state_height: u64,
    state_root: Digest,
    txs_root: Digest,
    count: u64,
}

impl BlockPayload {
    /// Builds a payload, computing `txs_root` from the transactions.
    pub fn new(state_height: u64, state_root: Digest, txs: Vec<SignedTransaction>) -> Self {
        let txs_root = txs_root(&txs);
        BlockPayload {
            state_height,
            state_root,
            txs_root,
            txs,
        }
    }

    /// The postcard encoding.
    ///
    /// Encoding these types into a `Vec` cannot fail (every length is known); were it ever to,
    /// the result would be empty, which [`BlockPayload::decode`] rejects.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// The hashes of the transactions, in order.
    pub fn tx_hashes(&self) -> Vec<Digest> {
        self.txs.iter().map(SignedTransaction::hash).collect()
    }

    /// Decodes and checks a payload received from the network.
    ///
    /// Rejects, in this order: input longer than `max_bytes` (before decoding anything), a
    /// transaction count above `max_txs` (before decoding any transaction), malformed bytes,
    /// trailing bytes, a duplicate transaction hash, a `txs_root` that does not match, and
    /// bytes that are not the payload's canonical encoding (so a block's id, computed over its
    /// payload bytes, is one per payload).
    /// Signatures are not checked here. Total: never panics, whatever the input.
    pub fn decode(
        bytes: &[u8],
        max_txs: usize,
        max_bytes: usize,
    ) -> Result<BlockPayload, LedgerError> {
        BlockPayload::decode_hashed(bytes, max_txs, max_bytes).map(|(payload, _)| payload)
    }

    /// [`BlockPayload::decode`], also returning the transactions' hashes it computed to check the
    /// root (so a caller that needs them does not hash every transaction again).
    pub fn decode_hashed(
        bytes: &[u8],
        max_txs: usize,
        max_bytes: usize,
    ) -> Result<(BlockPayload, Vec<Digest>), LedgerError> {
        if bytes.len() > max_bytes {
            return Err(LedgerError::PayloadTooLarge {
                got: bytes.len(),
                max: max_bytes,
            });
        }
        let (header, mut rest) = postcard::take_from_bytes::<Header>(bytes)
            .map_err(LedgerError::decode("payload header"))?;
        let count = usize::try_from(header.count).unwrap_or(usize::MAX);
        if count > max_txs {
            return Err(LedgerError::TooManyTxs {
                got: count,
                max: max_txs,
            });
        }
        // Never trust the count for allocation: each transaction takes at least MIN_TX_LEN bytes.
        let mut txs = Vec::with_capacity(count.min(rest.len() / MIN_TX_LEN));
        for _ in 0..count {
            let (tx, tail) = postcard::take_from_bytes::<SignedTransaction>(rest)
                .map_err(LedgerError::decode("transaction"))?;
            txs.push(tx);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(LedgerError::TrailingBytes { count: rest.len() });
        }
        let hashes: Vec<Digest> = txs.iter().map(SignedTransaction::hash).collect();
        let mut seen = foldhash::HashSet::with_capacity(hashes.len());
        for hash in &hashes {
            if !seen.insert(*hash) {
                return Err(LedgerError::DuplicateTx { hash: *hash });
            }
        }
        let computed = merkle_root(&hashes);
        if computed != header.txs_root {
            return Err(LedgerError::TxsRootMismatch {
                claimed: header.txs_root,
                computed,
            });
        }
        let payload = BlockPayload {
            state_height: header.state_height,
            state_root: header.state_root,
            txs_root: header.txs_root,
            txs,
        };
        // Postcard's only redundancy is over-long varints, which make the input longer than the
        // canonical encoding: equal lengths mean equal bytes.
        let canonical = postcard::experimental::serialized_size(&payload).unwrap_or(0);
        if canonical != bytes.len() {
            return Err(LedgerError::NonCanonical {
                got: bytes.len(),
                canonical,
            });
        }
        Ok((payload, hashes))
    }
}

/// [`merkle_root`] of the transactions' hashes, in order.
pub fn txs_root(txs: &[SignedTransaction]) -> Digest {
    let hashes: Vec<Digest> = txs.iter().map(SignedTransaction::hash).collect();
    merkle_root(&hashes)
}
