//! Generation of an N-validator network: keys, node identities, addresses and the genesis
//! document that binds them.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

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
    /// One host per validator, where its peers dial it: an IP address (not unspecified) or a
    /// DNS name.
    pub hosts: Vec<Host>,
    /// One non-zero TCP port per validator; two validators on one host need distinct ports.
    pub p2p_ports: Vec<u16>,
    /// Genesis block timestamp, in milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// `Some(seed)` derives every key deterministically from `seed` (tests and fixtures: such
    /// keys are public knowledge); `None` draws them from the operating system.
    pub seed: Option<u64>,
}

/// Where a validator is reached: an IP address or a DNS name. Parsed from text by
/// [`Host::from_str`]; written into a multiaddr as `/ip4/..`, `/ip6/..` or `/dns/..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    /// A DNS name of 1 to 253 bytes, labels of 1 to 63 letters, digits and inner hyphens.
    Dns(String),
}

impl Host {
    /// The multiaddr component naming this host.
    pub fn protocol(&self) -> Protocol<'_> {
        match self {
            Host::Ip(ip) => Protocol::from(*ip),
            Host::Dns(name) => Protocol::Dns(name.as_str().into()),
        }
    }

    /// The address's own text form for a URL: IPv6 in brackets.
    pub fn url_host(&self) -> String {
        match self {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            other => other.to_string(),
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        Host::Ip(ip)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Dns(name) => f.write_str(name),
        }
    }
}

impl FromStr for Host {
    type Err = GenesisError;

    /// An IPv4 or IPv6 address (IPv6 with or without brackets) or a DNS name; an unspecified
    /// address (`0.0.0.0`, `::`) is refused, since peers cannot dial it.
    fn from_str(text: &str) -> Result<Host, GenesisError> {
        let bad = |reason: &str| GenesisError::BadHost {
            host: text.to_owned(),
            reason: reason.to_owned(),
        };
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if ip.is_unspecified() {
                return Err(bad(
                    "an unspecified address is not dialable; give the host's own address",
                ));
            }
            return Ok(Host::Ip(ip));
        }
        let name = text.strip_suffix('.').unwrap_or(text);
        if name.is_empty() || name.len() > 253 {
            return Err(bad("not an IP address, and a DNS name has 1 to 253 bytes"));
        }
        for label in name.split('.') {
            let ok = (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad(
                    "not an IP address, and not a DNS name (labels of 1 to 63 letters, digits \
                     and inner hyphens, separated by dots)",
                ));
            }
        }
        if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(bad("not a valid IPv4 address"));
        }
        Ok(Host::Dns(name.to_ascii_lowercase()))
    }
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
    /// The multiaddr its peers dial, e.g. `/ip4/127.0.0.1/tcp/30000` or `/dns/v0.example/tcp/26656`.
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
    for (i, (host, &port)) in spec.hosts.iter().zip(&spec.p2p_ports).enumerate() {
        let consensus_key = KeyPair::from_seed(secret(spec.seed, "consensus-key", i)?);
        let node_key = secret(spec.seed, "node-key", i)?;
        let peer_id = peer_id_from_node_key(node_key)?;
        let address = Multiaddr::empty()
            .with(host.protocol())
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
    for (what, len) in [
        ("p2p ports", spec.p2p_ports.len()),
        ("hosts", spec.hosts.len()),
    ] {
        if len != spec.validators {
            return bad(format!(
                "{} validators need {} {what}, got {len}",
                spec.validators, spec.validators
            ));
        }
    }
    let mut seen = HashSet::new();
    for (host, &port) in spec.hosts.iter().zip(&spec.p2p_ports) {
        if matches!(host, Host::Ip(ip) if ip.is_unspecified()) {
            return bad(format!(
                "host {host} is not an address peers can dial; use e.g. 127.0.0.1"
            ));
        }
        if port == 0 {
            return bad("p2p port 0 is not dialable; give every validator a fixed port".into());
        }
        if !seen.insert((host, port)) {
            return bad(format!(
                "p2p address {}:{port} is given to two validators",
                host.url_host()
            ));
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
