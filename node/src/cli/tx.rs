//! `hotledger tx transfer`.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use hotledger_crypto::{load_key_file, PublicKey};
use hotledger_ledger::Transfer;
use hotledger_node::home::Home;
use hotledger_node::rpc::HotledgerApiClient;

use super::ClientArgs;

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Sign a transfer with a key file and submit it; prints the transaction hash
    Transfer(TransferArgs),
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The sender's key file
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The recipient's public key (64 hex digits)
    #[arg(long, value_name = "PUBKEY")]
    to: PublicKey,
    /// Amount to transfer (at least 1)
    #[arg(long)]
    amount: u64,
    /// The sender's nonce [default: the node's next nonce for the account, after its pending
    /// transfers]
    #[arg(long)]
    nonce: Option<u64>,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(home: &Home, cmd: TxCommand) -> Result<()> {
    let TxCommand::Transfer(args) = cmd;
    let key = load_key_file(&args.key)?;
    let from = key.public();
    let node = args.client.connect(home)?;
    let status = node.call("status", node.client.status())?;
    let nonce = match args.nonce {
        Some(nonce) => nonce,
        None => {
            node.call("get_account", node.client.get_account(from))?
                .ok_or_else(|| {
                    anyhow!(
                    "account {from} (from {}) does not exist on {}: it has never received funds",
                    args.key.display(),
                    node.url
                )
                })?
                .pending_nonce
        }
    };
    let tx = Transfer {
        from,
        to: args.to,
        amount: args.amount,
        nonce,
    }
    .sign(&key, &status.chain_id);
    let hash = node.call("submit_transaction", node.client.submit_transaction(tx))?;
    if args.client.json {
        super::print_json(&serde_json::json!({
            "hash": hash,
            "from": from,
            "to": args.to,
            "amount": args.amount,
            "nonce": nonce,
        }))
    } else {
        println!("{hash}");
        Ok(())
    }
}
