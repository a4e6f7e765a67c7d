//! Who leads each round: leader reputation over recent committed history, with weighted
//! round-robin as the fallback.
//!
//! # The rule
//!
//! For round `r`, look at the last `window_blocks` committed blocks whose round is at most
//! `r - lag_rounds` (the window), and at the last `failure_window_blocks` of them (the failure
//! window, ten windows by default). A validator *took part* in a block if it authored it or
//! signed the QC it carries. A validator *failed* if a block of the failure window names it
//! among its failed leaders (the leaders of the rounds before it that produced no block it
//! extends; see [`Block::failed_leaders`]) and it authored no block from that one on.
//!
//! The candidates for `r` are the validators that took part in at least one block of the window,
//! less the ones that failed; the leader is drawn among them in proportion to voting power, from
//! `SHA-256("hotledger/leader/v1" || r)`. A validator that failed is dropped only while the
//! candidates keep a quorum of the power (the ones that failed most often, then most recently,
//! go first), so failures alone never leave fewer than f+1 honest candidates.
//!
//! A crashed validator's first drawn round fails, and from the block after it (one lag later)
//! it costs no more rounds: it failed, and soon it has taken part in nothing. A validator that
//! votes but never proposes, or that equivocates as leader, is dropped the same way, for a
//! failure window after each round it fails: it costs the rounds it is drawn for within a lag
//! of its failure, then none for the failure window. The failure window is long because that
//! cost repeats with every one. A validator that comes back is a candidate again once its
//! failure has left the failure window and its votes appear in the QCs of committed blocks.
//! With fewer than `window_blocks` blocks (a young chain), every validator is a candidate and
//! the leader is the weighted round-robin of [`ValidatorSet::leader`].
//!
//! The draw, rather than a round-robin among the candidates, gives no validator a fixed
//! successor, so no single Byzantine validator always follows the same honest one.
//!
//! # Agreement
//!
//! Every honest node must pick the same leader for `r`. Committed blocks are the same at every
//! honest node (agreement), and the ones the rule reads, rounds at most `r - lag_rounds`, are all
//! committed at a node that has committed any block of round `r - lag_rounds` or above: rounds
//! increase along the chain, so nothing of a lower round can be committed after it. In a round
//! that follows a QC, a node has committed up to about two rounds back (the 2-chain rule), and a
//! failed round or two only adds a few more, so with the default lag every node at the tip reads
//! the same blocks. A node further behind (just back from a partition, or restarted without its
//! history) may pick another leader. That costs liveness, never safety:
//!
//! * a node votes only for a proposal whose author is the leader it computes itself, and the
//!   safety rules, not the leader schedule, decide whether it may vote at all;
//! * the certificates in a proposal from another author are still taken in (they are verified on
//!   their own, as a timeout's are), so the lagging node commits, catches up, and agrees again.
//!
//! # Byzantine validators
//!
//! Who took part must be the same at every node, so the QC's signers and the failed leaders are
//! bound by the block id ([`crate::Block::compute_id`]): a relay cannot swap a committed block's
//! QC for another one of the same vote data. The failed leaders are checked by every voter
//! against the ones it computes (see [`LeaderElection::failed_leaders`]), so a certified block
//! names the leaders an honest node saw fail; a Byzantine proposer cannot name others. An honest validator is skipped only if it is absent from every QC, and
//! authored nothing, in a whole window. A Byzantine leader chooses the QC only of its own
//! blocks: it may leave an honest vote out of those, but an honest leader's QC holds the first
//! 2f+1 votes it receives, its own among them, and the window holds many honest leaders' blocks
//! (at most f of the power is Byzantine). A Byzantine next leader that withholds the QC of an
//! honest block does not erase it either: the timeouts carry the votes, and every node certifies
//! the block (see [`crate::pacemaker`]).
//!
//! Failures that more than f of the power led one after another (the rounds between two blocks)
//! are not counted: a partition or a slow network fails every leader, and a crash explains at
//! most f. A round fails also when its block arrives too late or the next leader builds on an older
//! certificate; a Byzantine next leader can cause that only with a timeout certificate for the
//! round, which needs honest timeouts. Either way the failures drop at most f+1's worth of power
//! below the whole set, and only for a failure window.

