//! Configuration of one consensus instance.

use hotledger_crypto::{Digest, KeyPair};
use serde::{Deserialize, Serialize};

use crate::error::{ConsensusError, Result};
use crate::types::{BlockInfo, QuorumCert, MAX_FAILED_LEADERS};
use crate::validators::ValidatorSet;

/// Protocol parameters that every validator of a chain must share (they come from genesis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Round timeout before any backoff, in milliseconds.
    pub base_timeout_ms: u64,
    /// The timeout doubles for each round without a QC, up to `2^max_backoff_exponent` times.
    pub max_backoff_exponent: u32,
    /// Largest payload a block may carry, in bytes.
    pub max_payload_bytes: usize,
    /// How far (ms) a block timestamp may run ahead of the receiver's clock.
    pub max_clock_skew_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            base_timeout_ms: 1_000,
            max_backoff_exponent: 6,
            max_payload_bytes: 4 * 1024 * 1024,
            max_clock_skew_ms: 10_000,
        }
    }
}

impl Params {
    /// Names the first field that is out of range.
    pub fn validate(&self) -> Result<()> {
        if self.base_timeout_ms == 0 || self.base_timeout_ms > 600_000 {
            return Err(ConsensusError::InvalidConfig(format!(
                "base_timeout_ms = {} must be in 1..=600000",
                self.base_timeout_ms
            )));
        }
        if self.max_backoff_exponent > 16 {
            return Err(ConsensusError::InvalidConfig(format!(
                "max_backoff_exponent = {} must be at most 16",
                self.max_backoff_exponent
            )));
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > 64 * 1024 * 1024 {
            return Err(ConsensusError::InvalidConfig(format!(
                "max_payload_bytes = {} must be in 1..=67108864",
                self.max_payload_bytes
            )));
        }
        Ok(())
    }
}

/// Local resource bounds: how much a peer can make this node hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Messages for rounds more than this far ahead, without a certificate, are rejected.
    pub max_round_ahead: u64,
    /// Uncommitted blocks held in memory (certified chain plus forks).
    pub max_pending_blocks: usize,
    /// Blocks held while their ancestors are being fetched.
    pub max_orphan_blocks: usize,
    /// Most blocks asked for, or served, in one block request.
    pub max_blocks_per_request: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_round_ahead: 1_000,
            max_pending_blocks: 10_000,
            max_orphan_blocks: 256,
            max_blocks_per_request: 64,
        }
    }
}

impl Limits {
    /// Every bound must be positive; the error names the first that is not.
    pub fn validate(&self) -> Result<()> {
        let checks: [(&str, u64); 4] = [
            ("max_round_ahead", self.max_round_ahead),
            ("max_pending_blocks", self.max_pending_blocks as u64),
            ("max_orphan_blocks", self.max_orphan_blocks as u64),
            (
                "max_blocks_per_request",
                u64::from(self.max_blocks_per_request),
            ),
        ];
        for (name, value) in checks {
            if value == 0 {
                return Err(ConsensusError::InvalidConfig(format!(
                    "{name} must be positive"
                )));
            }
        }
        Ok(())
    }
}

/// Leader reputation (see [`crate::leader`]). Every validator of a chain must use the same
/// values: they decide who leads each round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReputationParams {
    /// Committed blocks looked at; a validator that took part in none of them is skipped.
    /// 0 turns reputation off (weighted round-robin only).
    pub window_blocks: u64,
    /// The leader of round `r` is chosen from committed blocks of rounds up to `r - lag_rounds`,
    /// which every honest node near the tip has committed.
    pub lag_rounds: u64,
    /// Committed blocks in which a failed round counts against its leader (at least
    /// `window_blocks`): a validator that failed in them, and authored nothing since, is skipped.
    pub failure_window_blocks: u64,
}

impl ReputationParams {
    /// Committed blocks per validator in the window.
    pub const BLOCKS_PER_VALIDATOR: u64 = 5;
    /// The smallest window.
    pub const MIN_WINDOW_BLOCKS: u64 = 10;
    /// The default lag.
    pub const LAG_ROUNDS: u64 = 10;
    /// The failure window, in windows. A leader that fails its rounds on purpose (one that
    /// equivocates, or proposes what no quorum votes for) costs a timeout each time it is drawn
    /// before its failure is `lag_rounds` old; a long memory of failures makes that happen once
    /// per failure window instead of once per window.
    pub const FAILURE_WINDOWS: u64 = 10;

    /// The chain-wide defaults for a set of `validators`.
    pub fn for_validators(validators: usize) -> Self {
        let n = u64::try_from(validators).unwrap_or(u64::MAX);
        let window_blocks = n
            .saturating_mul(Self::BLOCKS_PER_VALIDATOR)
            .max(Self::MIN_WINDOW_BLOCKS);
        ReputationParams {
            window_blocks,
            lag_rounds: Self::LAG_ROUNDS,
            failure_window_blocks: window_blocks.saturating_mul(Self::FAILURE_WINDOWS),
        }
    }

    /// The blocks read for candidates or failures, whichever is longer.
    pub fn read_blocks(&self) -> u64 {
        self.window_blocks.max(self.failure_window_blocks)
    }

