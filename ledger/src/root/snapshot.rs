//! State snapshots: the accounts of one tree version cut into chunks by key-hash prefix, each
//! chunk provable **on its own** against that version's root.
//!
//! # The tree as a binary sparse Merkle tree
//!
//! jmt's root is the root of a binary sparse Merkle tree over the 256 bits of each key hash
//! (most significant bit first): an empty subtree hashes to jmt's placeholder, a subtree holding
//! exactly one leaf hashes to that leaf (`SHA-256("JMT::LeafNode" ‖ key hash ‖ SHA-256(value))`,
//! at whatever depth), and any other subtree to `SHA-256("JMT::IntrnalNode" ‖ left ‖ right)`.
//! This module computes that function itself ([`subtree`]); the tests check it against jmt's
//! roots.
//!
//! # Chunks
//!
//! A snapshot of `n` accounts has `2^depth` chunks ([`chunk_depth`]): chunk `i` holds every
//! account whose key hash begins with the `depth` bits of `i`, in key order, and the `depth`
//! siblings of that prefix's subtree on the way to the root. A sibling that is a single leaf is
//! sent as that leaf (key and value hash), not as its hash: the verifier checks the key lies on
//! the sibling's side, so a server cannot move an account of the chunk into a sibling and leave
//! it out ([`verify_chunk`]). A chunk that verifies holds exactly the accounts of its prefix, so
//! chunks can be fetched from different peers in any order and checked as they arrive.

use hotledger_crypto::Digest;
use jmt::{KeyHash, OwnedValue, Sha256Jmt};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::Version;

use super::decode_account;
use crate::LedgerError;

/// The deepest chunk prefix: at most 65,536 chunks.
pub const MAX_CHUNK_DEPTH: u8 = 16;
/// Accounts a chunk is sized for on average ([`chunk_depth`]): about 100 KiB.
pub const TARGET_CHUNK_ACCOUNTS: u64 = 2_048;
/// Most bytes of accounts in one chunk (keys and values), built or received.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

const LEAF_DOMAIN: &[u8] = b"JMT::LeafNode";
const INTERNAL_DOMAIN: &[u8] = b"JMT::IntrnalNode";
const PLACEHOLDER: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

/// A subtree of the binary sparse Merkle tree, as much as its parent's hash needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subtree {
    /// No account.
    Empty,
    /// Exactly one account: its key hash and value hash.
    Leaf {
        /// The account's key hash.
        key: [u8; 32],
        /// SHA-256 of its value.
        value_hash: [u8; 32],
    },
    /// Two or more accounts: the subtree's hash.
    Internal([u8; 32]),
}

impl Subtree {
    /// The subtree's hash.
    pub fn hash(&self) -> [u8; 32] {
        match self {
            Subtree::Empty => PLACEHOLDER,
            Subtree::Leaf { key, value_hash } => {
                let mut h = Sha256::new();
                h.update(LEAF_DOMAIN);
                h.update(key);
                h.update(value_hash);
                h.finalize().into()
            }
            Subtree::Internal(hash) => *hash,
        }
    }

    /// The parent of `left` and `right`: a single leaf below an empty sibling moves up.
    pub fn join(left: Subtree, right: Subtree) -> Subtree {
        match (left, right) {
            (Subtree::Empty, Subtree::Empty) => Subtree::Empty,
            (leaf @ Subtree::Leaf { .. }, Subtree::Empty)
            | (Subtree::Empty, leaf @ Subtree::Leaf { .. }) => leaf,
            (l, r) => {
                let mut h = Sha256::new();
                h.update(INTERNAL_DOMAIN);
                h.update(l.hash());
                h.update(r.hash());
                Subtree::Internal(h.finalize().into())
            }
        }
    }
}

/// Bit `depth` of `key`, most significant first.
fn bit(key: &[u8; 32], depth: usize) -> bool {
    key.get(depth / 8)
        .is_some_and(|byte| (byte >> (7 - depth % 8)) & 1 == 1)
}

/// The first `depth` bits of `key` as a number (the chunk it belongs to).
pub fn chunk_of(key: &[u8; 32], depth: u8) -> u32 {
    (0..usize::from(depth)).fold(0u32, |acc, d| (acc << 1) | u32::from(bit(key, d)))
}

