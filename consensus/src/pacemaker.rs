//! The pacemaker's round timer.
//!
//! A round entered through a QC for the round before it starts at the base timeout. So does the
//! first round entered without one: a single failed round, typically one crashed leader, is no
//! sign that the network is slower than the timeout. From the second consecutive round without
//! a QC on, the timeout doubles for each further round (capped at `2^max_backoff_exponent`
//! times the base), so rounds grow long enough for every honest node to meet in one after a
//! partition heals, however slow the network turned out to be.
//!
//! A leader the host reports unreachable (`Event::Unreachable`: its connection dropped) sends
//! nothing and gathers nothing, so waiting for its timer only costs time. A node whose round is
//! led by one times the round out at once, and joins the first timeout of it that arrives, so
//! a node that voted for the block the leader sent before it went waits for no timer either.
//! (Timeouts are always safe; this only moves them earlier, and only a TC leaves a round, so a
//! node that lost every connection stays where it is.) A vote whose next leader is unreachable
//! is broadcast instead, and every validator takes votes in: each forms the QC itself and moves
//! on, with no timer. The voted round is not timed out early: f+1 early timeouts would make the
//! slowest node join them before it has the block, and the round would be lost (see
//! `docs/decisions/0001-broadcast-votes-for-unreachable-leaders.md`).

use crate::config::Params;
use crate::types::Round;

/// The timer for `round` when the highest QC known is for `high_qc_round`.
pub fn round_timeout_ms(params: &Params, round: Round, high_qc_round: Round) -> u64 {
    let without_qc = round.saturating_sub(high_qc_round.saturating_add(1));
    let exponent = without_qc
        .saturating_sub(1)
        .min(u64::from(params.max_backoff_exponent));
    let factor = u32::try_from(exponent)
        .ok()
        .and_then(|e| 1u64.checked_shl(e))
        .unwrap_or(u64::MAX);
    params.base_timeout_ms.saturating_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_after_two_rounds_without_a_qc() {
        let params = Params {
            base_timeout_ms: 1_000,
            max_backoff_exponent: 3,
            ..Params::default()
        };
        // (round, high QC round, timer)
        let table = [
            (1, 0, 1_000),   // first round after genesis
            (8, 7, 1_000),   // entered through a QC
            (9, 7, 1_000),   // one failed round (a crashed leader): no backoff
            (10, 7, 2_000),  // two
            (11, 7, 4_000),  // three
            (12, 7, 8_000),  // capped at 2^3
            (500, 7, 8_000), // still capped
            (7, 7, 1_000),   // a QC for the round itself (not entered yet)
            (u64::MAX, 0, 8_000),
        ];
        for (round, qc_round, want) in table {
            assert_eq!(
                round_timeout_ms(&params, round, qc_round),
                want,
                "round {round}, high QC {qc_round}"
            );
        }
    }

    #[test]
    fn huge_timers_saturate() {
        let params = Params {
            base_timeout_ms: 600_000,
            max_backoff_exponent: 16,
            ..Params::default()
        };
        assert_eq!(round_timeout_ms(&params, 100, 0), 600_000 * (1 << 16));
        let params = Params {
            base_timeout_ms: u64::MAX / 2,
            max_backoff_exponent: 16,
            ..Params::default()
        };
        assert_eq!(round_timeout_ms(&params, 100, 0), u64::MAX);
    }
}
