//! Degraded-mode measurement: a clean network (fixed delay, small jitter, no loss) in which some
//! validators crash part-way through and stay down. It reports the commit rate before and after
//! the crash and the rounds that produced no committed block, so the cost of a crashed leader
//! can be read in rounds and in blocks per virtual second.
//!
//! The defaults model the daemon's timing: a 1 s base timeout with backoff exponent up to 6, and
//! a leader that proposes 200 ms after entering its round (the empty-block pace).

use hotledger_consensus::Round;

use crate::checker::CommittedBlock;
use crate::scenario::{Scenario, SimConfig};
use crate::sim::Sim;

/// One crash measurement.
#[derive(Clone, Debug)]
pub struct CrashRun {
    pub validators: usize,
    /// The last `crashed` validators crash at `crash_at_ms` and never come back.
    pub crashed: usize,
    pub crash_at_ms: u64,
    pub duration_ms: u64,
    pub delay_ms: u64,
    pub jitter_ms: u64,
    pub payload_delay_ms: u64,
    pub base_timeout_ms: u64,
    pub max_backoff_exponent: u32,
    /// Leader reputation on (the default) or off.
    pub reputation: bool,
    /// Tell the live validators, this long after the crash, that the crashed ones are
    /// unreachable (as the daemon's dropped connections do); `None`: they only time out.
    pub detect_crash_ms: Option<u64>,
}

impl CrashRun {
    pub fn new(validators: usize, crashed: usize) -> Self {
        CrashRun {
            validators,
            crashed,
            crash_at_ms: 20_000,
            duration_ms: 120_000,
            delay_ms: 10,
            jitter_ms: 5,
            payload_delay_ms: 200,
            base_timeout_ms: 1_000,
            max_backoff_exponent: 6,
            reputation: true,
            detect_crash_ms: Some(10),
        }
    }

    fn sim_config(&self) -> SimConfig {
        let mut cfg = SimConfig::new(self.validators, 0);
        cfg.faults = false;
        cfg.gst_ms = 0;
        cfg.fixed_delay_ms = self.delay_ms;
        cfg.payload_delay_ms = self.payload_delay_ms;
        cfg.base_timeout_ms = self.base_timeout_ms;
        cfg.max_backoff_exponent = self.max_backoff_exponent;
        cfg.reputation = self.reputation;
        cfg.detect_crash_ms = self.detect_crash_ms;
        cfg
    }

    fn scenario(&self) -> Scenario {
        let first = self.validators.saturating_sub(self.crashed);
        Scenario {
            delay_ms: self.delay_ms,
            jitter_ms: self.jitter_ms,
            crashes: (first..self.validators)
                .map(|node| (node, self.crash_at_ms, u64::MAX))
                .collect(),
            ..Scenario::default()
        }
    }

    /// Runs the measurement for one seed (the seed drives the jitter).
    pub fn run(&self, seed: u64) -> CrashReport {
        let sim = Sim::with_scenario(self.sim_config(), self.scenario(), seed);
        let (report, chain) = sim.run_chain(self.duration_ms, seed);
        CrashReport::from_chain(
            &chain,
            self.crash_at_ms,
            report.verdict.forks,
            report.verdict.safe(),
        )
    }
}

/// What a crash measurement found.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashReport {
    /// Committed blocks per virtual second proposed before the crash.
    pub healthy_blocks_per_s: f64,
    /// The same, from the crash to the end of the run.
    pub crashed_blocks_per_s: f64,
    /// The same over the second half of the crashed period.
    pub tail_blocks_per_s: f64,
    /// Round of the last block proposed before the crash.
    pub crash_round: Round,
    /// Round of the last committed block.
    pub end_round: Round,
    /// Rounds after `crash_round` that produced no committed block.
    pub rounds_lost: u64,
    /// Rounds from `crash_round` to the last round that produced no committed block (0 if none
    /// was lost): how long the crash kept costing rounds.
    pub rounds_until_no_loss: u64,
    /// Rounds lost per 100 rounds over the second half of the crashed period.
    pub tail_lost_per_100: f64,
    pub forks: usize,
    pub safe: bool,
}

