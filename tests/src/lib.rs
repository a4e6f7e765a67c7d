//! # hotledger-tests: the deterministic simulator
//!
//! Every node runs the daemon's own host (`hotledger_node::host::Host`: the real consensus
//! core, payload checks, proposal pacing, execution and state roots, block serving) over the
//! in-memory store, with real ed25519 signatures and a client submitting signed transfers
//! ([`load`]); only the world around it is simulated: virtual time, and a seeded network with
//! per-link delay and jitter, message loss, partitions that change over time, and a global
//! stabilisation time (GST) after which the network is synchronous and every crashed node is
//! back.
//!
//! Faults drawn per seed ([`scenario`]): crash and restart from the disk (a node keeps only what
//! a process crash keeps of its store: synced writes and what they cover, not the state-tree
//! nodes held in memory, which the restarted host rebuilds); a silent
//! validator (down until GST, so rounds it leads time out); an equivocating leader that sends
//! two validly signed conflicting proposals to two halves of the network; and Byzantine
//! **twins** — two instances that share one validator key and are placed in different
//! partitions, so each half sees a consistent but different Byzantine validator.
//!
//! Checkers ([`checker`]): agreement (no two honest nodes commit different blocks at one height),
//! no honest key signs two different votes in one round (observed through every persisted
//! safety record), every vote, timeout and proposal a host hands out is covered by its durable
//! safety record, state-root agreement (every honest node computes the same root at every
//! height), validity (each commit extends the node's previous one and carries only transfers
//! the client signed; `--forgers` validators propose forged ones, which honest hosts refuse),
//! and liveness (every honest node commits above the GST high-water mark within a bounded
//! virtual time after GST).
//!
//! The `simulate` binary runs many seeds and exits non-zero on any violation; with more than f
//! twins it is expected to find a fork (the negative control that proves the checkers can fail).

pub mod chaos;
pub mod checker;
pub mod cluster;
pub mod load;
pub mod measure;
pub mod omission;
pub mod scenario;
pub mod sim;

pub use checker::{CommittedBlock, Verdict};
pub use measure::{CrashReport, CrashRun};
pub use omission::{run_omission, OmissionSpec};
pub use scenario::{Scenario, SimConfig};
pub use sim::{run_clean, run_seed, RunReport, Sim};
