//! The state-tree nodes a store holds in memory, and when it writes them.
//!
//! A store writes each committed version's values with its commit, but its nodes only with every
//! [`TREE_WRITE_EVERY`]th commit (or once [`TREE_WRITE_NODES`] are held), in that commit's batch:
//! between writes, a busy chain's blocks replace most of each other's nodes (every block rewrites
//! the paths of the accounts it touches), so the nodes a write skips are bytes the store never
//! inserts, logs or flushes. A crash loses the nodes held and costs fewer than
//! [`TREE_WRITE_EVERY`] versions recomputed at the next start ([`super::rebuild_version`]).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use jmt::storage::{Node, NodeBatch, NodeKey};
use jmt::Version;

use crate::LedgerError;

/// Commits between two writes of the state tree's nodes.
pub const TREE_WRITE_EVERY: u64 = 8;

/// Nodes held unwritten before a write is forced, whatever the count of commits: a bound on the
/// memory a run of very large blocks can take (about 100 MiB, estimating ~400 bytes for a held
/// node with its map entry).
pub const TREE_WRITE_NODES: usize = 262_144;

/// The state-tree nodes a store holds in memory: every version above the one last written, and
/// that version's own (the next block's root reads mostly those, and an in-memory lookup costs a
/// fraction of a store read and decode). A node key names one immutable node (it contains the
/// version), so a node found here is exactly what the store holds or will hold.
#[derive(Clone, Debug, Default)]
pub struct NodeOverlay {
    /// Node batches by version.
    batches: BTreeMap<Version, Arc<NodeBatch>>,
    /// Every node the tree of this version reaches is written.
    written: Version,
    /// Nodes in the batches above `written`.
    unwritten: usize,
}

impl NodeOverlay {
    /// An overlay holding nothing, over a store whose tree is written up to version `written`.
    pub fn new(written: Version) -> Self {
        NodeOverlay {
            written,
            ..NodeOverlay::default()
        }
    }

    /// The newest version whose tree is entirely written.
    pub fn written(&self) -> Version {
        self.written
    }

    /// Nodes held in the versions above [`NodeOverlay::written`].
    pub fn unwritten(&self) -> usize {
        self.unwritten
    }

    /// The newest version whose nodes are written or held.
    pub fn newest(&self) -> Version {
        self.batches
            .last_key_value()
            .map_or(self.written, |(v, _)| (*v).max(self.written))
    }

    /// Version `version`'s batch, if held (shared, so a reader can release a lock before the
    /// lookup).
    pub fn batch(&self, version: Version) -> Option<Arc<NodeBatch>> {
        self.batches.get(&version).cloned()
    }

    /// The held node under `key`.
    pub fn node(&self, key: &NodeKey) -> Option<&Node> {
        self.batches.get(&key.version())?.get_node(key)
    }

    /// Takes in version `version`'s nodes, after its commit (or its rebuild).
    pub fn add(&mut self, version: Version, nodes: NodeBatch) {
        self.unwritten = self.unwritten.saturating_add(nodes.nodes().len());
        self.batches.insert(version, Arc::new(nodes));
    }

    /// Whether the commit of `height`, which makes `new_nodes` nodes, must write the tree: once
    /// [`TREE_WRITE_EVERY`] versions have passed since the last write, or when the held nodes
    /// would reach [`TREE_WRITE_NODES`].
    pub fn must_write(&self, height: Version, new_nodes: usize) -> bool {
        height.saturating_sub(self.written) >= TREE_WRITE_EVERY
            || self.unwritten.saturating_add(new_nodes) >= TREE_WRITE_NODES
    }

    /// The nodes of the tree of `version` newer than [`NodeOverlay::written`]: what a write of
    /// that version must contain. A walk from its root that stops at children of the written
    /// version or below (those are stored); nodes a later version replaced are not reached, so
    /// never written. `pending` is `version`'s own batch when it is not held yet (a commit lists
    /// its write before it [`add`](NodeOverlay::add)s it). A node the walk needs but that is
    /// neither held nor pending is [`LedgerError::NodeNotHeld`].
    pub fn reachable<'a>(
        &'a self,
        version: Version,
        pending: Option<&'a NodeBatch>,
    ) -> Result<Vec<(NodeKey, &'a Node)>, LedgerError> {
        let mut out = Vec::new();
        let mut stack = vec![NodeKey::new(version, std::iter::empty().collect())];
        while let Some(key) = stack.pop() {
            let found = match pending {
                Some(batch) if key.version() == version => batch.get_node(&key),
                _ => self.node(&key),
            };
            let Some(found) = found else {
                return Err(LedgerError::NodeNotHeld { key });
            };
            if let Node::Internal(internal) = found {
                for (nibble, child) in internal.children_sorted() {
                    if child.version > self.written {
                        let path = key
                            .nibble_path()
                            .nibbles()
                            .chain(std::iter::once(nibble))
                            .collect();
                        stack.push(NodeKey::new(child.version, path));
                    }
                }
            }
            out.push((key, found));
        }
        Ok(out)
    }

    /// Records that the tree of `version` is written, and keeps only that version's batch and
    /// any newer ones. Returns the batches let go, for the caller to free outside its lock (a
    /// reader on another thread then never waits for thousands of nodes to be freed).
    #[must_use = "the released batches are meant to be dropped outside the lock"]
    pub fn mark_written(&mut self, version: Version) -> BTreeMap<Version, Arc<NodeBatch>> {
        let keep = self.batches.split_off(&version);
        let released = std::mem::replace(&mut self.batches, keep);
        self.written = version;
        self.unwritten = self
            .batches
            .range(version.saturating_add(1)..)
            .fold(0usize, |n, (_, b)| n.saturating_add(b.nodes().len()));
        released
    }

    /// The committed versions up to `tip` whose nodes are neither written nor held: empty unless
    /// the overlay was just created after a crash. Rebuilt with [`super::rebuild_version`],
    /// oldest first.
    pub fn behind(&self, tip: Version) -> RangeInclusive<u64> {
        self.newest().saturating_add(1)..=tip
    }
}
