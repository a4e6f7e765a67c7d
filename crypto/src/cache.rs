//! A bounded, sharded map in front of something slow to compute or to read: decompressed public
//! keys here, committed accounts in front of RocksDB in the node.
//!
//! Readers that miss run their load under the shard's lock, and writers update the cache under
//! the same lock after their write is durable. So a reader can never put back a value older than
//! the one a concurrent writer just stored: either it read before the write (and the writer's
//! update then overwrites it) or after (and it read the new value).
//!
//! A full shard is emptied rather than tracked for recency: entries are cheap to reload and the
//! bound, not the hit rate under adversarial keys, is what matters for safety.

use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

use foldhash::fast::RandomState;
use foldhash::{HashMap, HashMapExt};

const SHARDS: usize = 8;

/// At most `capacity` entries in eight shards, each behind its own lock.
#[derive(Debug)]
pub struct ShardedCache<K, V> {
    shards: Vec<Mutex<HashMap<K, V>>>,
    per_shard: usize,
    /// Chooses a key's shard, with its own per-process random seed: keys may be chosen by a peer,
    /// who must not be able to crowd one shard (which would empty it, and evict honest entries,
    /// over and over).
    placement: RandomState,
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedCache<K, V> {
    /// A cache of at most `capacity` entries (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        ShardedCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (capacity / SHARDS).max(1),
            placement: RandomState::default(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, V>> {
        let slot = self.placement.hash_one(key) % SHARDS as u64;
        &self.shards[usize::try_from(slot).unwrap_or(0)]
    }

    /// The cached value, or `load()`'s (cached when it is `Some`). `load` runs under the shard's
    /// lock; see the module documentation.
    pub fn get_or_load<E>(
        &self,
        key: &K,
        load: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<V>, E> {
        let Ok(mut shard) = self.shard(key).lock() else {
            return load();
        };
        if let Some(value) = shard.get(key) {
            return Ok(Some(value.clone()));
        }
        let loaded = load()?;
        if let Some(value) = &loaded {
            if shard.len() >= self.per_shard {
                shard.clear();
            }
            shard.insert(key.clone(), value.clone());
        }
        Ok(loaded)
    }

    /// Records values that are now durable.
    pub fn store<'a>(&self, entries: impl IntoIterator<Item = (&'a K, &'a V)>)
    where
        K: 'a,
        V: 'a,
    {
        for (key, value) in entries {
            if let Ok(mut shard) = self.shard(key).lock() {
                if shard.len() >= self.per_shard && !shard.contains_key(key) {
                    shard.clear();
                }
                shard.insert(key.clone(), value.clone());
            }
        }
    }

    /// Forgets every entry (the values behind them were replaced wholesale).
    pub fn clear(&self) {
        for shard in &self.shards {
            if let Ok(mut map) = shard.lock() {
                map.clear();
            }
        }
    }

    /// Number of entries held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_once_then_answers_from_memory() {
        let cache: ShardedCache<Vec<u8>, u64> = ShardedCache::new(64);
        let mut loads = 0;
        for _ in 0..3 {
            let v = cache
                .get_or_load(&vec![1, 2], || {
                    loads += 1;
                    Ok::<_, ()>(Some(7))
                })
                .unwrap();
            assert_eq!(v, Some(7));
        }
        assert_eq!(loads, 1);
    }

    #[test]
    fn misses_are_not_cached_and_stores_overwrite() {
        let cache: ShardedCache<Vec<u8>, u64> = ShardedCache::new(64);
        assert_eq!(
            cache.get_or_load(&vec![3], || Ok::<_, ()>(None)).unwrap(),
            None
        );
        assert_eq!(cache.len(), 0);
        cache.store([(&vec![3], &9)]);
        assert_eq!(
            cache
                .get_or_load(&vec![3], || Ok::<_, ()>(Some(1)))
                .unwrap(),
            Some(9)
        );
    }

    #[test]
    fn keys_sharing_their_first_bytes_spread_over_the_shards() {
        // 64 keys that differ only in their last byte, in a cache of 8 shards of 16: placed by
        // their first byte they would all land in one shard and keep emptying it (at most 16
        // held); placed by a seeded hash about 8 land in each and none is emptied.
        let cache: ShardedCache<Vec<u8>, u64> = ShardedCache::new(128);
        for i in 0..64u8 {
            let mut key = vec![0u8; 32];
            key[31] = i;
            cache.store([(&key, &u64::from(i))]);
        }
        assert!(cache.len() > 16, "{} held", cache.len());
    }

    #[test]
    fn stays_within_capacity() {
        let cache: ShardedCache<Vec<u8>, u64> = ShardedCache::new(16);
        for i in 0..1_000u32 {
            let key = i.to_le_bytes().to_vec();
            cache.store([(&key, &u64::from(i))]);
            cache
                .get_or_load(&i.to_be_bytes().to_vec(), || Ok::<_, ()>(Some(1)))
                .unwrap();
        }
        assert!(cache.len() <= 16);
    }
}
