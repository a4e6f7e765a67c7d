//! The single error type of this crate.

use std::path::PathBuf;

use hotledger_crypto::PublicKey;

/// Every failure this crate can report.
///
/// Variants carry typed fields so callers can match on them; the `Display` messages name the
/// offending value and say what is expected, so they can be shown to operators as-is.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file that was being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a well-formed genesis document: bad JSON, a missing or unknown field, a
    /// value of the wrong type, or a malformed key (bad hex, wrong length, weak point).
    #[error("{}:{line}:{column}: {reason}", path.display())]
    Json {
        /// The file that was parsed.
        path: PathBuf,
        /// 1-based line of the error (0 if serde_json could not tell).
        line: usize,
        /// 1-based column of the error (0 if serde_json could not tell).
        column: usize,
        /// What is wrong, without the position.
        reason: String,
    },
    /// `chain_id` is the empty string.
    #[error("chain_id is empty: it must be 1 to 64 bytes of [a-z0-9-_.]")]
    EmptyChainId,
    /// `chain_id` is too long or uses a character outside `[a-z0-9-_.]`.
    #[error("chain_id {chain_id:?} is invalid: it must be 1 to 64 bytes of [a-z0-9-_.]")]
    BadChainId {
        /// The rejected chain id.
        chain_id: String,
    },
    /// A consensus parameter is out of range.
    #[error("consensus.{field} is invalid: {reason}")]
    BadParam {
        /// The parameter, as spelled in `genesis.json`.
        field: &'static str,
        /// The accepted range and the value found.
        reason: String,
    },
    /// `validators` is empty.
    #[error("the validator set is empty: add at least one validator")]
    NoValidators,
    /// More validators than a certificate may carry.
    #[error("{count} validators exceeds the maximum of {max}")]
    TooManyValidators {
        /// Validators in the document (or asked for).
        count: usize,
        /// [`crate::MAX_VALIDATORS`].
        max: usize,
    },
    /// A validator name is empty, longer than 64 characters, has leading or trailing
    /// whitespace, or contains a control character.
    #[error(
        "validator name {name:?} is invalid: it must be 1 to 64 characters, without control \
         characters or leading/trailing whitespace"
    )]
    BadName {
        /// The rejected name.
        name: String,
    },
    /// Two validators share a name.
    #[error("validator name {name:?} is used twice")]
    DuplicateValidatorName {
        /// The repeated name.
        name: String,
    },
    /// Two validators share a consensus key.
    #[error("validator consensus key {key} is used twice")]
    DuplicateValidatorKey {
        /// The repeated key.
        key: PublicKey,
    },
    /// A validator consensus key has a small-order component. Honestly generated keys never
    /// do; such a key could make signatures ambiguous.
    #[error("validator {name:?} has a consensus key with a small-order component: {key}")]
    WeakValidatorKey {
        /// The validator's name.
        name: String,
        /// The rejected key.
        key: PublicKey,
    },
    /// A validator has zero voting power.
    #[error("validator {name:?} has zero voting power: power must be at least 1")]
    ZeroPower {
        /// The validator's name.
        name: String,
    },
    /// The total voting power does not fit in a `u64`.
    #[error("total voting power overflows u64 when adding validator {name:?}: lower the powers")]
    PowerOverflow {
        /// The validator whose power made the total overflow.
        name: String,
    },
    /// A validator's `peer_id` is not a libp2p peer id in canonical base58.
    #[error("validator {name:?} has an invalid peer_id {peer_id:?}: {reason}")]
    BadPeerId {
        /// The validator's name.
        name: String,
        /// The rejected peer id.
        peer_id: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Two validators share a libp2p peer id.
    #[error("peer_id {peer_id} is used by two validators")]
    DuplicatePeerId {
        /// The repeated peer id.
        peer_id: String,
    },
    /// A validator lists no address.
    #[error("validator {name:?} has no addresses: list at least one libp2p multiaddr")]
    NoAddresses {
        /// The validator's name.
        name: String,
    },
    /// A validator address is not a multiaddr, or names another peer.
    #[error("validator {name:?} has an invalid address {address:?}: {reason}")]
    BadAddress {
        /// The validator's name.
        name: String,
        /// The rejected address.
        address: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Two validators list the same address.
    #[error("address {address:?} is listed by validators {first:?} and {second:?}")]
    DuplicateAddress {
        /// The repeated address.
        address: String,
        /// The validator that lists it first.
        first: String,
        /// The validator that lists it again.
        second: String,
    },
    /// Two accounts share a public key.
    #[error("account {key} is listed twice: merge the balances into one entry")]
    DuplicateAccount {
        /// The repeated key.
        key: PublicKey,
    },
    /// The sum of all balances does not fit in a `u64`.
    #[error("total supply overflows u64 when adding the balance of account {key}")]
    SupplyOverflow {
        /// The account whose balance made the total overflow.
        key: PublicKey,
    },
    /// A host given for a validator is neither an IP address nor a DNS name.
    #[error("invalid host {host:?}: {reason}")]
    BadHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A [`crate::NetworkSpec`] cannot produce a network.
    #[error("invalid network spec: {reason}")]
    BadSpec {
        /// What is wrong with the spec.
        reason: String,
    },
    /// A libp2p node key could not be decoded.
    #[error("invalid node key: {reason}")]
    BadNodeKey {
        /// Why it was rejected.
        reason: String,
    },
    /// The operating system could not supply randomness for new keys.
    #[error("no randomness available for key generation: {reason}")]
    Randomness {
        /// The operating system's error.
        reason: String,
    },
    /// The consensus core rejected the parameters or the validator set (only if it ever adds
    /// a rule this crate does not check itself).
    #[error("consensus core rejected the genesis: {0}")]
    Consensus(#[from] hotledger_consensus::ConsensusError),
}
