//! # hotledger-consensus: a sans-IO 2-chain HotStuff
//!
//! This crate is the protocol and nothing else: no sockets, no disk, no clock, no async runtime.
//! The host feeds [`Event`]s to [`Consensus::handle`] with the current time and carries out the
//! returned [`Action`]s in order. The same code runs in the `hotledger` daemon (libp2p,
//! RocksDB, tokio timers) and in the deterministic simulator (virtual time, simulated links).
//!
//! A host runs one loop: feed an event, pass the batch through [`Ready`] so that what must be
//! durable is written first ([`Ready::persist`] into the host's [`PersistSink`]), then carry out
//! the rest. Actions that ask the host for something name the event that answers them: a timer
//! ([`Action::ScheduleTimeout`] → [`Event::TimeoutFired`]), this node's payload
//! ([`Action::RequestPayload`] → [`Event::PayloadReady`]) and, with [`Config::check_payloads`],
//! the application's verdict on a peer's payload ([`Action::CheckPayload`] →
//! [`Event::PayloadChecked`]).
//!
//! ## The protocol (Jolteon / DiemBFT-v4, "2-chain HotStuff")
//!
//! Validators hold voting power; a *quorum* is more than two thirds of it (2f+1 of 3f+1).
//! Time is divided into *rounds*, each with a leader chosen from recent committed history by
//! leader reputation (see [`leader`]), or by weighted round-robin while that history is short.
//!
//! * **Propose.** On entering round `r`, the leader asks the application for a payload and
//!   proposes a block `B` that extends the highest certified block it knows: `B.qc` is its
//!   highest QC. If that QC is not for round `r-1`, the proposal also carries the timeout
//!   certificate (TC) for `r-1` that justifies skipping ahead.
//! * **Vote.** A validator votes for `B` (signing `B` and its parent) if the safety rules allow
//!   (see [`safety`]): its round is above every round it voted or timed out in, and `B` either
//!   directly extends a QC of round `r-1`, or extends a QC at least as high as every QC reported
//!   in the TC for `r-1`. The vote goes to the leader of `r+1`, or to every validator when the
//!   host reports that leader unreachable ([`Event::Unreachable`]).
//! * **Certify.** The leader of `r+1` aggregates votes (any validator takes votes in); 2f+1
//!   voting power on the same block forms a quorum certificate (QC). Every node that sees a QC
//!   for round `r` enters round `r+1`.
//! * **Commit (2-chain rule).** When a block `B'` is certified and its parent `B` is exactly one
//!   round below it, `B` and all its ancestors are committed.
//! * **Time out.** If round `r` makes no progress before its timer fires, a validator signs and
//!   broadcasts a timeout carrying its highest QC and its vote of round `r`, if it voted. 2f+1
//!   timeouts form a TC, which moves everyone to `r+1`; 2f+1 of the votes they carry form a QC
//!   on `r`'s block at every node, so a block whose next leader is down is still certified, and
//!   that leader's round is then timed out at once (see [`pacemaker`] for the timer, which
//!   backs off exponentially, capped, from the second consecutive round without a QC). f+1
//!   timeouts for a round make the rest join it, so rounds realign after a partition; a round
//!   whose leader the host reports unreachable is timed out at once, and one timeout of it is
//!   joined.
//! * **Catch up.** A block whose parent is unknown is held as an orphan and its ancestors are
//!   fetched from the sender with a bounded [`BlockRequest`]; verified chains are inserted and
//!   may complete a pending commit.
//!
//! ## Invariants
//!
//! 1. **Persist before send.** Every signature passes through [`SafetyRules`], and the updated
//!    [`SafetyData`] is emitted as [`Action::PersistSafety`] before the send that depends on it.
//!    A node restarted from that data never signs two votes, timeouts or proposals that conflict.
//!    [`Ready`] makes a host write it (and the batch's uncommitted blocks) before it can reach
//!    the batch's sends.
//! 2. **Agreement.** With at most f Byzantine voting power, no two honest nodes commit different
//!    blocks at the same height: a commit needs a QC on `B'` whose voters locked `B`'s QC, and
//!    any TC then carries a QC that extends `B`.
//! 3. **Hostile input.** Every message is verified (chain id through domain-separated
//!    signatures, known signers, no duplicate signers, quorum power, block id and height,
//!    payload size) before it changes state; failures are typed [`ConsensusError`]s. Buffers
//!    are bounded ([`Limits`]), and state at or below the last commit is pruned.
//! 4. **Checked arithmetic** on rounds and heights; nothing wraps.
//! 5. **Each signature verified once.** Certificates already known are not re-verified;
//!    certificates are batch-verified.
//!
//! Equivocation — two different signed proposals, votes or timeouts from one validator in one
//! round — is reported as [`Action::ReportMisbehaviour`] with both signed messages.

#![warn(missing_docs)]

mod block_tree;
pub mod claim;
mod collect;
mod config;
mod core;
mod error;
pub mod leader;
pub mod pacemaker;
mod ready;
pub mod safety;
mod types;
mod validators;
mod verify;

pub use crate::config::{Config, DisabledRule, Limits, Params, ReputationParams};
pub use crate::core::{Action, Consensus, Event, Recovery, Stats};
pub use crate::error::{ConsensusError, PayloadError, Result};
pub use crate::ready::{PersistSink, Ready};
pub use crate::safety::{SafetyData, SafetyRules};
pub use crate::types::*;
pub use crate::validators::{Validator, ValidatorSet, MAX_VALIDATORS};
pub use crate::verify::Verifier;
