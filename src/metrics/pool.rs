//! The pool's own metrics: what HikariCP reports and sqlx does not. Recorded by `db::Pool`,
//! registered under `reco_db_pool_*`.

use std::collections::BTreeMap;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::{HistogramSummary, LatencyHistogram};

/// Why a connection was closed.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum CloseReason {
    /// Older than `pool_recycle`.
    Recycled,
    /// Returned while `pool_size` connections were already idle.
    Overflow,
    /// Failed the pre-ping.
    PrePingFailed,
    /// Belonged to a pool replaced by `reco reset`.
    Rebuilt,
    /// Closed by the driver: broken connection, pool shutdown or rebuild.
    Other,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Recycled => "recycled",
            CloseReason::Overflow => "overflow",
            CloseReason::PrePingFailed => "pre_ping_failed",
            CloseReason::Rebuilt => "rebuilt",
            CloseReason::Other => "other",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Counters, gauges and histograms of one pool. Clones share the same values.
#[derive(Clone, Debug, Default)]
pub struct PoolMetrics {
    pub size: Gauge,
    pub idle: Gauge,
    pub in_use: Gauge,
    pub overflow_in_use: Gauge,
    pub waiting: Gauge,
    pub ceiling: Gauge,
    pub leak_suspects: Gauge,
    pub opened: Counter,
    pub closed: Family<ReasonLabel, Counter>,
    pub timeouts: Counter,
    pub pre_ping_failures: Counter,
    pub leaks: Counter,
    pub acquire_wait_seconds: LatencyHistogram,
    pub hold_seconds: LatencyHistogram,
}

impl PoolMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register("connections", "Open connections", self.size.clone());
        r.register("idle", "Idle connections", self.idle.clone());
        r.register("in_use", "Checked-out connections", self.in_use.clone());
        r.register(
            "overflow_in_use",
            "Checked-out connections beyond pool_size",
            self.overflow_in_use.clone(),
        );
        r.register(
            "waiting",
            "Tasks waiting for a connection",
            self.waiting.clone(),
        );
        r.register("ceiling", "pool_size + max_overflow", self.ceiling.clone());
        r.register(
            "leak_suspects",
            "Checkouts held past leak_threshold now",
            self.leak_suspects.clone(),
        );
        r.register("opened", "Connections opened", self.opened.clone());
        r.register(
            "closed",
            "Connections closed, by reason",
            self.closed.clone(),
        );
        r.register(
            "timeouts",
            "Acquires that gave up after pool_timeout",
            self.timeouts.clone(),
        );
        r.register(
            "pre_ping_failures",
            "Connections that failed the pre-ping",
            self.pre_ping_failures.clone(),
        );
        r.register(
            "leaks",
            "Checkouts that crossed leak_threshold",
            self.leaks.clone(),
        );
        r.register(
            "acquire_wait_seconds",
            "Time waited for a connection",
            self.acquire_wait_seconds.clone(),
        );
        r.register(
            "hold_seconds",
            "Time a connection was held",
            self.hold_seconds.clone(),
        );
    }

    pub fn record_close(&self, reason: CloseReason) {
        self.closed
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    fn closed_count(&self, reason: CloseReason) -> u64 {
        self.closed
            .get(&ReasonLabel {
                reason: reason.as_str(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// Closes we did not decide ourselves are derived: every opened connection that is no longer
    /// open and was not closed for a known reason was closed by the driver.
    fn other_closes(&self, size: u32) -> u64 {
        let known: u64 = [
            CloseReason::Recycled,
            CloseReason::Overflow,
            CloseReason::PrePingFailed,
            CloseReason::Rebuilt,
        ]
        .iter()
        .map(|r| self.closed_count(*r))
        .sum();
        self.opened
            .get()
            .saturating_sub(size as u64)
            .saturating_sub(known)
    }

    pub fn closed_by_reason(&self, size: u32) -> BTreeMap<&'static str, u64> {
        let mut out: BTreeMap<&'static str, u64> = [
            CloseReason::Recycled,
            CloseReason::Overflow,
            CloseReason::PrePingFailed,
            CloseReason::Rebuilt,
        ]
        .iter()
        .map(|r| (r.as_str(), self.closed_count(*r)))
        .collect();
        out.insert(CloseReason::Other.as_str(), self.other_closes(size));
        out
    }

    /// Brings the `other` close counter up to the derived value (counters only grow).
    pub fn publish_other_closes(&self, size: u32) {
        let target = self.other_closes(size);
        let counter = self.closed.get_or_create_owned(&ReasonLabel {
            reason: CloseReason::Other.as_str(),
        });
        let current = counter.get();
        if target > current {
            counter.inc_by(target - current);
        }
    }

    pub fn acquire_wait_summary(&self) -> HistogramSummary {
        self.acquire_wait_seconds.summary()
    }

    pub fn hold_summary(&self) -> HistogramSummary {
        self.hold_seconds.summary()
    }
}
