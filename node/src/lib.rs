//! # hotledger-node: the validator daemon
//!
//! One process per validator. It joins its peers over libp2p ([`network`]); the [`host`] runs
//! the pure consensus core ([`hotledger_consensus`]) with the daemon's own synchronous logic
//! (payload checks, proposal pacing, commit application, block serving) over a
//! [`storage::ChainStore`]: RocksDB ([`storage::Store`]) in the daemon, in memory
//! ([`storage::MemoryStore`]) in the simulator. The async loop ([`node`]) only moves events
//! and messages between the network and the host. Clients talk JSON-RPC over HTTP ([`rpc`]);
//! operators read Prometheus metrics ([`metrics`]) and `tracing` logs.
//!
//! The host persists each batch of the core's actions before it hands out any message, so the
//! safety state reaches disk (synced) before any vote or timeout that depends on it leaves the
//! node.

pub mod config;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod home;
pub mod host;
pub mod metrics;
pub mod network;
pub mod node;
pub mod rpc;
pub mod shared;
pub mod sign_log;
pub mod storage;
pub mod wire;

pub use error::NodeError;
