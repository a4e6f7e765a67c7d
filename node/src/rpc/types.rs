//! What the JSON-RPC methods return; shared by the server and the CLI's client.
//!
//! Keys and digests are lowercase hex strings in JSON.

use hotledger_crypto::{Digest, PublicKey};
use hotledger_ledger::TxOutcome;
use serde::{Deserialize, Serialize};

pub use crate::shared::Status;

/// Where a transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxState {
    /// In this node's mempool, not yet committed.
    Pending,
    /// In a committed block (`height`, `index` and `outcome` are set).
    Committed,
    /// Neither committed nor in this node's mempool.
    Unknown,
}

/// The answer of `get_transaction`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatus {
    pub hash: Digest,
    pub status: TxState,
    pub height: Option<u64>,
    pub index: Option<u32>,
    pub outcome: Option<TxOutcome>,
}

/// A committed account, as of `height`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub public_key: PublicKey,
    pub balance: u64,
    /// The next nonce this account must use.
    pub nonce: u64,
    /// The next nonce after this node's pending transfers of the account that follow `nonce`
    /// without a gap: the nonce a wallet's next transfer takes.
    pub pending_nonce: u64,
    /// The committed height the node reported along with the account.
    pub height: u64,
}

/// A committed block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    pub height: u64,
    pub id: Digest,
    pub round: u64,
    pub parent_id: Digest,
    pub timestamp_ms: u64,
    pub proposer: PublicKey,
    /// State root after applying this block.
    pub state_root: Digest,
    pub txs_root: Digest,
    pub tx_count: usize,
    pub txs: Vec<Digest>,
    /// The proposer's lagging state commitment carried in the payload.
    pub payload_state_height: u64,
    pub payload_state_root: Digest,
}

/// One entry of `submit_transactions`: the hash if admitted, else why not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitOutcome {
    pub hash: Option<Digest>,
    pub error: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use hotledger_crypto::KeyPair;
    use hotledger_ledger::TxError;

    fn round_trip<T>(value: &T) -> serde_json::Value
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_value(value).unwrap();
        let back: T = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(&back, value);
        json
    }

    #[test]
    fn tx_status() {
        let committed = TxStatus {
            hash: Digest::of(b"x"),
            status: TxState::Committed,
            height: Some(3),
            index: Some(1),
            outcome: Some(TxOutcome::Failed(TxError::BadNonce {
                expected: 1,
                got: 0,
            })),
        };
        let json = round_trip(&committed);
        assert_eq!(json["status"], "committed");
        assert_eq!(json["hash"], Digest::of(b"x").to_hex());
        let unknown = TxStatus {
            hash: Digest::of(b"y"),
            status: TxState::Unknown,
            height: None,
            index: None,
            outcome: None,
        };
        assert_eq!(round_trip(&unknown)["status"], "unknown");
        assert_eq!(serde_json::to_value(TxState::Pending).unwrap(), "pending");
    }

    #[test]
    fn views() {
        let key = KeyPair::from_seed([1; 32]).public();
        let json = round_trip(&AccountView {
            public_key: key,
            balance: 5,
            nonce: 2,
            pending_nonce: 4,
            height: 9,
        });
        assert_eq!(json["pending_nonce"], 4);
        assert_eq!(json["public_key"], key.to_hex());
        round_trip(&BlockView {
            height: 1,
            id: Digest::of(b"b"),
            round: 2,
            parent_id: Digest::of(b"p"),
            timestamp_ms: 7,
            proposer: key,
            state_root: Digest::of(b"s"),
            txs_root: Digest::of(b"t"),
            tx_count: 1,
            txs: vec![Digest::of(b"tx")],
            payload_state_height: 0,
            payload_state_root: Digest::of(b"g"),
        });
        round_trip(&SubmitOutcome {
            hash: None,
            error: Some("bad signature".into()),
        });
        round_trip(&Status::default());
    }
}