/// The subtree at `depth` holding `leaves` (key hash, value hash), which all share its
/// prefix and are sorted by key with no repeat.
pub fn subtree(leaves: &[([u8; 32], [u8; 32])], depth: usize) -> Subtree {
    match leaves {
        [] => Subtree::Empty,
        [(key, value_hash)] => Subtree::Leaf {
            key: *key,
            value_hash: *value_hash,
        },
        _ => {
            let split = leaves.partition_point(|(key, _)| !bit(key, depth));
            let (left, right) = leaves.split_at(split);
            Subtree::join(subtree(left, depth + 1), subtree(right, depth + 1))
        }
    }
}

/// The chunk depth for a snapshot of `accounts` accounts: the smallest whose chunks hold at
/// most [`TARGET_CHUNK_ACCOUNTS`] on average, at most [`MAX_CHUNK_DEPTH`].
pub fn chunk_depth(accounts: u64) -> u8 {
    let mut depth = 0u8;
    while depth < MAX_CHUNK_DEPTH && accounts >> depth > TARGET_CHUNK_ACCOUNTS {
        depth += 1;
    }
    depth
}

/// One chunk of a snapshot: its accounts (key hash, value), in key order, and the siblings of
/// its prefix from the top of the tree down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The accounts: key hash and encoded account.
    pub leaves: Vec<([u8; 32], Vec<u8>)>,
    /// `siblings[l]`: the sibling at depth `l + 1` of the chunk's path.
    pub siblings: Vec<Subtree>,
}

impl SnapshotChunk {
    /// Bytes of keys and values the chunk holds.
    pub fn bytes(&self) -> usize {
        self.leaves
            .iter()
            .map(|(_, v)| v.len().saturating_add(32))
            .fold(0usize, usize::saturating_add)
    }
}

/// Cuts the accounts of one tree version (key hash, value; sorted by key, no repeats) into the
/// `2^depth` chunks of a snapshot, each with its proof; returns the root and the chunks.
/// Fails if the accounts are not sorted or a chunk would exceed [`MAX_CHUNK_BYTES`].
pub fn build_snapshot(
    leaves: Vec<([u8; 32], Vec<u8>)>,
    depth: u8,
) -> Result<(Digest, Vec<SnapshotChunk>), LedgerError> {
    if depth > MAX_CHUNK_DEPTH {
        return Err(LedgerError::ChunkDepth { depth });
    }
    if let Some(w) = leaves.windows(2).find(|w| w[0].0 >= w[1].0) {
        return Err(LedgerError::UnsortedAccounts {
            key: Digest(w[1].0),
        });
    }
    let count = 1usize << depth;
    let mut chunks: Vec<SnapshotChunk> = (0..count)
        .map(|_| SnapshotChunk {
            leaves: Vec::new(),
            siblings: Vec::new(),
        })
        .collect();
    for (key, value) in leaves {
        let i = chunk_of(&key, depth) as usize;
        if let Some(chunk) = chunks.get_mut(i) {
            chunk.leaves.push((key, value));
        }
    }
    // levels[d][j]: the subtree of prefix j at depth d, from the chunks up to the root.
    let mut levels: Vec<Vec<Subtree>> = vec![Vec::new(); usize::from(depth) + 1];
    let mut bottom = Vec::with_capacity(count);
    for (i, chunk) in chunks.iter().enumerate() {
        if chunk.bytes() > MAX_CHUNK_BYTES {
            return Err(LedgerError::ChunkTooLarge {
                index: i as u32,
                bytes: chunk.bytes(),
                max: MAX_CHUNK_BYTES,
            });
        }
        let hashed: Vec<([u8; 32], [u8; 32])> = chunk
            .leaves
            .iter()
            .map(|(k, v)| (*k, Sha256::digest(v).into()))
            .collect();
        bottom.push(subtree(&hashed, usize::from(depth)));
    }
    levels[usize::from(depth)] = bottom;
    for d in (0..usize::from(depth)).rev() {
        let below = &levels[d + 1];
        let up: Vec<Subtree> = below
            .chunks(2)
            .map(|pair| Subtree::join(pair[0], pair[1]))
            .collect();
        levels[d] = up;
    }
    for (i, chunk) in chunks.iter_mut().enumerate() {
        chunk.siblings = (0..usize::from(depth))
            .map(|l| {
                let at = i >> (usize::from(depth) - l - 1);
                levels[l + 1][at ^ 1]
            })
            .collect();
    }
    let root = levels[0].first().copied().unwrap_or(Subtree::Empty);
    Ok((Digest(root.hash()), chunks))
}

