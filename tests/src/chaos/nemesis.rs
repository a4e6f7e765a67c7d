//! The faults the chaos harness injects, each drawn from a seed: which validators, for how long,
//! how hard. A [`Plan`] is a pure function of (kind, seed, validator count), so a failing run
//! is reproduced by its seed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// No fault: the load alone for 10 s (a baseline, e.g. for a Byzantine validator's cost).
    Quiet,
    /// Two halves, neither with a quorum: commits must stop, nothing forks.
    Halves,
    /// Up to f validators cut off from the rest, which keep committing.
    Minority,
    /// Two groups that cannot see each other, and one validator that sees both.
    Bridge,
    /// The proposer of the latest committed block cut off from everyone.
    Leader,
    /// Random splits switched on and off every 0.5–2 s.
    Flap,
    /// SIGKILL of one validator, restarted after a pause.
    KillOne,
    /// SIGKILL of f validators at once, restarted after a pause.
    KillF,
    /// SIGKILL of every validator at once, all restarted.
    KillAll,
    /// SIGSTOP of 1 to f validators for 1–30 s, then SIGCONT.
    Pause,
    /// The wall clock of 1 to f validators skewed, or drifting, by seconds (libfaketime).
    Clock,
    /// The egress of 1 to f validators limited by a `tbf` qdisc.
    Slow,
    /// SIGKILL, then the tail of the newest RocksDB WAL cut off, then restart (≤ f validators).
    WalTruncate,
    /// SIGKILL and restart (which writes SSTs), SIGKILL again, then bytes of an SST file
    /// overwritten, then restart (≤ f validators).
    SstCorrupt,
    /// The data folder (a tmpfs) shrunk to what it holds, so writes fail; then grown back.
    DiskFull,
}

impl Kind {
    /// Every fault (not [`Kind::Quiet`]), the kinds a seed draws from.
    pub const ALL: [Kind; 14] = [
        Kind::Halves,
        Kind::Minority,
        Kind::Bridge,
        Kind::Leader,
        Kind::Flap,
        Kind::KillOne,
        Kind::KillF,
        Kind::KillAll,
        Kind::Pause,
        Kind::Clock,
        Kind::Slow,
        Kind::WalTruncate,
        Kind::SstCorrupt,
        Kind::DiskFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Quiet => "quiet",
            Kind::Halves => "halves",
            Kind::Minority => "minority",
            Kind::Bridge => "bridge",
            Kind::Leader => "leader",
            Kind::Flap => "flap",
            Kind::KillOne => "kill-one",
            Kind::KillF => "kill-f",
            Kind::KillAll => "kill-all",
            Kind::Pause => "pause",
            Kind::Clock => "clock",
            Kind::Slow => "slow",
            Kind::WalTruncate => "wal-truncate",
            Kind::SstCorrupt => "sst-corrupt",
            Kind::DiskFull => "disk-full",
        }
    }

    /// Whether commits must stop while the fault lasts (no side holds a quorum).
    pub fn stops_commits(self) -> bool {
        matches!(self, Kind::Halves)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        std::iter::once(Kind::Quiet)
            .chain(Kind::ALL)
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown nemesis {s:?}; one of {}", names.join(", "))
            })
    }
}

/// One step of a plan, at an offset from the fault's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Each group sees only itself; validators in no group see nobody. Replaces the last split.
    Split(Vec<Vec<usize>>),
    /// Validator `bridge` sees everyone; `a` and `b` see only themselves and the bridge.
    Bridge {
        a: Vec<usize>,
        b: Vec<usize>,
        bridge: usize,
    },
    /// Cut off the proposer of the latest committed block.
    IsolateLeader,
    /// No drops anywhere.
    Heal,
    Kill(Vec<usize>),
    Restart(Vec<usize>),
    Stop(Vec<usize>),
    Cont(Vec<usize>),
    /// Wall clock offset in milliseconds (0 ends the skew).
    Skew(Vec<(usize, i64)>),
    /// Egress rate limit in kbit/s (`None` removes it).
    Throttle(Vec<usize>, Option<u32>),
    /// Cut `bytes` off the newest WAL file of each (validators killed before).
    TruncateWal(Vec<usize>, u64),
    /// Overwrite 64 bytes at a seeded offset of a seeded SST of each (killed before).
    CorruptSst(Vec<usize>, u64),
    /// Shrink (true) or grow back (false) the data tmpfs of each.
    FillDisk(Vec<usize>, bool),
}

/// The steps of one fault, with when each happens after the fault starts; the last step heals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub kind: Kind,
    pub steps: Vec<(Duration, Step)>,
}

