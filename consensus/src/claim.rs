//! The state claim: which committed height a block's payload speaks for.
//!
//! Every block's payload claims the application's state root at one committed height, and a
//! voter checks that root against its own before it votes, so a QC certifies the claim as well as
//! the block. The height is not the proposer's choice: it is a function of the chain.
//!
//! **Rule.** The claim height of a block `B` is the height of the newest block committed by the
//! certificates in `B`'s own ancestry, `B.qc` included:
//!
//! ```text
//!   claim(genesis) = 0
//!   claim(B)       = B.qc.parent.height   if B.qc is consecutive (it commits B's grandparent)
//!                  = claim(parent(B))     otherwise
//! ```
//!
//! A QC on a block whose parent is one round below it commits that parent (the 2-chain rule), so
//! `B.qc.parent` is committed exactly when `B.qc` is consecutive. Along a chain the claim never
//! decreases, and in the steady state (no timeouts) a block at height `h` claims `h - 2`.
//!
//! The core processes a proposal's certificates before it asks for its payload check
//! ([`crate::Action::CheckPayload`]), so the commit that `B.qc` makes, and its execution by the
//! host, come before the check: an honest voter whose chain is local has executed the claim
//! height when it checks. One that has not (its ancestors are missing) cannot check the claim,
//! and does not vote. The leader builds its payload after processing its highest QC, so it has
//! executed the height it must claim too.

use crate::types::{Height, QuorumCert};

/// The claim height of a block carrying `qc`, given the claim height of its parent (the block
/// `qc` certifies), which is only asked for when `qc` does not commit anything itself. `None`
/// when the parent's claim is unknown.
pub fn claim_height(
    qc: &QuorumCert,
    parent_claim: impl FnOnce() -> Option<Height>,
) -> Option<Height> {
    if qc.data.is_consecutive() {
        Some(qc.data.parent.height)
    } else {
        parent_claim()
    }
}

/// The claim height of the last block of `chain` (consecutive blocks, lowest height first),
/// given the claim height of the first block's parent: the newest commit a QC carried in the
/// chain makes, else `below`.
pub fn chain_claim<'a, I>(chain: I, below: Option<Height>) -> Option<Height>
where
    I: DoubleEndedIterator<Item = &'a QuorumCert>,
{
    chain
        .rev()
        .find(|qc| qc.data.is_consecutive())
        .map(|qc| qc.data.parent.height)
        .or(below)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hotledger_crypto::Digest;

    use super::*;
    use crate::types::{BlockInfo, VoteData};

    fn info(round: u64, height: u64) -> BlockInfo {
        BlockInfo {
            id: Digest::of(&[round as u8, height as u8]),
            round,
            height,
            timestamp_ms: 0,
        }
    }

    /// A QC on the block at (`round`, `height`) whose parent was proposed in `parent_round`.
    fn qc(round: u64, height: u64, parent_round: u64) -> QuorumCert {
        QuorumCert {
            data: VoteData {
                block: info(round, height),
                parent: info(parent_round, height - 1),
            },
            votes: Vec::new(),
        }
    }

    #[test]
    fn a_consecutive_qc_claims_the_grandparent_it_commits() {
        // B at height 7 carries a QC on its parent (round 9, height 6) whose own parent is of
        // round 8: that QC commits height 5.
        let claim = claim_height(&qc(9, 6, 8), || panic!("the parent is not asked"));
        assert_eq!(claim, Some(5));
    }

    #[test]
    fn a_qc_after_a_timeout_inherits_the_parents_claim() {
        // The parent (round 9) came after a timed-out round 8: its QC commits nothing, so B
        // claims what its parent claimed.
        assert_eq!(claim_height(&qc(9, 6, 7), || Some(3)), Some(3));
        assert_eq!(claim_height(&qc(9, 6, 7), || None), None);
    }

    #[test]
    fn the_genesis_qc_commits_nothing() {
        let genesis = QuorumCert::genesis(info(0, 0));
        assert_eq!(claim_height(&genesis, || Some(0)), Some(0));
    }

    #[test]
    fn a_chain_claims_its_newest_commit() {
        // Blocks at heights 4, 5, 6 carrying QCs on 3 (consecutive), 4 (not), 5 (not).
        let qcs = [qc(4, 3, 3), qc(6, 4, 4), qc(8, 5, 6)];
        assert_eq!(chain_claim(qcs.iter(), Some(1)), Some(2));
        // None consecutive: the claim below the chain carries through.
        let qcs = [qc(6, 4, 4), qc(8, 5, 6)];
        assert_eq!(chain_claim(qcs.iter(), Some(1)), Some(1));
        assert_eq!(chain_claim(qcs.iter(), None), None);
        // The newest consecutive one wins, past a newer one that is not.
        let qcs = [qc(4, 3, 3), qc(5, 4, 4), qc(7, 5, 5)];
        assert_eq!(chain_claim(qcs.iter(), Some(0)), Some(3));
    }
}
