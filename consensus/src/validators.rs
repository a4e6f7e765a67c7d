//! The validator set: voting power, quorum thresholds and the leader schedule.

use std::collections::HashMap;

use hotledger_crypto::PublicKey;
use serde::{Deserialize, Serialize};

use crate::error::{ConsensusError, Result};
use crate::types::Round;

/// The most validators a set may hold. Bounds every certificate a peer can send us.
pub const MAX_VALIDATORS: usize = 1024;
/// Schedule slots per round-robin cycle when powers are scaled down.
const MAX_SCHEDULE: u64 = 4096;

/// One validator and its voting power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// The validator's signing key.
    pub key: PublicKey,
    /// Its voting power (positive).
    pub power: u64,
}

/// A fixed set of validators. Quorum is more than two thirds of the total voting power
/// (`2f+1` of `3f+1` when powers are equal); validity (`f+1`) is enough power that at least one
/// honest validator is among the holders.
#[derive(Clone, Debug)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    index: HashMap<PublicKey, usize>,
    total: u64,
    quorum: u64,
    schedule: Vec<usize>,
}

impl ValidatorSet {
    /// Builds a set, rejecting an empty set, duplicate keys, zero power and overflowing totals.
    pub fn new(validators: Vec<Validator>) -> Result<Self> {
        if validators.is_empty() {
            return Err(ConsensusError::InvalidConfig(
                "validator set is empty".into(),
            ));
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(ConsensusError::InvalidConfig(format!(
                "{} validators exceeds the maximum of {MAX_VALIDATORS}",
                validators.len()
            )));
        }
        let mut index = HashMap::with_capacity(validators.len());
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            if v.power == 0 {
                return Err(ConsensusError::InvalidConfig(format!(
                    "validator {} has zero voting power",
                    v.key
                )));
            }
            total = total.checked_add(v.power).ok_or_else(|| {
                ConsensusError::InvalidConfig("total voting power overflows u64".into())
            })?;
            if index.insert(v.key, i).is_some() {
                return Err(ConsensusError::InvalidConfig(format!(
                    "validator {} appears twice",
                    v.key
                )));
            }
        }
        // quorum = floor(2 * total / 3) + 1, computed without overflow.
        let quorum = ((u128::from(total) * 2 / 3) as u64).saturating_add(1);
        let schedule = smooth_weighted_schedule(&validators, total);
        Ok(ValidatorSet {
            validators,
            index,
            total,
            quorum,
            schedule,
        })
    }

    /// Validators in their configured order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// The number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Whether the set has no validators (never true of a set `new` accepted).
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// Whether `key` is a validator's.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.index.contains_key(key)
    }

    /// Position of `key` in the configured order.
    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// Voting power of `key`, or `UnknownSigner`.
    pub fn power(&self, key: &PublicKey) -> Result<u64> {
        self.index
            .get(key)
            .map(|&i| self.validators[i].power)
            .ok_or(ConsensusError::UnknownSigner(*key))
    }

    /// The sum of all voting power.
    pub fn total_power(&self) -> u64 {
        self.total
    }

    /// Power needed for a QC or TC: more than two thirds of the total.
    pub fn quorum(&self) -> u64 {
        self.quorum
    }

    /// Power that includes at least one honest validator: `total - quorum + 1` (f+1).
    pub fn validity(&self) -> u64 {
        self.total - self.quorum + 1
    }

    /// The leader of `round`: a smooth weighted round-robin over voting power, so every
    /// validator leads in proportion to its power and a crashed leader costs one round in each
    /// cycle rather than stalling the chain.
    pub fn leader(&self, round: Round) -> PublicKey {
        let slot = (round % self.schedule.len() as u64) as usize;
        self.validators[self.schedule[slot]].key
    }
}

/// Interleaves validators in proportion to power (nginx-style smooth weighted round-robin),
/// scaling powers into at most `MAX_SCHEDULE` slots.
fn smooth_weighted_schedule(validators: &[Validator], total: u64) -> Vec<usize> {
    let weights: Vec<i128> = validators
        .iter()
        .map(|v| {
            if total <= MAX_SCHEDULE {
                i128::from(v.power)
            } else {
                (i128::from(v.power) * i128::from(MAX_SCHEDULE) / i128::from(total)).max(1)
            }
        })
        .collect();
    let sum: i128 = weights.iter().sum();
    let mut current = vec![0i128; weights.len()];
    let mut schedule = Vec::with_capacity(sum as usize);
    for _ in 0..sum {
        let mut best = 0;
        for i in 0..weights.len() {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= sum;
        schedule.push(best);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotledger_crypto::KeyPair;

    fn key(i: u8) -> PublicKey {
        KeyPair::from_seed([i; 32]).public()
    }

    fn set(powers: &[u64]) -> Result<ValidatorSet> {
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, &power)| Validator {
                    key: key(i as u8 + 1),
                    power,
                })
                .collect(),
        )
    }

    #[test]
    fn quorum_is_two_thirds_plus_one() {
        for (n, q) in [(1, 1), (4, 3), (7, 5), (10, 7), (100, 67)] {
            let s = set(&vec![1; n]).unwrap();
            assert_eq!(s.quorum(), q, "n = {n}");
            assert_eq!(s.validity(), n as u64 - q + 1);
        }
    }

    #[test]
    fn rejects_bad_sets() {
        assert!(matches!(set(&[]), Err(ConsensusError::InvalidConfig(_))));
        assert!(matches!(
            set(&[1, 0]),
            Err(ConsensusError::InvalidConfig(_))
        ));
        assert!(matches!(
            set(&[u64::MAX, 1]),
            Err(ConsensusError::InvalidConfig(_))
        ));
        let dup = ValidatorSet::new(vec![
            Validator {
                key: key(1),
                power: 1,
            },
            Validator {
                key: key(1),
                power: 1,
            },
        ]);
        assert!(matches!(dup, Err(ConsensusError::InvalidConfig(_))));
    }

    #[test]
    fn leaders_rotate_in_proportion_to_power() {
        let s = set(&[1, 1, 1, 1]).unwrap();
        let leaders: Vec<_> = (0..4).map(|r| s.leader(r)).collect();
        for i in 0..4 {
            assert!(leaders.contains(&key(i + 1)));
        }
        let s = set(&[3, 1]).unwrap();
        let count = (0..400).filter(|&r| s.leader(r) == key(1)).count();
        assert_eq!(count, 300);
    }

    #[test]
    fn huge_powers_are_scaled_not_overflowed() {
        let s = set(&[u64::MAX / 4, u64::MAX / 4, 1]).unwrap();
        let lead_small = (0..10_000).filter(|&r| s.leader(r) == key(3)).count();
        assert!(
            lead_small > 0,
            "every validator leads at least once per cycle"
        );
        assert!(s.quorum() > s.total_power() / 3 * 2);
    }

    #[test]
    fn unknown_signer_is_typed() {
        let s = set(&[1]).unwrap();
        assert_eq!(s.power(&key(9)), Err(ConsensusError::UnknownSigner(key(9))));
    }
}
