//! The core's inputs and outputs: [`Event`]s in, [`Action`]s out.

use hotledger_crypto::{Digest, PublicKey};

use crate::safety::SafetyData;
use crate::types::{Block, BlockInfo, Commit, Evidence, Message, Round};

/// An input to the core. Time is passed with every event (`Consensus::handle`'s `now_ms`).
#[derive(Debug, Clone)]
pub enum Event {
    /// Begin: enter the first round and arm its timer. Call once after `Consensus::new`.
    Start,
    /// A message from validator `from` (the transport authenticated the sender).
    Message { from: PublicKey, message: Message },
    /// The timer armed by `Action::ScheduleTimeout { round, .. }` fired.
    TimeoutFired { round: Round },
    /// The payload asked for by `Action::RequestPayload { round, .. }`.
    PayloadReady { round: Round, payload: Vec<u8> },
    /// The validators this node has lost its connection to: connected once, not now (the
    /// whole set, replacing the last one). Their rounds are timed out at once instead of after
    /// a timer, and votes that would go to one of them are broadcast and gathered by every node
    /// (see [`crate::pacemaker`]). Keys outside the validator set are ignored.
    Unreachable { validators: Vec<PublicKey> },
}

/// An output of the core, to be carried out **in order**.
///
/// # Contract: persist before send
/// `PersistSafety` must be durable (synced to disk) before any later action of the same batch is
/// carried out. The core places it before every `Send`/`Broadcast` of a vote, timeout or proposal
/// signed under the new safety data, so executing actions in order is enough to guarantee that a
/// crash can never lead this node to sign two conflicting messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Durably store the safety data; the node restarts from it.
    PersistSafety(SafetyData),
    /// Send to one validator.
    Send { to: PublicKey, message: Message },
    /// Send to every other validator.
    Broadcast(Message),
    /// Arm a timer; answer with `Event::TimeoutFired { round }` after `after_ms`, unless the
    /// round has been left (stale timers are ignored, so cancelling is optional).
    ScheduleTimeout { round: Round, after_ms: u64 },
    /// This node leads `round`: build a payload extending `parent` and answer with
    /// `Event::PayloadReady`.
    RequestPayload { round: Round, parent: BlockInfo },
    /// Answer a peer's block request: send `Message::BlockResponse` with the blocks returned by
    /// `Consensus::collect_chain(id, count, committed_lookup)`.
    ServeBlocks {
        to: PublicKey,
        id: Digest,
        count: u32,
    },
    /// Store this block as uncommitted, durably but without a sync of its own: the next synced
    /// write (the `PersistSafety` of this node's vote for it, or any later one) covers it. It is
    /// handed back in [`crate::Recovery::uncommitted`] after a restart. Emitted for every block
    /// that enters the tree, before any vote for it, so a node restarted together with all the
    /// others still holds the certified chain. Uncommitted blocks at or below a commit may be
    /// deleted.
    StoreUncommitted(Block),
    /// Blocks are final; apply them in order and store them (atomically).
    Commit(Commit),
    /// A validator signed two conflicting messages.
    ReportMisbehaviour(Evidence),
}
