//! The change feed's metrics (issue 14), registered under `reco_feed_*`: where this replica's
//! follower stands, how far behind it is, and what it applied. Recorded by the follower
//! (`catalogue::follow`); the lag is set when `/metrics` is scraped.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::LatencyHistogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct OriginLabel {
    /// `own` (this replica wrote it) or `other`.
    pub origin: &'static str,
}

/// Clones share the same values.
#[derive(Clone, Debug, Default)]
pub struct FeedMetrics {
    /// Every position at or below this is applied (or will never commit).
    pub position: Gauge,
    /// Seconds since the start of the last read that applied everything it found.
    pub lag_seconds: Gauge<f64, AtomicU64>,
    pub reads: Counter,
    pub read_errors: Counter,
    /// Changes applied, by who wrote them (own ones only when they had to be re-applied).
    pub applied: Family<OriginLabel, Counter>,
    /// From a change's commit to its application here, by the database server's clock.
    pub delay_seconds: LatencyHistogram,
    /// Reloads from the tables: behind the pruned horizon, or a `reload` change.
    pub reloads: Counter,
    pub pruned: Counter,
}

impl FeedMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "position",
            "Change-feed position this replica has applied up to",
            self.position.clone(),
        );
        r.register(
            "lag_seconds",
            "Seconds since the start of the follower's last complete read",
            self.lag_seconds.clone(),
        );
        r.register("reads", "Reads of the change feed", self.reads.clone());
        r.register(
            "read_errors",
            "Reads of the change feed that failed",
            self.read_errors.clone(),
        );
        r.register(
            "applied",
            "Changes applied from the feed, by origin",
            self.applied.clone(),
        );
        r.register(
            "delay_seconds",
            "From a change's commit to its application on this replica (server clock)",
            self.delay_seconds.clone(),
        );
        r.register(
            "reloads",
            "Reloads from the tables (fell behind the pruned feed, or after an import)",
            self.reloads.clone(),
        );
        r.register(
            "pruned",
            "Changes pruned from the feed",
            self.pruned.clone(),
        );
    }

    pub fn record_applied(&self, own: bool) {
        let origin = if own { "own" } else { "other" };
        self.applied.get_or_create(&OriginLabel { origin }).inc();
    }
}