use std::cell::RefCell;
use std::collections::VecDeque;

use hotledger_crypto::{Digest, PublicKey};

use crate::config::ReputationParams;
use crate::types::{Block, Height, Round, MAX_FAILED_LEADERS};
use crate::validators::ValidatorSet;

/// Who took part in one committed block, as a bit per validator index.
#[derive(Clone, Debug)]
struct Participation {
    height: Height,
    round: Round,
    took_part: Vec<u64>,
    /// The author's index.
    author: Option<usize>,
    /// The indices of the failed leaders the block names.
    failed: Vec<usize>,
}

/// The validators that may lead, in configured order, each with the voting power summed up to
/// and including it (the draw's intervals).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Candidates {
    members: Vec<(usize, u64)>,
}

/// The leader schedule of one node: a bounded record of recent committed blocks.
#[derive(Debug)]
pub struct LeaderElection {
    params: ReputationParams,
    /// Recent committed blocks, lowest height first, consecutive heights.
    history: VecDeque<Participation>,
    /// The candidates of the window last asked for, by the height of its newest block.
    cache: RefCell<Option<(Height, Candidates)>>,
}

impl LeaderElection {
    /// An empty history: weighted round-robin until blocks are recorded.
    pub fn new(params: ReputationParams) -> Self {
        LeaderElection {
            params,
            history: VecDeque::new(),
            cache: RefCell::new(None),
        }
    }

    fn window(&self) -> usize {
        usize::try_from(self.params.window_blocks).unwrap_or(usize::MAX)
    }

    fn failure_window(&self) -> usize {
        usize::try_from(self.params.failure_window_blocks).unwrap_or(usize::MAX)
    }

    /// Blocks kept: the longer of the two windows, the blocks that may sit within the lag, as
    /// many again for proposals of rounds a little behind, and one per failed round a proposal
    /// names.
    fn capacity(&self) -> usize {
        let lag = usize::try_from(self.params.lag_rounds).unwrap_or(usize::MAX);
        usize::try_from(self.params.read_blocks())
            .unwrap_or(usize::MAX)
            .saturating_add(lag.saturating_mul(2))
            .saturating_add(MAX_FAILED_LEADERS)
    }

    /// Takes in newly committed blocks, lowest height first. A block that does not follow the
    /// last one recorded starts the record afresh.
    pub fn record(&mut self, validators: &ValidatorSet, blocks: &[Block]) {
        if self.params.window_blocks == 0 {
            return;
        }
        let words = validators.len().div_ceil(64);
        for block in blocks {
            let follows = self
                .history
                .back()
                .is_none_or(|last| last.height.checked_add(1) == Some(block.height));
            if !follows {
                self.history.clear();
            }
            let mut took_part = vec![0u64; words];
            let signers = block.qc.votes.iter().map(|(key, _)| key);
            for key in std::iter::once(&block.author).chain(signers) {
                if let Some(i) = validators.index_of(key) {
                    took_part[i / 64] |= 1 << (i % 64);
                }
            }
            self.history.push_back(Participation {
                height: block.height,
                round: block.round,
                took_part,
                author: validators.index_of(&block.author),
                failed: explained_by_crashes(validators, &block.failed_leaders),
            });
        }
        let excess = self.history.len().saturating_sub(self.capacity());
        self.history.drain(..excess);
    }

