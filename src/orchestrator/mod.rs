//! The orchestrator: what answers `engine=auto`, and the bookkeeping of experiments.
//!
//! Per request it picks an engine: the variant of the configured experiment that a stable hash of
//! the user id falls into, or, without an experiment, `smart`'s rules; and it caches each user's
//! answer until that user's next feedback, the next item change or the next trained snapshot.
//!
//! Every engine but `fast` and `popularity` (whose work is a walk of precomputed lists) runs the
//! same way, whether `auto` chose it, the request named it, or it answers a session: on one of
//! `orchestrator.workers` threads of its own at a lower CPU priority, under
//! `orchestrator.deadline` (the wait for a thread included). When it misses the deadline the
//! `fast` answer is returned and counted (a late `auto` answer still fills the cache; a job that
//! had not started yet never starts). So slow
//! requests queue among themselves, never in front of writes, health checks or `fast`. A job
//! predicted to cost no more than `orchestrator.inline_below` runs inline instead, as `fast` does
//! (`inline`): handing it over would cost more than the job.
//!
//! It also attributes clicks: the last recommendation shown to each user is remembered, and
//! positive feedback (the policy's rule) on one of its items within `orchestrator.click_window`
//! counts as a click for the variant that served it — the click-through signal an experiment is
//! judged by. It applies no writes: the catalogue (`crate::catalogue`) applies them to the engine
//! (whose generations make cached answers stale) and reports committed feedback here.
//!
//! Files: the cached answers and impressions, weighed in bytes (`cache`); where the threads run
//! (`cpu`); which jobs run inline (`inline`); this file composes them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;
use quick_cache::sync::Cache;

mod cache;
mod cpu;
mod inline;

use cache::{AnswerCache, BySize, Cached, Impression};
pub use cpu::pin_async_worker;
use cpu::{lower_priority, run_then_rest, thread_cpu_time};
use inline::Inline;

use crate::config::{OrchestratorConfig, WorkerPriority, seconds};
use crate::engine::{Engine, EngineKind, Inputs, Recommendation, Request, Who};
use crate::metrics::Metrics;
use crate::policy::FeedbackPolicy;
use crate::store::Feedback;
use crate::util::stable_hash;

/// The variant name used when no experiment is configured.
pub const DEFAULT_VARIANT: &str = "default";
/// The variant label of deadline misses of named engines and sessions (no experiment).
pub const NO_VARIANT: &str = "none";

/// An answer and how it was produced.
#[derive(Debug, Clone)]
pub struct Served {
    pub rec: Recommendation,
    /// The experiment variant (`auto` only).
    pub variant: Option<Arc<str>>,
    /// Answered from the per-user cache.
    pub cached: bool,
    /// The chosen engine missed the deadline and `fast` answered.
    pub fallback: bool,
}

struct Variant {
    name: Arc<str>,
    engine: EngineKind,
    /// Upper end (exclusive) of this variant's range of hash buckets.
    until: u64,
}

pub struct Orchestrator {
    engine: Arc<Engine>,
    /// What counts as a click: positive feedback.
    policy: FeedbackPolicy,
    metrics: Arc<Metrics>,
    deadline: Option<Duration>,
    /// The threads engine jobs run on, off the async workers (see [`engine_workers`]).
    workers: rayon::ThreadPool,
    /// `orchestrator.worker_duty`: the share of time a worker may run jobs back to back.
    duty: f64,
    /// Which jobs run inline (`orchestrator.inline_below`).
    inline: Arc<Inline>,
    click_window: Duration,
    variants: Vec<Variant>,
    cache: Option<Arc<AnswerCache>>,
    impressions: Cache<Arc<str>, Arc<Impression>, BySize>,
}

/// +1 on a gauge for as long as it lives.
struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn inc(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The engine workers: `n` threads of their own, at a lower CPU priority than the rest of the
/// process (`orchestrator.worker_priority`, on Linux), so that on a loaded machine the kernel runs the async workers
/// (writes, health checks, `fast`) first and slow requests take what is left. A job queues until a
/// thread is free; the queue is bounded in time by the deadline (a job whose caller gave up never
/// starts). rayon is the pool, as for training; the priority is set through `libc` because the
/// standard library has no per-thread priority.
fn engine_workers(n: usize, priority: WorkerPriority) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("reco-engine-{i}"))
        .start_handler(move |_| lower_priority(priority))
        .panic_handler(|_| tracing::error!("an engine job panicked; fast answered instead"))
        .build()
        .expect("engine worker threads start")
}

/// The worker count `orchestrator.workers` asks for (0: one per CPU core).
fn workers(configured: u32) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n as usize,
    }
}

