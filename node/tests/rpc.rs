//! The JSON-RPC server over a real store and mempool, without the network or consensus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use hotledger_consensus::{BlockInfo, QuorumCert};
use hotledger_crypto::{Digest, KeyPair, PublicKey, Signature};
use hotledger_ledger::{
    compute_state_root, Account, MemoryTreeStore, Mempool, MempoolLimits, SignedTransaction,
    Transfer,
};
use hotledger_node::config::RpcConfig;
use hotledger_node::metrics::Metrics;
use hotledger_node::network::NetStats;
use hotledger_node::rpc::{
    serve_bound, HotledgerApiClient, TxState, CATCHING_UP, CATCHING_UP_BLOCKS, REJECTED,
};
use hotledger_node::shared::{Shared, Status};
use hotledger_node::storage::{ChainStore, CommitTip, Store};
use jsonrpsee::core::client::Error as ClientError;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::server::ServerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const CHAIN: &str = "rpc-test";
const BALANCE: u64 = 1_000;

struct Fixture {
    _dir: tempfile::TempDir,
    _handle: ServerHandle,
    addr: SocketAddr,
    client: HttpClient,
    shared: Arc<Shared>,
    gossip: mpsc::Receiver<Vec<SignedTransaction>>,
    alice: KeyPair,
    bob: PublicKey,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let alice = KeyPair::from_seed([1; 32]);
    let bob = KeyPair::from_seed([2; 32]).public();
    let genesis_hash = Digest::of(b"rpc test genesis");
    // Alice is funded; carol has already sent three transfers. Both are in the state tree the
    // store reads accounts from.
    let carol = KeyPair::from_seed([3; 32]).public();
    let accounts = std::collections::BTreeMap::from([
        (
            alice.public(),
            Account {
                balance: BALANCE,
                nonce: 0,
            },
        ),
        (
            carol,
            Account {
                balance: 100,
                nonce: 3,
            },
        ),
    ]);
    let (state_root, tree) = compute_state_root(&MemoryTreeStore::new(), 0, &accounts).unwrap();
    let store = Store::open(&dir.path().join("db"), &genesis_hash).unwrap();
    let block = BlockInfo {
        id: genesis_hash,
        round: 0,
        height: 0,
        timestamp_ms: 0,
    };
    let tip = CommitTip {
        block,
        qc: QuorumCert::genesis(block),
        state_root,
        committed_txs: 0,
    };
    store.init_genesis(&genesis_hash, &tree, &tip).unwrap();
    let (gossip_tx, gossip) = mpsc::channel(16);
    let shared = Arc::new(Shared {
        chain_id: CHAIN.into(),
        store,
        mempool: Arc::new(Mutex::new(Mempool::new(
            CHAIN.into(),
            MempoolLimits::default(),
        ))),
        admitted: tokio::sync::Notify::new(),
        status: RwLock::new(Status {
            chain_id: CHAIN.into(),
            ..Status::default()
        }),
        net: Arc::new(NetStats::default()),
        metrics: Metrics::new(),
        gossip: gossip_tx,
        max_batch: 4,
        admission_log: None,
    });
    let cfg = RpcConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..RpcConfig::default()
    };
    let (handle, addr) = serve_bound(&cfg, shared.clone()).await.unwrap();
    let client = HttpClientBuilder::default()
        .build(format!("http://{addr}"))
        .unwrap();
    Fixture {
        _dir: dir,
        _handle: handle,
        addr,
        client,
        shared,
        gossip,
        alice,
        bob,
    }
}

impl Fixture {
    fn transfer(&self, amount: u64, nonce: u64) -> SignedTransaction {
        Transfer {
            from: self.alice.public(),
            to: self.bob,
            amount,
            nonce,
        }
        .sign(&self.alice, CHAIN)
    }
}

fn rejection_code(err: ClientError) -> (i32, String, Option<serde_json::Value>) {
    match err {
        ClientError::Call(obj) => (
            obj.code(),
            obj.message().to_owned(),
            obj.data().map(|d| serde_json::from_str(d.get()).unwrap()),
        ),
        other => panic!("expected a call error, got {other:?}"),
    }
}

