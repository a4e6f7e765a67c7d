//! A bounded, process-wide cache of decompressed public keys.
//!
//! Decompressing an Ed25519 point takes a field square root, a sizeable part of what a signature
//! verification costs, and a busy node sees the same few thousand keys (accounts, validators)
//! in every decoded transaction and vote. [`decompress`] validates a key once and then answers
//! from memory. The cache (a [`ShardedCache`]) holds at most 65,536 keys; a full shard is
//! emptied, so a peer that sends fresh keys only costs itself the decompression it would have
//! cost anyway.

use std::sync::LazyLock;

use ed25519_dalek::VerifyingKey;

use crate::cache::ShardedCache;
use crate::CryptoError;

/// Most keys held (about 12 MiB).
const CAPACITY: usize = 65_536;

static CACHE: LazyLock<ShardedCache<[u8; 32], VerifyingKey>> =
    LazyLock::new(|| ShardedCache::new(CAPACITY));

/// The decompressed key for `bytes`, validated as [`crate::PublicKey::from_bytes`] documents.
pub(crate) fn decompress(bytes: &[u8; 32]) -> Result<VerifyingKey, CryptoError> {
    let key = CACHE.get_or_load(bytes, || {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(CryptoError::WeakPublicKey);
        }
        Ok(Some(key))
    })?;
    key.ok_or(CryptoError::InvalidPublicKey)
}

/// Records a key known to be valid (derived from a secret).
pub(crate) fn remember(bytes: &[u8; 32], key: VerifyingKey) {
    CACHE.store([(bytes, &key)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validated_key_is_kept_and_answered_from_the_cache() {
        // Derived without `KeyPair` (which would remember it), from a seed no other test uses:
        // the cache is shared by the whole test process.
        let bytes = ed25519_dalek::SigningKey::from_bytes(&[0xa5; 32])
            .verifying_key()
            .to_bytes();
        let cached = || CACHE.get_or_load(&bytes, || Ok::<_, ()>(None)).unwrap();
        assert!(cached().is_none());
        assert_eq!(decompress(&bytes).unwrap().to_bytes(), bytes);
        assert_eq!(cached().map(|k| k.to_bytes()), Some(bytes));
    }

    #[test]
    fn weak_and_invalid_keys_are_refused_every_time() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for _ in 0..2 {
            assert!(matches!(
                decompress(&identity),
                Err(CryptoError::WeakPublicKey)
            ));
        }
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        for _ in 0..2 {
            assert!(matches!(
                decompress(&off_curve),
                Err(CryptoError::InvalidPublicKey)
            ));
        }
    }
}
