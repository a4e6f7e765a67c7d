//! What validators send each other over libp2p: consensus messages and transaction batches,
//! postcard-encoded. Decoding is bounded by the frame size the network already enforced, and a
//! peer whose bytes do not decode is disconnected.

use hotledger_consensus::Message;
use hotledger_ledger::SignedTransaction;
use serde::{Deserialize, Serialize};

/// One frame on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireMessage {
    Consensus(Message),
    /// Transactions a peer admitted to its mempool, for ours.
    Transactions(Vec<SignedTransaction>),
}

impl WireMessage {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Whether `bytes` claim to be a [`WireMessage::Transactions`] frame (postcard encodes the
    /// variant index first, as a varint). Only a routing hint: the frame still has to decode.
    pub fn is_transactions(bytes: &[u8]) -> bool {
        bytes.first() == Some(&1)
    }

    /// Decodes one frame; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<WireMessage, String> {
        let (msg, rest) =
            postcard::take_from_bytes::<WireMessage>(bytes).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} trailing bytes", rest.len()));
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_never_panics() {
        for len in 0..64usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let _ = WireMessage::decode(&bytes);
        }
        assert!(WireMessage::decode(&[0xff; 16]).is_err());
    }

    #[test]
    fn transaction_frames_are_recognised_before_decoding() {
        assert!(WireMessage::is_transactions(
            &WireMessage::Transactions(Vec::new()).encode()
        ));
        let consensus = WireMessage::Consensus(hotledger_consensus::Message::BlockResponse(
            hotledger_consensus::BlockResponse { blocks: Vec::new() },
        ));
        assert!(!WireMessage::is_transactions(&consensus.encode()));
        assert!(!WireMessage::is_transactions(&[]));
    }

    #[test]
    fn round_trip() {
        let m = WireMessage::Transactions(Vec::new());
        assert_eq!(WireMessage::decode(&m.encode()), Ok(m));
    }
}
