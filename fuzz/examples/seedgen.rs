//! Writes the committed seed corpus, `fuzz/corpus/<target>/`: small valid inputs for each
//! target, built with the workspace's own types so that they follow the formats.
//!
//! ```sh
//! cd fuzz && cargo +nightly run --release --no-default-features --example seedgen
//! ```
//!
//! (`--no-default-features`: without the node crate, so no libp2p or RocksDB is compiled; the
//! frame seeds mirror `WireMessage`'s variants, which postcard encodes by index only.) The
//! `config` seeds are written by hand (fuzz/corpus/config/), as the node crate is not built.
//! Existing files are overwritten; files added by hand or from crashes are kept.

use std::fs;
use std::path::{Path, PathBuf};

use hotledger_consensus::{
    Block, BlockInfo, BlockRequest, BlockResponse, Message, Proposal, QuorumCert, TimeoutCert,
    TimeoutMsg, TimeoutSig, Vote, VoteData,
};
use hotledger_crypto::{key_file_bytes, Digest, Domain, KeyPair, PublicKey, Signature};
use hotledger_fuzz::{key, CHAIN_ID};
use hotledger_genesis::{generate_network, Host, NetworkSpec};
use hotledger_ledger::{BlockPayload, SignedTransaction, Transfer};
use serde::Serialize;

/// `hotledger_node::wire::WireMessage`, variant for variant.
#[derive(Serialize)]
enum Wire {
    Consensus(Message),
    Transactions(Vec<SignedTransaction>),
    Sync(Sync),
}

/// `hotledger_node::host::SyncMessage`, variant for variant.
#[derive(Serialize)]
enum Sync {
    Status {
        low: u64,
        high: u64,
    },
    Request {
        from: u64,
        count: u32,
    },
    Response {
        from: u64,
        blocks: Vec<Block>,
        proof: Option<QuorumCert>,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let txs: Vec<SignedTransaction> = (0..3u8).map(tx).collect();
    frame(&root.join("frame"), &txs)?;
    payload(&root.join("payload"), &txs)?;
    tx_seeds(&root.join("tx"), &txs)?;
    rpc_params(&root.join("rpc_params"), &txs)?;
    genesis(&root.join("genesis"))?;
    merkle(&root.join("merkle"))?;
    keyfile(&root.join("keyfile"))?;
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let path: PathBuf = dir.join(name);
    fs::write(path, bytes)
}

fn tx(i: u8) -> SignedTransaction {
    let sender = key(i);
    Transfer {
        from: sender.public(),
        to: key(i + 1).public(),
        amount: 10 + u64::from(i) * 1000,
        nonce: u64::from(i),
    }
    .sign(sender, CHAIN_ID)
}

fn postcard_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("seeds encode")
}

fn info(id: Digest, round: u64, height: u64) -> BlockInfo {
    BlockInfo {
        id,
        round,
        height,
        timestamp_ms: 1_700_000_000_000 + round,
    }
}

/// A block at `round`/`height` over `qc`, signed by key 0, with `payload`.
fn block(round: u64, height: u64, qc: QuorumCert, payload: Vec<u8>) -> Block {
    let author = key(0);
    let timestamp_ms = 1_700_000_000_000 + round;
    let failed = vec![key(1).public()];
    let id = Block::compute_id(
        round,
        height,
        timestamp_ms,
        &author.public(),
        &qc,
        &failed,
        &payload,
    );
    let signature = author.sign(
        Domain::Proposal,
        CHAIN_ID,
        &hotledger_consensus::proposal_signing_bytes(round, height, &id),
    );
    Block {
        id,
        round,
        height,
        timestamp_ms,
        author: author.public(),
        qc,
        failed_leaders: failed,
        payload,
        signature,
    }
}

