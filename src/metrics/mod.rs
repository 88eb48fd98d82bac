//! Process metrics: the Prometheus registry every component registers into, the latency histogram
//! they share (`histogram`) and the pool's own metric set (`pool`). This is a bottom layer:
//! it knows no other module of the crate, and the components record into it.
//!
//! One [`Metrics`] lives in the application state (not a process-global recorder), so two servers in
//! one test process keep separate numbers. Gauges that describe current state (pool size, idle, ...)
//! are gathered at scrape time by the `/metrics` handler; counters and histograms are recorded where
//! the events happen.

mod feed;
mod histogram;
mod pool;

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

pub use feed::FeedMetrics;
pub use histogram::{HistogramSummary, LATENCY_BUCKETS, LatencyHistogram};
pub use pool::{CloseReason, PoolMetrics};

/// Labels of the HTTP metrics: the matched route template (not the raw path, which would explode
/// the series count) and the status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct HttpLabels {
    /// A standard method's name, or `other`.
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

/// All of the process's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub pool: PoolMetrics,
    /// The change feed's follower (clustered replicas).
    pub feed: FeedMetrics,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_latency: Family<HttpLabels, LatencyHistogram>,
    pub feedback_rows: Counter,
    pub feedback_commits: Counter,
    pub train_runs: Family<ResultLabel, Counter>,
    pub train_seconds: LatencyHistogram,
    pub engine_requests: Family<EngineLabel, Counter>,
    pub engine_seconds: Family<EngineLabel, LatencyHistogram>,
    pub variant_requests: Family<VariantEngineLabel, Counter>,
    pub variant_seconds: Family<VariantLabel, LatencyHistogram>,
    pub variant_cache_hits: Family<VariantLabel, Counter>,
    pub deadline_fallbacks: Family<VariantEngineLabel, Counter>,
    /// Engine jobs running on the orchestrator's workers, and waiting for one.
    pub engine_jobs_running: Gauge,
    pub engine_jobs_waiting: Gauge,
    /// Engine jobs run inline on the async worker, by engine.
    pub engine_jobs_inline: Family<EngineLabel, Counter>,
    pub variant_impressions: Family<VariantEngineLabel, Counter>,
    pub variant_clicks: Family<VariantEngineLabel, Counter>,
    /// The latest training runs and snapshot loads, newest last (for the dashboard).
    recent_runs: Mutex<std::collections::VecDeque<TrainingRun>>,
}

/// One training run or snapshot load, as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingRun {
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// `ok`, `failed` or `loaded` (trained by another replica).
    pub result: &'static str,
    pub seconds: f64,
    pub version: Option<u64>,
    /// Each model's NDCG@10 on the run's validation split, for the settings the run chose
    /// (`None`: not scored, when no second setting fitted the tuning budget).
    pub validation: Vec<(String, Option<f64>)>,
}

/// Training runs kept for the dashboard.
const RECENT_RUNS: usize = 20;

/// An experiment variant.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct VariantLabel {
    pub variant: String,
}

