//! Safety and liveness checkers, fed by the simulator as the run goes.

use std::collections::{BTreeMap, HashMap, HashSet};

use hotledger_consensus::{Block, Height, Round, VoteData};
use hotledger_crypto::{Digest, PublicKey};

/// What the checkers found in one run.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Heights at which two honest nodes committed different blocks.
    pub forks: usize,
    /// Honest keys that signed two different votes in one round.
    pub conflicting_votes: usize,
    /// Committed blocks that carry a transaction the client never signed, or that do not
    /// extend the previous commit of the same node.
    pub invalid_commits: usize,
    /// Transactions found in more than one block of the agreed chain (each must commit once).
    pub repeated_txs: usize,
    /// Heights at which two honest nodes computed different state roots.
    pub root_mismatches: usize,
    /// Votes, timeouts or proposals an honest host handed out that its durable safety record
    /// did not cover.
    pub unpersisted_sends: usize,
    /// Committed blocks whose payload claims a state root other than the agreed one at its
    /// height, or a claim about a height not below the block's own.
    pub false_root_claims: usize,
    /// Heights whose state roots every honest node that committed them agreed on.
    pub roots_agreed: u64,
    /// Transfers applied in honest commits (counted once per height).
    pub txs_applied: u64,
    /// Proposals honest hosts refused for their payload (forged signatures, wrong claims).
    pub payloads_refused: u64,
    /// Heights of state-tree nodes recomputed by hosts restarted after a crash.
    pub rebuilt_heights: u64,
    /// Crashes that also wiped the node's chain data (`SimConfig::wipes`).
    pub wipes: u64,
    /// Times an honest host switched to forward sync.
    pub syncs: u64,
    /// Sync responses honest hosts refused (tampered or unproven).
    pub sync_refused: u64,
    /// State syncs honest hosts completed, and the snapshot responses they refused.
    pub restores: u64,
    pub restore_refused: u64,
    /// Honest nodes that did not commit anew within the liveness bound after GST.
    pub stalled_nodes: usize,
    /// Time from GST until every honest node committed a block above the GST high-water mark.
    pub recovery_ms: Option<u64>,
    /// Highest height committed by every honest node.
    pub committed_height: Height,
    /// Misbehaviour reports raised by honest nodes.
    pub evidence: usize,
    /// In an omission run: honest nodes' commits at which the target was no leader candidate.
    pub target_excluded: usize,
}

impl Verdict {
    pub fn safe(&self) -> bool {
        self.forks == 0
            && self.conflicting_votes == 0
            && self.invalid_commits == 0
            && self.repeated_txs == 0
            && self.root_mismatches == 0
            && self.unpersisted_sends == 0
            && self.false_root_claims == 0
    }

    pub fn live(&self) -> bool {
        self.stalled_nodes == 0
    }

    pub fn describe(&self) -> String {
        format!(
            "forks={} conflicting_votes={} invalid_commits={} repeated_txs={} \
             root_mismatches={} unpersisted_sends={} false_root_claims={} stalled_nodes={} \
             recovery_ms={:?} target_excluded={}",
            self.forks,
            self.conflicting_votes,
            self.invalid_commits,
            self.repeated_txs,
            self.root_mismatches,
            self.unpersisted_sends,
            self.false_root_claims,
            self.stalled_nodes,
            self.recovery_ms,
            self.target_excluded
        )
    }
}

/// A block of the agreed chain, as the measurements need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommittedBlock {
    pub height: Height,
    pub round: Round,
    pub author: PublicKey,
    /// The proposer's clock when it proposed (virtual ms).
    pub timestamp_ms: u64,
}

/// Watches an honest node's commits and signatures.
#[derive(Debug, Default)]
pub struct Checker {
    /// Height → the first honest commit seen at it.
    canonical: HashMap<Height, Digest>,
    /// The same blocks, for measurements.
    chain: BTreeMap<Height, CommittedBlock>,
    fork_heights: HashSet<Height>,
    /// Per honest node: last committed (height, id).
    tips: HashMap<usize, (Height, Digest)>,
    /// Per honest key: round → vote data signed.
    votes: HashMap<PublicKey, BTreeMap<Round, VoteData>>,
    /// Transaction hash → the height of the agreed block that carries it.
    tx_heights: HashMap<Digest, Height>,
    /// Height → the first honest state root computed after it.
    roots: HashMap<Height, Digest>,
    pub verdict: Verdict,
    /// Per honest node: the time it first committed above `gst_mark`.
    recovered_at: HashMap<usize, u64>,
    gst_mark: Option<Height>,
}

impl Checker {
    /// Validity and agreement: each block extends the node's previous commit, carries only
    /// transactions the client signed (`txs_known`) and none an agreed block at another height
    /// carries (`txs`: their hashes), and matches every other honest node's block at its
    /// height.
    pub fn committed(
        &mut self,
        node: usize,
        block: &Block,
        txs: &[Digest],
        txs_known: bool,
        now_ms: u64,
    ) {
        let (tip_h, tip_id) = self.tips.get(&node).copied().unwrap_or((0, Digest::ZERO));
        let extends = block.height == tip_h + 1 && (tip_h == 0 || block.parent().id == tip_id);
        if !extends || !txs_known {
            if std::env::var_os("SIM_DEBUG").is_some() {
                eprintln!(
                    "invalid commit at node {node} t={now_ms}: height {} after tip {tip_h}, parent {} vs tip {}, transactions known {txs_known}",
                    block.height,
                    block.parent().id.short(),
                    tip_id.short(),
                );
            }
            self.verdict.invalid_commits += 1;
        }
        self.tips.insert(node, (block.height, block.id));
        match self.canonical.get(&block.height) {
            Some(id) if *id != block.id => {
                if self.fork_heights.insert(block.height) {
                    self.verdict.forks += 1;
                }
            }
            Some(_) => {}
            None => {
                self.canonical.insert(block.height, block.id);
                for hash in txs {
                    let first = *self.tx_heights.entry(*hash).or_insert(block.height);
                    if first != block.height {
                        if std::env::var_os("SIM_DEBUG").is_some() {
                            eprintln!(
                                "transaction {} committed at heights {first} and {}",
                                hash.short(),
                                block.height
                            );
                        }
                        self.verdict.repeated_txs += 1;
                    }
                }
                self.chain.insert(
                    block.height,
                    CommittedBlock {
                        height: block.height,
                        round: block.round,
                        author: block.author,
                        timestamp_ms: block.timestamp_ms,
                    },
                );
            }
        }
        if let Some(mark) = self.gst_mark {
            if block.height > mark {
                self.recovered_at.entry(node).or_insert(now_ms);
            }
        }
    }

