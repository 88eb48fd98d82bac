//! The order writes reach memory in, when a replica follows the change feed.
//!
//! A replica applies its own writes at once (a client is answered after its write is in memory)
//! and the other replicas' writes when the follower reads them: two paths, so two writes of one
//! row could reach memory in the wrong order. Say replica B likes item 7 (position 5) and then
//! replica A deletes that like (position 6). A applies 6 at once; its follower applies 5 a moment
//! later: A's memory holds the like the database no longer has. The feed's order is the right
//! one: two writes of one row get positions in their commit order (the position is drawn after
//! the row's lock is taken; see `store::changes`), so memory is right when, for every row, the
//! write applied last is the one with the highest position.
//!
//! The [`Ledger`] keeps that true. Every apply with a position goes through it, under its lock:
//! - applying position `p` marks every own write above `p` applied so far but not yet passed by
//!   the follower as *dirty*: something older reached memory after it;
//! - the follower, reaching an own write, applies it again if it is dirty and skips it otherwise
//!   (the "skips changes it wrote itself", when that is safe);
//! - the follower, reaching an own write not applied yet (its writer is still on its way from
//!   the commit, or failed after committing), applies it itself and notes it as *early*; the
//!   writer then skips it, since anything the follower applied after it is newer.
//!
//! Without a position (SQLite, or no budget) an apply just runs.

use std::collections::{BTreeMap, BTreeSet};

use parking_lot::Mutex;

/// Most early positions remembered: one stays only when a write committed but its writer never
/// applied it (its answer failed after the commit), so the oldest is dropped past this.
const MAX_EARLY: usize = 4096;

/// See the module's doc.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Own writes applied by their writer and not yet passed by the follower: whether each is
    /// dirty.
    pending: BTreeMap<i64, bool>,
    /// Own writes the follower applied before their writer did.
    early: BTreeSet<i64>,
}

impl Entries {
    /// Something at `pos` reached memory: own writes above it are now older in memory.
    fn applied(&mut self, pos: i64) {
        for (_, dirty) in self.pending.range_mut(pos + 1..) {
            *dirty = true;
        }
    }
}

impl Ledger {
    /// A write of this replica's, at `pos`, reaching memory through `apply`.
    pub fn own(&self, pos: Option<i64>, apply: impl FnOnce()) {
        let Some(pos) = pos else { return apply() };
        let mut e = self.inner.lock();
        if e.early.remove(&pos) {
            return;
        }
        apply();
        e.applied(pos);
        e.pending.insert(pos, false);
    }

    /// The follower reaching `pos` (written by this replica when `own`): runs `apply` unless it
    /// is an own write already in memory in the right order. Whether it ran.
    pub fn followed(&self, pos: i64, own: bool, apply: impl FnOnce()) -> bool {
        let mut e = self.inner.lock();
        if own {
            match e.pending.remove(&pos) {
                Some(false) => return false,
                Some(true) => {}
                None => {
                    if e.early.len() >= MAX_EARLY {
                        e.early.pop_first();
                    }
                    e.early.insert(pos);
                }
            }
        }
        apply();
        e.applied(pos);
        true
    }

    /// After a reload from the tables: own writes the new frontier has `passed` are in memory as
    /// the tables hold them, and the follower will not reach them again.
    pub fn reloaded(&self, passed: impl Fn(i64) -> bool) {
        let mut e = self.inner.lock();
        e.pending.retain(|&p, _| !passed(p));
        e.early.retain(|&p| !passed(p));
    }

    /// Own writes applied and not yet passed by the follower.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.inner.lock().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Memory as a list of applied positions; the last applied of a row must be its highest.
    fn run(steps: &[(&str, i64)]) -> Vec<i64> {
        let ledger = Ledger::default();
        let log = RefCell::new(Vec::new());
        for &(who, pos) in steps {
            let apply = || log.borrow_mut().push(pos);
            match who {
                "writer" => ledger.own(Some(pos), apply),
                "follow-own" => {
                    ledger.followed(pos, true, apply);
                }
                _ => {
                    ledger.followed(pos, false, apply);
                }
            }
        }
        log.into_inner()
    }

    #[test]
    fn an_own_write_passed_in_order_is_applied_once() {
        assert_eq!(
            run(&[("writer", 5), ("follow-remote", 4), ("follow-own", 5)]),
            [5, 4, 5],
            "4 reached memory after 5: 5 again"
        );
        assert_eq!(
            run(&[("follow-remote", 4), ("writer", 5), ("follow-own", 5)]),
            [4, 5]
        );
    }

    #[test]
    fn an_own_write_the_follower_saw_first_is_not_applied_again_by_its_writer() {
        assert_eq!(
            run(&[
                ("follow-own", 5),
                ("follow-remote", 6),
                ("writer", 5),
                ("follow-remote", 7)
            ]),
            [5, 6, 7]
        );
    }

    #[test]
    fn own_writes_out_of_order_are_put_right_by_the_follower() {
        // Two writers of this replica finished in the wrong order.
        assert_eq!(
            run(&[
                ("writer", 6),
                ("writer", 5),
                ("follow-own", 5),
                ("follow-own", 6)
            ]),
            [6, 5, 6]
        );
    }

    #[test]
    fn a_reload_forgets_what_it_covers() {
        let ledger = Ledger::default();
        ledger.own(Some(3), || {});
        ledger.own(Some(9), || {});
        ledger.reloaded(|p| p <= 5);
        assert_eq!(ledger.pending(), 1);
        ledger.own(None, || {});
        assert_eq!(ledger.pending(), 1);
    }
}