/// Checks that `chunk` is chunk `index` of a snapshot of depth `depth` under `root`: exactly
/// the accounts whose key hashes begin with `index`'s bits, each an account that decodes.
pub fn verify_chunk(
    root: &Digest,
    depth: u8,
    index: u32,
    chunk: &SnapshotChunk,
) -> Result<(), LedgerError> {
    let bad = |reason: &'static str| LedgerError::BadChunk { index, reason };
    if depth > MAX_CHUNK_DEPTH || u64::from(index) >= 1u64 << depth {
        return Err(bad("index or depth out of range"));
    }
    if chunk.siblings.len() != usize::from(depth) {
        return Err(bad("wrong number of siblings"));
    }
    if chunk.bytes() > MAX_CHUNK_BYTES {
        return Err(bad("too large"));
    }
    let mut hashed = Vec::with_capacity(chunk.leaves.len());
    for (i, (key, value)) in chunk.leaves.iter().enumerate() {
        if i > 0 && chunk.leaves[i - 1].0 >= *key {
            return Err(bad("accounts not in key order"));
        }
        if chunk_of(key, depth) != index {
            return Err(bad("an account outside the chunk's prefix"));
        }
        decode_account(value).map_err(|_| bad("an account that does not decode"))?;
        hashed.push((*key, Sha256::digest(value).into()));
    }
    let mut node = subtree(&hashed, usize::from(depth));
    for l in (0..usize::from(depth)).rev() {
        let sibling = chunk.siblings[l];
        // The sibling's prefix: our first l bits, then the other bit.
        let ours = index >> (usize::from(depth) - l - 1);
        if let Subtree::Leaf { key, .. } = &sibling {
            if chunk_of(key, l as u8 + 1) != ours ^ 1 {
                return Err(bad("a sibling leaf on the wrong side"));
            }
        }
        node = if ours & 1 == 0 {
            Subtree::join(node, sibling)
        } else {
            Subtree::join(sibling, node)
        };
    }
    if node.hash() != root.0 {
        return Err(bad("does not prove against the state root"));
    }
    Ok(())
}

/// The state tree of version `height` holding exactly `leaves` (every account of a verified
/// snapshot), built on nothing: its root and every node, all at that version.
pub fn snapshot_tree(
    height: u64,
    leaves: Vec<([u8; 32], Vec<u8>)>,
) -> Result<(Digest, jmt::storage::TreeUpdateBatch), LedgerError> {
    let set: Vec<(KeyHash, OwnedValue)> =
        leaves.into_iter().map(|(k, v)| (KeyHash(k), v)).collect();
    let reader = Before { version: height };
    let tree = Sha256Jmt::new(&reader);
    if set.is_empty() {
        let (root, batch) = tree.put_value_set([], height).map_err(LedgerError::tree)?;
        return Ok((Digest(root.0), batch));
    }
    let (roots, batch) = tree
        .batch_put_value_sets(vec![set], None, height)
        .map_err(LedgerError::tree)?;
    let root = roots.first().copied().ok_or(LedgerError::Tree {
        reason: "jmt returned no root for the snapshot".into(),
    })?;
    Ok((Digest(root.0), batch))
}

/// A reader of nothing but an empty tree at the version before `version` (jmt reads that
/// root before it applies a version on top).
struct Before {
    version: u64,
}

impl TreeReader for Before {
    fn get_node_option(&self, key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let before = self.version.checked_sub(1);
        Ok(
            (Some(key.version()) == before && key.nibble_path().num_nibbles() == 0)
                .then_some(Node::Null),
        )
    }
    fn get_value_option(&self, _: Version, _: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        Ok(None)
    }
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hotledger_crypto::KeyPair;
    use proptest::prelude::*;

    use super::*;
    use crate::root::{account_key_hash, compute_state_root, encode_account, EmptyTree};
    use crate::Account;

