//! Scenarios: what goes wrong, and when, in one simulated run. Drawn from a seed, so every run
//! is reproducible from its seed alone.

use rand::Rng;

use crate::omission::OmissionSpec;
use rand_chacha::ChaCha8Rng;

/// How a simulation is set up; everything else is drawn from the seed.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub validators: usize,
    /// Byzantine validators each run as two twin instances sharing one key.
    pub twins: usize,
    /// Virtual milliseconds after which the network is synchronous (partitions healed, drops
    /// stopped, crashed nodes restarted).
    pub gst_ms: u64,
    /// Virtual milliseconds after GST by which every honest node must commit anew.
    pub liveness_bound_ms: u64,
    /// Draw faults (partitions, drops, crashes, silent and equivocating leaders). Off for the
    /// scale measurement, which wants a clean network.
    pub faults: bool,
    /// Fixed per-message delay when `faults` is off.
    pub fixed_delay_ms: u64,
    /// Switch off one safety rule in every honest node (negative control).
    pub disabled_rule: Option<hotledger_consensus::DisabledRule>,
    pub base_timeout_ms: u64,
    pub max_backoff_exponent: u32,
    /// Virtual milliseconds from a leader's payload request to the payload (the node's
    /// empty-block pace is modelled by a larger value).
    pub payload_delay_ms: u64,
    /// Leader reputation on (the default) or off (weighted round-robin only).
    pub reputation: bool,
    /// Byzantine validators that leave one honest validator out (see [`crate::omission`]).
    pub omission: Option<OmissionSpec>,
    /// Virtual milliseconds after a crash or restart at which the other nodes are told which
    /// validators are unreachable (`Event::Unreachable`, as the daemon's dropped connections);
    /// `None`: never told.
    pub detect_crash_ms: Option<u64>,
    /// Validators (after the twins) that forge a transfer's signature in every block they
    /// propose (Byzantine; see `Sim`).
    pub forgers: usize,
    /// The forgers lie about the committed state instead: every block they propose claims a
    /// wrong state root at their tip.
    pub root_liars: bool,
    /// Virtual milliseconds between two transfers the client signs and submits (0: none).
    pub tx_interval_ms: u64,
    /// Half of the crashes also wipe the node's chain data (its safety record stays), so it
    /// restarts from genesis with a record ahead of its chain.
    pub wipes: bool,
    /// `consensus.max_orphan_blocks` of every node (the daemon's default unless lowered, so
    /// that a node behind must catch up by forward sync rather than by fetching orphans).
    pub max_orphan_blocks: usize,
    /// Snapshot heights are multiples of this (0: no snapshots).
    pub snapshot_every: u64,
    /// A node restarted with no chain data (wiped) joins by state sync.
    pub state_sync: bool,
    /// Full nodes (no validator key) besides the validators: they follow the chain by block
    /// sync alone, are never crashed or partitioned, and are held to the same agreement and
    /// liveness checks as honest validators.
    pub full_nodes: usize,
}

impl SimConfig {
    pub fn new(validators: usize, twins: usize) -> Self {
        SimConfig {
            validators,
            twins,
            gst_ms: 20_000,
            liveness_bound_ms: 60_000,
            faults: true,
            fixed_delay_ms: 10,
            disabled_rule: None,
            base_timeout_ms: 400,
            max_backoff_exponent: 4,
            payload_delay_ms: 1,
            reputation: true,
            omission: None,
            detect_crash_ms: Some(10),
            forgers: 0,
            root_liars: false,
            tx_interval_ms: 100,
            wipes: false,
            max_orphan_blocks: 4_096,
            snapshot_every: 0,
            state_sync: false,
            full_nodes: 0,
        }
    }

    /// Sim nodes that faults are drawn for: one per validator, plus one extra instance per
    /// twin (the full nodes come after them).
    pub fn nodes(&self) -> usize {
        self.validators + self.twins
    }
}

/// The faults of one run, drawn from its seed.
#[derive(Clone, Debug, Default)]
pub struct Scenario {
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Probability (per mille) that a message sent before GST is lost.
    pub drop_per_mille: u32,
    /// `(from_ms, group of each node)`: nodes talk only within their group until the next
    /// entry; all in one group after GST.
    pub partitions: Vec<(u64, Vec<u8>)>,
    /// `(node, down_at_ms, up_at_ms)`: crash, lose everything but the disk, restart.
    pub crashes: Vec<(usize, u64, u64)>,
    /// Indexes into `crashes` of those that also wipe the chain data (`SimConfig::wipes`).
    pub wipes: Vec<usize>,
    /// A twin instance that, as leader, sends conflicting proposals to two halves.
    pub equivocator: Option<usize>,
    /// An honest validator silent (down) from the start until GST.
    pub silent: Option<usize>,
}

impl Scenario {
    /// Draws a scenario. Twin instances of one key always sit in different partition groups.
    pub fn draw(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Scenario {
        if !cfg.faults {
            return Scenario {
                delay_ms: cfg.fixed_delay_ms,
                ..Scenario::default()
            };
        }
        let n = cfg.nodes();
        let mut s = Scenario {
            delay_ms: rng.gen_range(2..=40),
            jitter_ms: rng.gen_range(0..=30),
            drop_per_mille: if rng.gen_bool(0.5) {
                rng.gen_range(0..=50)
            } else {
                0
            },
            ..Scenario::default()
        };
        // Partitions that change during the run, then heal at GST.
        let mut t = 0;
        while t < cfg.gst_ms {
            let groups = if rng.gen_bool(0.25) {
                vec![0; n]
            } else {
                Self::split(cfg, rng)
            };
            s.partitions.push((t, groups));
            t += rng.gen_range(1_000..=6_000);
        }
        // Crash-restart of honest validators (never more than f down at once is not required
        // for safety; liveness is only checked after everyone is back).
        let honest: Vec<usize> = (cfg.twins..cfg.validators).collect();
        let crashes = rng.gen_range(0..=2usize.min(honest.len()));
        for _ in 0..crashes {
            let node = honest[rng.gen_range(0..honest.len())];
            let down = rng.gen_range(500..cfg.gst_ms);
            let up = (down + rng.gen_range(200..8_000)).min(cfg.gst_ms);
            s.crashes.push((node, down, up));
        }
        if cfg.wipes {
            // Drawn only when asked for, so the other runs keep their seeds' scenarios.
            s.wipes = (0..s.crashes.len()).filter(|_| rng.gen_bool(0.5)).collect();
        }
        match rng.gen_range(0..4) {
            0 if cfg.twins > 0 => s.equivocator = Some(cfg.validators), // first twin instance
            1 if !honest.is_empty() => s.silent = Some(honest[rng.gen_range(0..honest.len())]),
            _ => {}
        }
        s
    }

    /// Two (sometimes three) groups; each twin pair split across groups 0 and 1.
    fn split(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let groups: u8 = if rng.gen_bool(0.2) { 3 } else { 2 };
        let mut g: Vec<u8> = (0..cfg.nodes()).map(|_| rng.gen_range(0..groups)).collect();
        for t in 0..cfg.twins {
            let a = rng.gen_range(0..2u8);
            g[t] = a;
            g[cfg.validators + t] = 1 - a;
        }
        g
    }

    /// The partition group of `node` at `now_ms`.
    pub fn group(&self, node: usize, now_ms: u64, gst_ms: u64) -> u8 {
        if now_ms >= gst_ms {
            return 0;
        }
        self.partitions
            .iter()
            .take_while(|(from, _)| *from <= now_ms)
            .last()
            .map_or(0, |(_, g)| g.get(node).copied().unwrap_or(0))
    }
}
