//! Protocol data: blocks, votes, certificates and the messages that carry them.
//!
//! Signed bytes are defined explicitly here (`*_signing_bytes`), fixed-width big-endian, and the
//! crypto crate prefixes them with a per-kind domain tag and the chain id. Serde encodings are for
//! the wire and storage only; nothing signed depends on them.

use hotledger_crypto::{Digest, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// A consensus round. Strictly increasing; arithmetic on it is checked.
pub type Round = u64;
/// A block height: the genesis block is height 0, every block is its parent's height plus one.
pub type Height = u64;

/// The header fields of a block that votes and certificates refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockInfo {
    /// The block's id (see [`Block::compute_id`]).
    pub id: Digest,
    /// The round it was proposed in.
    pub round: Round,
    /// Its height.
    pub height: Height,
    /// Its proposer's clock when proposed, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl BlockInfo {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.round.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
    }
}

/// What a vote signs: a block and its parent. A QC over `VoteData` therefore proves both that the
/// block is certified and which block it extends, which is all the 2-chain commit rule needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VoteData {
    /// The block voted for.
    pub block: BlockInfo,
    /// Its parent, the block its QC certifies.
    pub parent: BlockInfo,
}

impl VoteData {
    /// `block (56 bytes) || parent (56 bytes)`, each `id || round || height || timestamp_ms`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(112);
        self.block.write(&mut out);
        self.parent.write(&mut out);
        out
    }

    /// Digest of the signed bytes; identifies what a vote is for.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.signing_bytes())
    }

    /// True when the certified block directly follows its parent's round: the 2-chain commit
    /// rule then commits the parent.
    pub fn is_consecutive(&self) -> bool {
        self.parent.round.checked_add(1) == Some(self.block.round)
    }
}

/// A quorum certificate: signatures of validators holding at least 2f+1 voting power over the
/// same `VoteData`. The genesis QC has no signatures and is accepted only if it equals ours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumCert {
    /// What every signer voted for.
    pub data: VoteData,
    /// Each signer with its vote signature over `data`.
    pub votes: Vec<(PublicKey, Signature)>,
}

impl QuorumCert {
    /// The certificate the chain starts from: the genesis block certified by fiat.
    pub fn genesis(genesis: BlockInfo) -> Self {
        QuorumCert {
            data: VoteData {
                block: genesis,
                parent: genesis,
            },
            votes: Vec::new(),
        }
    }

    /// The round of the certified block.
    pub fn round(&self) -> Round {
        self.data.block.round
    }

    /// The certified block.
    pub fn block(&self) -> &BlockInfo {
        &self.data.block
    }
}

/// The most failed rounds a block names: the ones just before it.
pub const MAX_FAILED_LEADERS: usize = 10;

/// A block: a round's proposal, extending the block its QC certifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The block's id: [`Block::compute_id`] of its contents.
    pub id: Digest,
    /// The round it was proposed in.
    pub round: Round,
    /// Its parent's height plus one.
    pub height: Height,
    /// Its proposer's clock when proposed (ms since the Unix epoch), not below its parent's.
    pub timestamp_ms: u64,
    /// The leader that proposed it.
    pub author: PublicKey,
    /// Certifies the parent block.
    pub qc: QuorumCert,
    /// The leaders of the rounds between the parent's and this one, oldest first: rounds that
    /// produced no block this one extends. Only the last [`MAX_FAILED_LEADERS`] rounds are named.
    /// Leader reputation reads them from committed blocks (see [`crate::leader`]); a node votes
    /// only for a block whose list is the one it computes itself.
    pub failed_leaders: Vec<PublicKey>,
    /// Opaque to consensus; the application fills and checks it.
    pub payload: Vec<u8>,
    /// The author's signature over `proposal_signing_bytes(round, height, id)`.
    pub signature: Signature,
}

