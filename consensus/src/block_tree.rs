//! Uncommitted blocks above the last committed block (the root), and orphans waiting for their
//! parents. Everything at or below the root is pruned on commit, as is every fork that does not
//! descend from the new root.

use std::collections::{HashMap, HashSet};

use hotledger_crypto::Digest;

use crate::error::{ConsensusError, Result};
use crate::types::{Block, BlockInfo, Height};

/// What inserting a block did.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The block, and any orphans it unlocked, are in the tree (ids in insertion order).
    Added(Vec<Digest>),
    /// Already known.
    Known,
    /// Its parent is unknown; held as an orphan. The parent should be fetched.
    Orphan { missing: Digest },
    /// It is at or below the root: committed history or a dead fork.
    BelowRoot,
}

#[derive(Debug)]
pub struct BlockTree {
    root: BlockInfo,
    blocks: HashMap<Digest, Block>,
    /// Orphans keyed by the parent they wait for.
    orphans: HashMap<Digest, Vec<Block>>,
    orphan_count: usize,
    max_blocks: usize,
    max_orphans: usize,
}

impl BlockTree {
    pub fn new(root: BlockInfo, max_blocks: usize, max_orphans: usize) -> Self {
        BlockTree {
            root,
            blocks: HashMap::new(),
            orphans: HashMap::new(),
            orphan_count: 0,
            max_blocks,
            max_orphans,
        }
    }

    /// The last committed block.
    pub fn root(&self) -> &BlockInfo {
        &self.root
    }

    pub fn get(&self, id: &Digest) -> Option<&Block> {
        self.blocks.get(id)
    }

    /// Whether `id` is the root or an uncommitted block in the tree.
    pub fn contains(&self, id: &Digest) -> bool {
        *id == self.root.id || self.blocks.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// The uncommitted blocks in the tree (not the orphans), in no order.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.values()
    }

    pub fn orphan_count(&self) -> usize {
        self.orphan_count
    }

    /// Inserts a verified block. Orphans that descend from it are inserted too.
    pub fn insert(&mut self, block: Block) -> Result<Inserted> {
        if block.height <= self.root.height {
            return Ok(Inserted::BelowRoot);
        }
        if self.blocks.contains_key(&block.id) {
            return Ok(Inserted::Known);
        }
        let parent = block.parent().id;
        if !self.contains(&parent) {
            if block.height == self.root.height + 1 {
                // Its parent would be at the root's height but is not the root: a dead fork.
                return Ok(Inserted::BelowRoot);
            }
            let waiting = self.orphans.entry(parent).or_default();
            if waiting.iter().any(|b| b.id == block.id) {
                return Ok(Inserted::Orphan { missing: parent });
            }
            if self.orphan_count >= self.max_orphans {
                return Err(ConsensusError::Full {
                    what: "orphan block buffer",
                    max: self.max_orphans,
                });
            }
            waiting.push(block);
            self.orphan_count += 1;
            return Ok(Inserted::Orphan { missing: parent });
        }
        if self.blocks.len() >= self.max_blocks {
            return Err(ConsensusError::Full {
                what: "block tree",
                max: self.max_blocks,
            });
        }
        let mut added = Vec::new();
        let mut stack = vec![block];
        while let Some(b) = stack.pop() {
            if self.blocks.len() >= self.max_blocks {
                // Full while adopting orphans: they stay orphans (still bounded by max_orphans,
                // as they were counted there) until commits make room.
                self.orphan_count += 1;
                self.orphans.entry(b.parent().id).or_default().push(b);
                continue;
            }
            if let Some(children) = self.orphans.remove(&b.id) {
                self.orphan_count -= children.len();
                stack.extend(children);
            }
            added.push(b.id);
            self.blocks.insert(b.id, b);
        }
        Ok(Inserted::Added(added))
    }

    /// The blocks from just above the root up to `id`, oldest first; `None` if the chain to the
    /// root is incomplete or `id` does not descend from the root.
    pub fn path_from_root(&self, id: &Digest) -> Option<Vec<&Block>> {
        let mut path = Vec::new();
        let mut cursor = *id;
        while cursor != self.root.id {
            let block = self.blocks.get(&cursor)?;
            if block.height <= self.root.height {
                return None;
            }
            path.push(block);
            cursor = block.parent().id;
        }
        path.reverse();
        Some(path)
    }

    /// Commits up to `id` (which must descend from the root): removes and returns the blocks
    /// from the root to `id`, makes `id` the root, and prunes forks and stale orphans.
    pub fn commit(&mut self, id: &Digest) -> Option<Vec<Block>> {
        let ids: Vec<Digest> = self.path_from_root(id)?.iter().map(|b| b.id).collect();
        let committed: Vec<Block> = ids.iter().filter_map(|i| self.blocks.remove(i)).collect();
        let last = committed.last()?;
        self.root = last.info();
        self.prune();
        Some(committed)
    }

