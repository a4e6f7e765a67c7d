//! Shared hex and serde plumbing for the fixed-size byte types.
//!
//! Human-readable formats (JSON, TOML, ...) see a lowercase hex string.
//! Binary formats see the raw bytes as a fixed-size tuple of `N` `u8`s, so
//! e.g. postcard or bincode spend exactly `N` bytes with no length prefix.
//! Deserialisation in binary formats also accepts a byte string of length
//! `N`, for formats that hand out bytes rather than sequences.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserializer, Serializer};

use crate::CryptoError;

/// Decodes exactly `N` bytes from hex (either case accepted).
pub(crate) fn decode_hex<const N: usize>(
    what: &'static str,
    s: &str,
) -> Result<[u8; N], CryptoError> {
    if s.len() != 2 * N {
        // Report the length in bytes when the string is well formed, so
        // "0xab" style mistakes still get a precise message below.
        if s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CryptoError::WrongLength {
                what,
                expected: N,
                got: s.len() / 2,
            });
        }
    }
    let mut out = [0u8; N];
    // The fast decoder for the common case; any failure is decoded again by `hex` for its
    // message (and so that what is accepted is exactly what `hex` accepts: no `0x` prefix).
    if s.len() == 2 * N && !s.starts_with("0x") && const_hex::decode_to_slice(s, &mut out).is_ok() {
        return Ok(out);
    }
    hex::decode_to_slice(s, &mut out).map_err(|e| CryptoError::InvalidHex {
        what,
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Copies a slice of exactly `N` bytes.
pub(crate) fn array_from_slice<const N: usize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<[u8; N], CryptoError> {
    <[u8; N]>::try_from(bytes).map_err(|_| CryptoError::WrongLength {
        what,
        expected: N,
        got: bytes.len(),
    })
}

/// The longest fixed-size byte type (a signature).
const MAX_N: usize = 64;

/// Serialises `bytes` as hex (human-readable) or an `N`-tuple of bytes.
pub(crate) fn serialize<S: Serializer, const N: usize>(
    bytes: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        // On the stack: every key, signature and hash in a JSON-RPC answer or request passes
        // here (N is at most 64).
        let mut buf = [0u8; 2 * MAX_N];
        let Some(out) = buf.get_mut(..2 * N) else {
            return serializer.serialize_str(&hex::encode(bytes));
        };
        const_hex::encode_to_slice(bytes, out).map_err(serde::ser::Error::custom)?;
        let text = std::str::from_utf8(out).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    } else {
        let mut tup = serializer.serialize_tuple(N)?;
        for b in bytes {
            tup.serialize_element(b)?;
        }
        tup.end()
    }
}

/// Inverse of [`serialize`]; the result is passed through `check` so that
/// validating types (public keys) cannot be built from unchecked bytes.
pub(crate) fn deserialize<'de, D, T, const N: usize>(
    deserializer: D,
    what: &'static str,
    check: fn(&[u8; N]) -> Result<T, CryptoError>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let bytes = if deserializer.is_human_readable() {
        deserializer.deserialize_str(HexVisitor::<N> { what })?
    } else {
        deserializer.deserialize_tuple(
            N,
            BytesVisitor::<N> {
                what,
                _n: PhantomData,
            },
        )?
    };
    check(&bytes).map_err(de::Error::custom)
}

struct HexVisitor<const N: usize> {
    what: &'static str,
}

impl<const N: usize> Visitor<'_> for HexVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {}-character hex string ({})", 2 * N, self.what)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        decode_hex::<N>(self.what, v).map_err(E::custom)
    }
}

struct BytesVisitor<const N: usize> {
    what: &'static str,
    _n: PhantomData<[u8; N]>,
}

impl<'de, const N: usize> Visitor<'de> for BytesVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} raw bytes ({})", N, self.what)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        array_from_slice::<N>(self.what, v).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = [0u8; N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(N + 1, &self));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_hex_errors() {
        assert!(matches!(
            decode_hex::<4>("x", "0011"),
            Err(CryptoError::WrongLength {
                expected: 4,
                got: 2,
                ..
            })
        ));
        assert!(matches!(
            decode_hex::<2>("x", "zz11"),
            Err(CryptoError::InvalidHex { .. })
        ));
        assert!(matches!(
            decode_hex::<2>("x", "0x11"),
            Err(CryptoError::InvalidHex { .. })
        ));
        assert!(matches!(
            decode_hex::<2>("x", "001"),
            Err(CryptoError::InvalidHex { .. })
        ));
        assert_eq!(decode_hex::<2>("x", "aBcD").ok(), Some([0xab, 0xcd]));
    }

    proptest::proptest! {
        /// The fast path accepts exactly what `hex` accepts, with the same bytes, and encodes
        /// as `hex` does.
        #[test]
        fn fast_hex_agrees_with_hex(
            text in proptest::prop_oneof![
                "[0-9a-fA-F]{64}",
                "[0-9a-fA-FxX g]{64}",
                "0x[0-9a-f]{62}",
                "[0-9a-f]{0,70}",
            ],
            bytes in proptest::array::uniform32(proptest::num::u8::ANY),
        ) {
            let mut expected = [0u8; 32];
            let reference = hex::decode_to_slice(&text, &mut expected).map(|()| expected);
            proptest::prop_assert_eq!(decode_hex::<32>("x", &text).ok(), reference.ok());
            let json = serde_json::to_string(&crate::Digest(bytes)).unwrap();
            proptest::prop_assert_eq!(json, format!("\"{}\"", hex::encode(bytes)));
        }
    }
}
