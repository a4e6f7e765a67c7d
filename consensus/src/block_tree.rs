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
            let Some(block) = self.blocks.get(&cursor).cloned().or_else(|| lookup(&cursor)) else {
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
