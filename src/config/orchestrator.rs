//! `[orchestrator]`: how `engine=auto` picks an engine (experiments, deadline, cache, clicks).

use serde::{Deserialize, Serialize};

use super::rules::{ConfigError, check, secs};
use crate::kinds::EngineKind;

/// The orchestrator behind `engine=auto`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestratorConfig {
    /// Seconds any engine but `fast` and `popularity` may take, waiting for a worker included;
    /// past it the `fast` answer is returned (and counted). 0 = no deadline.
    pub deadline: f64,
    /// Engines other than `fast` and `popularity` run on at most this many threads at once, off
    /// the async workers (0 = one per CPU core): slow requests queue among themselves.
    pub workers: u32,
    /// The CPU class of those threads: `idle` (Linux `SCHED_IDLE`: they run on time nothing else
    /// wants, and a request's async worker preempts them at once) or `nice` (nice 10: they keep a
    /// small share of a saturated machine, at the price of `fast` latency next to them).
    pub worker_priority: WorkerPriority,
    /// Each async worker (the threads that answer requests) runs on a CPU of its own: the kernel
    /// can otherwise stack them on one CPU while engine jobs fill the others.
    pub pin_async_workers: bool,
    /// The share of time an engine thread may run jobs back to back (1 = never rest): once it
    /// has run for 4 ms or more, it sleeps for as long as keeps it at this share (1 ms at 0.8)
    /// before its next job, so that the CPU goes idle for a moment. A database on the same host
    /// commits an order of magnitude slower while CPUs never idle, however low the class of what
    /// keeps them busy (docs/BENCHMARKS.md).
    pub worker_duty: f64,
    /// Seconds an engine job may be predicted to take and still run inline, on the async worker
    /// that took the request, like `fast` (0 = every job on the engine threads). Handing a job
    /// to an engine thread and back costs more than a job this short; the prediction is the
    /// engine's count of its work times the time per unit measured on its recent jobs.
    pub inline_below: f64,
    /// Users whose last answer is kept until their next feedback or the next training (0 = off).
    pub cache_size: u64,
    /// MiB the cached answers may take, and as much again the impressions kept for click
    /// attribution: entries are weighed by their size, so long answers evict sooner.
    pub cache_memory_mb: u64,
    /// Seconds after a recommendation in which positive feedback on a recommended item counts as
    /// a click for the variant that served it.
    pub click_window: f64,
    /// An experiment: variants with traffic shares, chosen by a stable hash of the user id.
    /// Empty: every user gets `smart`.
    pub variants: Vec<VariantConfig>,
}

/// See [`OrchestratorConfig::worker_priority`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerPriority {
    Idle,
    Nice,
}

/// One arm of an experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    /// Shown in metrics and responses.
    pub name: String,
    /// `fast`, `quality`, `enhanced`, `smart` or `popularity`.
    pub engine: EngineKind,
    /// Relative traffic share (shares need not add up to 100).
    pub share: u32,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            deadline: 0.05,
            workers: 0,
            worker_priority: WorkerPriority::Idle,
            pin_async_workers: true,
            worker_duty: 0.8,
            inline_below: 0.00025,
            cache_size: 100_000,
            cache_memory_mb: 64,
            click_window: 1800.0,
            variants: Vec::new(),
        }
    }
}

impl OrchestratorConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let (d, w) = (self.deadline, self.click_window);
        secs(
            d,
            "orchestrator.deadline",
            0.0,
            60.0,
            "0 (none)..=60 seconds",
        )?;
        secs(
            w,
            "orchestrator.click_window",
            1.0,
            604_800.0,
            "1..=604800 seconds",
        )?;
        check(
            (1..=65_536).contains(&self.cache_memory_mb),
            "orchestrator.cache_memory_mb",
            self.cache_memory_mb,
            "1..=65536 MiB",
        )?;
        secs(
            self.inline_below,
            "orchestrator.inline_below",
            0.0,
            0.01,
            "0 (never)..=0.01 seconds",
        )?;
        check(
            (0.1..=1.0).contains(&self.worker_duty),
            "orchestrator.worker_duty",
            self.worker_duty,
            "0.1..=1 (share of time)",
        )?;
        check(
            self.workers <= 256,
            "orchestrator.workers",
            self.workers,
            "0 (one per CPU core)..=256",
        )?;
        for (n, v) in self.variants.iter().enumerate() {
            check(
                !v.name.is_empty()
                    && v.name.len() <= 64
                    && v.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && !self.variants[..n].iter().any(|w| w.name == v.name),
                "orchestrator.variants.name",
                &v.name,
                "unique names of 1 to 64 letters, digits, '-', '_' or '.'",
            )?;
            check(
                v.engine != EngineKind::Auto,
                "orchestrator.variants.engine",
                v.engine.name(),
                "fast, quality, enhanced, smart or popularity",
            )?;
            check(
                (1..=1_000_000).contains(&v.share),
                "orchestrator.variants.share",
                v.share,
                "1..=1000000",
            )?;
        }
        Ok(())
    }
}
