//! The fast slice of the simulator: a few hundred seeds of each configuration, the negative
//! controls, determinism, and the linear-communication measurement. The 1,000-seed runs are the
//! `simulate` binary's job (see the README).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use hotledger_consensus::{DisabledRule, ReputationParams};
use hotledger_tests::{run_clean, run_omission, run_seed, CrashRun, RunReport, SimConfig};

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
fn hosts_agree_on_state_roots_and_rebuild_their_trees_after_crashes() {
    let reports = run_many(&SimConfig::new(4, 1), 200..260);
    assert_all_safe_and_live(&reports);
    let agreed: u64 = reports.iter().map(|r| r.verdict.roots_agreed).sum();
    let applied: u64 = reports.iter().map(|r| r.verdict.txs_applied).sum();
    let rebuilt: u64 = reports.iter().map(|r| r.verdict.rebuilt_heights).sum();
    assert!(agreed > 1_000, "only {agreed} state roots compared");
    assert!(applied > 1_000, "only {applied} transfers applied");
    assert!(rebuilt > 0, "no crash made a host rebuild its state tree");
}

/// Leaders that wait for transfers (a 100 ms empty-block pace) leave time for a higher QC to
/// arrive while their payload is pending; the proposal then extends another block than the
/// payload was chosen against, and no transfer may be committed twice. Seeds 30 and 54 of
/// these two configurations committed a transfer at two consecutive heights when a payload
/// built for the old parent was proposed on the new one.
#[test]
fn a_transfer_is_committed_once_when_leaders_wait_for_transfers() {
    let mut reports = Vec::new();
    for (tx_interval_ms, seeds) in [(400, 25..55), (100, 50..60)] {
        let mut cfg = SimConfig::new(4, 1);
        cfg.payload_delay_ms = 100;
        cfg.tx_interval_ms = tx_interval_ms;
        reports.extend(run_many(&cfg, seeds));
    }
    assert_all_safe_and_live(&reports);
    let applied: u64 = reports.iter().map(|r| r.verdict.txs_applied).sum();
    assert!(applied > 1_000, "only {applied} transfers applied");
}

#[test]
fn forged_transfers_are_refused_and_never_committed() {
    let mut cfg = SimConfig::new(4, 0);
    cfg.forgers = 1;
    let reports = run_many(&cfg, 0..30);
    assert_all_safe_and_live(&reports);
    let refused: u64 = reports.iter().map(|r| r.verdict.payloads_refused).sum();
    assert!(
        refused > 0,
        "no forged payload was ever proposed and refused"
    );
}

/// A validator lying about the state (a wrong root at the claim height in even rounds, the root
/// of another height in odd ones) gets none of its claims certified, and the chain goes on.
#[test]
fn false_state_root_claims_are_refused_and_never_certified() {
    let mut cfg = SimConfig::new(4, 0);
    cfg.forgers = 1;
    cfg.root_liars = true;
    let reports = run_many(&cfg, 0..30);
    assert_all_safe_and_live(&reports);
    let refused: u64 = reports.iter().map(|r| r.verdict.payloads_refused).sum();
    assert!(
        refused > 0,
        "no lying payload was ever proposed and refused"
    );
}

