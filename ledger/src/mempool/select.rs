//! Choosing the transactions of a proposal.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::hash::BuildHasher;

use foldhash::{HashMap, HashMapExt};

use hotledger_crypto::{Digest, PublicKey};

use super::Mempool;
use crate::{AccountReader, SignedTransaction};

/// Per-sender progress through [`Mempool::select`]: the next nonce to take and the balance left.
#[derive(Clone, Copy)]
struct Cursor {
    next: u64,
    balance: u64,
}

impl Mempool {
    /// Transactions for a proposal, at most `max_txs` and `max_bytes` (encoded), in order of
    /// arrival, such that they all execute: per sender only consecutive nonces starting at the
    /// committed nonce, whose amounts the committed balance covers. Hashes in `exclude` (already
    /// in uncommitted ancestor blocks) are skipped but count as taken. A nonce missing from the
    /// mempool ends that sender's run; selection stops at the first transaction that does not
    /// fit in `max_bytes`. Cost: O(k log n) for k transactions visited, at worst the whole pool.
    pub fn select<S: BuildHasher>(
        &self,
        state: &impl AccountReader,
        max_txs: usize,
        max_bytes: usize,
        exclude: &HashSet<Digest, S>,
    ) -> Vec<SignedTransaction> {
        let mut out = Vec::new();
        let mut bytes: usize = 0;
        let mut cursors: HashMap<PublicKey, Option<Cursor>> = HashMap::new();
        // Successors that arrived before the arrival cursor: taken in `seq` order too.
        let mut ready: BinaryHeap<Reverse<(u64, PublicKey, u64)>> = BinaryHeap::new();
        let mut arrivals = self.arrival.iter().peekable();
        while out.len() < max_txs {
            let next_arrival = arrivals.peek().map(|(seq, _)| **seq);
            let from_ready = match (ready.peek(), next_arrival) {
                (Some(Reverse((seq, _, _))), Some(arrival)) => *seq < arrival,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (sender, nonce) = if from_ready {
                match ready.pop() {
                    Some(Reverse((_, sender, nonce))) => (sender, nonce),
                    None => break,
                }
            } else {
                match arrivals.next() {
                    Some((_, (sender, nonce))) => (*sender, *nonce),
                    None => break,
                }
            };
            let Some(pending) = self.pending(&sender, nonce) else {
                continue;
            };
            let cursor = cursors
                .entry(sender)
                .or_insert_with(|| self.start_cursor(state, &sender, exclude));
            let Some(cur) = cursor.as_mut() else {
                continue;
            };
            if nonce != cur.next {
                continue; // stale, or waiting for its predecessor
            }
            let Some(new_bytes) = bytes.checked_add(pending.size).filter(|b| *b <= max_bytes)
            else {
                break;
            };
            let Some(balance) = cur.balance.checked_sub(pending.tx.transfer.amount) else {
                *cursor = None;
                continue;
            };
            out.push(pending.tx.clone());
            bytes = new_bytes;
            cur.balance = balance;
            *cursor = nonce
                .checked_add(1)
                .and_then(|next| self.skip_excluded(&sender, Cursor { next, balance }, exclude));
            if let Some(successor) = cursor.and_then(|c| self.pending(&sender, c.next)) {
                if arrivals.peek().is_none_or(|(seq, _)| successor.seq < **seq) {
                    ready.push(Reverse((
                        successor.seq,
                        sender,
                        successor.tx.transfer.nonce,
                    )));
                }
            }
        }
        out
    }

    fn start_cursor<S: BuildHasher>(
        &self,
        state: &impl AccountReader,
        sender: &PublicKey,
        exclude: &HashSet<Digest, S>,
    ) -> Option<Cursor> {
        let account = state.account(sender).ok().flatten()?;
        let cursor = Cursor {
            next: account.nonce,
            balance: account.balance,
        };
        self.skip_excluded(sender, cursor, exclude)
    }

    /// Moves past excluded transactions, paying their amounts; `None` if the balance runs out.
    fn skip_excluded<S: BuildHasher>(
        &self,
        sender: &PublicKey,
        mut cur: Cursor,
        exclude: &HashSet<Digest, S>,
    ) -> Option<Cursor> {
        while let Some(p) = self.pending(sender, cur.next) {
            if !exclude.contains(&p.hash) {
                break;
            }
            cur.balance = cur.balance.checked_sub(p.tx.transfer.amount)?;
            cur.next = cur.next.checked_add(1)?;
        }
        Some(cur)
    }
}
