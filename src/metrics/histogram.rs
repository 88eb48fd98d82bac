//! The latency histogram every component records into: fixed buckets, lock-free, and able to
//! summarise itself (count, mean, approximate p50/p99) for the JSON status routes, the dashboard and
//! `reco monitor`. prometheus-client's own histogram keeps its buckets private, so it cannot serve
//! those views: this one is our own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use serde::Serialize;

/// Upper bounds in seconds, from 100 µs to 60 s: wide enough for a pool wait and a slow request.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 60.0,
];

/// A lock-free latency histogram with fixed buckets.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug, Default)]
struct HistogramInner {
    /// One count per bucket of [`LATENCY_BUCKETS`], plus the overflow bucket.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    /// Sum in nanoseconds, so it can be an atomic integer.
    sum_nanos: AtomicU64,
}

/// Count, mean and approximate quantiles of a [`LatencyHistogram`], in seconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct HistogramSummary {
    pub count: u64,
    pub mean_seconds: f64,
    /// Upper bound of the bucket holding the median.
    pub p50_seconds: f64,
    /// Upper bound of the bucket holding the 99th percentile.
    pub p99_seconds: f64,
}

impl LatencyHistogram {
    pub fn observe(&self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let idx = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.inner.buckets[idx].fetch_add(1, Ordering::Relaxed);
        self.inner.count.fetch_add(1, Ordering::Relaxed);
        self.inner
            .sum_nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }

    /// The count of each bucket of [`LATENCY_BUCKETS`], then the overflow bucket (not
    /// cumulative): the dashboard takes quantiles of an interval from two of these.
    pub fn bucket_counts(&self) -> Vec<u64> {
        self.inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    pub fn summary(&self) -> HistogramSummary {
        let counts = self.bucket_counts();
        let count: u64 = counts.iter().sum();
        let sum = self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let quantile = |q: f64| -> f64 {
            if count == 0 {
                return 0.0;
            }
            let rank = (q * count as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
                }
            }
            f64::INFINITY
        };
        HistogramSummary {
            count,
            mean_seconds: if count == 0 { 0.0 } else { sum / count as f64 },
            p50_seconds: quantile(0.5),
            p99_seconds: quantile(0.99),
        }
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.inner.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        let count = self.inner.count.load(Ordering::Relaxed);
        let sum = self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_bucket_quantiles() {
        let h = LatencyHistogram::default();
        for _ in 0..98 {
            h.observe(0.0008);
        }
        h.observe(0.3);
        h.observe(0.3);
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_seconds, 0.001);
        assert_eq!(s.p99_seconds, 0.5);
        assert!((s.mean_seconds - (98.0 * 0.0008 + 0.6) / 100.0).abs() < 1e-6);
    }
}
