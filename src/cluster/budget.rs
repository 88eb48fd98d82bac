//! The arithmetic of the connection budget: each replica's share.

/// A replica's share of the budget: `budget - reserve` split evenly over `live` replicas, the
/// first `remainder` (oldest first) taking one more; never more than `max_each`. With more
/// replicas than usable connections the newest get 0: they are parked (no connection between
/// heartbeats) rather than each rounded up to one, which would pass the budget.
pub fn share(budget: u32, reserve: u32, live: usize, rank: usize, max_each: u32) -> u32 {
    let live = live.max(1) as u32;
    let usable = budget.saturating_sub(reserve);
    let base = usable / live;
    let extra = u32::from((rank as u32) < usable % live);
    (base + extra).min(max_each)
}

/// How far a replica may move its ceiling after one heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Move {
    /// Lower the pool to this first, then record what it reached.
    Shrink(u32),
    /// Record this, then raise the pool to it.
    Grow(u32),
    /// Apply a recorded ceiling the pool has not reached yet (an interrupted grow).
    Catch(u32),
    Stay,
}

/// The move toward `target` (this replica's share) given the ceiling it recorded, the one its pool
/// has (`mine`) and what the others hold (`others`, by their records or the server's count).
pub(super) fn next_move(
    budget: u32,
    reserve: u32,
    target: u32,
    recorded: u32,
    mine: u32,
    others: u32,
) -> Move {
    let room = budget.saturating_sub(reserve).saturating_sub(others);
    let grow_to = target.min(room.max(recorded));
    if target < recorded || target < mine {
        Move::Shrink(target)
    } else if recorded < mine {
        // Registered again with less than the pool holds (its row had been counted out).
        Move::Shrink(recorded)
    } else if grow_to > recorded {
        Move::Grow(grow_to)
    } else if recorded > mine {
        Move::Catch(recorded)
    } else {
        Move::Stay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_the_budget_less_the_reserve() {
        // 15 with one kept for a joiner: 14 over three replicas is 5, 5, 4.
        let three: Vec<u32> = (0..3).map(|r| share(15, 1, 3, r, 15)).collect();
        assert_eq!(three, [5, 5, 4]);
        assert_eq!(three.iter().sum::<u32>(), 14);
        assert_eq!([share(15, 1, 2, 0, 15), share(15, 1, 2, 1, 15)], [7, 7]);
        assert_eq!(share(15, 1, 1, 0, 15), 14);
        // Capped by the replica's own pool_size + max_overflow.
        assert_eq!(share(100, 1, 1, 0, 15), 15);
        // More replicas than connections: the oldest get one each, the newest are parked.
        let five: Vec<u32> = (0..5).map(|r| share(3, 1, 5, r, 15)).collect();
        assert_eq!(five, [1, 1, 0, 0, 0]);
        for budget in 1..45 {
            for live in 1..50usize {
                let total: u32 = (0..live).map(|r| share(budget, 1, live, r, 100)).sum();
                assert_eq!(
                    total,
                    (budget - 1).min(100 * live as u32),
                    "{budget}/{live}"
                );
            }
        }
    }

    #[test]
    fn growth_waits_for_room_and_shrinking_comes_first() {
        // Alone with 14 of 15: the others hold 7, so only 7 fit.
        assert_eq!(next_move(15, 1, 14, 1, 1, 7), Move::Grow(7));
        // Nothing free: stay at what is recorded.
        assert_eq!(next_move(15, 1, 7, 1, 1, 13), Move::Stay);
        assert_eq!(next_move(15, 1, 4, 7, 7, 7), Move::Shrink(4));
        assert_eq!(next_move(15, 1, 7, 7, 3, 7), Move::Catch(7));
        // Registered again within the room left (2), holding 5: down to what is recorded.
        assert_eq!(next_move(15, 1, 7, 2, 5, 12), Move::Shrink(2));
        // Parked: nothing recorded, nothing held, no room.
        assert_eq!(next_move(3, 1, 0, 0, 0, 2), Move::Stay);
    }
}
