//! Validation of a genesis document: every rule, checked in document order.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use hotledger_consensus::MAX_VALIDATORS;
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};

use crate::document::{ConsensusParams, Genesis, GenesisValidator};
use crate::error::GenesisError;

/// Longest chain id, in bytes.
pub const MAX_CHAIN_ID_LEN: usize = 64;
/// Longest validator name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Largest `consensus.base_timeout_ms` (ten minutes).
pub const MAX_BASE_TIMEOUT_MS: u64 = 600_000;
/// Largest `consensus.max_backoff_exponent`.
pub const MAX_BACKOFF_EXPONENT: u32 = 16;
/// Largest `consensus.max_block_bytes` (64 MiB).
pub const MAX_BLOCK_BYTES: u64 = 64 * 1024 * 1024;
/// Largest `consensus.max_clock_skew_ms` (one hour).
pub const MAX_CLOCK_SKEW_MS: u64 = 3_600_000;

impl Genesis {
    /// Checks every rule and returns the first problem found, in this order: chain id,
    /// consensus parameters, validators (count, then each validator's name, key, power,
    /// peer id and addresses), accounts (duplicates, total supply).
    ///
    /// Keys are already known to be valid, non-weak points (deserialization checks that);
    /// validator keys are additionally required to be torsion-free.
    pub fn validate(&self) -> Result<(), GenesisError> {
        validate_chain_id(&self.chain_id)?;
        validate_params(&self.consensus)?;
        // The consensus core's own checks, in case they are ever stricter than ours.
        self.consensus_params().validate()?;
        self.validate_validators()?;
        self.validate_accounts()
    }

