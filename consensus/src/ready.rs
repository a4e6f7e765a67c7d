//! Persist before send, as a type.
//!
//! A batch of actions from [`Consensus::handle`](crate::Consensus::handle) must be carried out in
//! order, each `PersistSafety` durable before any later action (see [`Action`]). [`Ready`] makes
//! the order impossible to get wrong: it takes the batch apart into what must be persisted and
//! everything else, and hands out everything else only from [`Ready::persist`], after the
//! [`PersistSink`] has written the rest.
//!
//! ```
//! # use hotledger_consensus::{Action, Block, PersistSink, Ready, SafetyData};
//! /// A host's store (here in memory; a real one writes to disk and syncs `persist_safety`).
//! #[derive(Default)]
//! struct Store {
//!     safety: Option<SafetyData>,
//!     uncommitted: Vec<Block>,
//! }
//!
//! impl PersistSink for Store {
//!     type Error = std::convert::Infallible;
//!     fn store_uncommitted(&mut self, block: &Block) -> Result<(), Self::Error> {
//!         self.uncommitted.push(block.clone());
//!         Ok(())
//!     }
//!     fn persist_safety(&mut self, data: &SafetyData) -> Result<(), Self::Error> {
//!         self.safety = Some(data.clone());
//!         Ok(())
//!     }
//! }
//!
//! let batch = vec![Action::PersistSafety(SafetyData::default())];
//! let mut store = Store::default();
//! let Ok(rest) = Ready::new(batch).persist(&mut store);
//! assert!(store.safety.is_some());
//! for action in rest {
//!     // send, arm timers, apply commits: nothing here needs persisting any more
//! #   let _ = action;
//! }
//! ```
//!
//! # Why persisting the whole batch first is safe
//!
//! [`Ready::persist`] writes every `StoreUncommitted` block and then the batch's last
//! `PersistSafety` before any other action of the batch, wherever they stood in it. Moving a
//! write earlier never breaks the contract: the contract only asks that a write be durable
//! *before* what follows it, and nothing in a batch relies on a write being *late* (safety data
//! only limits what this node signs next, and an uncommitted block on disk is a copy of one the
//! core already holds). Moving a send later is always allowed: the protocol tolerates any delay
//! of any message. Moving a commit later is what happens whenever the QC that commits arrives
//! in a later batch. Only the last `PersistSafety` is written because each one carries the
//! whole [`SafetyData`], which only grows: the last one covers every message the batch signed.
//! Blocks go before the safety data, so the synced write makes them durable too, and a block
//! is on disk before any vote for it leaves.
//!
//! # Failure
//!
//! If the sink fails, [`Ready::persist`] returns its error and no actions: nothing that
//! depended on the write leaves the node. The core, though, has moved on as if the write had
//! happened, and the disk may hold part of the batch. The node must stop, and restart from what
//! is on disk ([`crate::Recovery`]); going on could sign a message the disk does not know of.

use crate::core::Action;
use crate::safety::SafetyData;
use crate::types::Block;

/// The storage [`Ready::persist`] writes a batch's persistence to.
///
/// Every error is fatal: the node must stop rather than carry on (see the module docs).
pub trait PersistSink {
    /// The storage's error.
    type Error;

    /// Stores `block` as uncommitted, handed back in [`crate::Recovery::uncommitted`] after a
    /// restart. It needs no sync of its own: [`PersistSink::persist_safety`], called after it,
    /// or any later synced write, makes it durable (the host's storage must keep writes in
    /// order, as one write-ahead log does).
    fn store_uncommitted(&mut self, block: &Block) -> Result<(), Self::Error>;

    /// Stores the safety data durably: it must be synced to disk when this returns `Ok`.
    fn persist_safety(&mut self, data: &SafetyData) -> Result<(), Self::Error>;
}

/// One batch of [`Action`]s, split into what must be persisted and everything else; the only
/// way to the rest is [`Ready::persist`].
#[derive(Debug)]
#[must_use = "the actions of a batch are reached only through Ready::persist"]
pub struct Ready {
    uncommitted: Vec<Block>,
    safety: Option<SafetyData>,
    rest: Vec<Action>,
}

impl Ready {
    /// Splits a batch from [`Consensus::handle`](crate::Consensus::handle): every
    /// `StoreUncommitted` block and the last `PersistSafety` are to be persisted; every other
    /// action is kept in its order.
    pub fn new(actions: Vec<Action>) -> Ready {
        let mut ready = Ready {
            uncommitted: Vec::new(),
            safety: None,
            rest: Vec::with_capacity(actions.len()),
        };
        for action in actions {
            match action {
                Action::StoreUncommitted(block) => ready.uncommitted.push(block),
                Action::PersistSafety(data) => ready.safety = Some(data),
                other => ready.rest.push(other),
            }
        }
        ready
    }

    /// The blocks to store as uncommitted, in the batch's order.
    pub fn uncommitted(&self) -> &[Block] {
        &self.uncommitted
    }

