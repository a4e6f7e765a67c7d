//! The core's inputs and outputs: [`Event`]s in, [`Action`]s out.

use hotledger_crypto::{Digest, PublicKey};

use crate::error::PayloadError;
use crate::safety::SafetyData;
use crate::types::{Block, BlockInfo, Commit, Evidence, Height, Message, Round};

/// An input to the core. Time is passed with every event (`Consensus::handle`'s `now_ms`).
#[derive(Debug, Clone)]
pub enum Event {
    /// Begin: enter the first round and arm its timer. Call once after `Consensus::new`.
    Start,
    /// A message from validator `from` (the transport authenticated the sender).
    Message {
        /// The sender, as the transport authenticated it.
        from: PublicKey,
        /// The message, decoded within the transport's size limit.
        message: Message,
    },
    /// The timer armed by [`Action::ScheduleTimeout`] for `round` fired.
    TimeoutFired {
        /// The round the timer was armed for.
        round: Round,
    },
    /// The payload asked for by [`Action::RequestPayload`] for `round`, built on the state
    /// after `parent`. A payload for a parent that is no longer the high QC's block (a higher
    /// QC arrived while it was built: a new request went out then) is dropped, since its
    /// transactions were chosen against other ancestors.
    PayloadReady {
        /// The round the payload was asked for.
        round: Round,
        /// The id of the block the payload was built to extend (the request's `parent`).
        parent: Digest,
        /// The application's payload, at most `Params::max_payload_bytes`.
        payload: Vec<u8>,
    },
    /// The validators this node has lost its connection to: connected once, not now (the
    /// whole set, replacing the last one). Their rounds are timed out at once instead of after
    /// a timer, and votes that would go to one of them are broadcast and gathered by every node
    /// (see [`crate::pacemaker`]). Keys outside the validator set are ignored.
    Unreachable {
        /// Every validator this node cannot reach now.
        validators: Vec<PublicKey>,
    },
    /// The application's answer to [`Action::CheckPayload`] for the block `id`: `Ok(())` takes
    /// the proposal in (and may vote for it), `Err` drops it and makes `handle` return
    /// [`ConsensusError::InvalidPayload`](crate::ConsensusError::InvalidPayload). An answer for
    /// a block the core no longer waits for is ignored.
    PayloadChecked {
        /// The id of the block whose payload was checked.
        id: Digest,
        /// The application's verdict.
        result: Result<(), PayloadError>,
    },
}

/// An output of the core, to be carried out **in order**.
///
/// # Contract: persist before send
/// `PersistSafety` must be durable (synced to disk) before any later action of the same batch is
/// carried out. The core places it before every `Send`/`Broadcast` of a vote, timeout or proposal
/// signed under the new safety data, so executing actions in order is enough to guarantee that a
/// crash can never lead this node to sign two conflicting messages. [`crate::Ready`] enforces
/// it: it persists a batch's `StoreUncommitted` blocks and its last `PersistSafety` before it
/// hands out any other action.
///
/// The actions that ask the host for something say what to **resume with**: the event that
/// answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Durably store the safety data; the node restarts from it.
    PersistSafety(SafetyData),
    /// Send to one validator.
    Send {
        /// The receiver.
        to: PublicKey,
        /// The message.
        message: Message,
    },
    /// Send to every other validator.
    Broadcast(Message),
    /// Arm a timer. **Resume with** [`Event::TimeoutFired`] for `round` after `after_ms`. A
    /// timer of a round already left is ignored, so cancelling is optional; and the last
    /// `ScheduleTimeout` of a batch is always for the round the node is in, so a host may keep
    /// a single timer and replace it with each new one.
    ScheduleTimeout {
        /// The round the timer is for.
        round: Round,
        /// How long from now, in milliseconds (0: at once).
        after_ms: u64,
    },
    /// This node leads `round`: build a payload on the state after `parent`, claiming the
    /// state root at [`crate::Consensus::proposal_claim`]. **Resume with**
    /// [`Event::PayloadReady`] for `round` and `parent` (an answer after the round is left, or
    /// for another parent, is dropped). A higher QC arriving in the round before the answer
    /// asks again, for the same round with the new parent: the payload must then leave out the
    /// transactions of the new parent's uncommitted ancestors too.
    RequestPayload {
        /// The round this node leads.
        round: Round,
        /// The block the proposal will extend.
        parent: BlockInfo,
    },
    /// Answer a peer's block request: send `Message::BlockResponse` with the blocks returned by
    /// `Consensus::collect_chain(id, count, committed_lookup)`. Nothing to resume with.
    ServeBlocks {
        /// The peer that asked.
        to: PublicKey,
        /// The newest block it asked for.
        id: Digest,
        /// How many blocks it asked for (already within the limit).
        count: u32,
    },
    /// Check the payload of `block`, a peer's proposal that passed every check of the protocol
    /// (its leader, failed leaders, signature, id, timestamp, justification and certificates),
    /// before this node takes it in: for example, that its transactions decode within the
    /// limits, their signatures verify, and that it claims this node's state root at exactly
    /// `state_height` ([`crate::claim`]). The check must give the same answer at every honest
    /// node with the same committed state.
    ///
    /// The proposal's certificates have been processed already: a commit they make comes
    /// earlier in the same batch (or an earlier one), so a host that carries out actions in
    /// order has executed `state_height` when it checks, unless the blocks up to it are not
    /// local yet (it then refuses, and does not vote).
    ///
    /// **Resume with** exactly one [`Event::PayloadChecked`] for `block.id`, when the check is
    /// done; other events may be handled meanwhile. `Ok(())` takes the proposal in where it
    /// stopped: the block enters the tree (`StoreUncommitted`) and this node votes for it if it
    /// is still in the block's round. (Its author must still
    /// lead its round: a node that lags may have committed, and changed its leader schedule,
    /// meanwhile.) `Err(PayloadError::ClaimUnchecked)` takes the block in without a vote;
    /// any other `Err` drops it. Until then the block is neither stored nor voted for. The core holds a bounded number of
    /// proposals waiting (the lowest round goes first, and those at or below a new commit); an
    /// answer for one it no longer holds is ignored.
    ///
    /// Emitted only with [`crate::Config::check_payloads`], once per block id waiting. This
    /// node's own proposals are not checked, nor are blocks fetched during catch-up (block
    /// responses): the QC on a fetched block shows that a quorum accepted it.
    CheckPayload {
        /// The peer that sent the proposal (the leader, or a peer relaying it).
        from: PublicKey,
        /// The proposed block.
        block: Block,
        /// The committed height whose state root the payload must claim.
        state_height: Height,
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