#[tokio::test]
async fn submit_and_query() {
    let mut f = start().await;
    let tx = f.transfer(10, 0);
    let hash = f.client.submit_transaction(tx.clone()).await.unwrap();
    assert_eq!(hash, tx.hash());
    assert_eq!(f.gossip.try_recv().unwrap(), vec![tx]);

    let status = f.client.get_transaction(hash).await.unwrap();
    assert_eq!(status.status, TxState::Pending);
    let unknown = f.client.get_transaction(Digest::of(b"nope")).await.unwrap();
    assert_eq!(unknown.status, TxState::Unknown);

    let account = f
        .client
        .get_account(f.alice.public())
        .await
        .unwrap()
        .unwrap();
    // Committed nonce 0; the pending transfer 0 makes the wallet's next nonce 1.
    assert_eq!(
        (
            account.balance,
            account.nonce,
            account.pending_nonce,
            account.height
        ),
        (BALANCE, 0, 1, 0)
    );
    assert_eq!(f.client.get_account(f.bob).await.unwrap(), None);
    assert_eq!(f.client.get_block(None).await.unwrap(), None);
    assert_eq!(f.client.get_block(Some(7)).await.unwrap(), None);
    assert_eq!(f.client.status().await.unwrap().chain_id, CHAIN);
}

#[tokio::test]
async fn a_node_far_behind_refuses_submissions_and_loses_nothing() {
    let mut f = start().await;
    let set_certified = |f: &Fixture, height: u64| {
        f.shared.status.write().unwrap().high_qc_height = height;
    };
    // Just within the bound: accepted.
    set_certified(&f, CATCHING_UP_BLOCKS);
    let first = f.transfer(10, 0);
    f.client.submit_transaction(first.clone()).await.unwrap();
    assert_eq!(f.gossip.try_recv().unwrap(), vec![first]);
    // One more block behind: both methods refuse, with the heights.
    set_certified(&f, CATCHING_UP_BLOCKS + 1);
    let second = f.transfer(10, 1);
    for result in [
        f.client
            .submit_transaction(second.clone())
            .await
            .map(|_| ()),
        f.client
            .submit_transactions(vec![second.clone()])
            .await
            .map(|_| ()),
    ] {
        let (code, message, data) = rejection_code(result.unwrap_err());
        assert_eq!(code, CATCHING_UP);
        assert!(message.contains("catching up"), "{message}");
        let data = data.unwrap();
        assert_eq!(data["height"], 0);
        assert_eq!(data["certified_height"], CATCHING_UP_BLOCKS + 1);
    }
    assert!(
        f.gossip.try_recv().is_err(),
        "a refused transfer was passed on"
    );
    let pending = f
        .client
        .get_account(f.alice.public())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        pending.pending_nonce, 1,
        "the refused transfer entered the mempool"
    );
    // Caught up: the same transfer is accepted.
    set_certified(&f, 3);
    f.client.submit_transaction(second).await.unwrap();
}

#[tokio::test]
async fn rejections_are_32001_with_data() {
    let f = start().await;
    // Bad signature.
    let mut bad = f.transfer(10, 0);
    bad.signature = Signature([7; 64]);
    let (code, message, data) = rejection_code(f.client.submit_transaction(bad).await.unwrap_err());
    assert_eq!(code, REJECTED);
    assert_eq!(message, "bad signature");
    assert_eq!(data, Some(serde_json::json!("BadSignature")));

    // Overdraft.
    let (code, message, _) = rejection_code(
        f.client
            .submit_transaction(f.transfer(BALANCE + 1, 0))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, REJECTED);
    assert!(message.contains("insufficient balance"), "{message}");

    // Replayed nonce: the same nonce with a different amount while the first is pending.
    f.client.submit_transaction(f.transfer(1, 0)).await.unwrap();
    let (code, message, _) = rejection_code(
        f.client
            .submit_transaction(f.transfer(2, 0))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, REJECTED);
    assert!(message.contains("nonce 0"), "{message}");
    // Resubmitting the same transaction.
    let (code, _, data) = rejection_code(
        f.client
            .submit_transaction(f.transfer(1, 0))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, REJECTED);
    assert_eq!(data, Some(serde_json::json!("Duplicate")));

    assert_eq!(f.shared.metrics.rejected_txs.get(), 4);
}

