//! Ed25519 public keys, signatures and key pairs.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::ed25519;
use crate::encoding;
use crate::key_cache;
use crate::sign::{signing_bytes, Domain};
use crate::CryptoError;

/// A validated Ed25519 public key: its 32 encoded bytes.
///
/// Construction always goes through [`PublicKey::from_bytes`] (also behind `FromStr` and serde),
/// which rejects invalid encodings and weak (small-order) keys. The decompressed point lives in a
/// bounded process-wide cache (`key_cache`), not in the value, so a key is 32 bytes to copy
/// and decoding a transfer whose keys were seen before costs two cache lookups rather than two
/// field square roots. Equality, ordering and hashing use the 32 encoded bytes.
#[derive(Clone, Copy)]
pub struct PublicKey {
    bytes: [u8; 32],
}

impl PublicKey {
    /// Length of an encoded public key in bytes.
    pub const LEN: usize = 32;

    /// Parses and validates a compressed Edwards point.
    ///
    /// Errors: [`CryptoError::InvalidPublicKey`] if the bytes do not
    /// decompress to a curve point; [`CryptoError::WeakPublicKey`] if the
    /// point is of small order ([`VerifyingKey::is_weak`], e.g. the identity
    /// `[1, 0, .., 0]`). Keys derived from a secret are never rejected.
    ///
    /// Mixed-order points (a valid key plus a small-order component) are
    /// *not* rejected here, because checking costs about as much as a
    /// signature verification; see [`PublicKey::is_torsion_free`].
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, CryptoError> {
        key_cache::decompress(bytes)?;
        Ok(PublicKey { bytes: *bytes })
    }

    /// Whether the key lies in the prime-order subgroup (has no small-order
    /// component). Every honestly generated key does. Costs roughly one
    /// signature verification, so it is meant for one-off checks such as
    /// admitting a key to a validator set, not for every decode.
    pub fn is_torsion_free(&self) -> bool {
        self.verifying_key()
            .is_ok_and(|key| key.to_edwards().is_torsion_free())
    }

    /// Like [`PublicKey::from_bytes`], after checking the length is 32.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, CryptoError> {
        PublicKey::from_bytes(&encoding::array_from_slice("public key", bytes)?)
    }

    /// The 32 encoded bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// The 32 encoded bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Full lowercase hex (64 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// Parses 64 hex characters and validates as [`PublicKey::from_bytes`].
    pub fn from_hex(s: &str) -> Result<PublicKey, CryptoError> {
        PublicKey::from_bytes(&encoding::decode_hex("public key", s)?)
    }

    /// The first 8 hex characters, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.bytes[..4])
    }

    /// Verifies `sig` over [`signing_bytes`]`(domain, chain_id, msg)`: the cofactored Ed25519
    /// equation, refusing a non-canonical `s` (see the `ed25519` module).
    ///
    /// Returns [`CryptoError::InvalidSignature`] on failure.
    pub fn verify(
        &self,
        domain: Domain,
        chain_id: &str,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), CryptoError> {
        if ed25519::verify_one(self, domain, chain_id, msg, sig) {
            Ok(())
        } else {
            Err(CryptoError::InvalidSignature)
        }
    }

    /// The decompressed point, from the cache (or decompressed again after an eviction; that
    /// cannot fail for a key that passed [`PublicKey::from_bytes`]).
    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, CryptoError> {
        key_cache::decompress(&self.bytes)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.short())
    }
}

impl FromStr for PublicKey {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublicKey::from_hex(s)
    }
}

impl TryFrom<&[u8]> for PublicKey {
    type Error = CryptoError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        PublicKey::from_slice(bytes)
    }
}

impl AsRef<[u8]> for PublicKey {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        encoding::serialize(&self.bytes, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    /// Goes through [`PublicKey::from_bytes`]: weak keys do not deserialize.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        encoding::deserialize(deserializer, "public key", PublicKey::from_bytes)
    }
}

/// An Ed25519 signature (`R || s`, 64 bytes).
///
/// No validation happens at construction; verification checks everything.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// Length of a signature in bytes.
    pub const LEN: usize = 64;

    /// The 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// Copies exactly 64 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Signature, CryptoError> {
        encoding::array_from_slice("signature", bytes).map(Signature)
    }

    /// Full lowercase hex (128 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 128 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<Signature, CryptoError> {
        encoding::decode_hex("signature", s).map(Signature)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(&self.0[..4]))
    }
}

impl FromStr for Signature {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Signature::from_hex(s)
    }
}

impl serde::Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        encoding::serialize(&self.0, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        encoding::deserialize(deserializer, "signature", |b: &[u8; 64]| Ok(Signature(*b)))
    }
}

/// An Ed25519 signing key pair.
///
/// The secret is wiped from memory when the value is dropped (the inner
/// `ed25519_dalek::SigningKey` is `ZeroizeOnDrop`). `Debug` redacts the
/// secret; there is deliberately no `Display` and no `Serialize` — use
/// [`crate::keyfile`] to persist a key.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
    public: PublicKey,
}

