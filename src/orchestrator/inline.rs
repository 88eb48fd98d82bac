//! Which engine jobs run inline, on the async worker that took the request, instead of on the
//! engine threads.
//!
//! Handing a job to an engine thread and its answer back costs two thread switches, and on a
//! loaded machine the engine threads (a lower CPU class, resting between stretches) are preempted
//! by every request that arrives: for `quality` on MovieLens 100K (about 50 µs of work) a third of
//! the server's CPU went to the kernel's scheduler, and running those jobs inline doubled the
//! requests served (docs/BENCHMARKS.md). A job that costs about what `fast` costs does no more
//! harm on an async worker than `fast` does. A slow one (a long list, a huge history, a large
//! catalogue) still queues on the engine threads among the slow ones, off the async workers.
//!
//! The decision is a prediction made before the job runs: the engine's count of its operations
//! (`engine::Inputs::work`) times the CPU time per operation measured on that engine's recent
//! jobs (a moving mean over inline and queued jobs alike; CPU time, so that a job preempted on a
//! busy machine does not look expensive). A job runs inline when the prediction is at
//! most `orchestrator.inline_below` and within the deadline. An engine not measured yet runs on
//! the threads, which measures it. The default, 250 µs, is above tokio's advice for the time
//! between two `.await`s (10-100 µs) on purpose: on a loaded machine a `quality` job on
//! MovieLens 100K takes 100-250 µs of CPU (about 50 µs alone: two cores' caches are shared with
//! the load), and at a 100 µs budget half of them queued, for a third less throughput and a p99 of
//! 50 ms instead of 7 (docs/BENCHMARKS.md); a health check waits at most one such job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::kinds::EngineKind;

/// Engine kinds, for a table by kind.
const KINDS: usize = 6;
/// Weight of the newest job in the moving mean.
const NEWEST: f64 = 1.0 / 16.0;

/// The inline budget and, per engine kind, the measured time per operation.
#[derive(Debug)]
pub(super) struct Inline {
    /// `orchestrator.inline_below` in nanoseconds (0: never inline).
    below_ns: f64,
    /// Nanoseconds per operation (`f64` bits) by kind; 0 until measured.
    per_op: [AtomicU64; KINDS],
}

impl Inline {
    pub(super) fn new(below: Duration) -> Self {
        Self {
            below_ns: below.as_nanos() as f64,
            per_op: Default::default(),
        }
    }

    /// Whether to measure this inline job: one in eight on each thread.
    pub(super) fn sample() -> bool {
        thread_local!(static JOBS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
        JOBS.with(|n| {
            n.set(n.get().wrapping_add(1));
            n.get() % 8 == 1
        })
    }

    fn cell(&self, kind: EngineKind) -> &AtomicU64 {
        &self.per_op[kind as usize]
    }

    /// Whether a job of `work` operations for `kind` is expected to take at most the inline
    /// budget, and at most `deadline` (an inline job cannot be abandoned at the deadline).
    pub(super) fn admits(&self, kind: EngineKind, work: u64, deadline: Option<Duration>) -> bool {
        let per_op = f64::from_bits(self.cell(kind).load(Ordering::Relaxed));
        let limit = deadline.map_or(self.below_ns, |d| self.below_ns.min(d.as_nanos() as f64));
        per_op > 0.0 && work as f64 * per_op <= limit
    }

    /// A job of `work` operations for `kind` took `took` of CPU time.
    pub(super) fn record(&self, kind: EngineKind, work: u64, took: Duration) {
        if work == 0 {
            return;
        }
        let sample = took.as_nanos() as f64 / work as f64;
        let cell = self.cell(kind);
        let old = f64::from_bits(cell.load(Ordering::Relaxed));
        let new = if old > 0.0 {
            old + (sample - old) * NEWEST
        } else {
            sample
        };
        // Jobs finishing together may overwrite each other's update: one sample lost, no harm.
        cell.store(new.to_bits(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmeasured_engines_queue_and_cheap_jobs_run_inline_once_measured() {
        let inline = Inline::new(Duration::from_micros(100));
        assert!(
            !inline.admits(EngineKind::Quality, 1_000, None),
            "not measured"
        );
        // 50 µs for 100,000 operations: 0.5 ns each.
        inline.record(EngineKind::Quality, 100_000, Duration::from_micros(50));
        assert!(inline.admits(EngineKind::Quality, 100_000, None));
        assert!(inline.admits(EngineKind::Quality, 200_000, None), "100 µs");
        assert!(!inline.admits(EngineKind::Quality, 201_000, None));
        assert!(
            !inline.admits(
                EngineKind::Quality,
                100_000,
                Some(Duration::from_micros(10))
            ),
            "past the deadline"
        );
        assert!(!inline.admits(EngineKind::Enhanced, 10, None), "per kind");
        // A slow job moves the mean a sixteenth of the way.
        inline.record(EngineKind::Quality, 100_000, Duration::from_micros(850));
        assert!(!inline.admits(
            EngineKind::Quality,
            100_000,
            Some(Duration::from_micros(99))
        ));
        assert!(
            inline.admits(EngineKind::Quality, 100_000, None),
            "1 ns per operation"
        );
    }

    #[test]
    fn a_zero_budget_never_inlines() {
        let inline = Inline::new(Duration::ZERO);
        inline.record(EngineKind::Smart, 1_000, Duration::from_nanos(1));
        assert!(!inline.admits(EngineKind::Smart, 1, None));
    }
}
