//! # hotledger-testnet: a local hotledger network in one command
//!
//! `hotledger-testnet run` generates (or reuses) the homes of an N-validator network with
//! `hotledger testnet`, starts one `hotledger start` process per validator, waits for the first
//! commit, drives signed transfers through the validators' JSON-RPC ([`load`]) and shows a live
//! dashboard ([`dashboard`]) until Ctrl-C or `--duration`. `bench` repeats that on a fresh
//! network per offered rate and measures throughput, commit latency, CPU and memory
//! ([`bench`]). Everything talks to 127.0.0.1 only, except `run --netns`, which puts each validator on
//! its own host in a network namespace made for the run ([`netns`]); every loop is bounded in
//! count and time.

pub mod bench;
pub mod cli;
pub mod dashboard;
pub mod files;
pub mod load;
pub mod netns;
pub mod network;
pub mod procs;
pub mod run;
pub mod stats;
