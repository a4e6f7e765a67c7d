//! The block payload decoder (ledger/src/payload.rs): `BlockPayload::decode` and
//! `decode_hashed`, on raw bytes and on payloads built from structured transactions.
//!
//! Properties:
//! * raw bytes: whatever decodes respects the limits, has no duplicate transaction, a
//!   `txs_root` equal to the Merkle root of the hashes it returns, those hashes equal to
//!   `tx_hashes()`, and `decode` agrees with `decode_hashed`; it re-encodes, and decoding that
//!   gives an equal payload and equal hashes, and the bytes are that canonical encoding;
//! * built payloads: `encode` then `decode` is the identity at the exact limits, and one
//!   transaction or one byte under them is refused with the matching error; a payload with a
//!   repeated transaction is refused as a duplicate.
#![no_main]

use arbitrary::{Result, Unstructured};
use hotledger_crypto::{merkle_root, Digest};
use hotledger_fuzz::arbitrary_unsigned_tx;
use hotledger_ledger::{BlockPayload, LedgerError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => raw(rest),
        Some((_, rest)) => {
            let _ = built(&mut Unstructured::new(rest));
        }
        None => {}
    }
});

fn check_decoded(bytes: &[u8], payload: &BlockPayload, hashes: &[Digest]) {
    assert_eq!(
        hashes,
        payload.tx_hashes().as_slice(),
        "returned hashes are the txs' hashes"
    );
    assert_eq!(
        merkle_root(hashes),
        payload.txs_root,
        "txs_root is the root of the hashes"
    );
    let mut sorted = hashes.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        hashes.len(),
        "a duplicate transaction was accepted"
    );
    let encoded = payload.encode();
    assert!(!encoded.is_empty());
    let (again, again_hashes) =
        BlockPayload::decode_hashed(&encoded, usize::MAX, usize::MAX).expect("re-encoded decodes");
    assert_eq!(&again, payload, "decode(encode(p)) != p");
    assert_eq!(again_hashes, hashes);
    assert_eq!(again.encode(), encoded, "encoding is not deterministic");
    assert_eq!(encoded, bytes, "a non-canonical payload was accepted");
}

fn raw(data: &[u8]) {
    // The limits come from the input too, so that both refusals are reached.
    let (max_txs, max_bytes, bytes) = match data {
        [t, b0, b1, rest @ ..] => (
            usize::from(*t),
            usize::from(u16::from_le_bytes([*b0, *b1])),
            rest,
        ),
        _ => return,
    };
    let hashed = BlockPayload::decode_hashed(bytes, max_txs, max_bytes);
    let plain = BlockPayload::decode(bytes, max_txs, max_bytes);
    match (&hashed, &plain) {
        (Ok((p, _)), Ok(q)) => assert_eq!(p, q, "decode and decode_hashed disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!("decode and decode_hashed disagree: {hashed:?} / {plain:?}"),
    }
    if let Ok((payload, hashes)) = hashed {
        assert!(
            bytes.len() <= max_bytes && payload.txs.len() <= max_txs,
            "limits not enforced"
        );
        check_decoded(bytes, &payload, &hashes);
    }
}

fn built(u: &mut Unstructured<'_>) -> Result<()> {
    let count = u.int_in_range(0..=24)?;
    let mut txs = Vec::with_capacity(count);
    for _ in 0..count {
        txs.push(arbitrary_unsigned_tx(u)?);
    }
    let state_root = Digest(u.arbitrary()?);
    let payload = BlockPayload::new(u.arbitrary()?, state_root, txs);
    let bytes = payload.encode();
    let hashes = payload.tx_hashes();
    let mut unique = hashes.clone();
    unique.sort();
    unique.dedup();
    let result = BlockPayload::decode_hashed(&bytes, count, bytes.len());
    if unique.len() != hashes.len() {
        assert!(
            matches!(result, Err(LedgerError::DuplicateTx { .. })),
            "repeated transaction not refused: {result:?}"
        );
        return Ok(());
    }
    let (decoded, decoded_hashes) = result.expect("an encoded payload decodes at its limits");
    assert_eq!(decoded, payload);
    assert_eq!(decoded_hashes, hashes);
    check_decoded(&bytes, &decoded, &decoded_hashes);
    if let Some(fewer) = count.checked_sub(1) {
        assert!(matches!(
            BlockPayload::decode(&bytes, fewer, bytes.len()),
            Err(LedgerError::TooManyTxs { .. })
        ));
    }
    assert!(matches!(
        BlockPayload::decode(&bytes, count, bytes.len() - 1),
        Err(LedgerError::PayloadTooLarge { .. })
    ));
    Ok(())
}