/// Negative control: honest hosts that take state claims unchecked certify the liar's.
#[test]
fn unchecked_state_claims_are_caught() {
    let mut cfg = SimConfig::new(4, 0);
    cfg.forgers = 1;
    cfg.root_liars = true;
    cfg.disabled_rule = Some(DisabledRule::StateClaim);
    let caught = (0..30u64)
        .map(|seed| run_seed(&cfg, seed))
        .find(|r| r.verdict.false_root_claims > 0);
    assert!(
        caught.is_some(),
        "no false claim certified in 30 seeds without the check"
    );
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

#[test]
fn a_crashed_leader_stops_costing_rounds() {
    // One of 4 and two of 7 validators crash 20 s into the run and stay down, with the daemon's
    // timing. Once leader reputation's window has moved past their last votes (a window of
    // committed blocks, at most every other round lost, plus the lag), no round is lost.
    for (n, crashed) in [(4usize, 1usize), (7, 2)] {
        let mut run = CrashRun::new(n, crashed);
        run.duration_ms = 80_000;
        let r = run.run(1);
        let params = ReputationParams::for_validators(n);
        let bound = 2 * params.window_blocks + params.lag_rounds;
        assert!(r.safe && r.forks == 0, "n={n}: {}", r.describe());
        assert!(
            r.rounds_until_no_loss <= bound,
            "n={n}: rounds kept failing for {} rounds after the crash (bound {bound}): {}",
            r.rounds_until_no_loss,
            r.describe()
        );
        assert_eq!(r.tail_lost_per_100, 0.0, "n={n}: {}", r.describe());
        assert!(
            r.tail_blocks_per_s >= 0.9 * r.healthy_blocks_per_s,
            "n={n}: {}",
            r.describe()
        );
        // Control: with round-robin leaders the crashed ones cost rounds to the end of the run.
        run.reputation = false;
        let off = run.run(1);
        assert!(off.tail_lost_per_100 >= 10.0, "n={n}: {}", off.describe());
        assert!(
            off.rounds_until_no_loss > bound,
            "n={n}: {}",
            off.describe()
        );
    }
}

#[test]
fn a_dead_leader_costs_its_own_round_only() {
    // Round-robin leaders, one of 4 crashed: the round before the dead leader's is certified
    // by the votes its timeouts carry, so each of the dead leader's turns loses one round (of
    // every 4), not two, and the rounds around it keep the base timeout.
    let mut run = CrashRun::new(4, 1);
    run.duration_ms = 80_000;
    run.reputation = false;
    let r = run.run(1);
    assert!(r.safe, "{}", r.describe());
    assert!(
        (20.0..=27.0).contains(&r.tail_lost_per_100),
        "{}",
        r.describe()
    );
    // Three blocks and one base timeout (1 s) per turn of four rounds of about 225 ms.
    assert!(r.tail_blocks_per_s >= 1.6, "{}", r.describe());
}

#[test]
fn a_byzantine_leader_cannot_get_an_honest_validator_skipped() {
    // f omitters leave the last validator's votes out of their QCs, never vote for its blocks
    // and never certify them: it stays a leader candidate at every honest node.
    for (n, omitters) in [(4usize, 1usize), (7, 2)] {
        for seed in 0..2 {
            let r = run_omission(n, omitters, seed, 20_000);
            assert!(
                r.verdict.safe() && r.verdict.live() && r.verdict.target_excluded == 0,
                "n={n} omitters={omitters} seed={seed}: {}",
                r.verdict.describe()
            );
            assert!(r.verdict.committed_height > 100, "n={n} seed={seed}");
        }
    }
    // Negative control: with every other validator omitting it, it is skipped.
    let r = run_omission(4, 3, 0, 20_000);
    assert!(r.verdict.target_excluded > 0, "{}", r.verdict.describe());
}

/// Crashes that wipe the chain data, with an orphan bound too small for catching up by
/// fetching ancestors: wiped and lagging nodes come back by forward sync, never sign against
/// their safety record (conflicting votes, unpersisted sends) and agree on every state root.
#[test]
fn wiped_nodes_catch_up_by_forward_sync_and_keep_their_safety_record() {
    let mut cfg = SimConfig::new(4, 1);
    cfg.wipes = true;
    cfg.max_orphan_blocks = 16;
    let reports = run_many(&cfg, 0..60);
    assert_all_safe_and_live(&reports);
    let wipes: u64 = reports.iter().map(|r| r.verdict.wipes).sum();
    let syncs: u64 = reports.iter().map(|r| r.verdict.syncs).sum();
    assert!(wipes > 0, "no crash wiped a node's chain data");
    assert!(syncs > 0, "no node switched to forward sync");
}

/// A Byzantine validator that alters the blocks it serves: every such response is refused and
/// the syncing nodes finish from the honest ones.
#[test]
fn tampered_sync_responses_are_refused_and_sync_completes_from_others() {
    let mut cfg = SimConfig::new(4, 0);
    cfg.forgers = 1;
    cfg.wipes = true;
    cfg.max_orphan_blocks = 16;
    let reports = run_many(&cfg, 0..40);
    assert_all_safe_and_live(&reports);
    let refused: u64 = reports.iter().map(|r| r.verdict.sync_refused).sum();
    let syncs: u64 = reports.iter().map(|r| r.verdict.syncs).sum();
    assert!(syncs > 0, "no node switched to forward sync");
    assert!(
        refused > 0,
        "no tampered sync response was served and refused"
    );
}

/// Wiped nodes restart with state sync on: they restore a snapshot their peers made (each chunk
/// checked against a certified root), agree with every other node on the state root at the
/// snapshot's height and after, and the network stays safe and live.
#[test]
fn wiped_nodes_join_by_state_sync_and_agree_on_the_state_root() {
    let mut cfg = SimConfig::new(4, 0);
    cfg.wipes = true;
    cfg.max_orphan_blocks = 16;
    // Below leader reputation's history (220 blocks): a restored node fetches what it lacks.
    cfg.snapshot_every = 64;
    cfg.state_sync = true;
    let reports = run_many(&cfg, 0..60);
    assert_all_safe_and_live(&reports);
    let restores: u64 = reports.iter().map(|r| r.verdict.restores).sum();
    assert!(restores >= 10, "only {restores} state syncs completed");
    let refused: u64 = reports.iter().map(|r| r.verdict.restore_refused).sum();
    assert_eq!(refused, 0, "an honest snapshot response was refused");
}

/// A Byzantine validator alters the chunks (and blocks) it serves: each is refused on arrival
/// and the restoring nodes finish from the honest peers.
#[test]
fn tampered_snapshot_chunks_are_refused_and_state_sync_completes_from_others() {
    let mut cfg = SimConfig::new(4, 0);
    cfg.forgers = 1;
    cfg.wipes = true;
    cfg.max_orphan_blocks = 16;
    // A forger's rounds fail, so the chain grows slower: frequent snapshots.
    cfg.snapshot_every = 32;
    cfg.state_sync = true;
    let reports = run_many(&cfg, 0..100);
    assert_all_safe_and_live(&reports);
    let restores: u64 = reports.iter().map(|r| r.verdict.restores).sum();
    let refused: u64 = reports.iter().map(|r| r.verdict.restore_refused).sum();
    assert!(restores > 0, "no node completed a state sync");
    assert!(refused > 0, "no tampered chunk was served and refused");
}

/// Two full nodes (hosts without a validator key) beside four validators and a twin, under the
/// drawn partitions, drops and crashes, with wiped validators: they follow the chain by block
/// sync alone, commit the validators' blocks and state roots at every height (the agreement
/// and state-root checks hold them as honest nodes) and keep committing after GST. Validators
/// hear the full nodes' sync statuses and ignore them.
#[test]
fn full_nodes_follow_the_chain_by_sync_and_agree_under_faults() {
    let mut cfg = SimConfig::new(4, 1);
    cfg.full_nodes = 2;
    cfg.wipes = true;
    cfg.max_orphan_blocks = 16;
    let reports = run_many(&cfg, 0..60);
    assert_all_safe_and_live(&reports);
    let roots: u64 = reports.iter().map(|r| r.verdict.roots_agreed).sum();
    assert!(roots > 0, "no state root was compared");
}
