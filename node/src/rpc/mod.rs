//! JSON-RPC 2.0 over HTTP (`jsonrpsee`).
//!
//! | method | params | result |
//! |---|---|---|
//! | `submit_transaction` | `[tx]` | tx hash |
//! | `submit_transactions` | `[[tx, ...]]` (at most `max_batch`) | `[{hash, error}, ...]` |
//! | `get_transaction` | `[hash]` | [`TxStatus`] |
//! | `get_account` | `[public_key]` | [`AccountView`] or `null` |
//! | `get_block` | `[height]` or `[null]` / `[]` (latest) | [`BlockView`] or `null` |
//! | `status` | `[]` | [`Status`] |
//!
//! Error codes: [`REJECTED`] (`-32001`) when the mempool refuses a transaction (message: the
//! reason; data: the `Rejection` as JSON); [`CATCHING_UP`] (`-32002`) when the node is more
//! than [`CATCHING_UP_BLOCKS`] blocks behind the highest certified block it knows, so a
//! transfer would wait there until it caught up (data: `{height, certified_height}`; a wallet
//! sends it to another node); [`PRUNED`] (`-32004`) for a block below the lowest height this
//! node still holds (data: `{height, earliest}`; an archive node, `pruning = "nothing"`, has
//! them); `-32602` for bad params or an oversized batch;
//! `-32603` when the store fails; `-32700` for malformed JSON (answered by jsonrpsee).
//!
//! The CLI uses the client this module generates ([`HotledgerApiClient`]).

mod server;
pub mod types;

use std::net::SocketAddr;
use std::sync::Arc;

use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::SignedTransaction;
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::server::{ServerBuilder, ServerConfig, ServerHandle};

use crate::config::RpcConfig;
use crate::error::NodeError;
use crate::shared::Shared;

pub use server::RpcServer;
pub use types::{AccountView, BlockView, Status, SubmitOutcome, TxState, TxStatus};

/// JSON-RPC error code of a transaction the mempool refused.
pub const REJECTED: i32 = -32001;

/// JSON-RPC error code of a submission to a node that is catching up with the chain.
pub const CATCHING_UP: i32 = -32002;

/// JSON-RPC error code of a query for a committed height this node has pruned (data:
/// `{height, earliest}`, the lowest height it still holds).
pub const PRUNED: i32 = -32004;

/// How far behind the highest certified block a node refuses submissions.
pub const CATCHING_UP_BLOCKS: u64 = 50;

/// Largest response body. `get_block` of a full block (10,000 hashes) is under 1 MiB.
pub const MAX_RESPONSE_BYTES: u32 = 16 * 1024 * 1024;

/// The node's JSON-RPC API.
#[rpc(server, client)]
pub trait HotledgerApi {
    /// Admits one transaction to the mempool and gossips it; returns its hash.
    #[method(name = "submit_transaction")]
    async fn submit_transaction(&self, tx: SignedTransaction) -> RpcResult<Digest>;

    /// Admits a batch (signatures verified together); one outcome per transaction, in order.
    #[method(name = "submit_transactions")]
    async fn submit_transactions(
        &self,
        txs: Vec<SignedTransaction>,
    ) -> RpcResult<Vec<SubmitOutcome>>;

    /// Committed, pending or unknown.
    #[method(name = "get_transaction")]
    async fn get_transaction(&self, hash: Digest) -> RpcResult<TxStatus>;

    /// The committed account, or `null` if it never received funds.
    #[method(name = "get_account")]
    async fn get_account(&self, public_key: PublicKey) -> RpcResult<Option<AccountView>>;

    /// The committed block at `height` (the latest if omitted); `null` if there is none.
    #[method(name = "get_block")]
    async fn get_block(&self, height: Option<u64>) -> RpcResult<Option<BlockView>>;

    /// The node's current status.
    #[method(name = "status")]
    async fn status(&self) -> RpcResult<Status>;
}

/// Starts the server on `cfg.listen`; it runs until the handle is stopped or dropped.
pub async fn serve(cfg: &RpcConfig, shared: Arc<Shared>) -> Result<ServerHandle, NodeError> {
    serve_bound(cfg, shared).await.map(|(handle, _)| handle)
}

/// Like [`serve`], also returning the bound address (useful with port 0).
pub async fn serve_bound(
    cfg: &RpcConfig,
    shared: Arc<Shared>,
) -> Result<(ServerHandle, SocketAddr), NodeError> {
    let config = ServerConfig::builder()
        .max_request_body_size(cfg.max_request_bytes)
        .max_response_body_size(MAX_RESPONSE_BYTES.max(cfg.max_request_bytes))
        .max_connections(cfg.max_connections)
        .http_only()
        .build();
    let server = ServerBuilder::default()
        .set_config(config)
        .build(cfg.listen)
        .await
        .map_err(|e| NodeError::Rpc(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = server
        .local_addr()
        .map_err(|e| NodeError::Rpc(format!("listening on {}: {e}", cfg.listen)))?;
    let handle = server.start(RpcServer::new(shared).into_rpc());
    tracing::info!(%addr, "JSON-RPC server listening");
    Ok((handle, addr))
}
