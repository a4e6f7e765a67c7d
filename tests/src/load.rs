//! The simulated client: signed transfers between a fixed set of funded accounts, submitted to
//! every live node's mempool, as wallets submit to the validators (which gossip them on).

use std::collections::HashMap;

use hotledger_crypto::{Digest, KeyPair, PublicKey, Signature};
use hotledger_ledger::{SignedTransaction, Transfer};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Accounts funded at genesis that the client transfers between.
pub const ACCOUNTS: usize = 16;
/// Each account's genesis balance.
pub const BALANCE: u64 = 1_000_000_000;

/// The client's keys, the next nonce of each, and every transfer it signed (by hash, with
/// the signature: the hash does not cover it).
#[derive(Debug)]
pub struct Client {
    keys: Vec<KeyPair>,
    nonces: Vec<u64>,
    signed: HashMap<Digest, Signature>,
    last: Option<SignedTransaction>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Client {
        let keys = (0..ACCOUNTS)
            .map(|i| {
                let mut seed = [0xC1u8; 32];
                seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
                KeyPair::from_seed(seed)
            })
            .collect();
        Client {
            keys,
            nonces: vec![0; ACCOUNTS],
            signed: HashMap::new(),
            last: None,
        }
    }

    /// The genesis balances of the client's accounts.
    pub fn genesis_accounts(&self) -> Vec<(PublicKey, u64)> {
        self.keys.iter().map(|k| (k.public(), BALANCE)).collect()
    }

    /// A new transfer from a random account to another, signed with the account's next nonce.
    pub fn next(&mut self, rng: &mut ChaCha8Rng, chain_id: &str) -> (usize, SignedTransaction) {
        let from = rng.gen_range(0..ACCOUNTS);
        let to = (from + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
        let transfer = Transfer {
            from: self.keys[from].public(),
            to: self.keys[to].public(),
            amount: rng.gen_range(1..=1_000),
            nonce: self.nonces[from],
        };
        let tx = transfer.sign(&self.keys[from], chain_id);
        (from, tx)
    }

    /// The transfer was admitted by at least one node: its nonce is taken.
    pub fn admitted(&mut self, from: usize, tx: &SignedTransaction) {
        self.nonces[from] = self.nonces[from].saturating_add(1);
        self.signed.insert(tx.hash(), tx.signature);
        self.last = Some(tx.clone());
    }

    /// Whether the client signed the transfer with this hash, with exactly this signature.
    pub fn signed(&self, hash: &Digest, signature: &Signature) -> bool {
        self.signed.get(hash) == Some(signature)
    }

    /// The transfer most recently admitted somewhere.
    pub fn last_admitted(&self) -> Option<&SignedTransaction> {
        self.last.as_ref()
    }
}
