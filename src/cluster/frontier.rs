//! How far a replica may trust that it has seen the change feed: the [`Frontier`] below which
//! every position is either applied or known never to commit (issue 14's follower reads the feed
//! through it).
//!
//! Positions come from a sequence, handed out when a change is inserted but visible only when
//! its transaction commits. A reader that sees position `q` may miss a smaller `p` whose
//! transaction commits later, so it cannot simply remember the largest position it saw. The
//! argument the frontier rests on:
//!
//! 1. Each change row's transaction has its id *before* the row draws its position: the feed's
//!    `pos` defaults to a function evaluating
//!    `CASE WHEN pg_current_xact_id() IS NOT NULL THEN nextval(...) END`, and a `CASE` evaluates
//!    its condition first (`pg_current_xact_id()` assigns an id when the transaction has none).
//!    Column order alone would not do: PostgreSQL does not promise the order it evaluates
//!    defaults in, and an insert takes its id when it writes the row, after the defaults.
//! 2. A read under snapshot R that sees `q` but not `p < q`: `p` was drawn before `q`, and `q`'s
//!    transaction committed before R was taken, so `p`'s transaction had its id before R was
//!    taken: that id is below R's `xmax` (`pg_snapshot_xmax`, the first id not yet assigned).
//! 3. A later read under snapshot S with `pg_snapshot_xmin(S) >= xmax(R)` sees every transaction
//!    below `xmax(R)` as ended: if `p`'s committed, S shows `p`. If S still lacks `p`, its
//!    transaction aborted (or the number was skipped), and `p` never appears.
//!
//! So a missing position is remembered with the `xmax` of the read that first missed it, and given
//! up once a read's `xmin` reaches that value; the frontier advances over applied and given-up
//! positions only. Every read asks for all positions above the frontier, so what was missed is
//! read again, and positions applied above the frontier are remembered so none is applied twice.

use std::collections::{BTreeMap, BTreeSet};

/// Most missing positions remembered at once: a jump in the sequence larger than this (a
/// `setval`, say) is given up at once instead of being remembered position by position.
pub const MAX_GAPS: i64 = 100_000;

/// The follower's position in the feed.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    /// Every position at or below this is applied or will never commit.
    settled: i64,
    /// Positions above `settled` already applied.
    applied: BTreeSet<i64>,
    /// Positions above `settled` not seen yet, each with the `xmax` of the read that first
    /// missed it.
    missing: BTreeMap<i64, u64>,
}

impl Frontier {
    /// A frontier with everything at or below `settled` already accounted for (a replica starts
    /// from the feed's position when it loaded the database).
    pub fn new(settled: i64) -> Self {
        Frontier {
            settled,
            ..Frontier::default()
        }
    }

    /// Every position at or below this is applied or will never commit: the next read asks for
    /// the positions above it.
    pub fn settled(&self) -> i64 {
        self.settled
    }

    /// A follower's frontier after loading the tables, from what a snapshot taken before the load
    /// showed: positions up to `top` except `gaps` are in the load (it read a later snapshot);
    /// the gaps are awaited as a read with that snapshot's `xmax` would await them. Below
    /// `top - MAX_GAPS` (and at or below `horizon`) everything counts as settled.
    pub fn resume(horizon: i64, top: i64, gaps: &[i64], xmax: u64) -> Self {
        let floor = horizon.max(top - MAX_GAPS).min(top);
        let mut f = Frontier::new(floor);
        let gaps: BTreeSet<i64> = gaps.iter().copied().collect();
        let shown: Vec<i64> = (floor + 1..=top).filter(|p| !gaps.contains(p)).collect();
        // `xmin` 0: nothing is given up before a later read says so.
        f.read(&shown, 0, xmax);
        f
    }

    /// What the next read asks for: positions above the first number (as many as it reads), and
    /// every one listed (the missing ones below it; at most [`MAX_GAPS`]). A read must return
    /// every listed position that is visible: one not returned is taken as not committed.
    pub fn wanted(&self) -> (i64, Vec<i64>) {
        let top = self.applied.last().copied().unwrap_or(self.settled);
        (top, self.missing.keys().copied().collect())
    }

    /// Whether `pos` is settled or applied.
    pub fn passed(&self, pos: i64) -> bool {
        pos <= self.settled || self.applied.contains(&pos)
    }

