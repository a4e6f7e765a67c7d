//! `hotledger start`: run the validator node of the home.

use anyhow::{Context, Result};
use hotledger_node::home::Home;

pub fn run(home: &Home) -> Result<()> {
    // Fail fast, before any runtime or logging, on the files an operator most often gets
    // wrong; `node::run` loads (and checks) them again.
    home.load_config()?;
    home.load_genesis()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hotledger")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(hotledger_node::node::run(home))?;
    Ok(())
}
