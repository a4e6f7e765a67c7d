//! Generation of an N-validator network: keys, node identities, addresses and the genesis
//! document that binds them.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use hotledger_consensus::MAX_VALIDATORS;
use hotledger_crypto::{Digest, KeyPair};
use multiaddr::{Multiaddr, Protocol};
use rand::rngs::OsRng;
use rand::RngCore;

use crate::document::{ConsensusParams, Genesis, GenesisAccount, GenesisValidator};
use crate::error::GenesisError;

/// What network to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Number of validators, `1..=MAX_VALIDATORS`.
    pub validators: usize,
    /// Number of funded accounts.
    pub accounts: usize,
    /// Balance of each account.
    pub balance: u64,
    /// The chain id (see [`crate::validate_chain_id`]).
    pub chain_id: String,
    /// The host every validator listens on, e.g. `127.0.0.1`; must not be unspecified.
    pub host: IpAddr,
    /// One distinct, non-zero TCP port per validator.
    pub p2p_ports: Vec<u16>,
    /// Genesis block timestamp, in milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// `Some(seed)` derives every key deterministically from `seed` (tests and fixtures: such
    /// keys are public knowledge); `None` draws them from the operating system.
    pub seed: Option<u64>,
}

/// One generated validator, with its secrets.
#[derive(Clone)]
pub struct GeneratedValidator {
    /// `validator-<index>`.
    pub name: String,
    /// The consensus signing key.
    pub consensus_key: KeyPair,
    /// The ed25519 secret seed of the node's libp2p identity (transport key).
    pub node_key: [u8; 32],
    /// The libp2p `PeerId` (base58) of `node_key`.
    pub peer_id: String,
    /// The multiaddr the node listens on, e.g. `/ip4/127.0.0.1/tcp/30000`.
    pub address: String,
}

impl fmt::Debug for GeneratedValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedValidator")
            .field("name", &self.name)
            .field("consensus_key", &self.consensus_key)
            .field("node_key", &"<redacted>")
            .field("peer_id", &self.peer_id)
            .field("address", &self.address)
            .finish()
    }
}

/// A generated network: the (validated) genesis document and every secret behind it.
#[derive(Clone, Debug)]
pub struct GeneratedNetwork {
    pub genesis: Genesis,
    /// In the same order as `genesis.validators`.
    pub validators: Vec<GeneratedValidator>,
    /// In the same order as `genesis.accounts`.
    pub account_keys: Vec<KeyPair>,
}

/// Generates keys for `spec.validators` validators (power 1 each, default consensus
/// parameters) and `spec.accounts` accounts, and a genesis document binding them.
///
/// Errors: [`GenesisError::NoValidators`], [`GenesisError::TooManyValidators`] or
/// [`GenesisError::BadSpec`] (port count, zero or repeated port, unspecified host) for a bad
/// spec; any [`Genesis::validate`] error for the result (e.g. a bad chain id or an overflowing
/// supply); [`GenesisError::Randomness`] if the operating system has no randomness.
///
/// With a seed, secret `i` of each kind is
/// `SHA-256(u32_be(len(tag)) || tag || u64_be(seed) || u64_be(i))` with tag
/// `hotledger/v1/genesis/<kind>` (`consensus-key`, `node-key`, `account-key`), so the output
/// depends only on the spec and this crate, not on a random number generator's version.
pub fn generate_network(spec: &NetworkSpec) -> Result<GeneratedNetwork, GenesisError> {
    check_spec(spec)?;

    let mut validators = Vec::with_capacity(spec.validators);
    let mut entries = Vec::with_capacity(spec.validators);
    for (i, &port) in spec.p2p_ports.iter().enumerate() {
        let consensus_key = KeyPair::from_seed(secret(spec.seed, "consensus-key", i)?);
        let node_key = secret(spec.seed, "node-key", i)?;
        let peer_id = peer_id_from_node_key(node_key)?;
        let address = Multiaddr::empty()
            .with(Protocol::from(spec.host))
            .with(Protocol::Tcp(port))
            .to_string();
        let name = format!("validator-{i}");
        entries.push(GenesisValidator {
            name: name.clone(),
            public_key: consensus_key.public(),
            power: 1,
            peer_id: peer_id.clone(),
            addresses: vec![address.clone()],
        });
        validators.push(GeneratedValidator {
            name,
            consensus_key,
            node_key,
            peer_id,
            address,
        });
    }

    let account_keys = (0..spec.accounts)
        .map(|i| secret(spec.seed, "account-key", i).map(KeyPair::from_seed))
        .collect::<Result<Vec<_>, _>>()?;
    let accounts = account_keys
        .iter()
        .map(|k| GenesisAccount {
            public_key: k.public(),
            balance: spec.balance,
        })
        .collect();

    let genesis = Genesis {
        chain_id: spec.chain_id.clone(),
        genesis_time_ms: spec.genesis_time_ms,
        consensus: ConsensusParams::default(),
        validators: entries,
        accounts,
    };
    genesis.validate()?;
    Ok(GeneratedNetwork {
        genesis,
        validators,
        account_keys,
    })
}

