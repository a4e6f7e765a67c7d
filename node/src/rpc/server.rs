//! The method implementations. Blocking work (signature verification under the mempool lock,
//! RocksDB reads) runs on tokio's blocking pool, never on the async workers.

use std::sync::{Arc, MutexGuard};

use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::{BlockPayload, Mempool, Origin, Rejection, SignedTransaction};
use jsonrpsee::core::{async_trait, RpcResult};
use jsonrpsee::types::error::{INTERNAL_ERROR_CODE, INVALID_PARAMS_CODE};
use jsonrpsee::types::ErrorObjectOwned;

use super::types::{AccountView, BlockView, Status, SubmitOutcome, TxState, TxStatus};
use super::{HotledgerApiServer, CATCHING_UP, CATCHING_UP_BLOCKS, PRUNED, REJECTED};
use crate::shared::Shared;
use crate::storage::ChainStore;

/// The JSON-RPC handler; cheap to clone.
#[derive(Clone, Debug)]
pub struct RpcServer {
    shared: Arc<Shared>,
}

impl RpcServer {
    pub fn new(shared: Arc<Shared>) -> Self {
        RpcServer { shared }
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> RpcResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> RpcResult<T> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| internal(format!("request task failed: {e}")))?
    }
}

fn internal(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INTERNAL_ERROR_CODE, message.into(), None::<()>)
}

fn rejected(rejection: &Rejection) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(REJECTED, rejection.to_string(), Some(rejection))
}

/// Refuses submissions while this node is far behind the chain: it would neither propose them
/// soon nor, busy fetching blocks, pass them on promptly.
fn check_caught_up(shared: &Shared) -> RpcResult<()> {
    let status = shared.status();
    if status.high_qc_height > status.height.saturating_add(CATCHING_UP_BLOCKS) {
        return Err(ErrorObjectOwned::owned(
            CATCHING_UP,
            format!(
                "node is catching up (committed height {}, certified height {}); submit to \
                 another node or retry later",
                status.height, status.high_qc_height
            ),
            Some(serde_json::json!({
                "height": status.height,
                "certified_height": status.high_qc_height,
            })),
        ));
    }
    Ok(())
}

fn lock_mempool(shared: &Shared) -> RpcResult<MutexGuard<'_, Mempool>> {
    shared
        .mempool
        .lock()
        .map_err(|_| internal("mempool unavailable (a thread panicked while holding it)"))
}

/// Admits `txs` in one batch (one signature batch verification), gossips the admitted ones and
/// counts the rejections.
fn admit(
    shared: &Shared,
    txs: Vec<SignedTransaction>,
) -> RpcResult<Vec<Result<Digest, Rejection>>> {
    let results = shared
        .admit(txs.clone(), Origin::Client)
        .map_err(|_| internal("mempool unavailable (a thread panicked while holding it)"))?;
    let mut accepted = Vec::new();
    let mut rejections = 0u64;
    for (tx, result) in txs.into_iter().zip(&results) {
        match result {
            Ok(_) => accepted.push(tx),
            Err(_) => rejections += 1,
        }
    }
    if rejections > 0 {
        shared.metrics.rejected_txs.inc_by(rejections);
    }
    // Recorded before anything is acknowledged. If the record fails, nothing is: the
    // transactions may still commit (they are in the mempool), but no promise is made.
    if let Err(e) = shared.record_admitted(&accepted) {
        tracing::error!("cannot record admitted transactions: {e}");
        return Err(internal(format!(
            "the submission was not recorded ({e}); it is not acknowledged, submit it again"
        )));
    }
    if !accepted.is_empty() {
        // A full queue is fine: the transactions stay in our mempool and are proposed by us.
        let _ = shared.gossip.try_send(accepted);
    }
    Ok(results)
}

#[async_trait]
impl HotledgerApiServer for RpcServer {
    async fn submit_transaction(&self, tx: SignedTransaction) -> RpcResult<Digest> {
        check_caught_up(&self.shared)?;
        self.blocking(move |shared| {
            let result = admit(shared, vec![tx])?.into_iter().next();
            match result {
                Some(Ok(hash)) => Ok(hash),
                Some(Err(Rejection::State { reason })) => {
                    Err(internal(format!("state unavailable: {reason}")))
                }
                Some(Err(rejection)) => Err(rejected(&rejection)),
                None => Err(internal("the mempool returned no result")),
            }
        })
        .await
    }