impl KeyPair {
    /// A fresh key from a cryptographically secure RNG.
    pub fn generate<R: rand_core::CryptoRngCore + ?Sized>(rng: &mut R) -> KeyPair {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        KeyPair::from_signing_key(SigningKey::from_bytes(&seed))
    }

    /// The key whose 32-byte Ed25519 secret (seed) is `seed`. Deterministic;
    /// meant for tests, the simulator and loading key files.
    pub fn from_seed(seed: [u8; 32]) -> KeyPair {
        let seed = Zeroizing::new(seed);
        KeyPair::from_signing_key(SigningKey::from_bytes(&seed))
    }

    fn from_signing_key(signing: SigningKey) -> KeyPair {
        let key = signing.verifying_key();
        // A key derived from a secret is `clamp(seed) * B`: always in the
        // prime-order subgroup and never weak, so no check is needed.
        let bytes = key.to_bytes();
        key_cache::remember(&bytes, key);
        let public = PublicKey { bytes };
        KeyPair { signing, public }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Signs [`signing_bytes`]`(domain, chain_id, msg)`.
    pub fn sign(&self, domain: Domain, chain_id: &str, msg: &[u8]) -> Signature {
        let signed = signing_bytes(domain, chain_id, msg);
        Signature(self.signing.sign(&signed).to_bytes())
    }

    /// The 32-byte secret (seed), wiped when the returned value drops.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyPair {{ public: {}, secret: <redacted> }}",
            self.public.to_hex()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    const CHAIN: &str = "hotledger-test";

    fn kp(n: u8) -> KeyPair {
        KeyPair::from_seed([n; 32])
    }

    #[test]
    fn sign_verify_roundtrip() {
        let k = kp(1);
        let sig = k.sign(Domain::Vote, CHAIN, b"hello");
        assert!(k
            .public()
            .verify(Domain::Vote, CHAIN, b"hello", &sig)
            .is_ok());
        let mut rng = rand::rngs::OsRng;
        let k2 = KeyPair::generate(&mut rng);
        let sig2 = k2.sign(Domain::Proposal, CHAIN, b"");
        assert!(k2
            .public()
            .verify(Domain::Proposal, CHAIN, b"", &sig2)
            .is_ok());
    }

    #[test]
    fn signing_is_deterministic_per_seed() {
        assert_eq!(kp(3).public(), kp(3).public());
        assert_ne!(kp(3).public(), kp(4).public());
        assert_eq!(
            kp(3).sign(Domain::Vote, CHAIN, b"m"),
            kp(3).sign(Domain::Vote, CHAIN, b"m")
        );
        assert_eq!(*kp(3).secret_bytes(), [3u8; 32]);
    }

    #[test]
    fn wrong_domain_chain_message_key_fail() {
        let k = kp(1);
        let pk = k.public();
        let sig = k.sign(Domain::Vote, CHAIN, b"hello");
        for d in Domain::ALL {
            if d != Domain::Vote {
                assert!(matches!(
                    pk.verify(d, CHAIN, b"hello", &sig),
                    Err(CryptoError::InvalidSignature)
                ));
            }
        }
        assert!(pk
            .verify(Domain::Vote, "other-chain", b"hello", &sig)
            .is_err());
        assert!(pk.verify(Domain::Vote, CHAIN, b"hellp", &sig).is_err());
        assert!(pk.verify(Domain::Vote, CHAIN, b"hello!", &sig).is_err());
        assert!(kp(2)
            .public()
            .verify(Domain::Vote, CHAIN, b"hello", &sig)
            .is_err());
        let mut bad = sig;
        bad.0[10] ^= 1;
        assert!(pk.verify(Domain::Vote, CHAIN, b"hello", &bad).is_err());
    }

    #[test]
    fn non_canonical_s_rejected() {
        // s + l (the group order) is the same scalar mod l but not canonical;
        // verification must reject it.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let k = kp(1);
        let sig = k.sign(Domain::Vote, CHAIN, b"m");
        let mut s = [0u8; 32];
        s.copy_from_slice(&sig.0[32..]);
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(s[i]) + u16::from(L[i]) + carry;
            s[i] = (v & 0xff) as u8;
            carry = v >> 8;
        }
        let mut bad = sig;
        bad.0[32..].copy_from_slice(&s);
        assert!(k.public().verify(Domain::Vote, CHAIN, b"m", &bad).is_err());
    }