    fn accounts(n: u64) -> Vec<([u8; 32], Vec<u8>)> {
        let mut v: Vec<([u8; 32], Vec<u8>)> = (0..n)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&i.to_le_bytes());
                let key = KeyPair::from_seed(seed).public();
                let account = Account {
                    balance: i * 7 + 1,
                    nonce: i % 5,
                };
                (account_key_hash(&key).0, encode_account(&account).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    fn jmt_root(n: u64) -> Digest {
        let mut map = BTreeMap::new();
        for i in 0..n {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            map.insert(
                KeyPair::from_seed(seed).public(),
                Account {
                    balance: i * 7 + 1,
                    nonce: i % 5,
                },
            );
        }
        compute_state_root(&EmptyTree, 0, &map).unwrap().0
    }

    #[test]
    fn the_snapshot_root_is_jmts_root_and_every_chunk_verifies() {
        for n in [0u64, 1, 2, 3, 17, 300, 5_000] {
            let expected = jmt_root(n);
            for depth in [0u8, 1, 4, 8] {
                let (root, chunks) = build_snapshot(accounts(n), depth).unwrap();
                assert_eq!(root, expected, "{n} accounts, depth {depth}");
                assert_eq!(chunks.len(), 1 << depth);
                for (i, chunk) in chunks.iter().enumerate() {
                    verify_chunk(&root, depth, i as u32, chunk).unwrap();
                }
                let (tree_root, _) = snapshot_tree(42, accounts(n)).unwrap();
                assert_eq!(tree_root, expected);
            }
        }
    }

    #[test]
    fn a_chunk_missing_moved_or_altered_is_refused() {
        let (root, chunks) = build_snapshot(accounts(40), 4).unwrap();
        let (i, full) = chunks
            .iter()
            .enumerate()
            .find(|(_, c)| c.leaves.len() >= 2)
            .unwrap();
        let i = i as u32;
        let mut dropped = full.clone();
        dropped.leaves.pop();
        assert!(
            verify_chunk(&root, 4, i, &dropped).is_err(),
            "an account left out"
        );
        let mut altered = full.clone();
        altered.leaves[0].1 = encode_account(&Account {
            balance: u64::MAX,
            nonce: 0,
        })
        .unwrap();
        assert!(
            verify_chunk(&root, 4, i, &altered).is_err(),
            "a balance changed"
        );
        assert!(
            verify_chunk(&root, 4, i ^ 1, full).is_err(),
            "another index"
        );
        let mut sibling = full.clone();
        sibling.siblings[3] = Subtree::Internal([7; 32]);
        assert!(
            verify_chunk(&root, 4, i, &sibling).is_err(),
            "a sibling changed"
        );
    }

    #[test]
    fn a_lone_account_cannot_be_passed_off_as_its_siblings() {
        // Two accounts only: each is alone in its half, so the root is the join of two leaves;
        // with one account, a server could claim the chunk is empty and the account is its
        // sibling, which gives the same root unless the sibling's side is checked.
        let one = accounts(1);
        let key = one[0].0;
        let (root, chunks) = build_snapshot(one.clone(), 1).unwrap();
        let index = chunk_of(&key, 1);
        verify_chunk(&root, 1, index, &chunks[index as usize]).unwrap();
        let forged = SnapshotChunk {
            leaves: Vec::new(),
            siblings: vec![Subtree::Leaf {
                key,
                value_hash: Sha256::digest(&one[0].1).into(),
            }],
        };
        assert_eq!(
            Subtree::join(Subtree::Empty, forged.siblings[0]).hash(),
            root.0,
            "the forgery hashes to the root"
        );
        assert!(matches!(
            verify_chunk(&root, 1, index, &forged),
            Err(LedgerError::BadChunk { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_accounts_give_jmts_root(n in 0u64..200, depth in 0u8..7) {
            let (root, chunks) = build_snapshot(accounts(n), depth).unwrap();
            prop_assert_eq!(root, jmt_root(n));
            for (i, chunk) in chunks.iter().enumerate() {
                prop_assert!(verify_chunk(&root, depth, i as u32, chunk).is_ok());
            }
        }
    }

    #[test]
    fn the_depth_keeps_chunks_near_the_target() {
        assert_eq!(chunk_depth(0), 0);
        assert_eq!(chunk_depth(TARGET_CHUNK_ACCOUNTS), 0);
        assert_eq!(chunk_depth(100_000), 6);
        assert_eq!(chunk_depth(u64::MAX), MAX_CHUNK_DEPTH);
    }
}