impl Block {
    /// The id a block with these contents must carry: SHA-256 over
    /// `"hotledger/block/v3" || round || height || timestamp_ms || author || qc.data digest ||
    /// signer count (u32) || each QC signer's key, in the QC's order || failed leader count
    /// (u32) || each failed leader's key, in order || payload digest`.
    ///
    /// The signers and the failed leaders are part of the id because leader reputation reads
    /// them (see [`crate::leader`]): every node must see the same ones in a committed block, so
    /// nobody can pass the block on with another QC of the same vote data.
    pub fn compute_id(
        round: Round,
        height: Height,
        timestamp_ms: u64,
        author: &PublicKey,
        qc: &QuorumCert,
        failed_leaders: &[PublicKey],
        payload: &[u8],
    ) -> Digest {
        let mut h = Digest::hasher();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        let signers = count(qc.votes.len());
        h.update(b"hotledger/block/v3")
            .update(&round.to_be_bytes())
            .update(&height.to_be_bytes())
            .update(&timestamp_ms.to_be_bytes())
            .update(author.as_bytes())
            .update(qc.data.digest().as_bytes())
            .update(&signers);
        for (signer, _) in &qc.votes {
            h.update(signer.as_bytes());
        }
        h.update(&count(failed_leaders.len()));
        for leader in failed_leaders {
            h.update(leader.as_bytes());
        }
        h.update(Digest::of(payload).as_bytes());
        h.finalize()
    }

    /// The id recomputed from this block's contents.
    pub fn recompute_id(&self) -> Digest {
        Self::compute_id(
            self.round,
            self.height,
            self.timestamp_ms,
            &self.author,
            &self.qc,
            &self.failed_leaders,
            &self.payload,
        )
    }

    /// The header fields votes refer to.
    pub fn info(&self) -> BlockInfo {
        BlockInfo {
            id: self.id,
            round: self.round,
            height: self.height,
            timestamp_ms: self.timestamp_ms,
        }
    }

    /// The parent's header, as certified by `qc`.
    #[allow(clippy::misnamed_getters)]
    pub fn parent(&self) -> &BlockInfo {
        &self.qc.data.block
    }

    /// What a vote for this block signs.
    pub fn vote_data(&self) -> VoteData {
        VoteData {
            block: self.info(),
            parent: *self.parent(),
        }
    }
}

/// `round || height || id`: what a leader signs when it proposes. Round and height are in the
/// clear so two signed proposals for one round are self-evident evidence of equivocation.
pub fn proposal_signing_bytes(round: Round, height: Height, id: &Digest) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(&round.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(id.as_bytes());
    out
}

/// `round || high_qc_round`: what a validator signs when it times out. (Jolteon: the TC carries
/// each signer's highest QC round, so the next leader can prove its QC is at least as high.)
pub fn timeout_signing_bytes(round: Round, high_qc_round: Round) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&round.to_be_bytes());
    out.extend_from_slice(&high_qc_round.to_be_bytes());
    out
}

/// A proposal: a block, plus the TC for the previous round when the block's QC is not for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposed block.
    pub block: Block,
    /// The TC of the round before the block's, when the block's QC is not of that round.
    pub tc: Option<TimeoutCert>,
}

/// A signed vote for a block, sent to the leader of the next round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The block voted for and its parent.
    pub data: VoteData,
    /// The voter.
    pub author: PublicKey,
    /// The voter's signature over `data.signing_bytes()` (domain `Vote`).
    pub signature: Signature,
}

impl Vote {
    /// The round of the block voted for.
    pub fn round(&self) -> Round {
        self.data.block.round
    }
}

/// A signed timeout: "I give up on `round`; my highest QC is `high_qc`". Broadcast to everyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutMsg {
    /// The round timed out.
    pub round: Round,
    /// The sender's highest QC.
    pub high_qc: QuorumCert,
    /// The sender.
    pub author: PublicKey,
    /// Its signature over `timeout_signing_bytes(round, high_qc.round())` (domain `Timeout`).
    pub signature: Signature,
    /// Not signed: the TC that took the sender into `round`, so laggards can follow it there.
    pub last_tc: Option<TimeoutCert>,
    /// Not signed by the timeout: the sender's own vote in `round`, if it voted (the vote carries
    /// its own signature). Its votes went to the next leader only; broadcast with the timeout,
    /// they let every node certify the round's block when that leader is down.
    pub vote: Option<Vote>,
}

