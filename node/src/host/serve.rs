//! Serving a peer's block request from the core's tree and the store, at most
//! [`REQUESTS_PER_PEER_PER_SEC`] a second for each peer.

use std::cell::RefCell;
use std::collections::HashMap;

use hotledger_consensus::{BlockResponse, Consensus, Message};
use hotledger_crypto::{Digest, PublicKey};

use crate::error::NodeError;
use crate::storage::{ChainStore, StorageError};

/// Most block requests answered per peer per second; more are dropped unanswered. A node
/// catching up asks each peer for a missing chain once and again only when its request
/// expires, so an honest peer stays far below it.
pub(super) const REQUESTS_PER_PEER_PER_SEC: u32 = 16;

/// How many block requests each peer had answered in the current one-second window.
#[derive(Debug, Default)]
pub(super) struct Served {
    windows: HashMap<PublicKey, (u64, u32)>,
}

impl Served {
    /// Whether `peer`'s request at `now_ms` is answered (and counts it if so).
    pub(super) fn allow(&mut self, peer: PublicKey, now_ms: u64) -> bool {
        self.windows
            .retain(|_, (start, _)| now_ms.saturating_sub(*start) < 1_000);
        let (_, n) = self.windows.entry(peer).or_insert((now_ms, 0));
        if *n >= REQUESTS_PER_PEER_PER_SEC {
            return false;
        }
        *n = n.saturating_add(1);
        true
    }
}

/// Bytes counted for a block's fields besides its payload when fitting a response.
const BLOCK_OVERHEAD_BYTES: usize = 1_024;

/// The response to a request for `count` blocks ending at `id` (its ancestors, newest first,
/// as `Consensus::collect_chain` walks them), cut to `budget` bytes but never below one block;
/// `None` if this node has none of them.
pub(super) fn blocks<S: ChainStore>(
    core: &Consensus,
    store: &S,
    id: Digest,
    count: u32,
    budget: usize,
) -> Result<Option<Message>, NodeError> {
    let failure: RefCell<Option<StorageError>> = RefCell::new(None);
    let mut blocks = core.collect_chain(&id, count, |id| match store.block_by_id(id) {
        Ok(block) => block,
        Err(e) => {
            failure.borrow_mut().get_or_insert(e);
            None
        }
    });
    if let Some(e) = failure.into_inner() {
        return Err(e.into());
    }
    let mut used = 0usize;
    let keep = blocks
        .iter()
        .take_while(|b| {
            used = used.saturating_add(b.payload.len().saturating_add(BLOCK_OVERHEAD_BYTES));
            used <= budget
        })
        .count()
        .max(1);
    blocks.truncate(keep);
    if blocks.is_empty() {
        return Ok(None);
    }
    Ok(Some(Message::BlockResponse(BlockResponse { blocks })))
}

#[cfg(test)]
mod tests {
    use hotledger_crypto::KeyPair;

    use super::*;

    #[test]
    fn each_peer_gets_its_own_requests_per_second() {
        let (a, b) = (
            KeyPair::from_seed([1; 32]).public(),
            KeyPair::from_seed([2; 32]).public(),
        );
        let mut served = Served::default();
        let limit = REQUESTS_PER_PEER_PER_SEC as usize;
        let answered = (0..limit + 5).filter(|_| served.allow(a, 10_000)).count();
        assert_eq!(answered, limit);
        assert!(served.allow(b, 10_500), "another peer is not held back");
        assert!(!served.allow(a, 10_999));
        assert!(served.allow(a, 11_000), "a new second");
    }
}