/// Whether a cached answer fits a request: everything but the time-to-live cut-off, which moves
/// with the clock (an item expiring while its answer is cached stays until the next feedback or
/// training, minutes at most).
fn same_query(a: &Request, b: &Request) -> bool {
    a.n == b.n && a.categories == b.categories && a.exclude == b.exclude
}

impl Orchestrator {
    pub fn new(
        engine: Arc<Engine>,
        config: &OrchestratorConfig,
        policy: FeedbackPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut until = 0;
        let variants = config
            .variants
            .iter()
            .map(|v| {
                until += u64::from(v.share);
                Variant {
                    name: Arc::from(v.name.as_str()),
                    engine: v.engine,
                    until,
                }
            })
            .collect();
        let capacity = config.cache_size as usize;
        let bytes = config.cache_memory_mb << 20;
        Self {
            engine,
            policy,
            metrics,
            deadline: (config.deadline > 0.0).then(|| seconds(config.deadline)),
            workers: engine_workers(workers(config.workers), config.worker_priority),
            duty: config.worker_duty,
            inline: Arc::new(Inline::new(seconds(config.inline_below))),
            click_window: seconds(config.click_window),
            variants,
            cache: (capacity > 0).then(|| {
                Arc::new(Cache::with_weighter(
                    capacity,
                    bytes,
                    BySize::new(bytes, capacity),
                ))
            }),
            impressions: {
                let entries = capacity.max(10_000);
                Cache::with_weighter(entries, bytes, BySize::new(bytes, entries))
            },
        }
    }

    /// The variant and engine for a user: by the stable hash into the shares, or `smart`.
    pub fn assign(&self, user_id: &str) -> (Arc<str>, EngineKind) {
        let Some(total) = self.variants.last().map(|v| v.until) else {
            return (Arc::from(DEFAULT_VARIANT), EngineKind::Smart);
        };
        let bucket = stable_hash(user_id) % total;
        let v = self
            .variants
            .iter()
            .find(|v| bucket < v.until)
            .expect("the last variant ends at the total");
        (v.name.clone(), v.engine)
    }

    /// A recommendation for a user. `auto` goes through the experiment and the cache; every
    /// engine through the workers and the deadline.
    pub async fn recommend(&self, user_id: &str, request: Request, kind: EngineKind) -> Served {
        let started = Instant::now();
        let (served, known) = if kind == EngineKind::Auto {
            self.auto(user_id, request).await
        } else {
            let inputs = Arc::new(self.engine.inputs(Who::User(user_id)));
            let job = move |i: &Inputs, q: &Request| i.recommend(&q.query(), kind);
            let served = self.bounded(kind, NO_VARIANT, inputs, job, request).await;
            (served, false)
        };
        self.record(user_id, &served, known, started.elapsed());
        served
    }

    /// A recommendation for an anonymous session (no cache, no experiment: `auto` is `smart`),
    /// through the workers and the deadline like any engine.
    pub async fn recommend_session(
        &self,
        items: Vec<String>,
        request: Request,
        kind: EngineKind,
    ) -> Served {
        let started = Instant::now();
        let inputs = Arc::new(self.engine.inputs(Who::Session(&items)));
        let job = move |i: &Inputs, q: &Request| i.recommend(&q.query(), kind);
        let served = self.bounded(kind, NO_VARIANT, inputs, job, request).await;
        self.metrics
            .record_engine(served.rec.engine.name(), started.elapsed().as_secs_f64());
        served
    }