    /// The leader of `round`.
    pub fn leader(&self, validators: &ValidatorSet, round: Round) -> PublicKey {
        let Some(end) = self.window_end(round) else {
            return validators.leader(round);
        };
        self.with_candidates(validators, end, |c| {
            let total = c.members.last().map_or(0, |m| m.1);
            let point = draw(round) % u128::from(total.max(1));
            let at = c.members.partition_point(|m| u128::from(m.1) <= point);
            let index = c.members.get(at).map_or(0, |m| m.0);
            validators.validators()[index].key
        })
    }

    /// The leaders of the rounds after `parent_round` and before `round`, the last
    /// [`MAX_FAILED_LEADERS`] of them, oldest first: what a block of `round` whose parent is of
    /// `parent_round` must name as [`Block::failed_leaders`].
    pub fn failed_leaders(
        &self,
        validators: &ValidatorSet,
        parent_round: Round,
        round: Round,
    ) -> Vec<PublicKey> {
        let limit = u64::try_from(MAX_FAILED_LEADERS).unwrap_or(u64::MAX);
        let first = parent_round
            .saturating_add(1)
            .max(round.saturating_sub(limit));
        (first..round).map(|r| self.leader(validators, r)).collect()
    }

    /// The validators that may lead `round` (all of them while the history is too short).
    pub fn candidates(&self, validators: &ValidatorSet, round: Round) -> Vec<PublicKey> {
        let all = || validators.validators().iter().map(|v| v.key).collect();
        let Some(end) = self.window_end(round) else {
            return all();
        };
        self.with_candidates(validators, end, |c| {
            c.members
                .iter()
                .map(|m| validators.validators()[m.0].key)
                .collect()
        })
    }

    /// One past the newest block of `round`'s window, if the record holds a whole window.
    fn window_end(&self, round: Round) -> Option<usize> {
        if self.params.window_blocks == 0 {
            return None;
        }
        let cutoff = round.checked_sub(self.params.lag_rounds)?;
        let end = self.history.partition_point(|p| p.round <= cutoff);
        (end >= self.window()).then_some(end)
    }

    fn with_candidates<T>(
        &self,
        validators: &ValidatorSet,
        end: usize,
        f: impl FnOnce(&Candidates) -> T,
    ) -> T {
        let newest = self.history[end - 1].height;
        let mut cache = self.cache.borrow_mut();
        match cache.as_ref() {
            Some((height, c)) if *height == newest => f(c),
            _ => {
                let c = self.compute(validators, end);
                let out = f(&c);
                *cache = Some((newest, c));
                out
            }
        }
    }

    /// The candidates of the window ending before `end`. Every QC in it holds a quorum, so the
    /// validators that took part always do; should they not (a window of genesis QCs only), all
    /// validators take part. Then the ones that failed in the failure window ending there (or
    /// in as much of it as the record holds) are dropped while a quorum remains.
    fn compute(&self, validators: &ValidatorSet, end: usize) -> Candidates {
        let n = validators.len();
        let mut took_part = vec![0u64; n.div_ceil(64)];
        // Per validator: failures named, and the record position of the newest one.
        let mut failures = vec![(0usize, 0usize); n];
        let mut last_authored = vec![None; n];
        let start = end - self.window();
        let failures_from = end.saturating_sub(self.failure_window());
        let first = start.min(failures_from);
        for (pos, p) in (first..end).zip(self.history.range(first..end)) {
            if pos >= start {
                for (word, bits) in took_part.iter_mut().zip(&p.took_part) {
                    *word |= bits;
                }
            }
            if pos < failures_from {
                continue;
            }
            for &i in &p.failed {
                if let Some(f) = failures.get_mut(i) {
                    *f = (f.0 + 1, pos);
                }
            }
            if let Some(slot) = p.author.and_then(|i| last_authored.get_mut(i)) {
                *slot = Some(pos);
            }
        }
        let power_of = |i: usize| validators.validators()[i].power;
        let mut chosen: Vec<bool> = (0..n)
            .map(|i| took_part[i / 64] & (1 << (i % 64)) != 0)
            .collect();
        let mut power: u64 = (0..n).filter(|&i| chosen[i]).map(power_of).sum();
        if power < validators.quorum() {
            chosen = vec![true; n];
            power = validators.total_power();
        }
        // A failure counts unless the validator authored a block at or after the one naming it.
        let mut failed: Vec<usize> = (0..n)
            .filter(|&i| chosen[i] && failures[i].0 > 0)
            .filter(|&i| last_authored[i].is_none_or(|a| a < failures[i].1))
            .collect();
        failed.sort_by_key(|&i| (std::cmp::Reverse(failures[i]), i));
        for i in failed {
            let rest = power.saturating_sub(power_of(i));
            if rest >= validators.quorum() {
                chosen[i] = false;
                power = rest;
            }
        }
        let mut members = Vec::new();
        let mut sum: u64 = 0;
        for (i, v) in validators.validators().iter().enumerate() {
            if chosen[i] {
                sum = sum.saturating_add(v.power);
                members.push((i, sum));
            }
        }
        Candidates { members }
    }
}