    /// Takes one read: `positions` are those above [`Frontier::settled`] that a snapshot with
    /// `xmin` and `xmax` showed. Returns the ones to apply now, ascending (none applied before),
    /// and advances the frontier as far as the argument above allows.
    pub fn read(&mut self, positions: &[i64], xmin: u64, xmax: u64) -> Vec<i64> {
        let mut fresh: Vec<i64> = positions
            .iter()
            .copied()
            .filter(|&p| p > self.settled && self.applied.insert(p))
            .collect();
        fresh.sort_unstable();
        for p in &fresh {
            self.missing.remove(p);
        }
        // Every position below the highest applied one and not applied is missing; it was first
        // missed now unless an earlier read missed it already.
        let top = self.applied.last().copied().unwrap_or(self.settled);
        let from = (self.settled + 1).max(top - MAX_GAPS);
        for p in from..top {
            if !self.applied.contains(&p) {
                self.missing.entry(p).or_insert(xmax);
            }
        }
        // Given up: missed by a read whose `xmax` this read's `xmin` has reached.
        self.missing.retain(|_, first_missed| xmin < *first_missed);
        // Advance over applied and given-up positions, up to the first one still awaited.
        while self.settled < top {
            let next = self.settled + 1;
            if self.missing.contains_key(&next) {
                break;
            }
            if self.applied.remove(&next) {
                self.settled = next;
                continue;
            }
            // Given up: skip to just before the next position applied or awaited.
            let applied = self.applied.range(next..).next().copied().unwrap_or(top);
            let awaited = self
                .missing
                .range(next..)
                .next()
                .map_or(top + 1, |(&p, _)| p);
            self.settled = applied.min(awaited) - 1;
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_in_order_are_applied_once_and_settle() {
        let mut f = Frontier::new(0);
        assert_eq!(f.read(&[1, 2, 3], 10, 10), [1, 2, 3]);
        assert_eq!(f.settled(), 3);
        assert!(f.read(&[], 11, 11).is_empty());
        assert_eq!(f.settled(), 3);
    }

    /// A position drawn by a transaction that commits after the read that saw a larger one: the
    /// frontier waits for it, the next read applies it, and nothing is applied twice.
    #[test]
    fn a_late_commit_below_a_seen_position_is_not_missed() {
        let mut f = Frontier::new(0);
        assert_eq!(f.read(&[1, 3], 10, 12), [1, 3]);
        assert_eq!(f.settled(), 1, "2 may still commit");
        // The transaction holding 2 is still running: xmin stays below 12.
        assert!(f.read(&[3], 11, 13).is_empty());
        assert_eq!(f.settled(), 1);
        assert_eq!(f.read(&[2, 3], 11, 14), [2]);
        assert_eq!(f.settled(), 3);
    }

    /// A position whose transaction aborted is given up once every transaction that could have
    /// held it has ended, not before.
    #[test]
    fn an_aborted_position_is_given_up_once_its_transaction_must_have_ended() {
        let mut f = Frontier::new(0);
        f.read(&[1, 3, 4], 10, 12);
        assert_eq!(f.settled(), 1);
        f.read(&[3, 4], 11, 15);
        assert_eq!(
            f.settled(),
            1,
            "xmin 11 < 12: the holder of 2 may be running"
        );
        assert!(f.read(&[3, 4], 12, 16).is_empty());
        assert_eq!(f.settled(), 4, "xmin 12: it ended, and 2 never committed");
        // A gap seen later is timed by the later read.
        assert_eq!(f.read(&[6], 16, 20), [6]);
        assert_eq!(f.settled(), 4);
        assert!(f.read(&[6], 19, 21).is_empty());
        assert_eq!(f.settled(), 4);
        assert!(f.read(&[6], 20, 21).is_empty());
        assert_eq!(f.settled(), 6);
    }

    /// A follower that loaded the tables starts past what its snapshot showed and waits for the
    /// positions it did not show.
    #[test]
    fn a_resumed_frontier_awaits_the_gaps_before_its_load() {
        let mut f = Frontier::resume(2, 10, &[5, 8], 40);
        assert_eq!(f.settled(), 4);
        assert!(f.passed(6) && !f.passed(8));
        assert_eq!(f.wanted(), (10, vec![5, 8]));
        assert_eq!(f.read(&[8, 11], 39, 42), [8, 11]);
        assert_eq!(f.settled(), 4);
        assert!(f.read(&[], 40, 42).is_empty());
        assert_eq!(f.settled(), 11, "5 never committed");
        let empty = Frontier::resume(7, 7, &[], 40);
        assert_eq!((empty.settled(), empty.wanted()), (7, (7, vec![])));
    }

    /// A jump in the sequence far larger than any batch is not remembered position by position.
    #[test]
    fn a_jump_in_the_sequence_is_bounded() {
        let mut f = Frontier::new(0);
        assert_eq!(f.read(&[1, 10_000_000], 10, 12), [1, 10_000_000]);
        assert_eq!(f.missing.len() as i64, MAX_GAPS);
        assert_eq!(f.settled(), 10_000_000 - MAX_GAPS - 1);
        f.read(&[], 12, 13);
        assert_eq!(f.settled(), 10_000_000);
    }
}