    async fn submit_transactions(
        &self,
        txs: Vec<SignedTransaction>,
    ) -> RpcResult<Vec<SubmitOutcome>> {
        let max = self.shared.max_batch;
        if txs.len() > max {
            return Err(ErrorObjectOwned::owned(
                INVALID_PARAMS_CODE,
                format!("{} transactions exceed the batch limit of {max}", txs.len()),
                None::<()>,
            ));
        }
        if txs.is_empty() {
            return Ok(Vec::new());
        }
        check_caught_up(&self.shared)?;
        self.blocking(move |shared| {
            Ok(admit(shared, txs)?
                .into_iter()
                .map(|result| match result {
                    Ok(hash) => SubmitOutcome {
                        hash: Some(hash),
                        error: None,
                    },
                    Err(rejection) => SubmitOutcome {
                        hash: None,
                        error: Some(rejection.to_string()),
                    },
                })
                .collect())
        })
        .await
    }

    async fn get_transaction(&self, hash: Digest) -> RpcResult<TxStatus> {
        self.blocking(move |shared| {
            if let Some(record) = shared
                .store
                .tx(&hash)
                .map_err(|e| internal(e.to_string()))?
            {
                return Ok(TxStatus {
                    hash,
                    status: TxState::Committed,
                    height: Some(record.height),
                    index: Some(record.index),
                    outcome: Some(record.outcome),
                });
            }
            let pending = lock_mempool(shared)?.contains(&hash);
            Ok(TxStatus {
                hash,
                status: if pending {
                    TxState::Pending
                } else {
                    TxState::Unknown
                },
                height: None,
                index: None,
                outcome: None,
            })
        })
        .await
    }

    async fn get_account(&self, public_key: PublicKey) -> RpcResult<Option<AccountView>> {
        self.blocking(move |shared| {
            let store_err = |e: crate::storage::StorageError| internal(e.to_string());
            let height = shared
                .store
                .tip()
                .map_err(store_err)?
                .map_or(0, |t| t.block.height);
            let Some(account) = shared.store.account(&public_key).map_err(store_err)? else {
                return Ok(None);
            };
            let pending_nonce = lock_mempool(shared)?.next_nonce(&public_key, account.nonce);
            Ok(Some(AccountView {
                public_key,
                balance: account.balance,
                nonce: account.nonce,
                pending_nonce,
                height,
            }))
        })
        .await
    }

    async fn get_block(&self, height: Option<u64>) -> RpcResult<Option<BlockView>> {
        self.blocking(move |shared| {
            let store_err = |e: crate::storage::StorageError| internal(e.to_string());
            let height = match height {
                Some(h) => h,
                None => shared
                    .store
                    .tip()
                    .map_err(store_err)?
                    .map_or(0, |t| t.block.height),
            };
            if height == 0 {
                return Ok(None); // genesis has no stored block
            }
            let earliest = shared.store.earliest().map_err(store_err)?;
            if height < earliest {
                return Err(ErrorObjectOwned::owned(
                    PRUNED,
                    format!(
                        "block {height} is pruned: this node keeps blocks from height {earliest}; \
                         ask an archive node"
                    ),
                    Some(serde_json::json!({ "height": height, "earliest": earliest })),
                ));
            }
            let Some(stored) = shared.store.block_by_height(height).map_err(store_err)? else {
                return Ok(None);
            };
            let block = &stored.block;
            let (payload, hashes) =
                BlockPayload::decode_hashed(&block.payload, usize::MAX, usize::MAX).map_err(
                    |e| internal(format!("stored block {height} has a bad payload: {e}")),
                )?;
            Ok(Some(BlockView {
                height: block.height,
                id: block.id,
                round: block.round,
                parent_id: block.qc.data.block.id,
                timestamp_ms: block.timestamp_ms,
                proposer: block.author,
                state_root: stored.state_root,
                txs_root: payload.txs_root,
                tx_count: hashes.len(),
                payload_state_height: payload.state_height,
                payload_state_root: payload.state_root,
                txs: hashes,
            }))
        })
        .await
    }

    async fn status(&self) -> RpcResult<Status> {
        Ok(self.shared.status())
    }
}