/// One signer's entry in a timeout certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutSig {
    /// The signer.
    pub author: PublicKey,
    /// The round of the signer's highest QC, as it signed it.
    pub high_qc_round: Round,
    /// Its signature over `timeout_signing_bytes(round, high_qc_round)`.
    pub signature: Signature,
}

/// A timeout certificate: 2f+1 voting power timed out `round`. `high_qc` is the highest QC among
/// the signers' (its round equals the largest `high_qc_round`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutCert {
    /// The round timed out.
    pub round: Round,
    /// The highest QC among the signers'.
    pub high_qc: QuorumCert,
    /// One entry per signer.
    pub sigs: Vec<TimeoutSig>,
}

impl TimeoutCert {
    /// The largest QC round any signer reported.
    pub fn max_high_qc_round(&self) -> Round {
        self.sigs.iter().map(|s| s.high_qc_round).max().unwrap_or(0)
    }
}

/// Asks a peer for the block `id` and up to `count - 1` of its ancestors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRequest {
    /// The newest block wanted.
    pub id: Digest,
    /// How many blocks, `id` included (1 to `Limits::max_blocks_per_request`).
    pub count: u32,
}

/// Blocks answering a `BlockRequest`, newest first, each the parent of the one before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockResponse {
    /// The blocks, newest first.
    pub blocks: Vec<Block>,
}

/// Everything validators send each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A leader's block, broadcast.
    Proposal(Proposal),
    /// A vote, to the next round's leader (or broadcast when that leader is unreachable).
    Vote(Vote),
    /// A timeout, broadcast.
    Timeout(TimeoutMsg),
    /// A request for missing blocks, to one peer.
    BlockRequest(BlockRequest),
    /// The answer to a `BlockRequest`.
    BlockResponse(BlockResponse),
}

impl Message {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Proposal(_) => "proposal",
            Message::Vote(_) => "vote",
            Message::Timeout(_) => "timeout",
            Message::BlockRequest(_) => "block_request",
            Message::BlockResponse(_) => "block_response",
        }
    }
}

/// Two signed messages from one validator that no honest validator would sign together.
/// Each variant is self-contained: anyone can verify both signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Evidence {
    /// Two different blocks proposed for the same round.
    ConflictingProposals {
        /// The leader.
        author: PublicKey,
        /// The round of both.
        round: Round,
        /// The first proposal's height, block id and signature.
        first: (Height, Digest, Signature),
        /// The second's.
        second: (Height, Digest, Signature),
    },
    /// Two different votes in the same round.
    ConflictingVotes {
        /// The vote seen first.
        first: Vote,
        /// The other one.
        second: Vote,
    },
    /// Two different timeouts for the same round.
    ConflictingTimeouts {
        /// The validator.
        author: PublicKey,
        /// The round of both.
        round: Round,
        /// The first timeout's signed high QC round and signature.
        first: (Round, Signature),
        /// The second's.
        second: (Round, Signature),
    },
}

impl Evidence {
    /// The validator the evidence incriminates.
    pub fn culprit(&self) -> &PublicKey {
        match self {
            Evidence::ConflictingProposals { author, .. }
            | Evidence::ConflictingTimeouts { author, .. } => author,
            Evidence::ConflictingVotes { first, .. } => &first.author,
        }
    }
}

/// A run of newly committed blocks, oldest first, with the QC that proves the last one committed
/// (its `data.parent` is the last block and `data.is_consecutive()` holds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The committed blocks, oldest first, each the parent of the next.
    pub blocks: Vec<Block>,
    /// The QC that commits the last of them.
    pub proof: QuorumCert,
}
