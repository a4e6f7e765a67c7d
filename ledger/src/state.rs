//! Accounts and the deterministic execution of a block's transactions.

use std::collections::{BTreeMap, HashMap};

use hotledger_crypto::PublicKey;
use serde::{Deserialize, Serialize};

use crate::{LedgerError, SignedTransaction};

/// One account. `nonce` is the next nonce this account must use (the number of transfers it has
/// made so far).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The funds held.
    pub balance: u64,
    /// The nonce of this account's next transfer.
    pub nonce: u64,
}

/// Read access to committed accounts (the node implements it over its store; the state tree
/// and plain maps implement it here).
pub trait AccountReader {
    /// The account, or `None` if it never received funds.
    fn account(&self, key: &PublicKey) -> Result<Option<Account>, LedgerError>;
}

impl<T: AccountReader + ?Sized> AccountReader for &T {
    fn account(&self, key: &PublicKey) -> Result<Option<Account>, LedgerError> {
        (**self).account(key)
    }
}

impl AccountReader for BTreeMap<PublicKey, Account> {
    fn account(&self, key: &PublicKey) -> Result<Option<Account>, LedgerError> {
        Ok(self.get(key).copied())
    }
}

impl<S: std::hash::BuildHasher> AccountReader for HashMap<PublicKey, Account, S> {
    fn account(&self, key: &PublicKey) -> Result<Option<Account>, LedgerError> {
        Ok(self.get(key).copied())
    }
}

/// Accounts of `base` with `overlay` applied on top (e.g. the committed state plus the updates
/// of executed but not yet committed blocks).
#[derive(Debug, Clone, Copy)]
pub struct Overlay<'a, R: ?Sized> {
    /// The accounts below.
    pub base: &'a R,
    /// The accounts that replace `base`'s.
    pub overlay: &'a BTreeMap<PublicKey, Account>,
}

impl<R: AccountReader + ?Sized> AccountReader for Overlay<'_, R> {
    fn account(&self, key: &PublicKey) -> Result<Option<Account>, LedgerError> {
        match self.overlay.get(key) {
            Some(account) => Ok(Some(*account)),
            None => self.base.account(key),
        }
    }
}

/// What happened to one transaction of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxOutcome {
    /// The transfer moved its amount and advanced the sender's nonce.
    Applied,
    /// The transfer changed nothing, for this reason.
    Failed(TxError),
}

/// Why a transaction in a committed block changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TxError {
    /// A transfer of zero.
    #[error("transfer of zero")]
    ZeroAmount,
    /// A transfer to its own sender.
    #[error("transfer to self")]
    SelfTransfer,
    /// The sender has no account.
    #[error("unknown sender")]
    UnknownSender,
    /// The nonce is not the sender's account nonce.
    #[error("bad nonce: expected {expected}, got {got}")]
    BadNonce {
        /// The sender's account nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The amount is above the sender's balance.
    #[error("insufficient balance: {balance} < {amount}")]
    InsufficientBalance {
        /// The sender's balance.
        balance: u64,
        /// The amount.
        amount: u64,
    },
    /// The recipient's balance or the sender's nonce would overflow.
    #[error("balance or nonce overflow")]
    Overflow,
}

/// The result of executing a block: the new value of every account the block changed, and one
/// outcome per transaction, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Execution {
    /// The new value of every account the block changed.
    pub updates: BTreeMap<PublicKey, Account>,
    /// One outcome per transaction, in payload order.
    pub outcomes: Vec<TxOutcome>,
}

impl Execution {
    /// How many transactions were applied.
    pub fn applied(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, TxOutcome::Applied))
            .count()
    }
}

/// Executes `txs` in order on top of `reader`.
///
/// Each transaction sees the effects of the ones before it. A failing transaction changes
/// nothing (not even the sender's nonce) and is recorded as [`TxOutcome::Failed`]. The checks,
/// in order: zero amount, self transfer, unknown sender, nonce, balance, then overflow of the
/// recipient's balance or the sender's nonce. Total supply is unchanged: every applied transfer
/// subtracts `amount` from one balance and adds it to another.
///
/// Signatures are NOT checked here (the node verified each one once, at admission or on
/// receipt of the proposal). Errors only come from `reader`.
pub fn execute(
    reader: &impl AccountReader,
    txs: &[SignedTransaction],
) -> Result<Execution, LedgerError> {
    let mut exec = Execution {
        updates: BTreeMap::new(),
        outcomes: Vec::with_capacity(txs.len()),
    };
    for tx in txs {
        let view = Overlay {
            base: reader,
            overlay: &exec.updates,
        };
        let outcome = match apply(&view, tx)? {
            Ok((from, sender, to, recipient)) => {
                exec.updates.insert(from, sender);
                exec.updates.insert(to, recipient);
                TxOutcome::Applied
            }
            Err(err) => TxOutcome::Failed(err),
        };
        exec.outcomes.push(outcome);
    }
    Ok(exec)
}

type Applied = (PublicKey, Account, PublicKey, Account);

/// Checks one transaction against `view` and returns the new sender and recipient accounts.
fn apply(
    view: &impl AccountReader,
    tx: &SignedTransaction,
) -> Result<Result<Applied, TxError>, LedgerError> {
    let t = &tx.transfer;
    if t.amount == 0 {
        return Ok(Err(TxError::ZeroAmount));
    }
    if t.from == t.to {
        return Ok(Err(TxError::SelfTransfer));
    }
    let Some(sender) = view.account(&t.from)? else {
        return Ok(Err(TxError::UnknownSender));
    };
    if t.nonce != sender.nonce {
        return Ok(Err(TxError::BadNonce {
            expected: sender.nonce,
            got: t.nonce,
        }));
    }
    let Some(sender_balance) = sender.balance.checked_sub(t.amount) else {
        return Ok(Err(TxError::InsufficientBalance {
            balance: sender.balance,
            amount: t.amount,
        }));
    };
    let recipient = view.account(&t.to)?.unwrap_or_default();
    let (Some(recipient_balance), Some(sender_nonce)) = (
        recipient.balance.checked_add(t.amount),
        sender.nonce.checked_add(1),
    ) else {
        return Ok(Err(TxError::Overflow));
    };
    Ok(Ok((
        t.from,
        Account {
            balance: sender_balance,
            nonce: sender_nonce,
        },
        t.to,
        Account {
            balance: recipient_balance,
            nonce: recipient.nonce,
        },
    )))
}
