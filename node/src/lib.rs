//! # hotledger-node: the validator daemon
//!
//! One process per validator. It joins its peers over libp2p ([`network`]), runs the pure
//! consensus core ([`hotledger_consensus`]) in a single loop ([`node`]), executes committed
//! blocks of signed transfers against the ledger ([`hotledger_ledger`]) and stores everything in
//! RocksDB ([`storage`]). Clients talk JSON-RPC over HTTP ([`rpc`]); operators read Prometheus
//! metrics ([`metrics`]) and `tracing` logs.
//!
//! The loop carries out the core's actions strictly in order, so the safety state reaches disk
//! (synced) before any vote or timeout that depends on it leaves the node.

pub mod config;
pub mod error;
pub mod home;
pub mod metrics;
pub mod network;
pub mod node;
pub mod rpc;
pub mod shared;
pub mod storage;
pub mod wire;

pub use error::NodeError;
