//! Shared harness for the consensus integration tests: a validator set with deterministic keys,
//! builders for correctly signed blocks, proposals, votes, timeouts and certificates, a tiny
//! deterministic in-process network (`sim::Sim`) and the rejection-case runner (`cases`).
//!
//! Everything here goes through the public API only.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cases;
mod sim;

#[allow(unused_imports)] // not every test file runs a network
pub use sim::{DropFn, Sim};

use hotledger_consensus::{
    Action, Block, BlockInfo, Config, Consensus, ConsensusError, Event, Evidence, Message,
    Proposal, QuorumCert, Recovery, Round, SafetyData, TimeoutCert, TimeoutMsg, TimeoutSig,
    Validator, ValidatorSet, Vote, VoteData,
};
use hotledger_crypto::{Digest, Domain, KeyPair, PublicKey};

pub const CHAIN: &str = "hotledger-test";
/// The local clock the single-node tests run at. Blocks built here are timestamped just above
/// their parent (genesis time 0), so they are always within the default clock skew.
pub const NOW: u64 = 1_000_000;

/// A fixed validator set: validator `i` has key `KeyPair::from_seed([i + 1; 32])`, power 1.
pub struct Net {
    pub keys: Vec<KeyPair>,
    pub set: ValidatorSet,
    pub genesis: BlockInfo,
}

/// A key that is not in any `Net`'s validator set.
pub fn outsider() -> KeyPair {
    KeyPair::from_seed([200; 32])
}

impl Net {
    pub fn new(n: usize) -> Net {
        let keys: Vec<KeyPair> = (0..n)
            .map(|i| KeyPair::from_seed([u8::try_from(i + 1).unwrap(); 32]))
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator {
                    key: k.public(),
                    power: 1,
                })
                .collect(),
        )
        .unwrap();
        Net {
            keys,
            set,
            genesis: Config::genesis_block(Digest::of(b"genesis"), 0),
        }
    }

    pub fn pk(&self, i: usize) -> PublicKey {
        self.keys[i].public()
    }

    pub fn index_of(&self, pk: &PublicKey) -> usize {
        self.keys.iter().position(|k| k.public() == *pk).unwrap()
    }

    /// Index of the leader of `round`.
    pub fn leader(&self, round: Round) -> usize {
        self.index_of(&self.set.leader(round))
    }

    pub fn config(&self, i: usize) -> Config {
        Config::new(
            CHAIN,
            self.genesis,
            self.set.clone(),
            Some(self.keys[i].clone()),
        )
    }

    /// A node for validator `i`, built from `config` and started at `NOW`.
    pub fn start(&self, config: Config) -> (Consensus, Vec<Action>) {
        let recovery = Recovery::genesis(&config);
        let mut node = Consensus::new(config, recovery).unwrap();
        let actions = node.handle(NOW, Event::Start).unwrap();
        (node, actions)
    }

    /// Validator `i`'s node with default config, started (in round 1).
    pub fn node(&self, i: usize) -> Consensus {
        self.start(self.config(i)).0
    }

    pub fn genesis_qc(&self) -> QuorumCert {
        QuorumCert::genesis(self.genesis)
    }

    /// A block signed by `key` with a correct id (whatever the other fields say), naming no
    /// failed leaders.
    pub fn make_block(
        key: &KeyPair,
        chain_id: &str,
        round: Round,
        height: u64,
        timestamp_ms: u64,
        qc: &QuorumCert,
        payload: &[u8],
    ) -> Block {
        let mut block = Self::make_block_failed(key, chain_id, round, height, qc, &[], payload);
        block.timestamp_ms = timestamp_ms;
        Self::reseal(key, chain_id, block)
    }

    /// A block timestamped just above its parent, naming `failed_leaders`.
    pub fn make_block_failed(
        key: &KeyPair,
        chain_id: &str,
        round: Round,
        height: u64,
        qc: &QuorumCert,
        failed_leaders: &[PublicKey],
        payload: &[u8],
    ) -> Block {
        let block = Block {
            id: Digest::of(b""),
            round,
            height,
            timestamp_ms: qc.block().timestamp_ms + 1,
            author: key.public(),
            qc: qc.clone(),
            failed_leaders: failed_leaders.to_vec(),
            payload: payload.to_vec(),
            signature: hotledger_crypto::Signature([0; 64]),
        };
        Self::reseal(key, chain_id, block)
    }

    /// `block` with its id computed again and signed by `key`.
    pub fn reseal(key: &KeyPair, chain_id: &str, mut block: Block) -> Block {
        block.id = block.recompute_id();
        block.signature = key.sign(
            Domain::Proposal,
            chain_id,
            &hotledger_consensus::proposal_signing_bytes(block.round, block.height, &block.id),
        );
        block
    }

    /// The failed leaders a block of `round` extending `qc` names while leaders are
    /// round-robin (a young chain): the leaders of the rounds in between, the last ten.
    pub fn failed_leaders(&self, qc: &QuorumCert, round: Round) -> Vec<PublicKey> {
        let first = (qc.round() + 1).max(round.saturating_sub(10));
        (first..round).map(|r| self.set.leader(r)).collect()
    }
}

impl Net {
    /// A valid block of `round` by validator `author`, extending `qc`'s block.
    pub fn block_by(&self, author: usize, round: Round, qc: &QuorumCert, payload: &[u8]) -> Block {
        Self::make_block_failed(
            &self.keys[author],
            CHAIN,
            round,
            qc.block().height + 1,
            qc,
            &self.failed_leaders(qc, round),
            payload,
        )
    }

    /// A valid block of `round` by that round's leader, extending `qc`'s block.
    pub fn block(&self, round: Round, qc: &QuorumCert, payload: &[u8]) -> Block {
        self.block_by(self.leader(round), round, qc, payload)
    }

