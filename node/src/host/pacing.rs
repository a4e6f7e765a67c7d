//! Proposal pacing: when a leader hands its payload to the core.
//!
//! Asked for a payload (`Action::RequestPayload`), the leader waits at least
//! [`Pacing::min_delay_ms`], then proposes as soon as the mempool holds a transaction it can
//! select, or with whatever it has (possibly nothing) once [`Pacing::empty_block_delay_ms`]
//! have passed: an idle chain makes empty blocks at that pace, a busy one proposes at once.
//! Transactions can wait in the mempool that cannot go yet (a nonce gap, or already in an
//! ancestor block); a build that selected none is not tried again until the mempool admitted
//! more or a commit changed the state.

use hotledger_consensus::Round;
use hotledger_crypto::Digest;

/// Proposal pacing parameters (ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// Longest a leader waits for transactions before proposing an empty block.
    pub empty_block_delay_ms: u64,
    /// Shortest time between the payload request and the proposal (0: none).
    pub min_delay_ms: u64,
}

/// A proposal waiting for its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    round: Round,
    parent: Digest,
    requested_ms: u64,
}

#[derive(Debug)]
pub(super) struct Pacer {
    pacing: Pacing,
    pending: Option<Pending>,
    /// The mempool's `admitted_total` when a build found nothing to select.
    nothing_selectable: Option<u64>,
}

impl Pacer {
    pub(super) fn new(pacing: Pacing) -> Pacer {
        Pacer {
            pacing,
            pending: None,
            nothing_selectable: None,
        }
    }

    /// The core asked for a payload of `round` extending `parent`. Asked again in the same
    /// round (a higher QC arrived), the parent changes and the delays still count from the
    /// first request.
    pub(super) fn request(&mut self, round: Round, parent: Digest, now_ms: u64) {
        let requested_ms = match self.pending {
            Some(p) if p.round == round => p.requested_ms,
            _ => now_ms,
        };
        self.pending = Some(Pending {
            round,
            parent,
            requested_ms,
        });
        self.nothing_selectable = None; // another parent excludes other transactions
    }

    /// A commit changed the state: transactions that could not go may be selectable now.
    pub(super) fn state_changed(&mut self) {
        self.nothing_selectable = None;
    }

    /// Whether a proposal is pending (it waits for transactions until its deadline).
    pub(super) fn waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// When the pending proposal must be looked at again even if no transaction arrives: the
    /// end of the minimum delay while it lasts, then the deadline.
    pub(super) fn wake_at(&self, now_ms: u64) -> Option<u64> {
        let p = self.pending?;
        let earliest = p.requested_ms.saturating_add(self.pacing.min_delay_ms);
        if now_ms < earliest {
            return Some(earliest);
        }
        Some(
            p.requested_ms
                .saturating_add(self.pacing.empty_block_delay_ms)
                .max(earliest),
        )
    }

    fn early(&self, p: &Pending, now_ms: u64) -> bool {
        now_ms
            < p.requested_ms
                .saturating_add(self.pacing.empty_block_delay_ms)
    }

    /// The (round, parent) to build a payload for now, if any: the core is still in the
    /// requested round, the minimum delay has passed, and either the deadline has passed or
    /// the mempool may hold something selectable (`waiting` transactions, `admitted` so far).
    pub(super) fn due(
        &mut self,
        now_ms: u64,
        round: Round,
        waiting: usize,
        admitted: u64,
    ) -> Option<(Round, Digest)> {
        let p = self.pending?;
        if p.round != round {
            self.pending = None; // the round moved on
            return None;
        }
        if now_ms < p.requested_ms.saturating_add(self.pacing.min_delay_ms) {
            return None;
        }
        if self.early(&p, now_ms) && (waiting == 0 || self.nothing_selectable == Some(admitted)) {
            return None;
        }
        Some((p.round, p.parent))
    }

    /// After a build of `txs` transactions: whether to propose it now (the pending request is
    /// then done). Before the deadline an empty build waits for more transactions.
    pub(super) fn accept(&mut self, now_ms: u64, txs: usize, admitted: u64) -> bool {
        let Some(p) = self.pending else {
            return false;
        };
        if txs == 0 && self.early(&p, now_ms) {
            self.nothing_selectable = Some(admitted);
            return false;
        }
        self.pending = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACING: Pacing = Pacing {
        empty_block_delay_ms: 500,
        min_delay_ms: 0,
    };

    fn pacer() -> Pacer {
        let mut p = Pacer::new(PACING);
        p.request(7, Digest::ZERO, 1_000);
        p
    }

    #[test]
    fn an_empty_mempool_waits_for_the_deadline() {
        let mut p = pacer();
        assert_eq!(p.due(1_000, 7, 0, 0), None);
        assert_eq!(p.due(1_499, 7, 0, 0), None);
        assert_eq!(p.due(1_500, 7, 0, 0), Some((7, Digest::ZERO)));
        assert!(p.accept(1_500, 0, 0), "an empty block goes at the deadline");
        assert!(!p.waiting());
    }

    #[test]
    fn waiting_transactions_are_proposed_at_once() {
        let mut p = pacer();
        assert_eq!(p.due(1_001, 7, 3, 3), Some((7, Digest::ZERO)));
        assert!(p.accept(1_001, 3, 3));
    }

    #[test]
    fn nothing_selectable_is_not_built_again_until_more_arrive() {
        let mut p = pacer();
        assert!(p.due(1_001, 7, 2, 2).is_some());
        assert!(!p.accept(1_001, 0, 2), "nothing selectable: wait");
        assert_eq!(p.due(1_010, 7, 2, 2), None, "same admissions: no new build");
        assert_eq!(p.wake_at(1_010), Some(1_500));
        assert!(
            p.due(1_010, 7, 3, 3).is_some(),
            "a new admission: build again"
        );
        p.state_changed();
        assert!(p.due(1_011, 7, 2, 2).is_some(), "a commit: build again");
    }

    #[test]
    fn a_request_again_in_the_round_changes_the_parent_not_the_deadline() {
        let mut p = pacer();
        assert!(p.due(1_001, 7, 2, 2).is_some());
        assert!(
            !p.accept(1_001, 0, 2),
            "nothing selectable on the first parent"
        );
        let parent = Digest::of(b"the new high QC's block");
        p.request(7, parent, 1_300);
        assert_eq!(p.wake_at(1_300), Some(1_500), "still the first deadline");
        assert_eq!(
            p.due(1_300, 7, 2, 2),
            Some((7, parent)),
            "another parent may select what the first could not"
        );
        p.request(8, parent, 1_400);
        assert_eq!(
            p.wake_at(1_400),
            Some(1_900),
            "a new round starts its own delays"
        );
    }

    #[test]
    fn a_round_that_moved_on_drops_the_request() {
        let mut p = pacer();
        assert_eq!(p.due(1_600, 8, 0, 0), None);
        assert!(!p.waiting());
    }

    #[test]
    fn the_minimum_delay_holds_back_even_a_full_mempool() {
        let mut p = Pacer::new(Pacing {
            empty_block_delay_ms: 500,
            min_delay_ms: 100,
        });
        p.request(1, Digest::ZERO, 0);
        assert_eq!(p.wake_at(0), Some(100));
        assert_eq!(p.wake_at(100), Some(500));
        assert_eq!(p.due(99, 1, 10, 10), None);
        assert!(p.due(100, 1, 10, 10).is_some());
    }
}
