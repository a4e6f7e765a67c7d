//! Binary Merkle trees over digests, with inclusion proofs.
//!
//! * Leaf hash: `SHA256(0x00 || leaf)`; inner node: `SHA256(0x01 || left || right)`
//!   (RFC 6962 domain separation, so a leaf can never pass for an inner node).
//! * The tree is built level by level, pairing neighbours left to right. An
//!   odd node at the end of a level is promoted to the next level unchanged —
//!   it is *not* paired with a copy of itself, so appending a duplicate of
//!   the last leaf changes the root (no CVE-2012-2459 style mutation).
//! * Zero leaves: the root is [`Digest::ZERO`]. One leaf: its leaf hash.

use crate::digest::Digest;

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// `SHA256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &Digest) -> Digest {
    let mut h = Digest::hasher();
    h.update(&[LEAF_PREFIX]).update(leaf.as_bytes());
    h.finalize()
}

/// `SHA256(0x01 || left || right)`.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut h = Digest::hasher();
    h.update(&[NODE_PREFIX])
        .update(left.as_bytes())
        .update(right.as_bytes());
    h.finalize()
}

/// The next level up: neighbours hashed in pairs, an odd last node promoted.
fn next_level(level: &[Digest]) -> Vec<Digest> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => node_hash(l, r),
            [single] => *single,
            _ => Digest::ZERO, // unreachable: chunks(2) yields 1 or 2 items
        })
        .collect()
}

/// The Merkle root of `leaves` (see the module docs for the construction).
/// Zero leaves give [`Digest::ZERO`].
pub fn merkle_root(leaves: &[Digest]) -> Digest {
    if leaves.is_empty() {
        return Digest::ZERO;
    }
    let mut level: Vec<Digest> = leaves.iter().map(leaf_hash).collect();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level.first().copied().unwrap_or(Digest::ZERO)
}

/// An inclusion proof for the leaf at `index` in a tree of `leaf_count`
/// leaves. `siblings` lists, bottom-up, the sibling hash at every level
/// where the path node has one (levels where it is promoted contribute
/// nothing).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MerkleProof {
    /// Position of the leaf, `0..leaf_count`.
    pub index: u64,
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf level upwards.
    pub siblings: Vec<Digest>,
}

/// The proof for `leaves[index]`, or `None` if `index` is out of range.
pub fn merkle_proof(leaves: &[Digest], index: usize) -> Option<MerkleProof> {
    if index >= leaves.len() {
        return None;
    }
    let mut siblings = Vec::new();
    let mut level: Vec<Digest> = leaves.iter().map(leaf_hash).collect();
    let mut idx = index;
    while level.len() > 1 {
        let sibling = if idx % 2 == 1 {
            level.get(idx - 1)
        } else {
            level.get(idx + 1) // None when idx is the promoted last node
        };
        if let Some(s) = sibling {
            siblings.push(*s);
        }
        level = next_level(&level);
        idx /= 2;
    }
    Some(MerkleProof {
        index: u64::try_from(index).ok()?,
        leaf_count: u64::try_from(leaves.len()).ok()?,
        siblings,
    })
}

