//! Transactions as the JSON-RPC accepts them (serde JSON of `SignedTransaction`,
//! ledger/src/tx.rs) and the hex of `Digest`, `PublicKey` and `Signature` (crypto/src).
//!
//! The first byte picks the mode:
//! * JSON text: a transaction that parses serializes, and parses back equal, with the same
//!   hash and the same verification result; the serialized text is stable; its postcard
//!   encoding has `encoded_len()` bytes and decodes equal;
//! * hex text: `from_hex` agrees with the reference decoder (`hex`, exactly N bytes; for keys,
//!   `PublicKey::from_bytes` on them), with `FromStr` and with serde's JSON string form, and
//!   `from_hex(to_hex(x)) == x` with `to_hex` lowercase;
//! * raw bytes: every 32-byte digest and 64-byte signature, and every 32 bytes that are a valid
//!   key, survive `to_hex` then `from_hex`;
//! * a signed transaction edited by the input: if the edited JSON parses and its signature
//!   verifies, it still verifies (and keeps its hash) after a JSON round trip.
#![no_main]

use std::str::FromStr;

use arbitrary::{Result, Unstructured};
use hotledger_crypto::{Digest, PublicKey, Signature};
use hotledger_fuzz::{arbitrary_tx, CHAIN_ID};
use hotledger_ledger::SignedTransaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => json(rest),
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                hex_text(text);
            }
        }
        2 => raw(rest),
        _ => {
            let _ = edited(&mut Unstructured::new(rest));
        }
    }
});

/// Checks a transaction parsed from JSON; returns whether it verifies.
fn check_tx(tx: &SignedTransaction) -> bool {
    let text = serde_json::to_string(tx).expect("a transaction serializes");
    let back: SignedTransaction = serde_json::from_str(&text).expect("its JSON parses");
    assert_eq!(&back, tx, "JSON round trip changed the transaction");
    assert_eq!(
        serde_json::to_string(&back).expect("serializes"),
        text,
        "JSON not stable"
    );
    assert_eq!(back.hash(), tx.hash());
    let verifies = tx.verify(CHAIN_ID).is_ok();
    assert_eq!(
        back.verify(CHAIN_ID).is_ok(),
        verifies,
        "verification changed"
    );
    let bin = postcard::to_allocvec(tx).expect("postcard encodes");
    assert_eq!(bin.len(), tx.encoded_len(), "encoded_len is wrong");
    let decoded: SignedTransaction = postcard::from_bytes(&bin).expect("postcard decodes");
    assert_eq!(&decoded, tx);
    verifies
}

fn json(data: &[u8]) {
    if let Ok(tx) = serde_json::from_slice::<SignedTransaction>(data) {
        check_tx(&tx);
    }
}

/// `from_hex` against the reference: `hex::decode` giving exactly `N` bytes.
fn reference<const N: usize>(text: &str) -> Option<[u8; N]> {
    hex::decode(text).ok()?.try_into().ok()
}

fn hex_text(text: &str) {
    let quoted = serde_json::to_string(text).expect("a string serializes");

    let digest = Digest::from_hex(text);
    assert_eq!(
        digest.as_ref().ok().map(|d| d.0),
        reference::<32>(text),
        "digest hex"
    );
    assert_eq!(Digest::from_str(text).ok(), digest.as_ref().ok().copied());
    assert_eq!(
        serde_json::from_str::<Digest>(&quoted).ok(),
        digest.as_ref().ok().copied()
    );
    if let Ok(d) = digest {
        assert_eq!(d.to_hex(), text.to_ascii_lowercase());
        assert_eq!(Digest::from_hex(&d.to_hex()).ok(), Some(d));
    }

    let key = PublicKey::from_hex(text);
    let expected = reference::<32>(text).and_then(|b| PublicKey::from_bytes(&b).ok());
    assert_eq!(key.as_ref().ok().copied(), expected, "public key hex");
    assert_eq!(PublicKey::from_str(text).ok(), expected);
    assert_eq!(serde_json::from_str::<PublicKey>(&quoted).ok(), expected);
    if let Ok(k) = key {
        assert_eq!(k.to_hex(), text.to_ascii_lowercase());
        assert_eq!(PublicKey::from_hex(&k.to_hex()).ok(), Some(k));
    }

    let sig = Signature::from_hex(text);
    assert_eq!(
        sig.as_ref().ok().map(|s| s.0),
        reference::<64>(text),
        "signature hex"
    );
    assert_eq!(Signature::from_str(text).ok(), sig.as_ref().ok().copied());
    assert_eq!(
        serde_json::from_str::<Signature>(&quoted).ok(),
        sig.as_ref().ok().copied()
    );
    if let Ok(s) = sig {
        assert_eq!(s.to_hex(), text.to_ascii_lowercase());
        assert_eq!(Signature::from_hex(&s.to_hex()).ok(), Some(s));
    }
}

fn raw(data: &[u8]) {
    if let Some(bytes) = data.first_chunk::<32>() {
        let d = Digest(*bytes);
        assert_eq!(Digest::from_hex(&d.to_hex()).ok(), Some(d));
        if let Ok(k) = PublicKey::from_bytes(bytes) {
            assert_eq!(k.to_bytes(), *bytes);
            assert_eq!(PublicKey::from_hex(&k.to_hex()).ok(), Some(k));
            assert_eq!(PublicKey::from_slice(bytes).ok(), Some(k));
        }
    }
    if let Some(bytes) = data.first_chunk::<64>() {
        let s = Signature(*bytes);
        assert_eq!(Signature::from_hex(&s.to_hex()).ok(), Some(s));
        assert_eq!(Signature::from_slice(bytes).ok(), Some(s));
    }
}

fn edited(u: &mut Unstructured<'_>) -> Result<()> {
    let tx = arbitrary_tx(u)?;
    let mut text = serde_json::to_vec(&tx).expect("serializes");
    let edits = u.int_in_range(0..=4)?;
    for _ in 0..edits {
        if text.is_empty() {
            break;
        }
        let at = u.choose_index(text.len())?;
        match u.int_in_range(0..=3)? {
            0 => text[at] = u.arbitrary()?,
            1 => text[at] = text[at].to_ascii_uppercase(),
            2 => text.insert(at, b' '),
            _ => {
                text.remove(at);
            }
        }
    }
    let Ok(parsed) = serde_json::from_slice::<SignedTransaction>(&text) else {
        return Ok(());
    };
    let verifies = check_tx(&parsed);
    if verifies {
        let back: SignedTransaction =
            serde_json::from_str(&serde_json::to_string(&parsed).expect("serializes"))
                .expect("parses");
        assert!(
            back.verify(CHAIN_ID).is_ok(),
            "a verifying transaction stopped verifying"
        );
    }
    if edits == 0 {
        assert_eq!(parsed, tx, "an unedited transaction changed");
        assert_eq!(verifies, tx.verify(CHAIN_ID).is_ok());
    }
    Ok(())
}
