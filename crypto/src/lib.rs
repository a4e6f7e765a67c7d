//! Cryptographic primitives for hotledger: SHA-256 [`Digest`]s,
//! domain-separated Ed25519 signatures ([`KeyPair`], [`PublicKey`],
//! [`Signature`]), batch verification, Merkle proofs and key files.
//!
//! # Domain separation and what bytes are signed
//!
//! A signature is never made over a bare message. [`KeyPair::sign`] and
//! [`PublicKey::verify`] take a [`Domain`] (proposal, vote, timeout,
//! transaction, block request, handshake) and a chain id, and sign
//! [`signing_bytes`]`(domain, chain_id, msg)`:
//!
//! ```text
//! u32_be(len(tag)) || tag || u32_be(len(chain_id)) || chain_id || msg
//! ```
//!
//! where `tag` is e.g. `b"hotledger/v1/vote"`. The length prefixes make the
//! encoding unambiguous, so a vote can never be replayed as a timeout, nor a
//! signature from a test network on the main one.
//!
//! # Verification, weak keys and batching
//!
//! Signatures are checked with the cofactored Ed25519 equation of RFC 8032
//! (`[8]([s]B − R − [k]A) = 0`), refusing non-canonical `s` values. A [`PublicKey`] can only be built through
//! [`PublicKey::from_bytes`] (also used by `FromStr` and serde), which
//! rejects byte strings that are not curve points and weak keys: small-order
//! points such as the identity. Keys are thus checked once, at registration
//! or decoding, and every later verification can rely on it. Decompressed
//! points are kept in a bounded process-wide cache, so decoding a key seen
//! before costs a lookup, not a square root. [`PublicKey::is_torsion_free`]
//! is a stricter, costlier check (no small-order component at all) for
//! admitting validator keys.
//!
//! [`verify_batch`] checks many signatures at once: one random linear
//! combination of their equations, with 128-bit coefficients from a seed
//! drawn from the operating system for each batch. That is much faster than
//! one check per signature. If the combined check fails, each item is
//! checked on its own and the index of the first bad one is returned as
//! [`CryptoError::BadSignature`]. Because the single and the batch checks use
//! the same equation, a signature gets the same answer alone and in any
//! batch; with the cofactorless equation a crafted signature (an `R` with a
//! small-order component) could pass some batches and fail others, and so
//! split validators that batch different transactions.
//!
//! # Merkle trees
//!
//! [`merkle_root`] builds a binary tree over leaf digests with RFC 6962
//! domain separation: a leaf is hashed as `SHA256(0x00 || leaf)`, an inner
//! node as `SHA256(0x01 || left || right)`. Levels are paired left to right
//! and an odd last node is promoted unchanged rather than duplicated, so
//! repeating the last leaf changes the root. The root of zero leaves is
//! [`Digest::ZERO`]. [`merkle_proof`] and [`verify_merkle_proof`] give and
//! check inclusion proofs; verification is total (false, never a panic, for
//! any proof). The root does not commit to the leaf count, so callers check
//! a proof's `leaf_count` against a trusted value.
//!
//! # Key files
//!
//! [`save_key_file`] writes a JSON document
//! `{"type": "hotledger-ed25519-secret-key", "public_key": "<hex>", "secret_key": "<hex>"}`
//! where `secret_key` is the 32-byte Ed25519 seed. It is written to a
//! temporary file in the same directory (mode `0600` on unix), synced, and
//! moved into place, and it refuses to replace an existing file unless
//! asked. [`load_key_file`] checks the `type` and that the public key
//! matches the secret, with a distinct [`CryptoError`] variant for each
//! failure. Secrets are zeroized on drop, and `Debug` of a [`KeyPair`]
//! never shows the secret.
//!
//! # Serialization
//!
//! [`Digest`], [`PublicKey`] and [`Signature`] serialize as lowercase hex
//! strings in human-readable formats (JSON) and as their raw 32 or 64 bytes,
//! with no length prefix, in binary formats.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cache;
pub mod digest;
mod ed25519;
mod encoding;
pub mod error;
mod key_cache;
pub mod keyfile;
pub mod keys;
pub mod merkle;
pub mod sign;

pub use digest::{Digest, Hasher};
pub use error::CryptoError;
pub use keyfile::{key_file_bytes, load_key_file, save_key_file, KEY_FILE_TYPE};
pub use keys::{KeyPair, PublicKey, Signature};
pub use merkle::{
    leaf_hash, merkle_proof, merkle_root, node_hash, verify_merkle_proof, MerkleProof,
};
pub use sign::{signing_bytes, verify_batch, verify_batch_each, BatchItem, Domain};
