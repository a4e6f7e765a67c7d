//! What each version of the state tree makes stale in a store: kept with the version's commit,
//! so pruning can delete it once no tree it still reads reaches it.

use jmt::storage::{NodeKey, TreeUpdateBatch};
use jmt::{KeyHash, Version};
use serde::{Deserialize, Serialize};

use super::decode_exact;
use crate::LedgerError;

/// What committing one version (`v`) made stale in a store whose nodes are written up to version
/// `written` (see [`super::NodeOverlay`]). Once a store reads no tree below version `v`, all of
/// it can be deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleSet {
    /// The stored nodes `v` replaced: no tree from `v` on reaches them. Nodes of versions above
    /// `written` are not listed: held in memory only, and replaced before their write, they
    /// are never written.
    pub nodes: Vec<NodeKey>,
    /// The accounts `v` wrote: the value each had below `v` is read by no tree from `v` on.
    pub keys: Vec<KeyHash>,
}

impl StaleSet {
    /// What `tree`, the batch of one version, made stale in a store whose nodes are written up
    /// to `written`.
    pub fn of(tree: &TreeUpdateBatch, written: Version) -> StaleSet {
        StaleSet {
            nodes: tree
                .stale_node_index_batch
                .iter()
                .filter(|s| s.node_key.version() <= written)
                .map(|s| s.node_key.clone())
                .collect(),
            keys: tree.node_batch.values().keys().map(|(_, k)| *k).collect(),
        }
    }

    /// Nothing stale: no set is stored for the version.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.keys.is_empty()
    }

    /// `postcard(StaleSet)`.
    pub fn encode(&self) -> Result<Vec<u8>, LedgerError> {
        postcard::to_allocvec(self).map_err(LedgerError::encode("stale set"))
    }

    /// Inverse of [`StaleSet::encode`], rejecting trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<StaleSet, LedgerError> {
        decode_exact(bytes, "stale set")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use jmt::storage::TreeReader;
    use jmt::{OwnedValue, Sha256Jmt};

    use super::*;
    use crate::root::MemoryTree;

    fn key(i: u32) -> KeyHash {
        KeyHash::with::<sha2::Sha256>(i.to_be_bytes())
    }

    fn apply(
        store: &mut MemoryTree,
        version: Version,
        writes: &[(u32, u8)],
    ) -> (jmt::RootHash, StaleSet) {
        let set: Vec<(KeyHash, Option<OwnedValue>)> = writes
            .iter()
            .map(|(k, v)| (key(*k), Some(vec![*v, 1])))
            .collect();
        let (root, batch) = Sha256Jmt::new(&*store).put_value_set(set, version).unwrap();
        let stale = StaleSet::of(&batch, version.saturating_sub(1));
        store.put_batch(&batch.node_batch).unwrap();
        (root, stale)
    }

    /// Deleting what versions up to `p` made stale leaves every tree from `p` on whole: the
    /// same values, the same next root.
    #[test]
    fn deleting_what_old_versions_made_stale_keeps_newer_trees_whole() {
        let mut full = MemoryTree::default();
        let mut pruned = MemoryTree::default();
        let mut stale: BTreeMap<Version, StaleSet> = BTreeMap::new();
        for v in 0..40u64 {
            let writes: Vec<(u32, u8)> = (0..6u32)
                .map(|i| ((v as u32 * 7 + i * 13) % 50, v as u8))
                .collect();
            let (a, _) = apply(&mut full, v, &writes);
            let (b, s) = apply(&mut pruned, v, &writes);
            assert_eq!(a, b);
            assert!(s.nodes.iter().all(|n| n.version() < v));
            stale.insert(v, s);
        }
        let before = pruned.node_count();
        for (v, s) in stale.range(..=30) {
            for n in &s.nodes {
                pruned.remove_node(n);
            }
            for k in &s.keys {
                pruned.remove_value_below(*k, *v);
            }
        }
        assert!(
            pruned.node_count() < before / 2,
            "{} of {before}",
            pruned.node_count()
        );
        for i in 0..50 {
            for v in 30..40 {
                assert_eq!(
                    pruned.get_value_option(v, key(i)).unwrap(),
                    full.get_value_option(v, key(i)).unwrap()
                );
            }
        }
        for v in 30..40 {
            let a = Sha256Jmt::new(&full).get_root_hash(v).unwrap();
            let b = Sha256Jmt::new(&pruned).get_root_hash(v).unwrap();
            assert_eq!(a, b);
            for i in 0..50 {
                let (x, _) = Sha256Jmt::new(&pruned).get_with_proof(key(i), v).unwrap();
                let (y, _) = Sha256Jmt::new(&full).get_with_proof(key(i), v).unwrap();
                assert_eq!(x, y, "key {i} at {v}");
            }
        }
        let (a, _) = apply(&mut full, 40, &[(3, 99), (77, 1)]);
        let (b, _) = apply(&mut pruned, 40, &[(3, 99), (77, 1)]);
        assert_eq!(a, b);
    }

    #[test]
    fn a_stale_set_round_trips_and_refuses_trailing_bytes() {
        let mut store = MemoryTree::default();
        apply(&mut store, 0, &[(1, 1), (2, 2)]);
        let (_, s) = apply(&mut store, 1, &[(1, 3)]);
        assert!(!s.is_empty());
        let bytes = s.encode().unwrap();
        assert_eq!(StaleSet::decode(&bytes).unwrap(), s);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(StaleSet::decode(&longer).is_err());
    }
}