impl CrashReport {
    /// Computes the figures from the agreed chain (lowest height first).
    pub fn from_chain(
        chain: &[CommittedBlock],
        crash_at_ms: u64,
        forks: usize,
        safe: bool,
    ) -> Self {
        let end_ms = chain.last().map_or(crash_at_ms, |b| b.timestamp_ms);
        let tail_ms = crash_at_ms + end_ms.saturating_sub(crash_at_ms) / 2;
        let crash_round = round_before(chain, crash_at_ms);
        let end_round = chain.last().map_or(0, |b| b.round);
        let (rounds_lost, last_lost) = lost_after(chain, crash_round);
        let tail_round = round_before(chain, tail_ms);
        let (tail_lost, _) = lost_after(chain, tail_round);
        let tail_rounds = end_round.saturating_sub(tail_round).max(1);
        CrashReport {
            healthy_blocks_per_s: rate(chain, 0, crash_at_ms),
            crashed_blocks_per_s: rate(chain, crash_at_ms, end_ms),
            tail_blocks_per_s: rate(chain, tail_ms, end_ms),
            crash_round,
            end_round,
            rounds_lost,
            rounds_until_no_loss: last_lost.map_or(0, |r| r - crash_round),
            tail_lost_per_100: tail_lost as f64 * 100.0 / tail_rounds as f64,
            forks,
            safe,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "healthy_blocks_per_s={:.2} crashed_blocks_per_s={:.2} tail_blocks_per_s={:.2} \
             crash_round={} end_round={} rounds_lost={} rounds_until_no_loss={} \
             tail_lost_per_100_rounds={:.1} forks={}",
            self.healthy_blocks_per_s,
            self.crashed_blocks_per_s,
            self.tail_blocks_per_s,
            self.crash_round,
            self.end_round,
            self.rounds_lost,
            self.rounds_until_no_loss,
            self.tail_lost_per_100,
            self.forks,
        )
    }
}

/// Round of the last block proposed before `at_ms` (0: none).
fn round_before(chain: &[CommittedBlock], at_ms: u64) -> Round {
    chain
        .iter()
        .take_while(|b| b.timestamp_ms < at_ms)
        .last()
        .map_or(0, |b| b.round)
}

/// Rounds above `from` (up to the last committed block) without a committed block, and the
/// highest of them.
fn lost_after(chain: &[CommittedBlock], from: Round) -> (u64, Option<Round>) {
    let mut lost = 0;
    let mut last = None;
    let mut prev = from;
    for b in chain.iter().filter(|b| b.round > from) {
        if b.round > prev + 1 {
            lost += b.round - prev - 1;
            last = Some(b.round - 1);
        }
        prev = b.round;
    }
    (lost, last)
}

/// Blocks proposed in `[from_ms, to_ms)`, per second.
fn rate(chain: &[CommittedBlock], from_ms: u64, to_ms: u64) -> f64 {
    if to_ms <= from_ms {
        return 0.0;
    }
    let n = chain
        .iter()
        .filter(|b| (from_ms..to_ms).contains(&b.timestamp_ms))
        .count();
    n as f64 * 1000.0 / (to_ms - from_ms) as f64
}

#[cfg(test)]
mod tests {
    use hotledger_crypto::KeyPair;

    use super::*;

    fn chain(rounds: &[(Round, u64)]) -> Vec<CommittedBlock> {
        let author = KeyPair::from_seed([1; 32]).public();
        rounds
            .iter()
            .enumerate()
            .map(|(i, &(round, timestamp_ms))| CommittedBlock {
                height: i as u64 + 1,
                round,
                author,
                timestamp_ms,
            })
            .collect()
    }

    #[test]
    fn figures_count_the_rounds_without_a_committed_block() {
        // Crash at 1,000 ms after round 4; rounds 6, 9 and 10 produce nothing.
        let c = chain(&[
            (1, 0),
            (2, 250),
            (3, 500),
            (4, 750),
            (5, 1_000),
            (7, 1_500),
            (8, 1_750),
            (11, 2_500),
            (12, 2_750),
            (13, 3_000),
        ]);
        let r = CrashReport::from_chain(&c, 1_000, 0, true);
        assert_eq!((r.crash_round, r.end_round), (4, 13));
        assert_eq!(r.rounds_lost, 3);
        assert_eq!(r.rounds_until_no_loss, 6, "round 10 is the last lost");
        assert!((r.healthy_blocks_per_s - 4.0).abs() < 1e-9);
        assert!((r.crashed_blocks_per_s - 2.5).abs() < 1e-9);
        // Tail from 2,000 ms: rounds 9..=13 after round 8, two lost of five.
        assert!((r.tail_lost_per_100 - 40.0).abs() < 1e-9);
    }

    #[test]
    fn no_loss_reads_zero() {
        let c = chain(&[(1, 0), (2, 100), (3, 200), (4, 300)]);
        let r = CrashReport::from_chain(&c, 150, 0, true);
        assert_eq!((r.rounds_lost, r.rounds_until_no_loss), (0, 0));
        assert_eq!(r.tail_lost_per_100, 0.0);
    }
}