    /// The safety data to persist, if the batch changed it.
    pub fn safety(&self) -> Option<&SafetyData> {
        self.safety.as_ref()
    }

    /// Writes the batch's persistence to `sink`, the blocks first and then the safety data, and
    /// only then returns the other actions, in their order, none of them a persistence action.
    /// On an error, returns it and no actions; the node must stop.
    pub fn persist<S: PersistSink>(self, sink: &mut S) -> Result<Vec<Action>, S::Error> {
        for block in &self.uncommitted {
            sink.store_uncommitted(block)?;
        }
        if let Some(data) = &self.safety {
            sink.persist_safety(data)?;
        }
        Ok(self.rest)
    }
}

#[cfg(test)]
mod tests {
    use hotledger_crypto::{Digest, KeyPair, Signature};

    use super::*;
    use crate::types::{BlockInfo, BlockRequest, Message, QuorumCert};

    /// What a sink was asked to do, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Write {
        Block(Digest),
        Safety(SafetyData),
    }

    /// A sink that records its writes and fails the `fail_at`-th one.
    #[derive(Debug, Default)]
    struct Log {
        writes: Vec<Write>,
        fail_at: Option<usize>,
    }

    impl Log {
        fn write(&mut self, w: Write) -> Result<(), &'static str> {
            if self.fail_at == Some(self.writes.len()) {
                return Err("disk full");
            }
            self.writes.push(w);
            Ok(())
        }
    }

    impl PersistSink for Log {
        type Error = &'static str;
        fn store_uncommitted(&mut self, block: &Block) -> Result<(), Self::Error> {
            self.write(Write::Block(block.id))
        }
        fn persist_safety(&mut self, data: &SafetyData) -> Result<(), Self::Error> {
            self.write(Write::Safety(data.clone()))
        }
    }

    fn block(n: u8) -> Block {
        let genesis = BlockInfo {
            id: Digest([0; 32]),
            round: 0,
            height: 0,
            timestamp_ms: 0,
        };
        Block {
            id: Digest([n; 32]),
            round: u64::from(n),
            height: u64::from(n),
            timestamp_ms: 0,
            author: KeyPair::from_seed([1; 32]).public(),
            qc: QuorumCert::genesis(genesis),
            failed_leaders: Vec::new(),
            payload: Vec::new(),
            signature: Signature([0; 64]),
        }
    }

    fn safety(round: u64) -> SafetyData {
        SafetyData {
            last_voted_round: round,
            ..SafetyData::default()
        }
    }

    fn send(n: u8) -> Action {
        Action::Broadcast(Message::BlockRequest(BlockRequest {
            id: Digest([n; 32]),
            count: 1,
        }))
    }

    #[test]
    fn a_send_before_a_persist_comes_out_after_it() {
        let ready = Ready::new(vec![
            send(1),
            Action::PersistSafety(safety(1)),
            Action::StoreUncommitted(block(1)),
            send(2),
        ]);
        let mut log = Log::default();
        let rest = ready.persist(&mut log);
        assert_eq!(
            log.writes,
            vec![Write::Block(Digest([1; 32])), Write::Safety(safety(1))]
        );
        assert_eq!(rest, Ok(vec![send(1), send(2)]));
    }

    #[test]
    fn only_the_last_safety_data_is_written() {
        let ready = Ready::new(vec![
            Action::PersistSafety(safety(1)),
            send(1),
            Action::PersistSafety(safety(2)),
            Action::StoreUncommitted(block(1)),
            Action::StoreUncommitted(block(2)),
            Action::PersistSafety(safety(3)),
        ]);
        assert_eq!(ready.safety(), Some(&safety(3)));
        assert_eq!(ready.uncommitted().len(), 2);
        let mut log = Log::default();
        assert_eq!(ready.persist(&mut log), Ok(vec![send(1)]));
        assert_eq!(
            log.writes,
            vec![
                Write::Block(Digest([1; 32])),
                Write::Block(Digest([2; 32])),
                Write::Safety(safety(3)),
            ]
        );
    }

    #[test]
    fn a_sink_error_returns_no_actions() {
        for fail_at in 0..2 {
            let ready = Ready::new(vec![
                Action::StoreUncommitted(block(1)),
                Action::PersistSafety(safety(1)),
                send(1),
            ]);
            let mut log = Log {
                fail_at: Some(fail_at),
                ..Log::default()
            };
            assert_eq!(ready.persist(&mut log), Err("disk full"), "at {fail_at}");
            assert_eq!(log.writes.len(), fail_at);
        }
    }

    #[test]
    fn a_batch_without_persistence_passes_through() {
        let mut log = Log::default();
        let rest = Ready::new(vec![send(1), send(2)]).persist(&mut log);
        assert_eq!(rest, Ok(vec![send(1), send(2)]));
        assert!(log.writes.is_empty());
    }
}
