//! Process metrics: the Prometheus registry every component registers into, the latency histogram
//! they share (`histogram`) and the pool's own metric set (`pool`). This is a bottom layer:
//! it knows no other module of the crate, and the components record into it.
//!
//! One [`Metrics`] lives in the application state (not a process-global recorder), so two servers in
//! one test process keep separate numbers. Gauges that describe current state (pool size, idle, ...)
//! are gathered at scrape time by the `/metrics` handler; counters and histograms are recorded where
//! the events happen.

mod histogram;
mod pool;

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;

pub use histogram::{HistogramSummary, LATENCY_BUCKETS, LatencyHistogram};
pub use pool::{CloseReason, PoolMetrics};

/// Labels of the HTTP metrics: the matched route template (not the raw path, which would explode
/// the series count) and the status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// All of the process's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub pool: PoolMetrics,
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

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("reco");
        let pool = PoolMetrics::default();
        pool.register(registry.sub_registry_with_prefix("db_pool"));
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_latency = Family::<HttpLabels, LatencyHistogram>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and status",
            http_latency.clone(),
        );
        let feedback_rows = Counter::default();
        let feedback_commits = Counter::default();
        registry.register(
            "feedback_rows",
            "Feedback rows committed by the group-commit writer",
            feedback_rows.clone(),
        );
        registry.register(
            "feedback_commits",
            "Group commits (transactions) of the feedback writer",
            feedback_commits.clone(),
        );
        let train_runs = Family::<ResultLabel, Counter>::default();
        let train_seconds = LatencyHistogram::default();
        registry.register(
            "train_runs",
            "Background training runs by result (ok, failed)",
            train_runs.clone(),
        );
        registry.register(
            "train_seconds",
            "Duration of training runs",
            train_seconds.clone(),
        );
        let engine_requests = Family::<EngineLabel, Counter>::default();
        let engine_seconds = Family::<EngineLabel, LatencyHistogram>::default();
        registry.register(
            "engine_requests",
            "Recommendation requests by the engine that served",
            engine_requests.clone(),
        );
        registry.register(
            "engine_seconds",
            "In-process recommendation time by engine",
            engine_seconds.clone(),
        );
        let variant_requests = Family::<VariantEngineLabel, Counter>::default();
        let variant_seconds = Family::<VariantLabel, LatencyHistogram>::default();
        let variant_cache_hits = Family::<VariantLabel, Counter>::default();
        let deadline_fallbacks = Family::<VariantEngineLabel, Counter>::default();
        let variant_impressions = Family::<VariantEngineLabel, Counter>::default();
        let variant_clicks = Family::<VariantEngineLabel, Counter>::default();
        registry.register(
            "variant_requests",
            "engine=auto requests by experiment variant and the engine that served",
            variant_requests.clone(),
        );
        registry.register(
            "variant_seconds",
            "engine=auto in-process time by experiment variant",
            variant_seconds.clone(),
        );
        registry.register(
            "variant_cache_hits",
            "engine=auto requests answered from the per-user cache",
            variant_cache_hits.clone(),
        );
        registry.register(
            "deadline_fallbacks",
            "engine=auto requests whose chosen engine missed the deadline (fast answered)",
            deadline_fallbacks.clone(),
        );
        registry.register(
            "variant_impressions",
            "Items recommended by engine=auto, by variant",
            variant_impressions.clone(),
        );
        registry.register(
            "variant_clicks",
            "Positive feedback on an item recommended to that user within the click window",
            variant_clicks.clone(),
        );
        Self {
            variant_requests,
            variant_seconds,
            variant_cache_hits,
            deadline_fallbacks,
            variant_impressions,
            variant_clicks,
            engine_requests,
            engine_seconds,
            registry: Mutex::new(registry),
            pool,
            http_requests,
            http_latency,
            feedback_rows,
            feedback_commits,
            train_runs,
            train_seconds,
            recent_runs: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    fn note_run(&self, result: &'static str, seconds: f64, version: Option<u64>) {
        let mut runs = self.recent_runs.lock();
        if runs.len() == RECENT_RUNS {
            runs.pop_front();
        }
        runs.push_back(TrainingRun {
            finished_at: chrono::Utc::now(),
            result,
            seconds,
            version,
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

    /// Counts a training run and records its duration.
    pub fn record_training(&self, ok: bool, seconds: f64, version: Option<u64>) {
        let result = if ok { "ok" } else { "failed" };
        self.train_runs.get_or_create(&ResultLabel { result }).inc();
        self.train_seconds.observe(seconds);
        self.note_run(result, seconds, version);
    }

    /// A snapshot trained by another replica was loaded.
    pub fn record_snapshot_load(&self, seconds: f64, version: u64) {
        self.note_run("loaded", seconds, Some(version));
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