    /// Keeps only descendants of the root, and orphans above it.
    fn prune(&mut self) {
        let root = self.root;
        let mut by_height: Vec<(Height, Digest, Digest)> = self
            .blocks
            .values()
            .map(|b| (b.height, b.id, b.parent().id))
            .collect();
        by_height.sort_unstable();
        let mut keep: HashSet<Digest> = HashSet::from([root.id]);
        for (height, id, parent) in by_height {
            if height > root.height && keep.contains(&parent) {
                keep.insert(id);
            }
        }
        self.blocks.retain(|id, _| keep.contains(id));
        self.orphans.retain(|_, children| {
            children.retain(|b| b.height > root.height + 1);
            !children.is_empty()
        });
        self.orphan_count = self.orphans.values().map(Vec::len).sum();
    }

    /// Walks from `id` through parents, at most `count` blocks, newest first, looking up blocks
    /// outside the tree (committed ones) with `lookup`.
    pub fn collect_chain(
        &self,
        id: &Digest,
        count: usize,
        lookup: impl Fn(&Digest) -> Option<Block>,
    ) -> Vec<Block> {
        let mut out = Vec::new();
        let mut cursor = *id;
        while out.len() < count {
            let Some(block) = self
                .blocks
                .get(&cursor)
                .cloned()
                .or_else(|| lookup(&cursor))
            else {
                break;
            };
            cursor = block.parent().id;
            let genesis_parent = block.height == 1;
            out.push(block);
            if genesis_parent {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use hotledger_crypto::{KeyPair, PublicKey, Signature};
    use proptest::prelude::*;

    use super::*;
    use crate::types::{QuorumCert, VoteData};

    fn author() -> PublicKey {
        thread_local!(static KEY: PublicKey = KeyPair::from_seed([1; 32]).public());
        KEY.with(|k| *k)
    }

    fn genesis() -> BlockInfo {
        BlockInfo {
            id: Digest::of(b"genesis"),
            round: 0,
            height: 0,
            timestamp_ms: 0,
        }
    }

    /// An (unsigned) block of `round` extending `parent`; `tag` tells siblings apart.
    fn child(parent: &BlockInfo, round: u64, tag: u64) -> Block {
        let qc = QuorumCert {
            data: VoteData {
                block: *parent,
                parent: *parent,
            },
            votes: Vec::new(),
        };
        let payload = tag.to_be_bytes().to_vec();
        let height = parent.height + 1;
        Block {
            id: Block::compute_id(round, height, 0, &author(), &qc, &[], &payload),
            round,
            height,
            timestamp_ms: 0,
            author: author(),
            qc,
            failed_leaders: Vec::new(),
            payload,
            signature: Signature([0; 64]),
        }
    }

    /// `n` blocks extending `from`, rounds following its round.
    fn chain_from(from: &BlockInfo, n: usize, tag: u64) -> Vec<Block> {
        let mut out: Vec<Block> = Vec::new();
        for _ in 0..n {
            let parent = out.last().map_or(*from, Block::info);
            out.push(child(&parent, parent.round + 1, tag));
        }
        out
    }

    #[test]
    fn orphans_are_held_then_inserted_with_their_parent() {
        let chain = chain_from(&genesis(), 3, 0);
        let mut tree = BlockTree::new(genesis(), 100, 100);
        assert_eq!(
            tree.insert(chain[2].clone()),
            Ok(Inserted::Orphan {
                missing: chain[1].id
            })
        );
        assert_eq!(
            tree.insert(chain[2].clone()),
            Ok(Inserted::Orphan {
                missing: chain[1].id
            }),
            "a repeated orphan is not stored twice"
        );
        assert_eq!(tree.orphan_count(), 1);
        assert_eq!(
            tree.insert(chain[1].clone()),
            Ok(Inserted::Orphan {
                missing: chain[0].id
            })
        );
        assert_eq!(
            tree.insert(chain[0].clone()),
            Ok(Inserted::Added(chain.iter().map(|b| b.id).collect()))
        );
        assert_eq!((tree.len(), tree.orphan_count()), (3, 0));
        assert_eq!(tree.insert(chain[1].clone()), Ok(Inserted::Known));
        assert_eq!(
            tree.path_from_root(&chain[2].id).unwrap(),
            chain.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn blocks_at_or_below_the_root_are_refused() {
        let chain = chain_from(&genesis(), 3, 0);
        let mut tree = BlockTree::new(genesis(), 100, 100);
        for b in &chain {
            tree.insert(b.clone()).unwrap();
        }
        tree.commit(&chain[0].id).unwrap();
        assert_eq!(tree.insert(chain[0].clone()), Ok(Inserted::BelowRoot));
        // A sibling of the new root's child on a dead fork: parent unknown at root height.
        let dead = child(&child(&genesis(), 1, 9).info(), 2, 9);
        assert_eq!(tree.insert(dead), Ok(Inserted::BelowRoot));
        assert_eq!(tree.orphan_count(), 0);
    }

    #[test]
    fn bounds_are_enforced() {
        let chain = chain_from(&genesis(), 4, 0);
        let mut tree = BlockTree::new(genesis(), 2, 1);
        tree.insert(chain[0].clone()).unwrap();
        tree.insert(chain[1].clone()).unwrap();
        assert_eq!(
            tree.insert(chain[2].clone()),
            Err(ConsensusError::Full {
                what: "block tree",
                max: 2
            })
        );
        let far = chain_from(&chain[3].info(), 2, 0);
        tree.insert(far[0].clone()).unwrap();
        assert_eq!(
            tree.insert(far[1].clone()),
            Err(ConsensusError::Full {
                what: "orphan block buffer",
                max: 1
            })
        );
        assert_eq!((tree.len(), tree.orphan_count()), (2, 1));
    }

    #[test]
    fn collect_chain_walks_parents_newest_first() {
        let chain = chain_from(&genesis(), 5, 0);
        let mut tree = BlockTree::new(genesis(), 100, 100);
        for b in &chain {
            tree.insert(b.clone()).unwrap();
        }
        let committed = tree.commit(&chain[1].id).unwrap();
        let store: HashMap<Digest, Block> = committed.into_iter().map(|b| (b.id, b)).collect();
        let ids = |v: Vec<Block>| v.into_iter().map(|b| b.round).collect::<Vec<_>>();
        assert_eq!(
            ids(tree.collect_chain(&chain[4].id, 2, |_| None)),
            vec![5, 4]
        );
        assert_eq!(
            ids(tree.collect_chain(&chain[4].id, 10, |_| None)),
            vec![5, 4, 3]
        );
        assert_eq!(
            ids(tree.collect_chain(&chain[4].id, 10, |id| store.get(id).cloned())),
            vec![5, 4, 3, 2, 1],
            "stops after the genesis child"
        );
        assert!(tree
            .collect_chain(&Digest::of(b"unknown"), 10, |_| None)
            .is_empty());
    }

    /// A main chain of `n` blocks, forks (branch height, length), a commit index and an
    /// insertion order over all blocks.
    fn scenario() -> impl Strategy<Value = (usize, Vec<(usize, usize)>, usize, Vec<usize>)> {
        (
            2usize..12,
            proptest::collection::vec((0usize..12, 1usize..4), 0..5),
        )
            .prop_flat_map(|(n, forks)| {
                let total = n + forks.iter().map(|f| f.1).sum::<usize>();
                (
                    Just(n),
                    Just(forks),
                    0..n,
                    Just((0..total).collect::<Vec<_>>()).prop_shuffle(),
                )
            })
    }

    proptest! {
        #[test]
        fn random_insertion_order_loses_nothing_and_commit_prunes_forks(
            (n, forks, k, order) in scenario()
        ) {
            let main = chain_from(&genesis(), n, 0);
            let mut all = main.clone();
            for (f, &(at, len)) in forks.iter().enumerate() {
                let at = at % n; // 0: forks off the root
                let from = if at == 0 { genesis() } else { main[at - 1].info() };
                all.extend(chain_from(&from, len, f as u64 + 1));
            }
            let mut tree = BlockTree::new(genesis(), 1_000, 1_000);
            for &i in &order {
                let got = tree.insert(all[i].clone());
                prop_assert!(matches!(got, Ok(Inserted::Added(_) | Inserted::Orphan { .. })), "{got:?}");
            }
            prop_assert_eq!(tree.orphan_count(), 0);
            prop_assert_eq!(tree.len(), all.len());
            let path: Vec<Digest> = tree.path_from_root(&main[n - 1].id).unwrap().iter().map(|b| b.id).collect();
            prop_assert_eq!(path, main.iter().map(|b| b.id).collect::<Vec<_>>());

            let committed = tree.commit(&main[k].id).unwrap();
            prop_assert_eq!(committed, main[..=k].to_vec());
            prop_assert_eq!(*tree.root(), main[k].info());
            let by_id: HashMap<Digest, &Block> = all.iter().map(|b| (b.id, b)).collect();
            let descends = |b: &Block| {
                let mut cursor = b;
                loop {
                    if cursor.parent().id == main[k].id {
                        return true;
                    }
                    match by_id.get(&cursor.parent().id) {
                        Some(p) if p.height > main[k].height => cursor = p,
                        _ => return false,
                    }
                }
            };
            for b in &all {
                prop_assert_eq!(tree.get(&b.id).is_some(), descends(b), "block at height {}", b.height);
            }
            for b in &main[k + 1..] {
                prop_assert!(tree.get(&b.id).is_some(), "main chain block lost");
            }
            prop_assert_eq!(tree.orphan_count(), 0);
        }
    }
}