/// Derives the libp2p `PeerId` (base58) of the ed25519 identity whose secret seed is `seed`,
/// as `libp2p_identity::Keypair::ed25519_from_bytes(seed).public().to_peer_id()`.
pub fn peer_id_from_node_key(seed: [u8; 32]) -> Result<String, GenesisError> {
    // `ed25519_from_bytes` zeroizes its argument; it gets this function's own copy.
    let mut bytes = seed;
    let keypair = libp2p_identity::Keypair::ed25519_from_bytes(&mut bytes).map_err(|e| {
        GenesisError::BadNodeKey {
            reason: e.to_string(),
        }
    })?;
    Ok(keypair.public().to_peer_id().to_base58())
}

fn check_spec(spec: &NetworkSpec) -> Result<(), GenesisError> {
    if spec.validators == 0 {
        return Err(GenesisError::NoValidators);
    }
    if spec.validators > MAX_VALIDATORS {
        return Err(GenesisError::TooManyValidators {
            count: spec.validators,
            max: MAX_VALIDATORS,
        });
    }
    let bad = |reason: String| Err(GenesisError::BadSpec { reason });
    if spec.p2p_ports.len() != spec.validators {
        return bad(format!(
            "{} validators need {} p2p ports, got {}",
            spec.validators,
            spec.validators,
            spec.p2p_ports.len()
        ));
    }
    if spec.host.is_unspecified() {
        return bad(format!(
            "host {} is not an address peers can dial; use e.g. 127.0.0.1",
            spec.host
        ));
    }
    let mut seen = HashSet::new();
    for &port in &spec.p2p_ports {
        if port == 0 {
            return bad("p2p port 0 is not dialable; give every validator a fixed port".into());
        }
        if !seen.insert(port) {
            return bad(format!("p2p port {port} is given to two validators"));
        }
    }
    Ok(())
}

/// The `index`-th secret of `kind`: derived from `seed` if given, else from the OS.
fn secret(seed: Option<u64>, kind: &str, index: usize) -> Result<[u8; 32], GenesisError> {
    match seed {
        Some(seed) => {
            let tag = format!("hotledger/v1/genesis/{kind}");
            let tag_len = u32::try_from(tag.len()).unwrap_or(u32::MAX);
            let mut h = Digest::hasher();
            h.update(&tag_len.to_be_bytes())
                .update(tag.as_bytes())
                .update(&seed.to_be_bytes())
                .update(&(index as u64).to_be_bytes());
            Ok(h.finalize().0)
        }
        None => {
            let mut out = [0u8; 32];
            OsRng
                .try_fill_bytes(&mut out)
                .map_err(|e| GenesisError::Randomness {
                    reason: e.to_string(),
                })?;
            Ok(out)
        }
    }
}