/// An experiment variant and the engine that served it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct VariantEngineLabel {
    pub variant: String,
    pub engine: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct EngineLabel {
    pub engine: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// A new metric registered as `name` (a metric is a handle: clones share the value).
fn registered<M: prometheus_client::registry::Metric + Clone + Default>(
    registry: &mut Registry,
    name: &str,
    help: &str,
) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("reco");
        let pool = PoolMetrics::default();
        pool.register(registry.sub_registry_with_prefix("db_pool"));
        let feed = FeedMetrics::default();
        feed.register(registry.sub_registry_with_prefix("feed"));
        let r = &mut registry;
        let http_requests = registered(r, "http_requests", "HTTP requests by route and status");
        let http_latency = registered(
            r,
            "http_request_duration_seconds",
            "HTTP request latency by route and status",
        );
        let feedback_rows = registered(
            r,
            "feedback_rows",
            "Feedback rows committed by the group-commit writer",
        );
        let feedback_commits = registered(
            r,
            "feedback_commits",
            "Group commits (transactions) of the feedback writer",
        );
        let train_runs = registered(
            r,
            "train_runs",
            "Background training runs by result (ok, failed)",
        );
        let train_seconds = registered(r, "train_seconds", "Duration of training runs");
        let engine_requests = registered(
            r,
            "engine_requests",
            "Recommendation requests by the engine that served",
        );
        let engine_seconds = registered(
            r,
            "engine_seconds",
            "In-process recommendation time by engine",
        );
        let variant_requests = registered(
            r,
            "variant_requests",
            "engine=auto requests by experiment variant and the engine that served",
        );
        let variant_seconds = registered(
            r,
            "variant_seconds",
            "engine=auto in-process time by experiment variant",
        );
        let variant_cache_hits = registered(
            r,
            "variant_cache_hits",
            "engine=auto requests answered from the per-user cache",
        );
        let engine_jobs_running = registered(
            r,
            "engine_jobs_running",
            "Engine jobs running on the orchestrator's workers (at most orchestrator.workers)",
        );
        let engine_jobs_waiting = registered(
            r,
            "engine_jobs_waiting",
            "Engine jobs waiting for a worker (they give up at the deadline)",
        );
        let engine_jobs_inline = registered(
            r,
            "engine_jobs_inline",
            "Engine jobs run inline on the request's async worker, predicted to take at most orchestrator.inline_below",
        );
        let deadline_fallbacks = registered(
            r,
            "deadline_fallbacks",
            "requests whose engine missed the deadline, fast answered (variant \"none\": a named engine or a session)",
        );
        let variant_impressions = registered(
            r,
            "variant_impressions",
            "Items recommended by engine=auto, by variant",
        );
        let variant_clicks = registered(
            r,
            "variant_clicks",
            "Positive feedback on an item recommended to that user within the click window",
        );
        Self {
            http_requests,
            http_latency,
            feedback_rows,
            feedback_commits,
            train_runs,
            train_seconds,
            engine_requests,
            engine_seconds,
            variant_requests,
            variant_seconds,
            variant_cache_hits,
            engine_jobs_running,
            engine_jobs_waiting,
            engine_jobs_inline,
            deadline_fallbacks,
            variant_impressions,
            variant_clicks,
            registry: Mutex::new(registry),
            pool,
            feed,
            recent_runs: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    fn note_run(
        &self,
        result: &'static str,
        seconds: f64,
        version: Option<u64>,
        validation: Vec<(String, Option<f64>)>,
    ) {
        let mut runs = self.recent_runs.lock();
        if runs.len() == RECENT_RUNS {
            runs.pop_front();
        }
        runs.push_back(TrainingRun {
            finished_at: chrono::Utc::now(),
            result,
            seconds,
            version,
            validation,
        });
    }

    /// The latest training runs, newest last.
    pub fn recent_runs(&self) -> Vec<TrainingRun> {
        self.recent_runs.lock().iter().cloned().collect()
    }

    /// Counts a recommendation served by `engine` and records its in-process time.
    pub fn record_engine(&self, engine: &'static str, seconds: f64) {
        let label = EngineLabel { engine };
        self.engine_requests.get_or_create(&label).inc();
        self.engine_seconds.get_or_create(&label).observe(seconds);
    }

    /// Counts an `engine=auto` request of `variant` and records its time.
    pub fn record_variant(&self, variant: &str, engine: &'static str, cached: bool, seconds: f64) {
        let label = VariantLabel {
            variant: variant.to_string(),
        };
        self.variant_requests
            .get_or_create(&VariantEngineLabel {
                variant: label.variant.clone(),
                engine,
            })
            .inc();
        if cached {
            self.variant_cache_hits.get_or_create(&label).inc();
        }
        self.variant_seconds.get_or_create(&label).observe(seconds);
    }

    /// Counts a deadline miss of `engine` chosen for `variant`.
    /// Counts an engine job run inline.
    pub fn record_inline(&self, engine: &'static str) {
        self.engine_jobs_inline
            .get_or_create(&EngineLabel { engine })
            .inc();
    }

    pub fn record_fallback(&self, variant: &str, engine: &'static str) {
        self.deadline_fallbacks
            .get_or_create(&VariantEngineLabel {
                variant: variant.to_string(),
                engine,
            })
            .inc();
    }

    /// Counts items shown by `variant`.
    pub fn record_impressions(&self, variant: &str, engine: &'static str, items: usize) {
        self.variant_impressions
            .get_or_create(&VariantEngineLabel {
                variant: variant.to_string(),
                engine,
            })
            .inc_by(items as u64);
    }

    /// Counts a click on an item `variant` recommended.
    pub fn record_click(&self, variant: &str, engine: &'static str) {
        self.variant_clicks
            .get_or_create(&VariantEngineLabel {
                variant: variant.to_string(),
                engine,
            })
            .inc();
    }

    /// Counts a training run and records its duration and its models' validation scores.
    pub fn record_training(
        &self,
        ok: bool,
        seconds: f64,
        version: Option<u64>,
        validation: Vec<(String, Option<f64>)>,
    ) {
        let result = if ok { "ok" } else { "failed" };
        self.train_runs.get_or_create(&ResultLabel { result }).inc();
        self.train_seconds.observe(seconds);
        self.note_run(result, seconds, version, validation);
    }

    /// Requests, impressions and clicks of `engine=auto` for `variant`, over every engine.
    pub fn variant_totals(&self, variant: &str, engines: &[&'static str]) -> (u64, u64, u64) {
        let sum = |family: &Family<VariantEngineLabel, Counter>| -> u64 {
            engines
                .iter()
                .filter_map(|&engine| {
                    let label = VariantEngineLabel {
                        variant: variant.to_string(),
                        engine,
                    };
                    family.get(&label).map(|c| c.get())
                })
                .sum()
        };
        (
            sum(&self.variant_requests),
            sum(&self.variant_impressions),
            sum(&self.variant_clicks),
        )
    }

    /// A snapshot trained by another replica was loaded.
    pub fn record_snapshot_load(&self, seconds: f64, version: u64) {
        self.note_run("loaded", seconds, Some(version), Vec::new());
        self.train_runs
            .get_or_create(&ResultLabel { result: "loaded" })
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry.lock())
            .expect("writing to a String");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_prometheus_histogram() {
        let m = Metrics::new();
        m.pool.acquire_wait_seconds.observe(0.002);
        let text = m.encode();
        assert!(
            text.contains("reco_db_pool_acquire_wait_seconds_bucket{le=\"0.0025\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("reco_db_pool_acquire_wait_seconds_count 1"),
            "{text}"
        );
    }
}
