//! Helpers shared by the fuzz targets (`fuzz_targets/`): structured inputs built with
//! `arbitrary`, and the opt-in strict checks.

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use hotledger_crypto::{KeyPair, PublicKey, Signature};
use hotledger_ledger::{SignedTransaction, Transfer};

/// The chain id the structured transactions are signed for.
pub const CHAIN_ID: &str = "hotledger-fuzz";

/// How many distinct keys the structured inputs draw from: few, so that accounts repeat.
pub const KEYS: u8 = 8;

/// Whether `HOTLEDGER_FUZZ_STRICT=1`: also assert that an accepted encoding is the canonical one
/// (`encode(decode(bytes)) == bytes`). Off by default: postcard accepts over-long varints, so
/// one message has several encodings (see fuzz/README.md, "Findings").
pub fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("HOTLEDGER_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

/// The key pair of seed `[i; 32]`, cached (deriving one costs a scalar multiplication).
pub fn key(i: u8) -> &'static KeyPair {
    static KEYS_CACHE: OnceLock<Vec<KeyPair>> = OnceLock::new();
    let keys = KEYS_CACHE.get_or_init(|| (0..KEYS).map(|i| KeyPair::from_seed([i; 32])).collect());
    &keys[usize::from(i % KEYS)]
}

/// One of the [`KEYS`] public keys.
pub fn arbitrary_public(u: &mut Unstructured<'_>) -> Result<PublicKey> {
    Ok(key(u.arbitrary()?).public())
}

/// A transfer between two of the [`KEYS`] keys, signed by its sender for [`CHAIN_ID`]; when
/// the input says so, the signature is then damaged (one bit flipped).
pub fn arbitrary_tx(u: &mut Unstructured<'_>) -> Result<SignedTransaction> {
    let sender = key(u.arbitrary()?);
    let transfer = Transfer {
        from: sender.public(),
        to: arbitrary_public(u)?,
        amount: u.arbitrary()?,
        nonce: u.arbitrary()?,
    };
    let mut tx = transfer.sign(sender, CHAIN_ID);
    if u.ratio(1, 8)? {
        let bit: u16 = u.int_in_range(0..=511)?;
        tx.signature = flip_bit(tx.signature, bit);
    }
    Ok(tx)
}

/// A transfer between two of the [`KEYS`] keys with arbitrary signature bytes: for decoders,
/// which never check signatures (signing is most of [`arbitrary_tx`]'s cost).
pub fn arbitrary_unsigned_tx(u: &mut Unstructured<'_>) -> Result<SignedTransaction> {
    let transfer = Transfer {
        from: arbitrary_public(u)?,
        to: arbitrary_public(u)?,
        amount: u.arbitrary()?,
        nonce: u.arbitrary()?,
    };
    Ok(SignedTransaction {
        transfer,
        signature: Signature(u.arbitrary()?),
    })
}

/// `signature` with bit `bit` (0..512) flipped.
pub fn flip_bit(signature: Signature, bit: u16) -> Signature {
    let mut bytes = signature.to_bytes();
    bytes[usize::from(bit / 8) % 64] ^= 1 << (bit % 8);
    Signature(bytes)
}
