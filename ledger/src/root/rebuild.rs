//! Recomputing a committed version's nodes from its values, after a crash lost them.

use std::collections::BTreeMap;

use hotledger_crypto::{Digest, PublicKey};
use jmt::storage::{NodeBatch, TreeReader};

use super::{account_key_hash, compute_state_root, decode_account};
use crate::LedgerError;

/// Recomputes the nodes of version `height` on top of version `height - 1` (both read through
/// `reader`), from the values at `height` of the accounts in `touched`: those the committed block
/// may have changed. A superset is fine (an account holding the same value leaves the root as it
/// was); an account absent at `height` is skipped. The values must already be stored, as every
/// commit writes them. The root must equal `stored`, the one the commit recorded, or the rebuild
/// is [`LedgerError::RootMismatch`]. Returns the version's batch, for the store to hold.
pub fn rebuild_version<R: TreeReader>(
    reader: &R,
    height: u64,
    touched: &[PublicKey],
    stored: &Digest,
) -> Result<NodeBatch, LedgerError> {
    let mut accounts = BTreeMap::new();
    for key in touched {
        let value = reader
            .get_value_option(height, account_key_hash(key))
            .map_err(LedgerError::tree)?;
        if let Some(bytes) = value {
            accounts.insert(*key, decode_account(&bytes)?);
        }
    }
    let (rebuilt, batch) = compute_state_root(reader, height, &accounts)?;
    if rebuilt != *stored {
        return Err(LedgerError::RootMismatch {
            height,
            rebuilt,
            stored: *stored,
        });
    }
    Ok(batch.node_batch)
}
