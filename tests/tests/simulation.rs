//! The fast slice of the simulator: a few hundred seeds of each configuration, the negative
//! controls, determinism, and the linear-communication measurement. The 1,000-seed runs are the
//! `simulate` binary's job (see the README).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use hotledger_consensus::DisabledRule;
use hotledger_tests::{run_clean, run_seed, RunReport, SimConfig};

/// Runs `seeds` on two threads; returns every report.
fn run_many(cfg: &SimConfig, seeds: std::ops::Range<u64>) -> Vec<RunReport> {
    let seeds: Vec<u64> = seeds.collect();
    let (a, b) = seeds.split_at(seeds.len() / 2);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            a.iter()
                .map(|&seed| run_seed(cfg, seed))
                .collect::<Vec<_>>()
        });
        let mut out: Vec<RunReport> = b.iter().map(|&seed| run_seed(cfg, seed)).collect();
        out.extend(h.join().expect("simulation thread"));
        out
    })
}

fn assert_all_safe_and_live(reports: &[RunReport]) {
    for r in reports {
        assert!(
            r.verdict.safe() && r.verdict.live(),
            "seed {}: {}",
            r.seed,
            r.verdict.describe()
        );
        assert!(
            r.verdict.committed_height > 0,
            "seed {} committed nothing",
            r.seed
        );
    }
}

#[test]
fn four_validators_one_twin_are_safe_and_live() {
    let reports = run_many(&SimConfig::new(4, 1), 0..150);
    assert_all_safe_and_live(&reports);
    // The scenarios do exercise Byzantine behaviour: honest nodes saw equivocation.
    assert!(reports.iter().any(|r| r.verdict.evidence > 0));
}

#[test]
fn seven_validators_two_twins_are_safe_and_live() {
    let reports = run_many(&SimConfig::new(7, 2), 1000..1060);
    assert_all_safe_and_live(&reports);
}

#[test]
fn f_plus_one_twins_fork_the_chain() {
    // Negative control: with f+1 Byzantine keys the checkers must find a fork.
    let cfg = SimConfig::new(4, 2);
    let forked = (0..200u64)
        .map(|seed| run_seed(&cfg, seed))
        .find(|r| r.verdict.forks > 0);
    assert!(
        forked.is_some(),
        "no fork found with f+1 twins in 200 seeds"
    );
}

#[test]
fn disabling_the_round_increase_rule_is_caught() {
    // Negative control: honest nodes that may vote twice in a round get caught signing
    // conflicting votes once a twin leader equivocates.
    let mut cfg = SimConfig::new(4, 1);
    cfg.disabled_rule = Some(DisabledRule::RoundIncrease);
    let caught = (0..100u64)
        .map(|seed| run_seed(&cfg, seed))
        .find(|r| !r.verdict.safe());
    let caught = caught.expect("a disabled safety rule went unnoticed for 100 seeds");
    assert!(caught.verdict.conflicting_votes > 0 || caught.verdict.forks > 0);
}

#[test]
fn runs_are_deterministic() {
    let cfg = SimConfig::new(4, 1);
    for seed in [3, 17] {
        let (a, b) = (run_seed(&cfg, seed), run_seed(&cfg, seed));
        assert_eq!(
            (
                a.messages,
                a.events,
                a.end_ms,
                a.verdict.committed_height,
                a.verdict.recovery_ms
            ),
            (
                b.messages,
                b.events,
                b.end_ms,
                b.verdict.committed_height,
                b.verdict.recovery_ms
            ),
        );
    }
}

#[test]
fn communication_is_linear_in_the_number_of_validators() {
    // HotStuff: a proposal to n-1 peers and n-1 votes to the next leader per block, so about
    // 2 messages per validator per block, and commit after about 5 message delays.
    for n in [4usize, 16, 31] {
        let cfg = SimConfig::new(n, 0);
        let r = run_clean(&cfg, 1, 2_000);
        let blocks = r.verdict.committed_height;
        assert!(blocks > 50, "n={n}: only {blocks} blocks");
        let per_validator = r.messages as f64 / blocks as f64 / n as f64;
        assert!(
            per_validator <= 2.2,
            "n={n}: {per_validator:.2} messages per block per validator is not linear"
        );
        let delays = r.mean_commit_latency_ms / cfg.fixed_delay_ms as f64;
        assert!(
            delays <= 6.0,
            "n={n}: commit takes {delays:.1} message delays"
        );
        assert!(r.verdict.safe());
    }
}