    /// A proposal of `round` by its leader extending `qc`, with `tc` attached.
    pub fn proposal(&self, round: Round, qc: &QuorumCert, tc: Option<TimeoutCert>) -> Proposal {
        Proposal {
            block: self.block(round, qc, format!("payload {round}").as_bytes()),
            tc,
        }
    }

    pub fn vote_on(&self, i: usize, data: VoteData) -> Vote {
        Vote {
            data,
            author: self.pk(i),
            signature: self.keys[i].sign(Domain::Vote, CHAIN, &data.signing_bytes()),
        }
    }

    pub fn vote(&self, i: usize, block: &Block) -> Vote {
        self.vote_on(i, block.vote_data())
    }

    /// A QC on `block` signed by `signers`.
    pub fn qc(&self, block: &Block, signers: &[usize]) -> QuorumCert {
        self.qc_on(block.vote_data(), signers, CHAIN)
    }

    pub fn qc_on(&self, data: VoteData, signers: &[usize], chain_id: &str) -> QuorumCert {
        QuorumCert {
            data,
            votes: signers
                .iter()
                .map(|&i| {
                    (
                        self.pk(i),
                        self.keys[i].sign(Domain::Vote, chain_id, &data.signing_bytes()),
                    )
                })
                .collect(),
        }
    }

    pub fn timeout(&self, i: usize, round: Round, high_qc: &QuorumCert) -> TimeoutMsg {
        TimeoutMsg {
            round,
            high_qc: high_qc.clone(),
            author: self.pk(i),
            signature: self.keys[i].sign(
                Domain::Timeout,
                CHAIN,
                &hotledger_consensus::timeout_signing_bytes(round, high_qc.round()),
            ),
            last_tc: None,
            vote: None,
        }
    }

    pub fn timeout_sig(&self, i: usize, round: Round, high_qc_round: Round) -> TimeoutSig {
        TimeoutSig {
            author: self.pk(i),
            high_qc_round,
            signature: self.keys[i].sign(
                Domain::Timeout,
                CHAIN,
                &hotledger_consensus::timeout_signing_bytes(round, high_qc_round),
            ),
        }
    }

    /// A TC for `round` whose signers all report `high_qc`.
    pub fn tc(&self, round: Round, high_qc: &QuorumCert, signers: &[usize]) -> TimeoutCert {
        TimeoutCert {
            round,
            high_qc: high_qc.clone(),
            sigs: signers
                .iter()
                .map(|&i| self.timeout_sig(i, round, high_qc.round()))
                .collect(),
        }
    }

    /// A certified chain of `n` blocks in rounds 1..=n, each by its round's leader; `qcs[k]`
    /// certifies `blocks[k]` (signed by validators 0, 1, 2).
    pub fn chain(&self, n: usize) -> (Vec<Block>, Vec<QuorumCert>) {
        let mut blocks = Vec::new();
        let mut qcs: Vec<QuorumCert> = Vec::new();
        for r in 1..=n as u64 {
            let qc = qcs.last().cloned().unwrap_or_else(|| self.genesis_qc());
            let b = self.block(r, &qc, format!("block {r}").as_bytes());
            qcs.push(self.qc(&b, &[0, 1, 2]));
            blocks.push(b);
        }
        (blocks, qcs)
    }

    /// A timeout for `round` from validator `i` carrying the TC for `round - 1` (signed by
    /// 0, 1, 2 with genesis high QC): feeding it moves a fresh node into `round`.
    pub fn advance_msg(&self, i: usize, round: Round) -> Message {
        let g = self.genesis_qc();
        let mut t = self.timeout(i, round, &g);
        t.last_tc = Some(self.tc(round - 1, &g, &[0, 1, 2]));
        Message::Timeout(t)
    }
}

/// Feeds a peer message at `NOW`.
pub fn feed(
    node: &mut Consensus,
    from: PublicKey,
    message: Message,
) -> Result<Vec<Action>, ConsensusError> {
    node.handle(NOW, Event::Message { from, message })
}

/// Votes this batch sends (to whom).
pub fn sent_votes(actions: &[Action]) -> Vec<(PublicKey, Vote)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                message: Message::Vote(v),
            } => Some((*to, v.clone())),
            _ => None,
        })
        .collect()
}

pub fn evidence(actions: &[Action]) -> Vec<Evidence> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ReportMisbehaviour(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Checks invariant 1 on one batch: every vote, timeout or proposal this node authored and sends
/// is preceded, in the same batch, by a `PersistSafety` whose data already covers it.
pub fn check_persist_before_send(me: &PublicKey, actions: &[Action]) -> Result<(), String> {
    let mut persisted: Option<&SafetyData> = None;
    for (i, a) in actions.iter().enumerate() {
        let message = match a {
            Action::PersistSafety(d) => {
                persisted = Some(d);
                continue;
            }
            Action::Send { message, .. } | Action::Broadcast(message) => message,
            _ => continue,
        };
        let covered = match message {
            Message::Vote(v) if v.author == *me => {
                persisted.is_some_and(|d| d.last_voted_round >= v.round())
            }
            Message::Timeout(t) if t.author == *me => {
                persisted.is_some_and(|d| d.highest_timeout_round >= t.round)
            }
            Message::Proposal(p) if p.block.author == *me => {
                persisted.is_some_and(|d| d.last_proposed_round >= p.block.round)
            }
            _ => true,
        };
        if !covered {
            return Err(format!(
                "action {i} sends a {} not covered by an earlier PersistSafety: {actions:#?}",
                message.kind()
            ));
        }
    }
    Ok(())
}
