//! SHA-256 digests.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use crate::encoding;
use crate::CryptoError;

/// A SHA-256 digest.
///
/// `Display` and [`Digest::to_hex`] give the full lowercase hex; `Debug` gives
/// `Digest(<first 8 hex chars>)`. With serde, human-readable formats get the
/// hex string and binary formats the 32 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Length of a digest in bytes.
    pub const LEN: usize = 32;

    /// The all-zero digest; also the Merkle root of zero leaves.
    pub const ZERO: Digest = Digest([0u8; 32]);

    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(sha2::Sha256::digest(data).into())
    }

    /// An incremental SHA-256 hasher.
    pub fn hasher() -> Hasher {
        Hasher::default()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Full lowercase hex (64 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<Digest, CryptoError> {
        encoding::decode_hex("digest", s).map(Digest)
    }

    /// Copies exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Digest, CryptoError> {
        encoding::array_from_slice("digest", bytes).map(Digest)
    }

    /// The first 8 hex characters, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl FromStr for Digest {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::from_hex(s)
    }
}

impl From<[u8; 32]> for Digest {
    fn from(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        encoding::serialize(&self.0, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        encoding::deserialize(deserializer, "digest", |b: &[u8; 32]| Ok(Digest(*b)))
    }
}

/// Incremental SHA-256; obtain one with [`Digest::hasher`].
#[derive(Clone, Default)]
pub struct Hasher {
    inner: sha2::Sha256,
}

impl Hasher {
    /// Feeds `data` into the hash.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.inner.update(data);
        self
    }

    /// Finishes and returns the digest.
    pub fn finalize(self) -> Digest {
        Digest(self.inner.finalize().into())
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            Digest::of(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Digest::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hasher_matches_one_shot() {
        let mut h = Digest::hasher();
        h.update(b"a").update(b"bc");
        assert_eq!(h.finalize(), Digest::of(b"abc"));
    }

    #[test]
    fn hex_display_debug_fromstr() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_string(), d.to_hex());
        assert_eq!(d.short(), "ba7816bf");
        assert_eq!(format!("{d:?}"), "Digest(ba7816bf)");
        assert_eq!(Digest::from_hex(&d.to_hex()).ok(), Some(d));
        assert_eq!(d.to_hex().to_uppercase().parse::<Digest>().ok(), Some(d));
        assert!(matches!(
            Digest::from_hex("abcd"),
            Err(CryptoError::WrongLength {
                expected: 32,
                got: 2,
                ..
            })
        ));
        assert!(matches!(
            Digest::from_hex(&"g".repeat(64)),
            Err(CryptoError::InvalidHex { .. })
        ));
        assert_eq!(Digest::default(), Digest::ZERO);
        assert!(Digest::from_slice(&[0u8; 31]).is_err());
    }

    #[test]
    fn serde_json_is_hex_string() {
        let d = Digest::of(b"abc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{}\"", d.to_hex()));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"00\"").is_err());
        assert!(serde_json::from_str::<Digest>("[1,2]").is_err());
    }

    #[test]
    fn serde_binary_is_raw_bytes() {
        let d = Digest::of(b"abc");
        let bytes = postcard::to_allocvec(&d).unwrap();
        assert_eq!(bytes.as_slice(), d.as_bytes());
        assert_eq!(postcard::from_bytes::<Digest>(&bytes).unwrap(), d);
        assert!(postcard::from_bytes::<Digest>(&bytes[..31]).is_err());
    }
}