impl Plan {
    /// When the last step (the heal) happens.
    pub fn healed_after(&self) -> Duration {
        self.steps.last().map_or(Duration::ZERO, |(at, _)| *at)
    }

    /// The validators whose data folder must be a tmpfs for this plan.
    pub fn tmpfs_validators(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (_, step) in &self.steps {
            if let Step::FillDisk(v, true) = step {
                out.extend(v.iter().copied());
            }
        }
        out
    }

    /// Whether validators must run under libfaketime.
    pub fn needs_faketime(&self) -> bool {
        self.steps.iter().any(|(_, s)| matches!(s, Step::Skew(_)))
    }

    /// Draws the plan for `kind` on `n` validators (f = (n - 1) / 3) from `rng`.
    pub fn draw(kind: Kind, n: usize, rng: &mut ChaCha8Rng) -> Plan {
        let f = (n.saturating_sub(1) / 3).max(1);
        let all: Vec<usize> = (0..n).collect();
        let ms =
            |rng: &mut ChaCha8Rng, lo: u64, hi: u64| Duration::from_millis(rng.gen_range(lo..=hi));
        let some = |rng: &mut ChaCha8Rng, count: usize| -> Vec<usize> {
            let mut v = all.clone();
            v.shuffle(rng);
            v.truncate(count);
            v.sort_unstable();
            v
        };
        let zero = Duration::ZERO;
        let steps = match kind {
            Kind::Quiet => vec![(Duration::from_secs(10), Step::Heal)],
            Kind::Halves => {
                let mut v = all.clone();
                v.shuffle(rng);
                let (a, b) = v.split_at(n / 2);
                let hold = ms(rng, 6_000, 15_000);
                vec![
                    (zero, Step::Split(vec![a.to_vec(), b.to_vec()])),
                    (hold, Step::Heal),
                ]
            }
            Kind::Minority => {
                let count = rng.gen_range(1..=f);
                let minority = some(rng, count);
                let majority: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|i| !minority.contains(i))
                    .collect();
                let hold = ms(rng, 4_000, 15_000);
                vec![
                    (zero, Step::Split(vec![minority, majority])),
                    (hold, Step::Heal),
                ]
            }
            Kind::Bridge => {
                let mut v = all.clone();
                v.shuffle(rng);
                let bridge = v[0];
                let rest = &v[1..];
                let cut = rng.gen_range(1..rest.len().max(2));
                let (a, b) = rest.split_at(cut.min(rest.len()));
                let hold = ms(rng, 4_000, 15_000);
                vec![
                    (
                        zero,
                        Step::Bridge {
                            a: a.to_vec(),
                            b: b.to_vec(),
                            bridge,
                        },
                    ),
                    (hold, Step::Heal),
                ]
            }
            Kind::Leader => {
                let hold = ms(rng, 4_000, 15_000);
                vec![(zero, Step::IsolateLeader), (hold, Step::Heal)]
            }
            Kind::Flap => {
                let mut steps = Vec::new();
                let mut at = zero;
                let end = ms(rng, 8_000, 20_000);
                while at < end {
                    let mut v = all.clone();
                    v.shuffle(rng);
                    let cut = rng.gen_range(1..n);
                    let (a, b) = v.split_at(cut);
                    steps.push((at, Step::Split(vec![a.to_vec(), b.to_vec()])));
                    at += ms(rng, 500, 2_000);
                    steps.push((at, Step::Heal));
                    at += ms(rng, 500, 2_000);
                }
                steps
            }
            Kind::KillOne | Kind::KillF | Kind::KillAll => {
                let victims = match kind {
                    Kind::KillOne => some(rng, 1),
                    Kind::KillF => some(rng, f),
                    _ => all.clone(),
                };
                let down = ms(rng, 500, 10_000);
                vec![
                    (zero, Step::Kill(victims.clone())),
                    (down, Step::Restart(victims)),
                ]
            }
            Kind::Pause => {
                let count = rng.gen_range(1..=f);
                let victims = some(rng, count);
                let hold = ms(rng, 1_000, 30_000);
                vec![
                    (zero, Step::Stop(victims.clone())),
                    (hold, Step::Cont(victims)),
                ]
            }
            Kind::Clock => {
                let count = rng.gen_range(1..=f);
                let victims = some(rng, count);
                let offsets: Vec<(usize, i64)> = victims
                    .iter()
                    .map(|&v| {
                        let ms: i64 = rng.gen_range(1_000..=10_000);
                        (v, if rng.gen_bool(0.5) { ms } else { -ms })
                    })
                    .collect();
                let hold = ms(rng, 8_000, 20_000);
                let back = victims.iter().map(|&v| (v, 0)).collect();
                let mut steps = Vec::new();
                if rng.gen_bool(0.5) {
                    // A skew: the clock jumps by the offset.
                    steps.push((zero, Step::Skew(offsets)));
                } else {
                    // A drift: the offset grows in 0.5 s steps to its full size at the end.
                    let ticks = (hold.as_millis() / 500).max(1) as i64;
                    for t in 1..=ticks {
                        let at = Duration::from_millis(500 * (t as u64 - 1));
                        let now = offsets.iter().map(|&(v, o)| (v, o * t / ticks)).collect();
                        steps.push((at, Step::Skew(now)));
                    }
                }
                steps.push((hold, Step::Skew(back)));
                steps
            }
            Kind::Slow => {
                let count = rng.gen_range(1..=f);
                let victims = some(rng, count);
                let kbit = rng.gen_range(128..=2_048);
                let hold = ms(rng, 6_000, 20_000);
                vec![
                    (zero, Step::Throttle(victims.clone(), Some(kbit))),
                    (hold, Step::Throttle(victims, None)),
                ]
            }
            Kind::WalTruncate | Kind::SstCorrupt => {
                let count = rng.gen_range(1..=f);
                let victims = some(rng, count);
                let damage = match kind {
                    Kind::WalTruncate => {
                        Step::TruncateWal(victims.clone(), rng.gen_range(1..=64 * 1024))
                    }
                    _ => Step::CorruptSst(victims.clone(), rng.gen()),
                };
                let down = ms(rng, 200, 2_000);
                // SSTs exist once a restart has written the recovered WAL into them; a WAL
                // always does.
                let first = if kind == Kind::SstCorrupt {
                    Duration::from_secs(3)
                } else {
                    zero
                };
                let mut steps = Vec::new();
                if kind == Kind::SstCorrupt {
                    steps.push((zero, Step::Kill(victims.clone())));
                    steps.push((Duration::from_millis(100), Step::Restart(victims.clone())));
                }
                steps.push((first, Step::Kill(victims.clone())));
                steps.push((first + Duration::from_millis(100), damage));
                steps.push((first + down, Step::Restart(victims)));
                steps
            }
            Kind::DiskFull => {
                let count = rng.gen_range(1..=f);
                let victims = some(rng, count);
                let hold = ms(rng, 5_000, 15_000);
                vec![
                    (zero, Step::FillDisk(victims.clone(), true)),
                    (hold, Step::FillDisk(victims.clone(), false)),
                    // A validator that stopped on the full disk is started again.
                    (hold + Duration::from_millis(200), Step::Restart(victims)),
                ]
            }
        };
        Plan { kind, steps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn plans_are_a_function_of_the_seed_and_end_healed() {
        for kind in Kind::ALL {
            for n in [4, 7] {
                for seed in 0..20 {
                    let a = Plan::draw(kind, n, &mut ChaCha8Rng::seed_from_u64(seed));
                    let b = Plan::draw(kind, n, &mut ChaCha8Rng::seed_from_u64(seed));
                    assert_eq!(a, b);
                    assert!(!a.steps.is_empty());
                    let f = (n - 1) / 3;
                    for (_, step) in &a.steps {
                        match step {
                            Step::Stop(v)
                            | Step::Throttle(v, _)
                            | Step::TruncateWal(v, _)
                            | Step::CorruptSst(v, _)
                            | Step::FillDisk(v, _) => {
                                assert!(!v.is_empty() && v.len() <= f, "{kind} {seed}: {v:?}")
                            }
                            Step::Split(groups) => {
                                let mut seen: Vec<usize> = groups.concat();
                                seen.sort_unstable();
                                seen.dedup();
                                assert_eq!(seen.len(), groups.concat().len());
                            }
                            _ => {}
                        }
                    }
                    let last = &a.steps.last().unwrap().1;
                    assert!(
                        matches!(
                            last,
                            Step::Heal
                                | Step::Restart(_)
                                | Step::Cont(_)
                                | Step::Skew(_)
                                | Step::Throttle(_, None)
                        ),
                        "{kind} ends with {last:?}"
                    );
                }
            }
            assert_eq!(kind.name().parse::<Kind>().unwrap(), kind);
        }
        assert_eq!("quiet".parse::<Kind>().unwrap(), Kind::Quiet);
        assert!("nothing".parse::<Kind>().is_err());
    }
}
