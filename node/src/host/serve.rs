//! Serving a peer's block request from the core's tree and the store.

use std::cell::RefCell;

use hotledger_consensus::{BlockResponse, Consensus, Message};
use hotledger_crypto::Digest;

use crate::error::NodeError;
use crate::storage::{ChainStore, StorageError};

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