fn frame(dir: &Path, txs: &[SignedTransaction]) -> Result<(), Box<dyn std::error::Error>> {
    let genesis = info(Digest::of(b"genesis"), 0, 0);
    let genesis_qc = QuorumCert::genesis(genesis);
    let payload = BlockPayload::new(0, Digest::of(b"state"), txs.to_vec()).encode();
    let b1 = block(1, 1, genesis_qc.clone(), payload);
    let data = VoteData {
        block: b1.info(),
        parent: genesis,
    };
    let votes: Vec<(PublicKey, Signature)> = (0..3u8)
        .map(|i| {
            let k = key(i);
            (
                k.public(),
                k.sign(Domain::Vote, CHAIN_ID, &data.signing_bytes()),
            )
        })
        .collect();
    let qc1 = QuorumCert {
        data,
        votes: votes.clone(),
    };
    let b2 = block(2, 2, qc1.clone(), Vec::new());
    let vote = Vote {
        data,
        author: votes[0].0,
        signature: votes[0].1,
    };
    let timeout_sig = |k: &KeyPair| TimeoutSig {
        author: k.public(),
        high_qc_round: 1,
        signature: k.sign(
            Domain::Timeout,
            CHAIN_ID,
            &hotledger_consensus::timeout_signing_bytes(2, 1),
        ),
    };
    let tc = TimeoutCert {
        round: 2,
        high_qc: qc1.clone(),
        sigs: (0..3u8).map(|i| timeout_sig(key(i))).collect(),
    };
    let timeout = TimeoutMsg {
        round: 3,
        high_qc: qc1.clone(),
        author: key(0).public(),
        signature: key(0).sign(
            Domain::Timeout,
            CHAIN_ID,
            &hotledger_consensus::timeout_signing_bytes(3, 1),
        ),
        last_tc: Some(tc.clone()),
        vote: Some(vote.clone()),
    };
    let b3 = block(3, 2, qc1.clone(), Vec::new());
    let seeds: Vec<(&str, Wire)> = vec![
        (
            "proposal",
            Wire::Consensus(Message::Proposal(Proposal {
                block: b1.clone(),
                tc: None,
            })),
        ),
        (
            "proposal-tc",
            Wire::Consensus(Message::Proposal(Proposal {
                block: b3,
                tc: Some(tc),
            })),
        ),
        ("vote", Wire::Consensus(Message::Vote(vote))),
        ("timeout", Wire::Consensus(Message::Timeout(timeout))),
        (
            "block-request",
            Wire::Consensus(Message::BlockRequest(BlockRequest {
                id: b2.id,
                count: 2,
            })),
        ),
        (
            "block-response",
            Wire::Consensus(Message::BlockResponse(BlockResponse {
                blocks: vec![b2.clone(), b1.clone()],
            })),
        ),
        ("transactions", Wire::Transactions(txs.to_vec())),
        ("transactions-empty", Wire::Transactions(Vec::new())),
        ("sync-status", Wire::Sync(Sync::Status { low: 0, high: 2 })),
        (
            "sync-request",
            Wire::Sync(Sync::Request { from: 1, count: 64 }),
        ),
        (
            "sync-response",
            Wire::Sync(Sync::Response {
                from: 1,
                blocks: vec![b1, b2],
                proof: Some(qc1),
            }),
        ),
        (
            "sync-none",
            Wire::Sync(Sync::Response {
                from: 7,
                blocks: Vec::new(),
                proof: None,
            }),
        ),
    ];
    for (name, wire) in seeds {
        write(dir, name, &postcard_bytes(&wire))?;
    }
    Ok(())
}