    fn validate_validators(&self) -> Result<(), GenesisError> {
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        if self.validators.len() > MAX_VALIDATORS {
            return Err(GenesisError::TooManyValidators {
                count: self.validators.len(),
                max: MAX_VALIDATORS,
            });
        }
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        let mut peers = HashSet::new();
        // address -> name of the first validator listing it
        let mut addresses: HashMap<&str, &str> = HashMap::new();
        let mut total: u64 = 0;
        for v in &self.validators {
            validate_name(&v.name)?;
            if !names.insert(v.name.as_str()) {
                return Err(GenesisError::DuplicateValidatorName {
                    name: v.name.clone(),
                });
            }
            if !keys.insert(v.public_key) {
                return Err(GenesisError::DuplicateValidatorKey { key: v.public_key });
            }
            if !v.public_key.is_torsion_free() {
                return Err(GenesisError::WeakValidatorKey {
                    name: v.name.clone(),
                    key: v.public_key,
                });
            }
            if v.power == 0 {
                return Err(GenesisError::ZeroPower {
                    name: v.name.clone(),
                });
            }
            total = total
                .checked_add(v.power)
                .ok_or_else(|| GenesisError::PowerOverflow {
                    name: v.name.clone(),
                })?;
            let peer = parse_peer_id(v)?;
            if !peers.insert(peer) {
                return Err(GenesisError::DuplicatePeerId {
                    peer_id: v.peer_id.clone(),
                });
            }
            if v.addresses.is_empty() {
                return Err(GenesisError::NoAddresses {
                    name: v.name.clone(),
                });
            }
            for address in &v.addresses {
                validate_address(v, &peer, address)?;
                if let Some(first) = addresses.insert(address.as_str(), v.name.as_str()) {
                    return Err(GenesisError::DuplicateAddress {
                        address: address.clone(),
                        first: first.to_owned(),
                        second: v.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn validate_accounts(&self) -> Result<(), GenesisError> {
        let mut keys = HashSet::new();
        let mut supply: u64 = 0;
        for a in &self.accounts {
            if !keys.insert(a.public_key) {
                return Err(GenesisError::DuplicateAccount { key: a.public_key });
            }
            supply = supply
                .checked_add(a.balance)
                .ok_or(GenesisError::SupplyOverflow { key: a.public_key })?;
        }
        Ok(())
    }
}

/// Checks a chain id: 1 to [`MAX_CHAIN_ID_LEN`] bytes of `[a-z0-9-_.]`.
pub fn validate_chain_id(chain_id: &str) -> Result<(), GenesisError> {
    if chain_id.is_empty() {
        return Err(GenesisError::EmptyChainId);
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b);
    if chain_id.len() > MAX_CHAIN_ID_LEN || !chain_id.bytes().all(allowed) {
        return Err(GenesisError::BadChainId {
            chain_id: chain_id.to_owned(),
        });
    }
    Ok(())
}

/// Checks every consensus parameter against its documented range.
fn validate_params(p: &ConsensusParams) -> Result<(), GenesisError> {
    let bad = |field: &'static str, reason: String| Err(GenesisError::BadParam { field, reason });
    if !(1..=MAX_BASE_TIMEOUT_MS).contains(&p.base_timeout_ms) {
        return bad(
            "base_timeout_ms",
            format!(
                "{} is out of range 1..={MAX_BASE_TIMEOUT_MS}",
                p.base_timeout_ms
            ),
        );
    }
    if p.max_backoff_exponent > MAX_BACKOFF_EXPONENT {
        return bad(
            "max_backoff_exponent",
            format!(
                "{} is out of range 0..={MAX_BACKOFF_EXPONENT}",
                p.max_backoff_exponent
            ),
        );
    }
    if p.max_block_txs == 0 {
        return bad(
            "max_block_txs",
            "0 is out of range: a block must be allowed at least 1 transaction".to_owned(),
        );
    }
    if !(1..=MAX_BLOCK_BYTES).contains(&p.max_block_bytes) {
        return bad(
            "max_block_bytes",
            format!(
                "{} is out of range 1..={MAX_BLOCK_BYTES}",
                p.max_block_bytes
            ),
        );
    }
    if !(1..=MAX_CLOCK_SKEW_MS).contains(&p.max_clock_skew_ms) {
        return bad(
            "max_clock_skew_ms",
            format!(
                "{} is out of range 1..={MAX_CLOCK_SKEW_MS}",
                p.max_clock_skew_ms
            ),
        );
    }
    Ok(())
}

/// 1 to [`MAX_NAME_LEN`] characters, no control characters, no surrounding whitespace.
fn validate_name(name: &str) -> Result<(), GenesisError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_LEN
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    if ok {
        Ok(())
    } else {
        Err(GenesisError::BadName {
            name: name.to_owned(),
        })
    }
}

/// Parses the peer id and requires its canonical base58 spelling, so lookups by string match.
fn parse_peer_id(v: &GenesisValidator) -> Result<PeerId, GenesisError> {
    let bad = |reason: String| GenesisError::BadPeerId {
        name: v.name.clone(),
        peer_id: v.peer_id.clone(),
        reason,
    };
    let peer = PeerId::from_str(&v.peer_id).map_err(|e| bad(e.to_string()))?;
    let canonical = peer.to_base58();
    if canonical != v.peer_id {
        return Err(bad(format!("not in canonical form; write {canonical}")));
    }
    Ok(peer)
}

/// A non-empty multiaddr whose `/p2p/..` component, if any, names this validator's peer.
fn validate_address(
    v: &GenesisValidator,
    peer: &PeerId,
    address: &str,
) -> Result<(), GenesisError> {
    let bad = |reason: String| GenesisError::BadAddress {
        name: v.name.clone(),
        address: address.to_owned(),
        reason,
    };
    let addr = Multiaddr::from_str(address).map_err(|e| bad(e.to_string()))?;
    if addr.is_empty() {
        return Err(bad(
            "empty multiaddr; expected e.g. /ip4/10.0.0.1/tcp/30000".to_owned(),
        ));
    }
    for proto in addr.iter() {
        if let Protocol::P2p(other) = proto {
            if other != *peer {
                return Err(bad(format!(
                    "its /p2p/{other} component is not the validator's peer_id"
                )));
            }
        }
    }
    Ok(())
}
