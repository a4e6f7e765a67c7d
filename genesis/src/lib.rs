//! The hotledger genesis document (`genesis.json`), its validation, and generation of an
//! N-validator network.
//!
//! # The document
//!
//! ```json
//! {
//!   "chain_id": "hotledger-local",
//!   "genesis_time_ms": 1700000000000,
//!   "consensus": {
//!     "base_timeout_ms": 1000,
//!     "max_backoff_exponent": 6,
//!     "max_block_txs": 10000,
//!     "max_block_bytes": 4194304,
//!     "max_clock_skew_ms": 10000
//!   },
//!   "validators": [
//!     {
//!       "name": "validator-0",
//!       "public_key": "<64 hex digits: ed25519 consensus key>",
//!       "power": 1,
//!       "peer_id": "12D3KooW...",
//!       "addresses": ["/ip4/127.0.0.1/tcp/30000"]
//!     }
//!   ],
//!   "accounts": [
//!     { "public_key": "<64 hex digits>", "balance": 1000000 }
//!   ]
//! }
//! ```
//!
//! `consensus` and `accounts` may be omitted (defaults: the values above; no accounts), as may
//! any single field of `consensus`. Unknown fields are rejected everywhere, so a typo cannot
//! silently fall back to a default. Each validator has two keys: `public_key` signs consensus
//! messages, while `peer_id` identifies the node's libp2p transport key; keeping them apart
//! means the consensus key never has to be loaded by the networking layer.
//!
//! # Parsing and validation
//!
//! [`Genesis::load`] reads and parses; every syntax error, missing or unknown field and
//! malformed key (bad hex, wrong length, weak point — rejected by `PublicKey`'s serde) is a
//! [`GenesisError::Json`] with the path, line and column. [`Genesis::validate`] then checks the
//! rules below and reports the first violation, naming the field or validator:
//!
//! - `chain_id`: 1 to 64 bytes of `[a-z0-9-_.]`;
//! - `consensus`: each parameter within its documented range (see [`ConsensusParams`]), and
//!   accepted by [`hotledger_consensus::Params::validate`];
//! - `validators`: 1 to [`MAX_VALIDATORS`]; names of 1 to 64 characters (no control characters,
//!   no surrounding whitespace) and unique; consensus keys unique and torsion-free; power at
//!   least 1 with a total that fits in a `u64`; `peer_id` a canonical base58 libp2p `PeerId`,
//!   unique; at least one address per validator, each a non-empty multiaddr whose `/p2p/`
//!   component (if any) is the validator's own peer id, and no address listed twice;
//! - `accounts`: keys unique, total supply fits in a `u64`.
//!
//! # Hash
//!
//! [`Genesis::hash`] is SHA-256 of the canonical encoding: the document as compact JSON
//! (`serde_json::to_vec`), fields in declaration order, defaults filled in. It is the id of the
//! genesis block ([`Genesis::genesis_block`]), so every value in the document — parameters,
//! validators, addresses, balances — is bound into the chain: nodes with different documents
//! cannot extend each other's blocks. Formatting of the file (indentation, key order) does not
//! matter; any change of value does. The golden test in `tests/fixtures/genesis-4.json` pins
//! the encoding, so changing it is a deliberate act.
//!
//! # Generation
//!
//! [`generate_network`] creates consensus keys, libp2p node keys (ed25519 seeds; see
//! [`peer_id_from_node_key`]) and account keys for a [`NetworkSpec`], and a validated genesis
//! document for them. With a seed the keys are derived by hashing (stable across versions of
//! `rand`), for tests and fixtures only; without one they come from the operating system.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod document;
pub mod error;
mod generate;
mod validate;

pub use crate::document::{ConsensusParams, Genesis, GenesisAccount, GenesisValidator};
pub use crate::error::GenesisError;
pub use crate::generate::{
    generate_network, peer_id_from_node_key, GeneratedNetwork, GeneratedValidator, Host,
    NetworkSpec,
};
pub use crate::validate::{
    validate_chain_id, MAX_BACKOFF_EXPONENT, MAX_BASE_TIMEOUT_MS, MAX_BLOCK_BYTES,
    MAX_CHAIN_ID_LEN, MAX_CLOCK_SKEW_MS, MAX_NAME_LEN,
};
pub use hotledger_consensus::MAX_VALIDATORS;