/// Checks that `leaf` is at `proof.index` in the tree with root `root`.
///
/// The root does **not** commit to the number of leaves: a proof can be
/// re-labelled with another `(index, leaf_count)` of the same path shape and
/// still verify (e.g. leaf 4 of 5 also verifies as leaf 1 of 2). Callers
/// that care about the position must check `proof.leaf_count` against a
/// trusted count (such as the transaction count in a block header) first.
///
/// Pure and total: returns `false`, never panics, on any inconsistent proof
/// (`index >= leaf_count`, zero leaves, too few or too many siblings, any
/// `leaf_count` up to `u64::MAX`). Work is bounded by 64 levels.
pub fn verify_merkle_proof(root: &Digest, leaf: &Digest, proof: &MerkleProof) -> bool {
    if proof.index >= proof.leaf_count {
        return false;
    }
    // A tree of n <= u64::MAX leaves has at most 64 levels above the leaves.
    if proof.siblings.len() > 64 {
        return false;
    }
    let mut siblings = proof.siblings.iter();
    let mut hash = leaf_hash(leaf);
    let mut idx = proof.index;
    let mut width = proof.leaf_count;
    while width > 1 {
        if idx % 2 == 1 {
            let Some(s) = siblings.next() else {
                return false;
            };
            hash = node_hash(s, &hash);
        } else if idx + 1 < width {
            let Some(s) = siblings.next() else {
                return false;
            };
            hash = node_hash(&hash, s);
        }
        // else: last node of an odd level, promoted unchanged.
        idx /= 2;
        width = width / 2 + width % 2;
    }
    siblings.next().is_none() && hash == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n)
            .map(|i| Digest::of(&(i as u64).to_le_bytes()))
            .collect()
    }

    #[test]
    fn small_roots() {
        assert_eq!(merkle_root(&[]), Digest::ZERO);
        let l = leaves(3);
        assert_eq!(merkle_root(&l[..1]), leaf_hash(&l[0]));
        assert_eq!(
            merkle_root(&l[..2]),
            node_hash(&leaf_hash(&l[0]), &leaf_hash(&l[1]))
        );
        assert_eq!(
            merkle_root(&l),
            node_hash(
                &node_hash(&leaf_hash(&l[0]), &leaf_hash(&l[1])),
                &leaf_hash(&l[2])
            )
        );
        // Leaf and node hashing are domain separated.
        let mut raw = Digest::hasher();
        raw.update(l[0].as_bytes());
        assert_ne!(leaf_hash(&l[0]), raw.finalize());
    }

    #[test]
    fn no_duplicate_last_leaf_mutation() {
        for n in 1..=17 {
            let l = leaves(n);
            let mut dup = l.clone();
            dup.push(l[n - 1]);
            assert_ne!(merkle_root(&l), merkle_root(&dup), "n={n}");
        }
    }

    #[test]
    fn every_proof_verifies_for_1_to_17_leaves() {
        for n in 1..=17 {
            let l = leaves(n);
            let root = merkle_root(&l);
            for (i, leaf) in l.iter().enumerate() {
                let p = merkle_proof(&l, i).unwrap();
                assert_eq!(p.index, i as u64);
                assert_eq!(p.leaf_count, n as u64);
                assert!(verify_merkle_proof(&root, leaf, &p), "n={n} i={i}");
            }
        }
    }

    #[test]
    fn tampering_fails() {
        for n in 2..=17 {
            let l = leaves(n);
            let root = merkle_root(&l);
            for i in 0..n {
                let p = merkle_proof(&l, i).unwrap();
                // Wrong leaf.
                assert!(!verify_merkle_proof(&root, &Digest::of(b"x"), &p));
                // Wrong index.
                for j in 0..n {
                    if j != i {
                        let q = MerkleProof {
                            index: j as u64,
                            ..p.clone()
                        };
                        assert!(!verify_merkle_proof(&root, &l[i], &q), "n={n} i={i} j={j}");
                    }
                }
                // Each sibling flipped.
                for s in 0..p.siblings.len() {
                    let mut q = p.clone();
                    q.siblings[s].0[0] ^= 1;
                    assert!(!verify_merkle_proof(&root, &l[i], &q));
                }
                // Extra or missing sibling.
                let mut q = p.clone();
                q.siblings.push(Digest::ZERO);
                assert!(!verify_merkle_proof(&root, &l[i], &q));
                let mut q = p.clone();
                q.siblings.pop();
                assert!(!verify_merkle_proof(&root, &l[i], &q));
                // Wrong root.
                assert!(!verify_merkle_proof(&Digest::ZERO, &l[i], &p));
            }
        }
    }

    #[test]
    fn leaf_count_is_not_committed_by_the_root() {
        // Documented limitation: the root does not commit to the number of
        // leaves, so callers must compare `leaf_count` with a trusted value.
        let l = leaves(5);
        let root = merkle_root(&l);
        let p = merkle_proof(&l, 4).unwrap();
        assert_eq!(p.siblings.len(), 1);
        let forged = MerkleProof {
            index: 1,
            leaf_count: 2,
            siblings: p.siblings.clone(),
        };
        assert!(verify_merkle_proof(&root, &l[4], &forged));
    }

    #[test]
    fn out_of_range_proof_is_none() {
        assert!(merkle_proof(&[], 0).is_none());
        assert!(merkle_proof(&leaves(5), 5).is_none());
        assert!(merkle_proof(&leaves(5), usize::MAX).is_none());
    }

    #[test]
    fn absurd_proofs_are_false_without_panic() {
        let l = leaves(4);
        let root = merkle_root(&l);
        let cases = [
            MerkleProof {
                index: 0,
                leaf_count: u64::MAX,
                siblings: vec![],
            },
            MerkleProof {
                index: u64::MAX - 1,
                leaf_count: u64::MAX,
                siblings: vec![Digest::ZERO; 64],
            },
            MerkleProof {
                index: u64::MAX,
                leaf_count: u64::MAX,
                siblings: vec![],
            },
            MerkleProof {
                index: 5,
                leaf_count: 4,
                siblings: vec![],
            },
            MerkleProof {
                index: 0,
                leaf_count: 0,
                siblings: vec![],
            },
            MerkleProof {
                index: 0,
                leaf_count: 4,
                siblings: vec![Digest::ZERO; 100_000],
            },
        ];
        for p in &cases {
            assert!(!verify_merkle_proof(&root, &l[0], p), "{p:?}");
        }
    }

    #[test]
    fn proof_serde_roundtrip() {
        let l = leaves(9);
        let p = merkle_proof(&l, 8).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<MerkleProof>(&json).unwrap(), p);
        let bin = postcard::to_allocvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<MerkleProof>(&bin).unwrap(), p);
    }

    proptest! {
        #[test]
        fn prop_proofs_verify(n in 1usize..300, pick in any::<prop::sample::Index>(), flip in any::<u8>()) {
            let l = leaves(n);
            let root = merkle_root(&l);
            let i = pick.index(n);
            let p = merkle_proof(&l, i).unwrap();
            prop_assert!(p.siblings.len() <= 64);
            prop_assert!(verify_merkle_proof(&root, &l[i], &p));
            let mut bad_leaf = l[i];
            bad_leaf.0[usize::from(flip) % 32] ^= 1;
            prop_assert!(!verify_merkle_proof(&root, &bad_leaf, &p));
        }

        #[test]
        fn prop_random_proofs_never_panic(
            index in any::<u64>(),
            leaf_count in any::<u64>(),
            k in 0usize..70,
        ) {
            let l = leaves(3);
            let p = MerkleProof { index, leaf_count, siblings: vec![Digest::ZERO; k] };
            let _ = verify_merkle_proof(&merkle_root(&l), &l[0], &p);
        }
    }
}
