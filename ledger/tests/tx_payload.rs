//! Transactions (signing, hashing, verification) and block payload encoding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{pk, signed, CHAIN};
use hotledger_crypto::{merkle_root, Digest, Signature};
use hotledger_ledger::{verify_transactions, BlockPayload, LedgerError, SignedTransaction};
use proptest::prelude::*;

#[test]
fn sign_and_verify() {
    let tx = signed(0, 1, 50, 3);
    assert_eq!(tx.verify(CHAIN), Ok(()));
    let mut tampered = tx.clone();
    tampered.transfer.amount = 51;
    assert_eq!(
        tampered.verify(CHAIN),
        Err(LedgerError::BadSignature { index: 0 })
    );
}

#[test]
fn wrong_chain_id_fails() {
    let tx = signed(0, 1, 50, 3);
    assert!(tx.verify("another-chain").is_err());
    assert!(verify_transactions("another-chain", &[&tx]).is_err());
}

#[test]
fn signing_bytes_layout() {
    let tx = signed(0, 1, 0x0102_0304, 0xAABB);
    let bytes = tx.transfer.signing_bytes();
    let mut want = Vec::new();
    want.extend_from_slice(pk(0).as_bytes());
    want.extend_from_slice(pk(1).as_bytes());
    want.extend_from_slice(&0x0102_0304u64.to_be_bytes());
    want.extend_from_slice(&0xAABBu64.to_be_bytes());
    assert_eq!(bytes.to_vec(), want);
}

#[test]
fn hash_ignores_signature_and_covers_fields() {
    let tx = signed(0, 1, 50, 3);
    let mut other_sig = tx.clone();
    other_sig.signature = Signature([7u8; 64]);
    assert_eq!(tx.hash(), other_sig.hash());
    let mut h = Digest::hasher();
    h.update(b"hotledger/tx/v1")
        .update(&tx.transfer.signing_bytes());
    assert_eq!(tx.hash(), h.finalize());
    assert_ne!(tx.hash(), signed(0, 1, 50, 4).hash());
    assert_ne!(tx.hash(), signed(0, 1, 51, 3).hash());
    assert_ne!(tx.hash(), signed(0, 2, 50, 3).hash());
}

#[test]
fn encoded_len_is_postcard_size() {
    for (amount, nonce) in [(1, 0), (127, 128), (u64::MAX, u64::MAX), (300, 1 << 40)] {
        let tx = signed(0, 1, amount, nonce);
        assert_eq!(tx.encoded_len(), postcard::to_allocvec(&tx).unwrap().len());
    }
}

#[test]
fn batch_verification_names_first_bad() {
    let mut txs: Vec<SignedTransaction> = (0..8).map(|i| signed(i, i + 1, 10, 0)).collect();
    let check = |txs: &[SignedTransaction]| {
        let r: Vec<&SignedTransaction> = txs.iter().collect();
        verify_transactions(CHAIN, &r)
    };
    assert_eq!(check(&txs), Ok(()));
    assert_eq!(check(&[]), Ok(()));
    txs[5].transfer.nonce = 9;
    txs[6].signature.0[0] ^= 1;
    assert_eq!(check(&txs), Err(LedgerError::BadSignature { index: 5 }));
}

fn payload(n: u8) -> BlockPayload {
    let txs = (0..n).map(|i| signed(i, i + 1, 5, 0)).collect();
    BlockPayload::new(7, Digest::of(b"state"), txs)
}

#[test]
fn payload_roundtrip() {
    for n in [0, 1, 5] {
        let p = payload(n);
        assert_eq!(p.txs_root, merkle_root(&p.tx_hashes()));
        let bytes = p.encode();
        assert_eq!(bytes, postcard::to_allocvec(&p).unwrap());
        assert_eq!(BlockPayload::decode(&bytes, 10, bytes.len()), Ok(p));
    }
    assert_eq!(payload(0).txs_root, Digest::ZERO);
}

#[test]
fn decode_rejects_oversized_input() {
    let bytes = payload(3).encode();
    assert_eq!(
        BlockPayload::decode(&bytes, 10, bytes.len() - 1),
        Err(LedgerError::PayloadTooLarge {
            got: bytes.len(),
            max: bytes.len() - 1
        })
    );
}

#[test]
fn decode_rejects_too_many_txs() {
    let bytes = payload(3).encode();
    assert_eq!(
        BlockPayload::decode(&bytes, 2, usize::MAX),
        Err(LedgerError::TooManyTxs { got: 3, max: 2 })
    );
    // A huge announced count is rejected before any transaction is decoded.
    let mut forged = postcard::to_allocvec(&(1u64, Digest::ZERO, Digest::ZERO)).unwrap();
    forged.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert!(matches!(
        BlockPayload::decode(&forged, 1_000, 1 << 20),
        Err(LedgerError::TooManyTxs { max: 1_000, .. })
    ));
}

