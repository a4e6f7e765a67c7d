//! A bounded, process-wide cache of decompressed public keys.
//!
//! Decompressing an Ed25519 point (a field square root) costs about 5 µs here, an eighth of a
//! signature verification, and a busy node sees the same few thousand keys (accounts, validators)
//! in every decoded transaction and vote. [`decompress`] validates a key once and then answers
//! from memory. The cache holds at most 65,536 keys; a full shard is emptied, so a peer that
//! sends fresh keys only costs itself the decompression it would have cost anyway.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use ed25519_dalek::VerifyingKey;

use crate::CryptoError;

const SHARDS: usize = 16;
/// Most keys per shard: at most 65,536 keys (about 12 MiB) in all.
const PER_SHARD: usize = 4_096;

type Shard = Mutex<HashMap<[u8; 32], VerifyingKey>>;

static CACHE: LazyLock<[Shard; SHARDS]> =
    LazyLock::new(|| std::array::from_fn(|_| Mutex::new(HashMap::new())));

fn shard(bytes: &[u8; 32]) -> &'static Shard {
    // Keys are attacker-chosen, but only the placement among shards depends on this byte; the
    // maps themselves use SipHash with a random key.
    &CACHE[usize::from(bytes[31] ^ bytes[0]) % SHARDS]
}

/// The decompressed key for `bytes`, validated as [`crate::PublicKey::from_bytes`] documents.
pub(crate) fn decompress(bytes: &[u8; 32]) -> Result<VerifyingKey, CryptoError> {
    let shard = shard(bytes);
    if let Some(key) = shard.lock().ok().and_then(|map| map.get(bytes).copied()) {
        return Ok(key);
    }
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(CryptoError::WeakPublicKey);
    }
    remember(bytes, key);
    Ok(key)
}

/// Records a key known to be valid (derived from a secret).
pub(crate) fn remember(bytes: &[u8; 32], key: VerifyingKey) {
    if let Ok(mut map) = shard(bytes).lock() {
        if map.len() >= PER_SHARD {
            map.clear();
        }
        map.insert(*bytes, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;

    #[test]
    fn stays_bounded_and_correct_under_many_keys() {
        let keys: Vec<KeyPair> = (0..(PER_SHARD * 3) as u32)
            .map(|i| {
                let mut seed = [7u8; 32];
                seed[..4].copy_from_slice(&i.to_le_bytes());
                KeyPair::from_seed(seed)
            })
            .collect();
        for kp in &keys {
            let bytes = kp.public().to_bytes();
            assert_eq!(decompress(&bytes).unwrap().to_bytes(), bytes);
        }
        for shard in CACHE.iter() {
            assert!(shard.lock().unwrap().len() <= PER_SHARD);
        }
    }

    #[test]
    fn weak_and_invalid_keys_are_refused_every_time() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for _ in 0..2 {
            assert!(matches!(decompress(&identity), Err(CryptoError::WeakPublicKey)));
        }
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        for _ in 0..2 {
            assert!(matches!(decompress(&off_curve), Err(CryptoError::InvalidPublicKey)));
        }
    }
}
