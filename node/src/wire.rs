//! What validators send each other over libp2p: consensus messages, transaction batches and sync
//! messages, postcard-encoded. Decoding is bounded by the frame size the network already
//! enforced, and a peer whose bytes do not decode is disconnected.

use hotledger_consensus::Message;
use hotledger_ledger::SignedTransaction;
use serde::{Deserialize, Serialize};

use crate::error::NodeError;
use crate::host::SyncMessage;

/// One frame on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireMessage {
    Consensus(Message),
    /// Transactions a peer admitted to its mempool, for ours.
    Transactions(Vec<SignedTransaction>),
    /// Forward block sync (`crate::host::sync`).
    Sync(SyncMessage),
}

impl WireMessage {
    /// The frame's bytes. Fails only on a message serde cannot encode, a bug: the caller drops
    /// the message rather than send an empty frame.
    pub fn encode(&self) -> Result<Vec<u8>, NodeError> {
        postcard::to_allocvec(self).map_err(|source| NodeError::Unencodable {
            kind: self.kind(),
            source,
        })
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            WireMessage::Consensus(m) => m.kind(),
            WireMessage::Transactions(_) => "transactions",
            WireMessage::Sync(m) => m.kind(),
        }
    }

    /// Whether `bytes` claim to be a [`WireMessage::Transactions`] frame (postcard encodes the
    /// variant index first, as a varint). Only a routing hint: the frame still has to decode.
    pub fn is_transactions(bytes: &[u8]) -> bool {
        bytes.first() == Some(&1)
    }

    /// Decodes one frame; trailing bytes are an error, and so is a variant index not written
    /// as one byte. Postcard's varints accept over-long forms (`81 00` is 1), and every variant
    /// index fits in one byte, so a first byte of `0x80` or more is refused: the first byte then
    /// names the variant of every frame that decodes, and [`WireMessage::is_transactions`]
    /// routes exactly the frames that decode as transactions.
    pub fn decode(bytes: &[u8]) -> Result<WireMessage, NodeError> {
        match bytes.first() {
            Some(&first) if first >= 0x80 => return Err(NodeError::NonCanonicalFrame { first }),
            _ => {}
        }
        let (msg, rest) =
            postcard::take_from_bytes::<WireMessage>(bytes).map_err(NodeError::UndecodableFrame)?;
        if !rest.is_empty() {
            return Err(NodeError::TrailingBytes { count: rest.len() });
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
        assert!(matches!(
            WireMessage::decode(&[0xff; 16]),
            Err(NodeError::NonCanonicalFrame { first: 0xff })
        ));
        assert!(matches!(
            WireMessage::decode(&[0x7f; 16]),
            Err(NodeError::UndecodableFrame(_))
        ));
        let mut frame = WireMessage::Transactions(Vec::new()).encode().unwrap();
        frame.extend_from_slice(&[0, 0]);
        assert!(matches!(
            WireMessage::decode(&frame),
            Err(NodeError::TrailingBytes { count: 2 })
        ));
    }

    #[test]
    fn transaction_frames_are_recognised_before_decoding() {
        assert!(WireMessage::is_transactions(
            &WireMessage::Transactions(Vec::new()).encode().unwrap()
        ));
        let consensus = WireMessage::Consensus(hotledger_consensus::Message::BlockResponse(
            hotledger_consensus::BlockResponse { blocks: Vec::new() },
        ));
        assert!(!WireMessage::is_transactions(&consensus.encode().unwrap()));
        assert!(!WireMessage::is_transactions(&[]));
    }

    #[test]
    fn an_over_long_variant_index_is_refused() {
        // `81 00` is index 1 (transactions) written in two bytes, then an empty list: postcard
        // alone decodes it, and the routing hint would not see a transactions frame.
        assert!(postcard::from_bytes::<WireMessage>(&[0x81, 0x00, 0x00]).is_ok());
        assert!(matches!(
            WireMessage::decode(&[0x81, 0x00, 0x00]),
            Err(NodeError::NonCanonicalFrame { first: 0x81 })
        ));
        let canonical = WireMessage::Transactions(vec![]).encode().unwrap();
        assert_eq!(canonical, vec![0x01, 0x00]);
        assert!(WireMessage::decode(&canonical).is_ok());
    }

    #[test]
    fn round_trip() {
        let m = WireMessage::Transactions(Vec::new());
        assert_eq!(WireMessage::decode(&m.encode().unwrap()).unwrap(), m);
    }
}
