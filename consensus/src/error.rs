//! The one error type of the consensus core.
//!
//! Every way a peer's message can be rejected has its own variant with typed fields, so the host
//! can log it, penalise the peer, and tests can `assert_eq!` on it. None of these is fatal to the
//! node: a rejected message is dropped and the state is unchanged.

use hotledger_crypto::{Digest, PublicKey};

use crate::types::{Height, Round};

/// Why the consensus core refused an input or a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    // ---- configuration -------------------------------------------------------------------
    /// The configuration is not usable; the text names the field.
    #[error("invalid consensus configuration: {0}")]
    InvalidConfig(String),

    // ---- who sent it ---------------------------------------------------------------------
    /// The signer is not in the validator set.
    #[error("unknown signer {0:?}")]
    UnknownSigner(PublicKey),
    /// The proposal was not made by the leader of its round.
    #[error("round {round}: {author:?} is not the leader (expected {expected:?})")]
    NotLeader {
        /// The proposal's round.
        round: Round,
        /// Who proposed it.
        author: PublicKey,
        /// The leader this node computes for `round`.
        expected: PublicKey,
    },
    /// The block names other failed leaders than this node computes for the rounds before it
    /// (see [`crate::leader`]): it is not voted for.
    #[error("round {round}: the block names failed leaders {got:?}, expected {expected:?}")]
    WrongFailedLeaders {
        /// The block's round.
        round: Round,
        /// The failed leaders the block names.
        got: Vec<PublicKey>,
        /// The ones this node computes.
        expected: Vec<PublicKey>,
    },
    /// The block names more failed leaders than a block may.
    #[error("block names {got} failed leaders, at most {max} allowed")]
    TooManyFailedLeaders {
        /// How many the block names.
        got: usize,
        /// The most a block may name.
        max: usize,
    },
    /// A vote for round `round` was sent to an observer (a node without a validator key),
    /// which gathers no votes.
    #[error("vote for round {round} sent to an observer, which gathers no votes")]
    NotNextLeader {
        /// The vote's round.
        round: Round,
    },

    // ---- signatures and certificates -----------------------------------------------------
    /// A signature did not verify.
    #[error("bad signature from {signer:?} on a {what}")]
    BadSignature {
        /// The kind of message or certificate.
        what: &'static str,
        /// The key the signature claims.
        signer: PublicKey,
    },
    /// A certificate lists the same signer twice.
    #[error("{what} lists signer {signer:?} twice")]
    DuplicateSigner {
        /// The kind of certificate.
        what: &'static str,
        /// The signer listed twice.
        signer: PublicKey,
    },
    /// A certificate's signers hold too little voting power.
    #[error("{what} has voting power {got}, needs {needed}")]
    InsufficientPower {
        /// The kind of certificate.
        what: &'static str,
        /// The signers' voting power.
        got: u64,
        /// The quorum.
        needed: u64,
    },
    /// A certificate has more entries than there are validators.
    #[error("{what} has {got} signatures, more than the {max} validators")]
    TooManySignatures {
        /// The kind of certificate.
        what: &'static str,
        /// How many signatures it carries.
        got: usize,
        /// The number of validators.
        max: usize,
    },
    /// The vote data inside a QC is inconsistent (heights or rounds do not chain).
    #[error("malformed quorum certificate: {0}")]
    MalformedQc(&'static str),
    /// A timeout certificate is inconsistent.
    #[error("malformed timeout certificate: {0}")]
    MalformedTc(&'static str),
    /// A timeout carries a vote that is not its author's vote in the timed-out round.
    #[error(
        "timeout of round {round} by {author:?} carries a vote of round {vote_round} by {voter:?}"
    )]
    ForeignTimeoutVote {
        /// The timeout's round.
        round: Round,
        /// The timeout's author.
        author: PublicKey,
        /// The carried vote's round.
        vote_round: Round,
        /// The carried vote's author.
        voter: PublicKey,
    },
    /// A genesis certificate that is not ours (another chain, or forged).
    #[error("certificate claims genesis {got} but this chain's genesis is {expected}")]
    WrongGenesis {
        /// This chain's genesis block id.
        expected: Digest,
        /// The one the certificate claims.
        got: Digest,
    },

    // ---- blocks and proposals ------------------------------------------------------------
    /// The application refused the payload of a proposal (its answer to
    /// [`crate::Action::CheckPayload`]); the block is dropped and not voted for.
    #[error("round {round}: the payload of {author:?}'s block is invalid: {error}")]
    InvalidPayload {
        /// The proposal's round.
        round: Round,
        /// The proposal's author, the leader of `round`.
        author: PublicKey,
        /// What the application found.
        error: PayloadError,
    },
    /// The block's id does not match its contents.
    #[error("block id {claimed} does not match its contents ({computed})")]
    BlockIdMismatch {
        /// The id the block carries.
        claimed: Digest,
        /// The id of its contents.
        computed: Digest,
    },
    /// The payload is larger than the configured maximum.
    #[error("payload of {got} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// The payload's size in bytes.
        got: usize,
        /// `Params::max_payload_bytes`.
        max: usize,
    },
    /// The block's height is not its parent's height plus one.
    #[error("block height {got} does not follow parent height {parent}")]
    BadHeight {
        /// The parent's height.
        parent: Height,
        /// The block's height.
        got: Height,
    },
    /// The block's timestamp goes backwards or too far ahead.
    #[error("block timestamp {got} ms is outside [{min}, {max}] ms")]
    BadTimestamp {
        /// The block's timestamp.
        got: u64,
        /// The parent's timestamp.
        min: u64,
        /// This node's clock plus the allowed skew.
        max: u64,
    },
    /// A proposal's round is not justified by its QC (consecutive) or by a TC for the previous round.
    #[error("round {round} is not justified: qc round {qc_round}, tc round {tc_round:?}")]
    UnjustifiedRound {
        /// The proposal's round.
        round: Round,
        /// The round of its QC.
        qc_round: Round,
        /// The round of its TC, if it carries one.
        tc_round: Option<Round>,
    },

    // ---- rounds and bounds ---------------------------------------------------------------
    /// A message for a round too far beyond ours, without a certificate that would take us there.
    #[error("round {round} is too far ahead of current round {current}")]
    RoundTooFarAhead {
        /// The message's round.
        round: Round,
        /// This node's round.
        current: Round,
    },
    /// A message for a round we have already left.
    #[error("round {round} is stale (current round {current})")]
    StaleRound {
        /// The message's round.
        round: Round,
        /// This node's round.
        current: Round,
    },
    /// Round or height arithmetic would overflow.
    #[error("round or height overflow")]
    Overflow,
    /// An in-memory structure is at its configured bound; the message is dropped.
    #[error("{what} is full ({max} entries)")]
    Full {
        /// The structure that is full.
        what: &'static str,
        /// Its bound.
        max: usize,
    },
    /// A block request asks for more than the configured maximum.
    #[error("block request for {got} blocks exceeds the maximum of {max}")]
    RequestTooLarge {
        /// The count asked for.
        got: u32,
        /// `Limits::max_blocks_per_request`.
        max: u32,
    },
    /// A block response with no blocks, or more than a request may ask for.
    #[error("block response of {got} blocks (1 to {max} allowed)")]
    BlockResponseSize {
        /// The number of blocks in the response.
        got: usize,
        /// `Limits::max_blocks_per_request`.
        max: usize,
    },
    /// A block response whose first block was not asked for (or the request expired): an honest
    /// peer answering late sends it too.
    #[error("block response for {first:?}, which was not requested")]
    UnrequestedBlocks {
        /// The id of the response's first block.
        first: Digest,
    },
    /// A block response whose blocks are not each the parent of the one before.
    #[error("block response whose blocks do not chain")]
    BlocksDoNotChain,

    // ---- safety rules (see `safety`) -----------------------------------------------------
    /// Would vote or time out in a round not above the last one voted in.
    #[error("safety: round {round} is not above the last voted round {last_voted}")]
    RoundNotIncreasing {
        /// The round asked for.
        round: Round,
        /// The last round voted or timed out in.
        last_voted: Round,
    },
    /// Would propose twice in one round.
    #[error("safety: already proposed in round {round}")]
    AlreadyProposed {
        /// The round.
        round: Round,
    },
    /// The 2-chain voting rule forbids voting for this block.
    #[error("safety: unsafe to vote for round {round} (qc round {qc_round}, tc {tc:?})")]
    UnsafeToVote {
        /// The block's round.
        round: Round,
        /// The round of the block's QC.
        qc_round: Round,
        /// The TC's round and its highest QC round, if a TC came with the block.
        tc: Option<(Round, Round)>,
    },
    /// The 2-chain timeout rule forbids timing out with this QC.
    #[error("safety: unsafe to time out round {round} with qc round {qc_round} (locked {locked})")]
    UnsafeToTimeout {
        /// The round to time out.
        round: Round,
        /// The round of the QC it would carry.
        qc_round: Round,
        /// This node's locked round.
        locked: Round,
    },
}

