//! Shared helpers for the ledger tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use hotledger_crypto::{KeyPair, PublicKey, Signature};
use hotledger_ledger::{Account, SignedTransaction, Transfer};

pub const CHAIN: &str = "hotledger-test";

/// A deterministic key pair per index.
pub fn key(i: u8) -> KeyPair {
    KeyPair::from_seed([i.wrapping_add(1); 32])
}

pub fn pk(i: u8) -> PublicKey {
    key(i).public()
}

/// A transfer from key `from` to key `to`, signed for [`CHAIN`].
pub fn signed(from: u8, to: u8, amount: u64, nonce: u64) -> SignedTransaction {
    Transfer {
        from: pk(from),
        to: pk(to),
        amount,
        nonce,
    }
    .sign(&key(from), CHAIN)
}

/// An unsigned transfer (execution does not check signatures).
pub fn unsigned(from: PublicKey, to: PublicKey, amount: u64, nonce: u64) -> SignedTransaction {
    SignedTransaction {
        transfer: Transfer {
            from,
            to,
            amount,
            nonce,
        },
        signature: Signature([0u8; 64]),
    }
}

/// Accounts with the given balances and nonce 0, keyed by `pk(i)`.
pub fn accounts(balances: &[(u8, u64)]) -> BTreeMap<PublicKey, Account> {
    balances
        .iter()
        .map(|(i, balance)| {
            (
                pk(*i),
                Account {
                    balance: *balance,
                    nonce: 0,
                },
            )
        })
        .collect()
}

/// Sum of all balances, as u128 so that it cannot overflow.
pub fn supply(accounts: &BTreeMap<PublicKey, Account>) -> u128 {
    accounts.values().map(|a| u128::from(a.balance)).sum()
}