    /// `auto`'s answer, and whether the engine knows the user (only known users are cached and
    /// leave an impression).
    async fn auto(&self, user_id: &str, request: Request) -> (Served, bool) {
        let (variant, kind) = self.assign(user_id);
        let user: Arc<str> = Arc::from(user_id);
        // Unknown users are not cached: a stream of made-up ids must not fill the cache.
        let freshness = self.engine.freshness(user_id);
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&user))
            && Some(hit.freshness) == freshness
            && same_query(&hit.request, &request)
            && hit.variant == variant
        {
            let served = Served {
                rec: hit.rec.clone(),
                variant: Some(variant),
                cached: true,
                fallback: false,
            };
            return (served, true);
        }
        let inputs = Arc::new(self.engine.inputs(Who::User(user_id)));
        let job = {
            let cache = self.cache.clone();
            let variant = variant.clone();
            move |inputs: &Inputs, request: &Request| {
                let rec = inputs.recommend(&request.query(), kind);
                if let (Some(cache), Some(freshness)) = (cache, freshness) {
                    let entry =
                        Cached::new(&user, request.clone(), variant, freshness, rec.clone());
                    cache.insert(user, Arc::new(entry));
                }
                rec
            }
        };
        let served = self.bounded(kind, &variant, inputs, job, request).await;
        let served = Served {
            variant: Some(variant),
            ..served
        };
        (served, freshness.is_some())
    }

    /// Runs `job` for `kind` on `inputs` on a worker under the deadline; `fast` on the same inputs
    /// answers a miss (or a job that failed), counted under `variant`. `fast` and `popularity`
    /// answer inline. The answer comes back computed (not cached), with no variant set.
    async fn bounded(
        &self,
        kind: EngineKind,
        variant: &str,
        inputs: Arc<Inputs>,
        job: impl FnOnce(&Inputs, &Request) -> Recommendation + Send + 'static,
        request: Request,
    ) -> Served {
        let served = |rec, fallback| Served {
            rec,
            variant: None,
            cached: false,
            fallback,
        };
        if matches!(kind, EngineKind::Fast | EngineKind::Popularity) {
            return served(job(&inputs, &request), false);
        }
        let work = inputs.work(&request.query(), kind);
        if self.inline.admits(kind, work, self.deadline) {
            // Reading a thread's CPU clock is a system call: one inline job in eight is measured.
            let rec = if Inline::sample() {
                let started = thread_cpu_time();
                let rec = job(&inputs, &request);
                let took = thread_cpu_time().saturating_sub(started);
                self.inline.record(kind, work, took);
                rec
            } else {
                job(&inputs, &request)
            };
            self.metrics.record_inline(kind.name());
            return served(rec, false);
        }
        let started = Instant::now();
        let (query, job_inputs) = (request.clone(), inputs.clone());
        let running = self.metrics.engine_jobs_running.clone();
        // Decremented when the job starts, or when it is dropped unstarted.
        let waiting = GaugeGuard::inc(self.metrics.engine_jobs_waiting.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (duty, inline) = (self.duty, self.inline.clone());
        self.workers.spawn(move || {
            drop(waiting);
            // Past the deadline while queued: nobody waits for it, so it never starts.
            if tx.is_closed() {
                return;
            }
            run_then_rest(duty, || {
                let _running = GaugeGuard::inc(running);
                let ran = thread_cpu_time();
                let rec = job(&job_inputs, &query);
                inline.record(kind, work, thread_cpu_time().saturating_sub(ran));
                let _ = tx.send(rec);
            });
        });
        // A job that panicked drops its sender: `fast` answers.
        let run = async move { rx.await.ok() };
        let answer = match self.deadline {
            None => run.await,
            // The timer has millisecond resolution: an answer is also late when it arrived after
            // the deadline but before the timer fired. A late job keeps running (and fills the
            // cache); one still waiting for a worker is dropped with the future.
            Some(deadline) => tokio::time::timeout(deadline, run)
                .await
                .ok()
                .flatten()
                .filter(|_| started.elapsed() <= deadline),
        };
        match answer {
            Some(rec) => served(rec, false),
            None => {
                self.metrics.record_fallback(variant, kind.name());
                let fast = inputs.recommend(&request.query(), EngineKind::Fast);
                served(fast, true)
            }
        }
    }

    /// Metrics and the impression for click attribution.
    fn record(&self, user_id: &str, served: &Served, known: bool, took: Duration) {
        let engine = served.rec.engine;
        self.metrics
            .record_engine(engine.name(), took.as_secs_f64());
        let Some(variant) = &served.variant else {
            return;
        };
        self.metrics
            .record_variant(variant, engine.name(), served.cached, took.as_secs_f64());
        if served.rec.items.is_empty() {
            return;
        }
        self.metrics
            .record_impressions(variant, engine.name(), served.rec.items.len());
        // Unknown users leave no impression: made-up ids must not fill the map (a newcomer's
        // clicks count from their second visit).
        if !known {
            return;
        }
        let items = served.rec.items.len();
        let impression = Impression {
            variant: variant.clone(),
            engine,
            at: Instant::now(),
            items: Mutex::new(served.rec.items.iter().map(|s| s.id.clone()).collect()),
            bytes: (128 + user_id.len() + items * std::mem::size_of::<Arc<str>>()) as u64,
        };
        self.impressions
            .insert(Arc::from(user_id), Arc::new(impression));
    }

    /// Committed feedback (already applied to the engine): counts clicks, i.e. positive feedback
    /// on an item recommended to that user within the click window.
    pub fn feedback_committed(&self, rows: &[Feedback]) {
        for f in rows {
            if !self.policy.is_positive(&f.feedback_type, f.value) {
                continue;
            }
            let Some(imp) = self.impressions.get(f.user_id.as_str()) else {
                continue;
            };
            if imp.at.elapsed() > self.click_window {
                continue;
            }
            let mut items = imp.items.lock();
            if let Some(pos) = items.iter().position(|i| **i == *f.item_id) {
                items.swap_remove(pos);
                self.metrics.record_click(&imp.variant, imp.engine.name());
            }
        }
    }
}

#[cfg(test)]
mod tests;