    /// State-root agreement: every honest node computes the same root after each height.
    pub fn state_root(&mut self, height: Height, root: Digest, applied: u64) {
        match self.roots.get(&height) {
            Some(r) if *r != root => self.verdict.root_mismatches += 1,
            Some(_) => self.verdict.roots_agreed += 1,
            None => {
                self.roots.insert(height, root);
                self.verdict.txs_applied += applied;
            }
        }
    }

    /// A committed block's claim about committed state (its payload's `state_height` and
    /// `state_root`): it must be about a height below the block's and match the agreed root
    /// there (when the checker knows it).
    pub fn root_claim(&mut self, block_height: Height, height: Height, root: Digest) {
        let wrong = height >= block_height || self.roots.get(&height).is_some_and(|r| *r != root);
        if wrong {
            self.verdict.false_root_claims += 1;
        }
    }

    /// A host restarted after a crash recomputed `heights` of state-tree nodes.
    pub fn rebuilt(&mut self, heights: u64) {
        self.verdict.rebuilt_heights += heights;
    }

    /// An honest host's sync events: it switched to sync, and refused this many responses.
    pub fn sync(&mut self, entered: bool, refused: usize) {
        self.verdict.syncs += u64::from(entered);
        self.verdict.sync_refused += refused as u64;
    }

    /// An honest host's state-sync events: it installed a snapshot, and refused this many
    /// responses.
    pub fn restore(&mut self, installed: bool, refused: usize) {
        self.verdict.restores += u64::from(installed);
        self.verdict.restore_refused += refused as u64;
    }

    /// An honest node installed a snapshot: its tip is now the snapshot's block, which must be
    /// the agreed block at that height, with the agreed root.
    pub fn restored(&mut self, node: usize, height: Height, id: Digest, root: Digest) {
        self.tips.insert(node, (height, id));
        match self.canonical.get(&height) {
            Some(agreed) if *agreed != id => {
                if self.fork_heights.insert(height) {
                    self.verdict.forks += 1;
                }
            }
            Some(_) => {}
            None => {
                self.canonical.insert(height, id);
            }
        }
        self.state_root(height, root, 0);
    }

    /// A crashed node lost its chain data too: its next commit is height 1 again.
    pub fn wiped(&mut self, node: usize) {
        self.verdict.wipes += 1;
        self.tips.remove(&node);
    }

    /// An honest host refused a proposal's payload.
    pub fn payload_refused(&mut self) {
        self.verdict.payloads_refused += 1;
    }

    /// An honest host handed out a message its durable safety record did not cover.
    pub fn unpersisted_send(&mut self) {
        self.verdict.unpersisted_sends += 1;
    }

    /// Every vote an honest key signs (seen through its persisted safety data).
    pub fn signed_vote(&mut self, key: PublicKey, data: VoteData) {
        let rounds = self.votes.entry(key).or_default();
        match rounds.get(&data.block.round) {
            Some(prev) if *prev != data => self.verdict.conflicting_votes += 1,
            Some(_) => {}
            None => {
                rounds.insert(data.block.round, data);
            }
        }
    }

    /// The agreed chain so far, lowest height first.
    pub fn chain(&self) -> Vec<CommittedBlock> {
        self.chain.values().copied().collect()
    }

    /// An honest node does not count the omission target among the leader candidates.
    pub fn target_excluded(&mut self) {
        self.verdict.target_excluded += 1;
    }

    pub fn evidence(&mut self) {
        self.verdict.evidence += 1;
    }

    /// At GST: the height every honest node must pass to count as live again.
    pub fn mark_gst(&mut self) {
        let mark = self.tips.values().map(|(h, _)| *h).max().unwrap_or(0);
        self.gst_mark = Some(mark);
    }

    /// Whether every honest node has committed above the GST mark.
    pub fn finish_peek(&self, honest: &[usize]) -> bool {
        honest.iter().all(|n| self.recovered_at.contains_key(n))
    }

    /// Closes the run: liveness per honest node, recovery time, common height.
    pub fn finish(&mut self, honest: &[usize], gst_ms: u64) -> Verdict {
        let mut worst = Some(0u64);
        for node in honest {
            match self.recovered_at.get(node) {
                Some(t) => worst = worst.map(|w| w.max(t.saturating_sub(gst_ms))),
                None => {
                    self.verdict.stalled_nodes += 1;
                    worst = None;
                }
            }
        }
        self.verdict.recovery_ms = worst;
        self.verdict.committed_height = honest
            .iter()
            .map(|n| self.tips.get(n).map_or(0, |(h, _)| *h))
            .min()
            .unwrap_or(0);
        self.verdict.clone()
    }
}
