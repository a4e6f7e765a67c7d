//! `hotledger keys generate | show`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use hotledger_crypto::{load_key_file, save_key_file, KeyPair};
use hotledger_genesis::peer_id_from_node_key;
use hotledger_node::home::Home;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new ed25519 key file (mode 0600) and print its public key
    Generate(GenerateArgs),
    /// Show the home's validator public key and libp2p peer id, or a key file's public key
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where to write the key file
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Overwrite FILE if it exists
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Print only this key file's public key (e.g. an account's, as the `--to` of a transfer)
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn generate(args: GenerateArgs) -> Result<()> {
    let key = KeyPair::generate(&mut rand::rngs::OsRng);
    save_key_file(&args.output, &key, args.force)?;
    println!("{}", key.public());
    Ok(())
}

pub fn show(home: &Home, args: ShowArgs) -> Result<()> {
    if let Some(path) = &args.key {
        let key = load_key_file(path)?;
        return if args.json {
            super::print_json(&serde_json::json!({ "public_key": key.public() }))
        } else {
            println!("{}", key.public());
            Ok(())
        };
    }
    // A full node's home holds no validator key.
    let validator = if home.validator_key_path().exists() {
        Some(home.load_validator_key()?.public())
    } else {
        None
    };
    let node = home.load_node_key()?;
    let peer_id = peer_id_from_node_key(*node.secret_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", home.node_key_path().display()))?;
    if args.json {
        super::print_json(&serde_json::json!({
            "validator_public_key": validator,
            "peer_id": peer_id,
        }))
    } else {
        match validator {
            Some(key) => println!("validator public key  {key}"),
            None => println!("validator public key  none (a full node)"),
        }
        println!("peer id               {peer_id}");
        Ok(())
    }
}