    #[test]
    fn weak_keys_rejected() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            PublicKey::from_bytes(&identity),
            Err(CryptoError::WeakPublicKey)
        ));
        // The order-2 point (0, -1).
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        assert!(matches!(
            PublicKey::from_bytes(&minus_one),
            Err(CryptoError::WeakPublicKey)
        ));
        // Deserialisation goes through the same check.
        let json = format!("\"{}\"", hex::encode(identity));
        assert!(serde_json::from_str::<PublicKey>(&json).is_err());
        let bin = postcard::to_allocvec(&Digest(identity)).unwrap();
        assert!(postcard::from_bytes::<PublicKey>(&bin).is_err());
        assert!(PublicKey::from_hex(&hex::encode(identity)).is_err());
    }

    #[test]
    fn mixed_order_key_detected() {
        // A valid key plus the order-2 point (0, -1): (x, y) + (0, -1) =
        // (-x, -y). Not small order, so `from_bytes` accepts it.
        let pk = kp(9).public().to_bytes();
        let key = VerifyingKey::from_bytes(&pk).unwrap();
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let t = VerifyingKey::from_bytes(&minus_one).unwrap();
        let mixed = (key.to_edwards() + t.to_edwards()).compress().to_bytes();
        let pk_mixed = PublicKey::from_bytes(&mixed).unwrap();
        assert!(!pk_mixed.is_torsion_free());
        assert!(kp(9).public().is_torsion_free());
    }

    #[test]
    fn invalid_point_and_lengths_rejected() {
        // y = 2 is not on the curve.
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        assert!(matches!(
            PublicKey::from_bytes(&not_on_curve),
            Err(CryptoError::InvalidPublicKey)
        ));
        assert!(matches!(
            PublicKey::from_slice(&[0u8; 31]),
            Err(CryptoError::WrongLength {
                expected: 32,
                got: 31,
                ..
            })
        ));
        assert!(matches!(
            Signature::from_slice(&[0u8; 65]),
            Err(CryptoError::WrongLength {
                expected: 64,
                got: 65,
                ..
            })
        ));
        let pk = kp(1).public();
        assert_eq!(PublicKey::from_slice(pk.as_bytes()).ok(), Some(pk));
        assert_eq!(PublicKey::try_from(&pk.as_bytes()[..]).ok(), Some(pk));
    }

    #[test]
    fn hex_display_debug() {
        let k = kp(1);
        let pk = k.public();
        assert_eq!(pk.to_string(), pk.to_hex());
        assert_eq!(pk.to_hex().len(), 64);
        assert_eq!(format!("{pk:?}"), format!("PublicKey({})", pk.short()));
        assert_eq!(pk.short().len(), 8);
        assert_eq!(pk.to_hex().parse::<PublicKey>().ok(), Some(pk));
        let sig = k.sign(Domain::Vote, CHAIN, b"x");
        assert_eq!(sig.to_hex().len(), 128);
        assert_eq!(Signature::from_hex(&sig.to_hex()).ok(), Some(sig));
        assert_eq!(sig.to_string().parse::<Signature>().ok(), Some(sig));
        assert_eq!(
            format!("{sig:?}"),
            format!("Signature({})", &sig.to_hex()[..8])
        );
        assert_eq!(Signature::from_slice(&sig.to_bytes()).ok(), Some(sig));
    }

    #[test]
    fn keypair_debug_redacts_secret() {
        let k = kp(0xab);
        let dbg = format!("{k:?}");
        let secret_hex = hex::encode(*k.secret_bytes());
        assert!(!dbg.contains(&secret_hex));
        assert!(!dbg.contains("abababab"));
        assert_eq!(
            dbg,
            format!("KeyPair {{ public: {}, secret: <redacted> }}", k.public())
        );
    }

    #[test]
    fn serde_json_hex_strings() {
        let k = kp(1);
        let pk = k.public();
        let sig = k.sign(Domain::Vote, CHAIN, b"x");
        let json = serde_json::to_string(&(pk, sig)).unwrap();
        assert_eq!(json, format!("[\"{}\",\"{}\"]", pk.to_hex(), sig.to_hex()));
        let (pk2, sig2): (PublicKey, Signature) = serde_json::from_str(&json).unwrap();
        assert_eq!((pk2, sig2), (pk, sig));
        assert!(serde_json::from_str::<Signature>("\"abcd\"").is_err());
    }

    #[test]
    fn serde_binary_raw_bytes() {
        let k = kp(1);
        let pk = k.public();
        let sig = k.sign(Domain::Vote, CHAIN, b"x");
        let bin = postcard::to_allocvec(&(pk, sig)).unwrap();
        assert_eq!(bin.len(), 96);
        assert_eq!(&bin[..32], pk.as_bytes());
        assert_eq!(&bin[32..], &sig.0[..]);
        let (pk2, sig2): (PublicKey, Signature) = postcard::from_bytes(&bin).unwrap();
        assert_eq!((pk2, sig2), (pk, sig));
        assert!(postcard::from_bytes::<Signature>(&bin[32..95]).is_err());
    }

    #[test]
    fn ordering_and_hash_use_bytes() {
        use std::collections::{BTreeSet, HashSet};
        let keys: Vec<PublicKey> = (0..8).map(|i| kp(i).public()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        let mut by_bytes = keys.clone();
        by_bytes.sort_by_key(|k| k.to_bytes());
        assert_eq!(sorted, by_bytes);
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 8);
        assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), 8);
    }
}