    /// Committed blocks a restarted node needs to choose leaders as its peers do: the window,
    /// plus the blocks that may sit within the lag, plus one per failed round a proposal names
    /// (their leaders are chosen from windows that far back).
    pub fn history_blocks(&self) -> u64 {
        if self.window_blocks == 0 {
            0
        } else {
            let failed = u64::try_from(MAX_FAILED_LEADERS).unwrap_or(u64::MAX);
            self.read_blocks()
                .saturating_add(self.lag_rounds)
                .saturating_add(failed)
        }
    }

    /// Checks the window and the lag are in range; the error names the one at fault.
    pub fn validate(&self) -> Result<()> {
        if self.window_blocks > 100_000 {
            return Err(ConsensusError::InvalidConfig(format!(
                "reputation window_blocks = {} must be at most 100000",
                self.window_blocks
            )));
        }
        if self.window_blocks > 0 && !(2..=10_000).contains(&self.lag_rounds) {
            return Err(ConsensusError::InvalidConfig(format!(
                "reputation lag_rounds = {} must be in 2..=10000",
                self.lag_rounds
            )));
        }
        if self.window_blocks > 0
            && !(self.window_blocks..=1_000_000).contains(&self.failure_window_blocks)
        {
            return Err(ConsensusError::InvalidConfig(format!(
                "reputation failure_window_blocks = {} must be in window_blocks ({})..=1000000",
                self.failure_window_blocks, self.window_blocks
            )));
        }
        Ok(())
    }
}

/// A safety rule that the simulator may switch off to prove its checkers notice. Settable only
/// with the `fault-injection` feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisabledRule {
    /// Vote or time out without the round having to increase.
    RoundIncrease,
    /// Vote for a block without the 2-chain extension check.
    VoteExtension,
    /// The host takes a payload's state claim without checking it, and follows a certified
    /// claim that differs from its own state (a rule of the node host, not of the core).
    StateClaim,
}

/// Everything a consensus instance needs to start. Cloned by a host that restarts its core
/// (after a forward sync).
#[derive(Clone, Debug)]
pub struct Config {
    /// Binds every signature to this chain.
    pub chain_id: String,
    /// The genesis block every chain starts from (round 0, height 0).
    pub genesis: BlockInfo,
    /// The validators and their voting power (from genesis).
    pub validators: ValidatorSet,
    /// This node's key; `None` for a non-validating observer.
    pub key: Option<KeyPair>,
    /// The chain-wide protocol parameters.
    pub params: Params,
    /// This node's resource bounds.
    pub limits: Limits,
    /// Defaults to [`ReputationParams::for_validators`] of the set.
    pub reputation: ReputationParams,
    /// Ask the application to check each peer's proposal before taking it in
    /// ([`crate::Action::CheckPayload`], answered by [`crate::Event::PayloadChecked`]). Off by
    /// default: every proposal that passes the protocol's own checks is taken in at once.
    pub check_payloads: bool,
    /// A safety rule switched off (simulator only; see [`DisabledRule`]).
    #[cfg(feature = "fault-injection")]
    pub disabled_rule: Option<DisabledRule>,
}

impl Config {
    /// A config with default parameters and limits.
    pub fn new(
        chain_id: impl Into<String>,
        genesis: BlockInfo,
        validators: ValidatorSet,
        key: Option<KeyPair>,
    ) -> Self {
        let reputation = ReputationParams::for_validators(validators.len());
        Config {
            chain_id: chain_id.into(),
            genesis,
            validators,
            key,
            params: Params::default(),
            limits: Limits::default(),
            reputation,
            check_payloads: false,
            #[cfg(feature = "fault-injection")]
            disabled_rule: None,
        }
    }

    /// The genesis block header for a chain whose genesis document hashes to `genesis_hash`.
    pub fn genesis_block(genesis_hash: Digest, genesis_time_ms: u64) -> BlockInfo {
        BlockInfo {
            id: genesis_hash,
            round: 0,
            height: 0,
            timestamp_ms: genesis_time_ms,
        }
    }

    /// The certificate of the genesis block.
    pub fn genesis_qc(&self) -> QuorumCert {
        QuorumCert::genesis(self.genesis)
    }

    /// Checks every field; the error names the one at fault.
    pub fn validate(&self) -> Result<()> {
        if self.chain_id.is_empty() || self.chain_id.len() > 64 {
            return Err(ConsensusError::InvalidConfig(format!(
                "chain_id {:?} must be 1 to 64 bytes",
                self.chain_id
            )));
        }
        if self.genesis.round != 0 || self.genesis.height != 0 {
            return Err(ConsensusError::InvalidConfig(
                "genesis block must have round 0 and height 0".into(),
            ));
        }
        if let Some(key) = &self.key {
            if !self.validators.contains(&key.public()) {
                return Err(ConsensusError::InvalidConfig(format!(
                    "this node's key {} is not in the validator set",
                    key.public()
                )));
            }
        }
        self.params.validate()?;
        self.limits.validate()?;
        self.reputation.validate()
    }

    /// Committed blocks, ending at the last one, that a restarting node passes in
    /// [`crate::Recovery::history`].
    pub fn history_blocks(&self) -> u64 {
        self.reputation.history_blocks()
    }
}