fn payload(dir: &Path, txs: &[SignedTransaction]) -> std::io::Result<()> {
    // Raw mode: an even first byte, then max_txs (1 byte), max_bytes (u16 LE), then the bytes.
    for (name, n) in [("raw-empty", 0), ("raw-one", 1), ("raw-three", 3)] {
        let bytes = BlockPayload::new(5, Digest::of(b"state"), txs[..n].to_vec()).encode();
        let mut seed = vec![0, 16];
        seed.extend_from_slice(&u16::MAX.to_le_bytes());
        seed.extend_from_slice(&bytes);
        write(dir, name, &seed)?;
    }
    // Structured mode: an odd first byte, then what `arbitrary` reads.
    write(
        dir,
        "built-a",
        &[1, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    )?;
    write(dir, "built-b", &[1; 200])?;
    Ok(())
}

fn tx_seeds(dir: &Path, txs: &[SignedTransaction]) -> std::io::Result<()> {
    let mut json = vec![0];
    json.extend_from_slice(&serde_json::to_vec_pretty(&txs[0]).expect("serializes"));
    write(dir, "json-pretty", &json)?;
    let mut json = vec![0];
    json.extend_from_slice(&serde_json::to_vec(&txs[1]).expect("serializes"));
    write(dir, "json-compact", &json)?;
    let hexes = [
        ("hex-digest", Digest::of(b"x").to_hex()),
        ("hex-digest-upper", Digest::of(b"y").to_hex().to_uppercase()),
        ("hex-key", key(0).public().to_hex()),
        ("hex-signature", txs[0].signature.to_hex()),
    ];
    for (name, text) in hexes {
        let mut seed = vec![1];
        seed.extend_from_slice(text.as_bytes());
        write(dir, name, &seed)?;
    }
    let mut raw = vec![2];
    raw.extend_from_slice(key(2).public().as_bytes());
    raw.extend_from_slice(&txs[2].signature.to_bytes());
    write(dir, "raw-key-signature", &raw)?;
    write(
        dir,
        "edited",
        &[3, 1, 2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 7, 2, 40, 1, 9, 9],
    )?;
    Ok(())
}

fn rpc_params(dir: &Path, txs: &[SignedTransaction]) -> std::io::Result<()> {
    let tx = serde_json::to_string(&txs[0]).expect("serializes");
    let batch = serde_json::to_string(txs).expect("serializes");
    let hash = txs[0].hash().to_hex();
    let key = key(1).public().to_hex();
    let seeds = [
        ("submit_transaction", format!("[{tx}]")),
        ("submit_transaction-object", format!("{{\"tx\":{tx}}}")),
        ("submit_transactions", format!("[{batch}]")),
        ("submit_transactions-object", format!("{{\"txs\":{batch}}}")),
        ("get_transaction", format!("[\"{hash}\"]")),
        ("get_transaction-object", format!("{{\"hash\":\"{hash}\"}}")),
        ("get_account", format!("[\"{key}\"]")),
        ("get_account-object", format!("{{\"publicKey\":\"{key}\"}}")),
        ("get_block", "[5]".to_owned()),
        ("get_block-null", "[null]".to_owned()),
        ("get_block-object", "{\"height\":7}".to_owned()),
        ("status", "[]".to_owned()),
    ];
    for (name, text) in seeds {
        write(dir, name, text.as_bytes())?;
    }
    Ok(())
}

fn genesis(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    for (name, validators, accounts) in [("one", 1, 1), ("four", 4, 3)] {
        let network = generate_network(&NetworkSpec {
            validators,
            accounts,
            balance: 1_000_000,
            chain_id: "hotledger-fuzz".to_owned(),
            hosts: (0..validators)
                .map(|i| format!("127.0.0.{}", i + 1).parse::<Host>())
                .collect::<Result<_, _>>()?,
            p2p_ports: (0..validators).map(|i| 30_000 + i as u16).collect(),
            genesis_time_ms: 1_700_000_000_000,
            seed: Some(7),
        })?;
        write(dir, name, &serde_json::to_vec_pretty(&network.genesis)?)?;
    }
    Ok(())
}

fn merkle(dir: &Path) -> std::io::Result<()> {
    // Binary tree (first byte even) and state tree (odd) inputs; `arbitrary` reads the rest.
    write(
        dir,
        "binary-a",
        &[0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    )?;
    write(dir, "binary-b", &[0; 64])?;
    write(
        dir,
        "state-a",
        &[
            1, 1, 5, 0, 1, 7, 0, 1, 1, 9, 0, 0, 0, 1, 2, 3, 1, 0, 2, 5, 5,
        ],
    )?;
    write(dir, "state-b", &[1; 96])?;
    Ok(())
}

fn keyfile(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    for i in 0..2u8 {
        let bytes = key_file_bytes(key(i))?;
        write(dir, &format!("valid-{i}"), &bytes)?;
    }
    // Same secret, another key's public key; and a wrong type.
    let text = String::from_utf8(key_file_bytes(key(2))?.to_vec())?;
    let mismatch = text.replace(&key(2).public().to_hex(), &key(3).public().to_hex());
    write(dir, "mismatch", mismatch.as_bytes())?;
    write(
        dir,
        "wrong-type",
        text.replace("secret-key", "public-key").as_bytes(),
    )?;
    Ok(())
}
