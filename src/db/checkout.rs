//! The checkout registry behind leak detection.
//!
//! Every [`super::Conn`] registers here with the time and source location of its checkout, so a
//! connection held past `leak_threshold` can be reported with the code that took it: once when it
//! crosses the threshold (by the pool's maintenance task), and again when it finally comes back.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

/// One live checkout.
pub(super) struct Checkout {
    pub location: &'static Location<'static>,
    pub taken_at: Instant,
    /// Already reported as a suspected leak (reported once, not on every scan).
    pub reported: bool,
    /// Held on purpose for as long as the process runs (the cluster heartbeat's): never a leak.
    pub kept: bool,
}

/// All live checkouts of one pool.
#[derive(Default)]
pub struct Checkouts {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Checkout>>,
}

/// A connection held longer than `leak_threshold`, as shown by the pool status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeakSuspect {
    /// `file:line:column` of the code that checked the connection out.
    pub location: String,
    pub held_seconds: f64,
}

impl Checkouts {
    pub(super) fn insert(&self, location: &'static Location<'static>, taken_at: Instant) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.live.lock().insert(
            id,
            Checkout {
                location,
                taken_at,
                reported: false,
                kept: false,
            },
        );
        id
    }

    /// Marks a checkout as held on purpose (see [`Checkout::kept`]).
    pub(super) fn keep(&self, id: u64) {
        if let Some(c) = self.live.lock().get_mut(&id) {
            c.kept = true;
        }
    }

    pub(super) fn remove(&self, id: u64) -> Option<Checkout> {
        self.live.lock().remove(&id)
    }

    pub(super) fn len(&self) -> usize {
        self.live.lock().len()
    }

    /// Checkouts older than `threshold`, longest held first.
    pub(super) fn suspects(&self, threshold: Duration) -> Vec<LeakSuspect> {
        let now = Instant::now();
        let mut out: Vec<LeakSuspect> = self
            .live
            .lock()
            .values()
            .filter(|c| !c.kept && now.duration_since(c.taken_at) >= threshold)
            .map(|c| LeakSuspect {
                location: c.location.to_string(),
                held_seconds: now.duration_since(c.taken_at).as_secs_f64(),
            })
            .collect();
        out.sort_by(|a, b| b.held_seconds.total_cmp(&a.held_seconds));
        out
    }

    /// Marks checkouts that crossed `threshold` since the last scan and returns them.
    pub(super) fn newly_leaked(
        &self,
        threshold: Duration,
    ) -> Vec<(&'static Location<'static>, Duration)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for c in self.live.lock().values_mut() {
            let held = now.duration_since(c.taken_at);
            if !c.reported && !c.kept && held >= threshold {
                c.reported = true;
                out.push((c.location, held));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspects_are_reported_once_with_location() {
        let c = Checkouts::default();
        let here = Location::caller();
        let old = Instant::now() - Duration::from_secs(5);
        let id = c.insert(here, old);
        c.insert(here, Instant::now());
        assert_eq!(c.suspects(Duration::from_secs(1)).len(), 1);
        assert!(
            c.suspects(Duration::from_secs(1))[0]
                .location
                .contains("checkout.rs")
        );
        assert_eq!(c.newly_leaked(Duration::from_secs(1)).len(), 1);
        assert!(
            c.newly_leaked(Duration::from_secs(1)).is_empty(),
            "reported only once"
        );
        assert!(c.remove(id).unwrap().reported);
        assert_eq!(c.len(), 1);
        let kept = c.insert(here, old);
        c.keep(kept);
        assert!(c.newly_leaked(Duration::from_secs(1)).is_empty());
        assert!(c.suspects(Duration::from_secs(1)).is_empty());
    }
}