/// Why the application refused the payload of a proposed block: its answer to
/// [`crate::Action::CheckPayload`], handed back in [`crate::Event::PayloadChecked`]. The payload
/// is opaque to consensus; these are the ways an application can find it invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The payload does not decode within the application's limits.
    #[error("malformed payload: {detail}")]
    Malformed {
        /// What did not decode, for the log.
        detail: String,
    },
    /// A transaction's signature does not verify.
    #[error("transaction {index} of the payload has a bad signature")]
    BadSignature {
        /// The transaction's position in the payload.
        index: usize,
    },
    /// The payload's claim about committed state disagrees with this node's.
    #[error("payload claims state root {claimed} at height {height}, this node has {ours}")]
    WrongStateRoot {
        /// The committed height the claim is about.
        height: Height,
        /// The state root the payload claims.
        claimed: Digest,
        /// The state root this node committed at `height`.
        ours: Digest,
    },
    /// The payload claims the state at another height than the chain says it must
    /// ([`crate::claim`]).
    #[error("payload claims the state at height {claimed}, the chain says height {expected}")]
    WrongStateHeight {
        /// The height the payload claims.
        claimed: Height,
        /// The claim height the rule gives.
        expected: Height,
    },
    /// This node cannot check the claim: it has not executed the claimed height (it is behind),
    /// or no longer holds its root. Not the proposer's fault; the node does not vote.
    #[error(
        "cannot check the state claim at height {height}: this node has executed up to {executed}"
    )]
    ClaimUnchecked {
        /// The claimed height.
        height: Height,
        /// The highest height this node has executed.
        executed: Height,
    },
    /// The payload holds more than the application allows.
    #[error("payload of {bytes} bytes exceeds the application's maximum of {max}")]
    Oversized {
        /// The payload's size (or the size of the part that is over the limit).
        bytes: usize,
        /// The application's limit.
        max: usize,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = ConsensusError> = std::result::Result<T, E>;
