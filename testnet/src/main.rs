//! `hotledger-testnet`: start, watch, load and benchmark a local hotledger network.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = hotledger_testnet::cli::Cli::parse();
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