#[test]
fn decode_rejects_trailing_and_truncated_bytes() {
    let mut bytes = payload(2).encode();
    bytes.push(0);
    assert_eq!(
        BlockPayload::decode(&bytes, 10, usize::MAX),
        Err(LedgerError::TrailingBytes { count: 1 })
    );
    bytes.truncate(bytes.len() - 2);
    assert!(matches!(
        BlockPayload::decode(&bytes, 10, usize::MAX),
        Err(LedgerError::Decode { .. })
    ));
    assert!(matches!(
        BlockPayload::decode(&[], 10, usize::MAX),
        Err(LedgerError::Decode { .. })
    ));
}

#[test]
fn decode_rejects_wrong_txs_root() {
    let mut p = payload(3);
    p.txs_root = Digest::of(b"not the root");
    let computed = merkle_root(&p.tx_hashes());
    assert_eq!(
        BlockPayload::decode(&p.encode(), 10, usize::MAX),
        Err(LedgerError::TxsRootMismatch {
            claimed: p.txs_root,
            computed
        })
    );
    // Reordering the transactions changes the root.
    let mut p = payload(3);
    p.txs.swap(0, 2);
    assert!(matches!(
        BlockPayload::decode(&p.encode(), 10, usize::MAX),
        Err(LedgerError::TxsRootMismatch { .. })
    ));
}

#[test]
fn decode_rejects_duplicate_txs() {
    let tx = signed(0, 1, 5, 0);
    let mut malleated = tx.clone();
    malleated.signature = Signature([1u8; 64]);
    for dup in [tx.clone(), malleated] {
        let p = BlockPayload::new(0, Digest::ZERO, vec![tx.clone(), signed(1, 2, 1, 0), dup]);
        assert_eq!(
            BlockPayload::decode(&p.encode(), 10, usize::MAX),
            Err(LedgerError::DuplicateTx { hash: tx.hash() })
        );
    }
}

#[test]
fn decode_rejects_invalid_public_key() {
    let mut bytes = payload(1).encode();
    // The first transaction's `from` key starts right after the 1-byte count.
    let header = postcard::to_allocvec(&(7u64, Digest::ZERO, Digest::ZERO))
        .unwrap()
        .len();
    let from = header + 1;
    bytes[from..from + 32].copy_from_slice(&[0u8; 32]); // identity-like, weak or invalid
    bytes[from] = 1;
    assert!(matches!(
        BlockPayload::decode(&bytes, 10, usize::MAX),
        Err(LedgerError::Decode { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn decode_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2_048)) {
        let _ = BlockPayload::decode(&bytes, 64, 4_096);
    }

    #[test]
    fn decode_mutated_payload_never_panics(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = payload(3).encode();
        let i = index.index(bytes.len());
        bytes[i] = byte;
        let _ = BlockPayload::decode(&bytes, 64, 4_096);
        bytes.truncate(cut.index(bytes.len()));
        prop_assert!(BlockPayload::decode(&bytes, 64, 4_096).is_err());
    }
}

#[test]
fn decode_hashed_returns_the_hashes_in_order() {
    let txs = vec![signed(0, 1, 5, 0), signed(1, 2, 7, 0), signed(0, 2, 1, 1)];
    let bytes = BlockPayload::new(3, Digest::ZERO, txs.clone()).encode();
    let (payload, hashes) = BlockPayload::decode_hashed(&bytes, 10, 1 << 20).unwrap();
    assert_eq!(payload.txs, txs);
    let expected: Vec<Digest> = txs.iter().map(|t| t.hash()).collect();
    assert_eq!(hashes, expected);
}

/// `value` as a postcard varint padded to one byte more than it needs (an over-long form that
/// postcard itself decodes to the same value).
fn overlong_varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte | 0x80);
            out.push(0);
            return out;
        }
        out.push(byte | 0x80);
    }
}

proptest! {
    /// One payload, one encoding: the same payload with its claim height written over-long
    /// decodes under postcard, but is refused here; the canonical bytes decode and re-encode
    /// byte for byte.
    #[test]
    fn only_the_canonical_encoding_is_accepted(height in 0u64..u64::MAX / 2, n in 0u32..4) {
        let txs: Vec<SignedTransaction> = (0..n).map(|i| signed(0, 1, 5, u64::from(i))).collect();
        let payload = BlockPayload::new(height, Digest::of(b"root"), txs);
        let bytes = payload.encode();
        let decoded = BlockPayload::decode(&bytes, 10, 1 << 20).unwrap();
        prop_assert_eq!(decoded.encode(), bytes.clone());

        let canonical_len = postcard::to_allocvec(&height).unwrap().len();
        let mut overlong = overlong_varint(height);
        overlong.extend_from_slice(&bytes[canonical_len..]);
        prop_assert_eq!(
            postcard::from_bytes::<u64>(&overlong_varint(height)).unwrap(),
            height
        );
        prop_assert_eq!(
            BlockPayload::decode(&overlong, 10, 1 << 20),
            Err(LedgerError::NonCanonical { got: bytes.len() + 1, canonical: bytes.len() })
        );
    }
}