#[tokio::test]
async fn replayed_and_far_nonces_are_rejected() {
    let f = start().await;
    // Carol's committed nonce is 3 (see `start`): nonce 2 was already used.
    let carol = KeyPair::from_seed([3; 32]);
    let replay = Transfer {
        from: carol.public(),
        to: f.bob,
        amount: 1,
        nonce: 2,
    }
    .sign(&carol, CHAIN);
    let (code, message, data) =
        rejection_code(f.client.submit_transaction(replay).await.unwrap_err());
    assert_eq!(code, REJECTED);
    assert!(message.contains("stale nonce"), "{message}");
    assert_eq!(
        data,
        Some(serde_json::json!({"StaleNonce": {"expected": 3, "got": 2}}))
    );
    let (code, message, _) = rejection_code(
        f.client
            .submit_transaction(f.transfer(1, 5_000))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, REJECTED);
    assert!(message.contains("too far ahead"), "{message}");
}

#[tokio::test]
async fn batches() {
    let mut f = start().await;
    let mut bad = f.transfer(3, 2);
    bad.signature = Signature([9; 64]);
    let txs = vec![f.transfer(1, 0), f.transfer(2, 1), bad];
    let out = f.client.submit_transactions(txs.clone()).await.unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].hash, Some(txs[0].hash()));
    assert_eq!(out[1].hash, Some(txs[1].hash()));
    assert_eq!(out[2].hash, None);
    assert_eq!(out[2].error.as_deref(), Some("bad signature"));
    assert_eq!(f.gossip.try_recv().unwrap(), txs[..2].to_vec());

    let too_many: Vec<_> = (0..5).map(|n| f.transfer(1, n + 10)).collect();
    match f.client.submit_transactions(too_many).await.unwrap_err() {
        ClientError::Call(obj) => assert_eq!(obj.code(), -32602),
        other => panic!("{other:?}"),
    }
    assert!(f
        .client
        .submit_transactions(Vec::new())
        .await
        .unwrap()
        .is_empty());
}

