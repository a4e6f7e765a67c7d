//! Account proofs against a state root, for queries.

use hotledger_crypto::{Digest, PublicKey};
use jmt::storage::TreeReader;
use jmt::{RootHash, Sha256Jmt};

use super::{account_key_hash, decode_account, encode_account};
use crate::{Account, LedgerError};

/// A jmt inclusion or exclusion proof for one account (serde-serializable, for JSON-RPC).
pub type AccountProof = jmt::proof::SparseMerkleProof<sha2::Sha256>;

/// The account at version `height` and a proof of it (or of its absence) against that root.
pub fn prove_account<R: TreeReader>(
    reader: &R,
    height: u64,
    key: &PublicKey,
) -> Result<(Option<Account>, AccountProof), LedgerError> {
    let (value, proof) = Sha256Jmt::new(reader)
        .get_with_proof(account_key_hash(key), height)
        .map_err(LedgerError::tree)?;
    let account = value.as_deref().map(decode_account).transpose()?;
    Ok((account, proof))
}

/// Checks that `proof` shows `key` holding `account` (`None`: absent) under `root`.
pub fn verify_account_proof(
    root: &Digest,
    key: &PublicKey,
    account: Option<&Account>,
    proof: &AccountProof,
) -> Result<(), LedgerError> {
    let value = account.map(encode_account).transpose()?;
    proof
        .verify(RootHash(root.0), account_key_hash(key), value)
        .map_err(LedgerError::tree)
}
