//! `hotledger start`: run the validator node of the home.

use anyhow::{Context, Result};
use clap::Args;
use hotledger_node::config::LogFormat;
use hotledger_node::home::Home;

/// `hotledger start`'s flags; each one given overrides config.toml.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Log line format [default: config.toml's log_format, else text]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// With no chain data yet, restore the state from a peer's snapshot (checked against the
    /// validators' signatures) and block-sync from there, instead of replaying every block
    /// [config.toml: statesync.enable]
    #[arg(long)]
    pub state_sync: bool,
}

/// Runs the node; `args` override config.toml.
pub fn run(home: &Home, args: StartArgs) -> Result<()> {
    // Fail fast, before any runtime or logging, on the files an operator most often gets
    // wrong; `node::run` loads (and checks) them again.
    home.load_config()?;
    home.load_genesis()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hotledger")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(hotledger_node::node::run(
        home,
        args.log_format,
        args.state_sync,
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Start {
        #[command(flatten)]
        args: StartArgs,
    }

    #[test]
    fn the_log_format_flag_is_text_or_json() {
        let parse = |argv: &[&str]| Start::try_parse_from(argv).map(|s| s.args.log_format);
        assert_eq!(parse(&["start"]).unwrap(), None);
        assert_eq!(
            parse(&["start", "--log-format", "json"]).unwrap(),
            Some(LogFormat::Json)
        );
        assert_eq!(
            parse(&["start", "--log-format", "text"]).unwrap(),
            Some(LogFormat::Text)
        );
        assert!(parse(&["start", "--log-format", "xml"]).is_err());
    }
}
