//! `hotledger query status | account | block | tx`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::TxOutcome;
use hotledger_node::home::Home;
use hotledger_node::rpc::{HotledgerApiClient, TxState};

use super::{print_json, ClientArgs, Node};

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    what: Query,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum Query {
    /// The node's status: height, round, peers, mempool
    Status,
    /// A committed account's balance and nonce
    Account {
        /// The account's public key (64 hex digits)
        #[arg(value_name = "PUBKEY")]
        public_key: PublicKey,
    },
    /// A committed block (the latest if HEIGHT is omitted)
    Block {
        #[arg(value_name = "HEIGHT")]
        height: Option<u64>,
    },
    /// Where a transaction is: committed, pending or unknown
    Tx {
        /// The transaction hash (64 hex digits)
        #[arg(value_name = "HASH")]
        hash: Digest,
    },
}

pub fn run(home: &Home, args: QueryArgs) -> Result<()> {
    let node = args.client.connect(home)?;
    let json = args.client.json;
    match args.what {
        Query::Status => status(&node, json),
        Query::Account { public_key } => account(&node, public_key, json),
        Query::Block { height } => block(&node, height, json),
        Query::Tx { hash } => transaction(&node, hash, json),
    }
}

fn status(node: &Node, json: bool) -> Result<()> {
    let s = node.call("status", node.client.status())?;
    if json {
        return print_json(&s);
    }
    println!("moniker         {}", s.moniker);
    println!("chain id        {}", s.chain_id);
    println!("genesis         {}", s.genesis_hash);
    println!("role            {}", s.role);
    if !s.validator.is_empty() {
        println!("validator       {}", s.validator);
    }
    println!("height          {}", s.height);
    println!("block           {}", s.block_id);
    println!("state root      {}", s.state_root);
    println!("round           {}", s.round);
    println!("high qc height  {}", s.high_qc_height);
    println!("syncing         {}", s.syncing);
    println!(
        "peers           {} (of {} validators), {} others",
        s.peers, s.validators, s.non_validator_peers
    );
    println!(
        "mempool         {} txs, {} bytes",
        s.mempool_txs, s.mempool_bytes
    );
    println!("committed txs   {}", s.committed_txs);
    Ok(())
}

fn account(node: &Node, public_key: PublicKey, json: bool) -> Result<()> {
    let Some(a) = node.call("get_account", node.client.get_account(public_key))? else {
        bail!(
            "account {public_key} does not exist on {} (it has never received funds)",
            node.url
        );
    };
    if json {
        return print_json(&a);
    }
    println!("account   {}", a.public_key);
    println!("balance   {}", a.balance);
    println!("nonce     {}", a.nonce);
    println!(
        "pending   next nonce {} (after this node's pending transfers)",
        a.pending_nonce
    );
    println!("height    {}", a.height);
    Ok(())
}

fn block(node: &Node, height: Option<u64>, json: bool) -> Result<()> {
    let Some(b) = node.call("get_block", node.client.get_block(height))? else {
        match height {
            Some(h) => bail!("{} has no committed block at height {h}", node.url),
            None => bail!("{} has not committed any block yet", node.url),
        }
    };
    if json {
        return print_json(&b);
    }
    println!("height          {}", b.height);
    println!("id              {}", b.id);
    println!("round           {}", b.round);
    println!("parent          {}", b.parent_id);
    println!("timestamp ms    {}", b.timestamp_ms);
    println!("proposer        {}", b.proposer);
    println!("state root      {}", b.state_root);
    println!("txs root        {}", b.txs_root);
    println!(
        "payload state   height {} root {}",
        b.payload_state_height, b.payload_state_root
    );
    println!("transactions    {}", b.tx_count);
    for hash in &b.txs {
        println!("  {hash}");
    }
    Ok(())
}

fn transaction(node: &Node, hash: Digest, json: bool) -> Result<()> {
    let t = node.call("get_transaction", node.client.get_transaction(hash))?;
    if json {
        return print_json(&t);
    }
    println!("hash      {}", t.hash);
    match t.status {
        TxState::Committed => {
            let at = match (t.height, t.index) {
                (Some(h), Some(i)) => format!(" at height {h}, index {i}"),
                _ => String::new(),
            };
            println!("status    committed{at}");
            match t.outcome {
                Some(TxOutcome::Applied) => println!("outcome   applied"),
                Some(TxOutcome::Failed(e)) => println!("outcome   failed: {e}"),
                None => {}
            }
        }
        TxState::Pending => println!("status    pending (in the node's mempool)"),
        TxState::Unknown => {
            println!("status    unknown (not committed, not in the mempool)")
        }
    }
    Ok(())
}
