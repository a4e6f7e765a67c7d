//! Transfers, their signatures and their hashes.

use hotledger_crypto::{verify_batch_each, BatchItem, Digest, Domain, KeyPair, PublicKey};
use hotledger_crypto::{Hasher, Signature};
use serde::{Deserialize, Serialize};

use crate::LedgerError;

/// Domain tag of a transaction hash: `SHA-256(TX_HASH_TAG || signing_bytes)`.
pub const TX_HASH_TAG: &[u8] = b"hotledger/tx/v1";

/// Length of [`Transfer::signing_bytes`].
pub const SIGNING_BYTES_LEN: usize = 80;

/// Move `amount` from `from` to `to`; `nonce` must equal `from`'s account nonce when it executes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The sender, who signs.
    pub from: PublicKey,
    /// The recipient.
    pub to: PublicKey,
    /// The amount moved; must be positive.
    pub amount: u64,
    /// The sender's account nonce this transfer uses.
    pub nonce: u64,
}

impl Transfer {
    /// The explicit signed message: `from(32) || to(32) || amount(u64 BE) || nonce(u64 BE)`.
    ///
    /// It is signed under [`Domain::Transaction`] and the chain id, so the signature is bound to
    /// one chain and cannot be replayed as a consensus message.
    pub fn signing_bytes(&self) -> [u8; SIGNING_BYTES_LEN] {
        let amount = self.amount.to_be_bytes();
        let nonce = self.nonce.to_be_bytes();
        let fields = self
            .from
            .as_bytes()
            .iter()
            .chain(self.to.as_bytes())
            .chain(&amount)
            .chain(&nonce);
        let mut out = [0u8; SIGNING_BYTES_LEN];
        for (dst, src) in out.iter_mut().zip(fields) {
            *dst = *src;
        }
        out
    }

    /// Signs this transfer. `key` must be `from`'s key pair (checked in debug builds only; a
    /// transfer signed by another key simply fails verification).
    pub fn sign(self, key: &KeyPair, chain_id: &str) -> SignedTransaction {
        debug_assert_eq!(
            key.public(),
            self.from,
            "signing a transfer with a foreign key"
        );
        let signature = key.sign(Domain::Transaction, chain_id, &self.signing_bytes());
        SignedTransaction {
            transfer: self,
            signature,
        }
    }
}

/// A transfer and `from`'s signature over its [`Transfer::signing_bytes`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// What is signed.
    pub transfer: Transfer,
    /// `from`'s signature over the transfer's signing bytes.
    pub signature: Signature,
}

impl SignedTransaction {
    /// `SHA-256("hotledger/tx/v1" || signing_bytes)`.
    ///
    /// The hash does not cover the signature, so re-encoding or malleating a signature never
    /// yields a "new" transaction; one transfer has one hash.
    pub fn hash(&self) -> Digest {
        let mut hasher = Hasher::default();
        hasher
            .update(TX_HASH_TAG)
            .update(&self.transfer.signing_bytes());
        hasher.finalize()
    }

    /// Checks the signature (strict Ed25519) for `chain_id`.
    pub fn verify(&self, chain_id: &str) -> Result<(), LedgerError> {
        self.transfer
            .from
            .verify(
                Domain::Transaction,
                chain_id,
                &self.transfer.signing_bytes(),
                &self.signature,
            )
            .map_err(|_| LedgerError::BadSignature { index: 0 })
    }

    /// The size of the postcard encoding: two 32-byte keys, two varints, a 64-byte signature.
    pub fn encoded_len(&self) -> usize {
        PublicKey::LEN
            + PublicKey::LEN
            + varint_len(self.transfer.amount)
            + varint_len(self.transfer.nonce)
            + Signature::LEN
    }
}

/// Length of a LEB128 varint (postcard's integer encoding): 1 to 10 bytes.
fn varint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Verifies all signatures in one batch. On failure, names the first bad transaction.
pub fn verify_transactions(chain_id: &str, txs: &[&SignedTransaction]) -> Result<(), LedgerError> {
    match signature_flags(chain_id, txs).iter().position(|ok| !ok) {
        None => Ok(()),
        Some(index) => Err(LedgerError::BadSignature { index }),
    }
}

/// One flag per transaction: is its signature valid? One batch check; only after a failure is
/// each one checked on its own ([`verify_batch_each`]).
pub(crate) fn signature_flags(chain_id: &str, txs: &[&SignedTransaction]) -> Vec<bool> {
    let messages: Vec<[u8; SIGNING_BYTES_LEN]> =
        txs.iter().map(|tx| tx.transfer.signing_bytes()).collect();
    let items: Vec<BatchItem<'_>> = txs
        .iter()
        .zip(&messages)
        .map(|(tx, msg)| BatchItem {
            key: &tx.transfer.from,
            domain: Domain::Transaction,
            msg,
            sig: &tx.signature,
        })
        .collect();
    verify_batch_each(chain_id, &items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_postcard() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let encoded = postcard::to_allocvec(&v).unwrap();
            assert_eq!(varint_len(v), encoded.len(), "value {v}");
        }
    }
}