/// The indices of `failed` leaders, if at most f of the power (distinct validators) explains
/// them; none otherwise. A run of failed rounds that more than f validators led is no sign that
/// those leaders are down: it is what a partition or a slow network looks like, and demoting
/// them would only hand the Byzantine validators a larger share of the rounds.
fn explained_by_crashes(validators: &ValidatorSet, failed: &[PublicKey]) -> Vec<usize> {
    let mut indices: Vec<usize> = failed
        .iter()
        .filter_map(|key| validators.index_of(key))
        .collect();
    indices.sort_unstable();
    indices.dedup();
    let power: u64 = indices
        .iter()
        .map(|&i| validators.validators()[i].power)
        .sum();
    let tolerated = validators.total_power().saturating_sub(validators.quorum());
    if power <= tolerated {
        indices
    } else {
        Vec::new()
    }
}

/// The draw for `round`: the first 16 bytes of `SHA-256("hotledger/leader/v1" || round)`.
fn draw(round: Round) -> u128 {
    let mut h = Digest::hasher();
    h.update(b"hotledger/leader/v1")
        .update(&round.to_be_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_bytes()[..16]);
    u128::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use hotledger_crypto::{KeyPair, Signature};

    use super::*;
    use crate::types::{BlockInfo, QuorumCert, VoteData};
    use crate::validators::Validator;

    fn key(i: usize) -> PublicKey {
        KeyPair::from_seed([i as u8 + 1; 32]).public()
    }

    fn set(powers: &[u64]) -> ValidatorSet {
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, &power)| Validator { key: key(i), power })
                .collect(),
        )
        .unwrap()
    }

    /// A committed block of `round` at `height` by `author`, whose QC `signers` signed. Only
    /// what the election reads is filled in.
    fn block(height: Height, round: Round, author: usize, signers: &[usize]) -> Block {
        let info = BlockInfo {
            id: Digest::of(&height.to_be_bytes()),
            round,
            height,
            timestamp_ms: 0,
        };
        Block {
            id: info.id,
            round,
            height,
            timestamp_ms: 0,
            author: key(author),
            failed_leaders: Vec::new(),
            qc: QuorumCert {
                data: VoteData {
                    block: info,
                    parent: info,
                },
                votes: signers
                    .iter()
                    .map(|&i| (key(i), Signature([0; 64])))
                    .collect(),
            },
            payload: Vec::new(),
            signature: Signature([0; 64]),
        }
    }

    /// A block as `(author, QC signers)`.
    type Spec<'a> = (usize, &'a [usize]);

    /// Blocks at heights 1.. in rounds `first_round`.. (one per round) from `(author, signers)`.
    fn chain(first_round: Round, spec: &[Spec<'_>]) -> Vec<Block> {
        spec.iter()
            .enumerate()
            .map(|(k, (author, signers))| {
                block(k as u64 + 1, first_round + k as u64, *author, signers)
            })
            .collect()
    }

    /// An election whose failures count in the window only.
    fn election(window_blocks: u64, lag_rounds: u64) -> LeaderElection {
        LeaderElection::new(ReputationParams {
            window_blocks,
            lag_rounds,
            failure_window_blocks: window_blocks,
        })
    }

    fn keys(indices: &[usize]) -> Vec<PublicKey> {
        indices.iter().map(|&i| key(i)).collect()
    }

    #[test]
    fn round_robin_until_a_whole_window_is_committed() {
        let s = set(&[1, 1, 1, 1]);
        let mut e = election(8, 2);
        let all: &[usize] = &[0, 1, 2];
        e.record(&s, &chain(1, &[(0, all); 8]));
        // Blocks of rounds 1..=8: round r reads rounds <= r - 2, a whole window from round 10.
        for r in 0..10 {
            assert_eq!(e.leader(&s, r), s.leader(r), "round {r}");
            assert_eq!(e.candidates(&s, r), keys(&[0, 1, 2, 3]), "round {r}");
        }
        assert_eq!(
            e.candidates(&s, 10),
            keys(&[0, 1, 2]),
            "validator 3 took part in nothing"
        );
        let off = election(0, 2);
        assert_eq!(off.candidates(&s, 1_000), keys(&[0, 1, 2, 3]));
    }

    #[test]
    fn who_took_part_in_the_window_may_lead() {
        // Four validators, a window of 4 blocks, a lag of 2 rounds; blocks in rounds 1..; the
        // candidates of round 12 read the blocks of rounds 7..=10.
        let q: &[usize] = &[0, 1, 2];
        let with3: &[usize] = &[1, 2, 3];
        let table: Vec<(&str, Vec<Spec<'_>>, Vec<usize>)> = vec![
            ("everyone took part", vec![(3, q); 12], vec![0, 1, 2, 3]),
            (
                "3 neither authored nor signed",
                vec![(0, q); 12],
                vec![0, 1, 2],
            ),
            (
                "3 signed one QC in the window",
                [vec![(0, q); 8], vec![(1, with3)], vec![(2, q); 3]].concat(),
                vec![0, 1, 2, 3],
            ),
            (
                "3 authored one block in the window",
                [vec![(0, q); 9], vec![(3, q)], vec![(1, q); 2]].concat(),
                vec![0, 1, 2, 3],
            ),
            (
                "3 took part only before the window",
                [vec![(3, with3); 6], vec![(0, q); 6]].concat(),
                vec![0, 1, 2],
            ),
            (
                "3 took part only within the lag",
                [vec![(0, q); 10], vec![(3, with3); 2]].concat(),
                vec![0, 1, 2],
            ),
        ];
        let s = set(&[1, 1, 1, 1]);
        for (name, spec, want) in table {
            let mut e = election(4, 2);
            e.record(&s, &chain(1, &spec));
            assert_eq!(e.candidates(&s, 12), keys(&want), "{name}");
            let drawn: Vec<PublicKey> = (12..14).map(|r| e.leader(&s, r)).collect();
            assert!(drawn.iter().all(|k| keys(&want).contains(k)), "{name}");
        }
    }

    #[test]
    fn leaders_are_drawn_in_proportion_to_power() {
        let s = set(&[1, 2, 1, 4]);
        let mut e = election(4, 2);
        // Validator 2 took part in nothing: the others share the rounds 1 : 2 : 4.
        let signers: &[usize] = &[0, 1, 3];
        e.record(&s, &chain(1, &[(3, signers); 6]));
        let mut counts = [0usize; 4];
        let rounds = 7_000;
        for r in 100..100 + rounds {
            let k = e.leader(&s, r);
            counts[(0..4).find(|&i| key(i) == k).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0);
        for (i, share) in [(0, 1.0), (1, 2.0), (3, 4.0)] {
            let expected = rounds as f64 * share / 7.0;
            let got = counts[i] as f64;
            assert!(
                (got - expected).abs() < expected * 0.1,
                "validator {i}: {got} rounds, expected about {expected}"
            );
        }
    }

    #[test]
    fn nodes_with_more_recent_commits_agree_within_the_lag() {
        // Node a has committed rounds 1..=30, node b 1..=34 (one block per round, validator 3
        // down from round 21 to 30). In every round a can be in (above 30) whose window a has
        // whole (r - lag <= 30), both choose the same leader.
        let s = set(&[1, 1, 1, 1]);
        let spec: Vec<Spec<'_>> = (0..34)
            .map(|k| {
                if k < 20 {
                    (k % 4, &[0, 1, 2, 3][..])
                } else if k < 30 {
                    (k % 3, &[0, 1, 2][..])
                } else {
                    (k % 3, &[1, 2, 3][..])
                }
            })
            .collect();
        let blocks = chain(1, &spec);
        let (mut a, mut b) = (election(8, 3), election(8, 3));
        a.record(&s, &blocks[..30]);
        b.record(&s, &blocks);
        for r in 31..=33 {
            assert_eq!(a.leader(&s, r), b.leader(&s, r), "round {r}");
            assert_eq!(a.candidates(&s, r), b.candidates(&s, r), "round {r}");
        }
        // Beyond the lag, b reads blocks a has not committed yet (3 is back in them).
        assert_eq!(b.candidates(&s, 35), keys(&[0, 1, 2, 3]));
        assert_eq!(a.candidates(&s, 35), keys(&[0, 1, 2]));
        // The crashed validator is no candidate once the window is past round 20.
        assert!(!a.candidates(&s, 31).contains(&key(3)));
        assert!(a.candidates(&s, 30).contains(&key(3)));
    }

    #[test]
    fn a_leader_omitting_votes_cannot_exclude_an_honest_validator() {
        // Validator 0 is Byzantine and leaves validator 3's vote out of every QC it builds.
        // The honest leaders' QCs hold the first quorum of votes they receive, which includes
        // 3 now and then: 3 stays a candidate. Only if every leader leaves 3 out, and 3 leads
        // nothing, is it skipped: that takes more than f = 1 of the power.
        let s = set(&[1, 1, 1, 1]);
        let omit: &[usize] = &[0, 1, 2];
        let with3: &[usize] = &[0, 2, 3];
        let table: Vec<(&str, Vec<Spec<'_>>, bool)> = vec![
            (
                "one omitting leader among honest ones",
                (0..12)
                    .map(|k| match k % 3 {
                        0 => (0, omit),
                        1 => (1, if k % 2 == 0 { with3 } else { omit }),
                        _ => (2, omit),
                    })
                    .collect(),
                true,
            ),
            ("every leader omits 3", vec![(1, omit); 12], false),
        ];
        for (name, spec, kept) in table {
            let mut e = election(8, 2);
            e.record(&s, &chain(1, &spec));
            assert_eq!(e.candidates(&s, 14).contains(&key(3)), kept, "{name}");
        }
    }

    /// `blocks` with `failed` named as failed leaders by the block at index `at`.
    fn with_failures(mut blocks: Vec<Block>, at: usize, failed: &[usize]) -> Vec<Block> {
        blocks[at].failed_leaders = keys(failed);
        blocks
    }

    #[test]
    fn a_validator_that_failed_is_dropped_until_it_leads_again() {
        // Four validators, a window of 8 blocks, a lag of 2: round 14 reads rounds 5..=12.
        // Everyone signs every QC, so only failures drop anyone.
        let all: &[usize] = &[0, 1, 2, 3];
        let s = set(&[1, 1, 1, 1]);
        let blocks = |spec: &[Spec<'_>], at: usize, failed: &[usize]| {
            with_failures(chain(1, spec), at, failed)
        };
        let table: Vec<(&str, Vec<Block>, Vec<usize>)> = vec![
            (
                "no failures",
                blocks(&[(0, all); 12], 0, &[]),
                vec![0, 1, 2, 3],
            ),
            (
                "3 failed in the window",
                blocks(&[(0, all); 12], 8, &[3]),
                vec![0, 1, 2],
            ),
            (
                "3 failed before the window",
                blocks(&[(0, all); 12], 3, &[3]),
                vec![0, 1, 2, 3],
            ),
            (
                "3 failed, then authored a block",
                blocks(
                    &[vec![(0, all); 9], vec![(3, all)], vec![(1, all); 2]].concat(),
                    8,
                    &[3],
                ),
                vec![0, 1, 2, 3],
            ),
            (
                "3 authored the block naming its own failure",
                blocks(
                    &[vec![(0, all); 8], vec![(3, all)], vec![(1, all); 3]].concat(),
                    8,
                    &[3],
                ),
                vec![0, 1, 2, 3],
            ),
            (
                "3 authored a block, then failed",
                blocks(
                    &[vec![(0, all); 6], vec![(3, all)], vec![(1, all); 5]].concat(),
                    8,
                    &[3],
                ),
                vec![0, 1, 2],
            ),
        ];
        for (name, chain, want) in table {
            let mut e = election(8, 2);
            e.record(&s, &chain);
            assert_eq!(e.candidates(&s, 14), keys(&want), "{name}");
        }
    }

    #[test]
    fn a_failure_counts_for_the_failure_window() {
        // Four validators, a window of 8 blocks, a failure window of 24, a lag of 2: round r
        // reads the blocks of rounds up to r - 2. Validator 3 fails at height 5 (the block of
        // round 5 names it), then only validator 0 authors.
        let all: &[usize] = &[0, 1, 2, 3];
        let s = set(&[1, 1, 1, 1]);
        let mut blocks = chain(1, &[(0, all); 30]);
        blocks[4].failed_leaders = keys(&[3]);
        let mut e = LeaderElection::new(ReputationParams {
            window_blocks: 8,
            lag_rounds: 2,
            failure_window_blocks: 24,
        });
        e.record(&s, &blocks);
        let dropped = keys(&[0, 1, 2]);
        // The failure is in the window (rounds 3..=10), then only in the failure window.
        assert_eq!(e.candidates(&s, 12), dropped);
        assert_eq!(e.candidates(&s, 20), dropped);
        // Rounds 5..=28: its last round. Rounds 6..=29: it has left.
        assert_eq!(e.candidates(&s, 30), dropped);
        assert_eq!(e.candidates(&s, 31), keys(all));
        // A window-only memory forgets it as soon as it leaves the window.
        let mut short = election(8, 2);
        short.record(&s, &blocks[..16]);
        assert_eq!(short.candidates(&s, 12), dropped);
        assert_eq!(short.candidates(&s, 15), keys(all));
        // Leading a block after the failure clears it, as in the window.
        let mut led = blocks.clone();
        led[10].author = key(3);
        let mut e = LeaderElection::new(ReputationParams {
            window_blocks: 8,
            lag_rounds: 2,
            failure_window_blocks: 24,
        });
        e.record(&s, &led);
        assert_eq!(e.candidates(&s, 20), keys(all));
    }

    #[test]
    fn failures_never_drop_the_candidates_below_a_quorum() {
        // 2 failed twice, 3 once: dropping both would leave 2 of 4; the one that failed more
        // goes, the other stays.
        let all: &[usize] = &[0, 1, 2, 3];
        let s = set(&[1, 1, 1, 1]);
        let candidates = |failures: &[(usize, usize)]| {
            let mut blocks = chain(1, &[(0, all); 12]);
            for &(at, who) in failures {
                blocks[at].failed_leaders = keys(&[who]);
            }
            let mut e = election(8, 2);
            e.record(&s, &blocks);
            e.candidates(&s, 14)
        };
        assert_eq!(candidates(&[(5, 3), (6, 2), (9, 2)]), keys(&[0, 1, 3]));
        // Failed equally often: the most recent failure goes first.
        assert_eq!(candidates(&[(6, 2), (9, 3)]), keys(&[0, 1, 2]));
        // Every validator failed: a quorum is kept (the three that failed least recently).
        assert_eq!(
            candidates(&[(6, 2), (7, 0), (8, 1), (9, 3)]),
            keys(&[0, 1, 2])
        );
    }

    #[test]
    fn failures_more_than_f_led_in_a_row_are_not_counted() {
        let all: &[usize] = &[0, 1, 2, 3];
        let s = set(&[1, 1, 1, 1]);
        let table: Vec<(&str, Vec<usize>, Vec<usize>)> = vec![
            ("one validator", vec![3], vec![0, 1, 2]),
            ("one validator, twice", vec![3, 3], vec![0, 1, 2]),
            (
                "two validators (f = 1): a partition",
                vec![2, 3],
                vec![0, 1, 2, 3],
            ),
            ("three, one twice", vec![1, 2, 1, 3], vec![0, 1, 2, 3]),
        ];
        for (name, failed, want) in table {
            let mut blocks = chain(1, &[(0, all); 12]);
            blocks[8].failed_leaders = keys(&failed);
            let mut e = election(8, 2);
            e.record(&s, &blocks);
            assert_eq!(e.candidates(&s, 14), keys(&want), "{name}");
        }
        // With 7 validators (f = 2), two crashed leaders in a row still count.
        let s7 = set(&[1; 7]);
        let all7: &[usize] = &[0, 1, 2, 3, 4, 5, 6];
        let mut blocks = chain(1, &[(0, all7); 12]);
        blocks[8].failed_leaders = keys(&[5, 6]);
        let mut e = election(8, 2);
        e.record(&s7, &blocks);
        assert_eq!(e.candidates(&s7, 14), keys(&[0, 1, 2, 3, 4]));
    }

    #[test]
    fn failed_leaders_are_the_leaders_of_the_rounds_in_between() {
        let s = set(&[1, 1, 1, 1]);
        let all: &[usize] = &[0, 1, 2, 3];
        let mut e = election(8, 2);
        e.record(&s, &chain(1, &[(0, all); 12]));
        let leaders = |rounds: std::ops::Range<u64>| -> Vec<PublicKey> {
            rounds.map(|r| e.leader(&s, r)).collect()
        };
        assert_eq!(e.failed_leaders(&s, 12, 13), Vec::<PublicKey>::new());
        assert_eq!(e.failed_leaders(&s, 12, 15), leaders(13..15));
        // Only the last MAX_FAILED_LEADERS rounds are named.
        let many = e.failed_leaders(&s, 12, 40);
        assert_eq!(many.len(), MAX_FAILED_LEADERS);
        assert_eq!(many, leaders(30..40));
        // The genesis parent (round 0).
        assert_eq!(e.failed_leaders(&s, 0, 3), leaders(1..3));
    }

    #[test]
    fn the_record_is_bounded_and_restarts_after_a_gap() {
        let s = set(&[1, 1, 1, 1]);
        let mut e = election(8, 2);
        let q: &[usize] = &[0, 1, 2];
        let blocks = chain(1, &vec![(0, q); 1_000]);
        e.record(&s, &blocks);
        assert_eq!(e.history.len(), 8 + 2 * 2 + MAX_FAILED_LEADERS);
        assert_eq!(e.history.back().map(|p| p.height), Some(1_000));
        // Height 2,000 does not follow 1,000: the record starts again from it.
        e.record(&s, &[block(2_000, 3_000, 1, q)]);
        assert_eq!(e.history.len(), 1);
        assert_eq!(e.leader(&s, 3_010), s.leader(3_010), "too short again");
    }
}