async fn raw_post(addr: SocketAddr, body: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn malformed_requests_get_json_rpc_errors() {
    let f = start().await;
    let parse = raw_post(f.addr, "{not json").await;
    assert!(parse.contains("-32700"), "{parse}");
    let wrong_params = raw_post(
        f.addr,
        r#"{"jsonrpc":"2.0","id":1,"method":"get_account","params":["zz"]}"#,
    )
    .await;
    assert!(wrong_params.contains("-32602"), "{wrong_params}");
    let bad_tx = raw_post(
        f.addr,
        r#"{"jsonrpc":"2.0","id":2,"method":"submit_transaction","params":[{"transfer":1}]}"#,
    )
    .await;
    assert!(bad_tx.contains("-32602"), "{bad_tx}");
    let no_method = raw_post(
        f.addr,
        r#"{"jsonrpc":"2.0","id":3,"method":"nope","params":[]}"#,
    )
    .await;
    assert!(no_method.contains("-32601"), "{no_method}");
    // Still serving.
    assert_eq!(f.client.status().await.unwrap().chain_id, CHAIN);
}

#[tokio::test]
async fn committed_blocks_and_transactions() {
    use hotledger_consensus::Block;
    use hotledger_ledger::jmt::storage::TreeUpdateBatch;
    use hotledger_ledger::{BlockPayload, TxOutcome};
    use hotledger_node::storage::{BlockWrite, TxRecord};

    let f = start().await;
    let tx = f.transfer(10, 0);
    let genesis = f.shared.store.tip().unwrap().unwrap();
    let payload = BlockPayload::new(0, genesis.state_root, vec![tx.clone()]);
    let block = Block {
        id: Digest::of(b"block 1"),
        round: 1,
        height: 1,
        timestamp_ms: 5,
        author: f.alice.public(),
        qc: genesis.qc.clone(),
        failed_leaders: Vec::new(),
        payload: payload.encode(),
        signature: Signature([0; 64]),
    };
    let state_root = Digest::of(b"root 1");
    let tip = CommitTip {
        block: BlockInfo {
            id: block.id,
            round: 1,
            height: 1,
            timestamp_ms: 5,
        },
        qc: genesis.qc.clone(),
        state_root,
        committed_txs: 1,
    };
    f.shared
        .store
        .commit_block(BlockWrite {
            durable: true,
            write_tree: false,
            block: &block,
            state_root,
            records: &[(
                tx.hash(),
                TxRecord {
                    height: 1,
                    index: 0,
                    outcome: TxOutcome::Applied,
                },
            )],
            accounts: &Default::default(),
            tree: TreeUpdateBatch::default(),
            tip: &tip,
        })
        .unwrap();

    let view = f.client.get_block(None).await.unwrap().unwrap();
    assert_eq!(view, f.client.get_block(Some(1)).await.unwrap().unwrap());
    assert_eq!((view.height, view.id, view.round), (1, block.id, 1));
    assert_eq!(view.parent_id, genesis.block.id);
    assert_eq!(view.state_root, state_root);
    assert_eq!(view.txs_root, payload.txs_root);
    assert_eq!((view.tx_count, view.txs.clone()), (1, vec![tx.hash()]));
    assert_eq!(view.payload_state_root, genesis.state_root);
    assert_eq!(f.client.get_block(Some(0)).await.unwrap(), None);

    let status = f.client.get_transaction(tx.hash()).await.unwrap();
    assert_eq!(status.status, TxState::Committed);
    assert_eq!((status.height, status.index), (Some(1), Some(0)));
    assert_eq!(status.outcome, Some(TxOutcome::Applied));
    assert_eq!(
        f.client
            .get_account(f.alice.public())
            .await
            .unwrap()
            .unwrap()
            .height,
        1
    );

    // A second block, then the first pruned: asking for it is a typed error naming the
    // earliest height held; the second still answers.
    let block2 = Block {
        id: Digest::of(b"block 2"),
        round: 2,
        height: 2,
        timestamp_ms: 6,
        qc: genesis.qc.clone(),
        payload: BlockPayload::new(1, state_root, Vec::new()).encode(),
        ..block.clone()
    };
    let tip2 = CommitTip {
        block: block2.info(),
        ..tip.clone()
    };
    f.shared
        .store
        .commit_block(BlockWrite {
            durable: true,
            write_tree: false,
            block: &block2,
            state_root,
            records: &[],
            accounts: &Default::default(),
            tree: TreeUpdateBatch::default(),
            tip: &tip2,
        })
        .unwrap();
    assert_eq!(f.shared.store.prune(2, 10).unwrap(), 2);
    let (code, message, data) = rejection_code(f.client.get_block(Some(1)).await.unwrap_err());
    assert_eq!(code, hotledger_node::rpc::PRUNED, "{message}");
    assert_eq!(data, Some(serde_json::json!({"height": 1, "earliest": 2})));
    assert!(message.contains("pruned"), "{message}");
    assert_eq!(
        f.client.get_block(Some(2)).await.unwrap().unwrap().id,
        block2.id
    );
}

#[tokio::test]
async fn a_full_mempool_refuses_with_a_clear_error_and_does_not_grow() {
    let fx = start().await;
    *fx.shared.mempool.lock().unwrap() = Mempool::new(
        CHAIN.into(),
        MempoolLimits {
            max_txs: 2,
            peer_reserve: 0,
            ..MempoolLimits::default()
        },
    );
    for nonce in 0..2 {
        fx.client
            .submit_transaction(fx.transfer(1, nonce))
            .await
            .unwrap();
    }
    let err = fx
        .client
        .submit_transaction(fx.transfer(1, 2))
        .await
        .unwrap_err();
    let (code, message, _) = rejection_code(err);
    assert_eq!(code, REJECTED);
    assert!(message.contains("full"), "{message}");
    assert_eq!(fx.shared.mempool.lock().unwrap().len(), 2);
}
