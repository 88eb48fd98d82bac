//! `[monitor]`: which replicas `reco monitor` watches and when it warns.

use serde::{Deserialize, Serialize};

use super::redact::redact_url;
use super::rules::{ConfigError, check, is_http_url, secs};

/// `reco monitor` and its warning thresholds (the ones operators of a 20-connection database use).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Base URLs of the running replicas, e.g. `http://10.0.0.5:8080`.
    pub replicas: Vec<String>,
    /// Warn above this many client connections on the database server, all applications.
    pub warn_total_connections: i64,
    /// Warn when a replica's pool has more than this share of its ceiling in use (0..=1).
    pub warn_utilisation: f64,
    /// Warn when a replica has more than this many overflow connections in use.
    pub warn_overflow: u32,
    /// Seconds between refreshes of the live view.
    pub interval: f64,
    /// Warn when a replica's change-feed follower is more than this many seconds behind.
    pub warn_feed_lag: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            replicas: Vec::new(),
            warn_total_connections: 12,
            warn_utilisation: 0.8,
            warn_overflow: 2,
            interval: 1.0,
            warn_feed_lag: 3.0,
        }
    }
}

impl MonitorConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            (0.0..=1.0).contains(&self.warn_utilisation),
            "monitor.warn_utilisation",
            self.warn_utilisation,
            "0..=1",
        )?;
        secs(
            self.interval,
            "monitor.interval",
            0.1,
            3600.0,
            "0.1..=3600 seconds",
        )?;
        secs(
            self.warn_feed_lag,
            "monitor.warn_feed_lag",
            0.1,
            3600.0,
            "0.1..=3600 seconds",
        )?;
        for r in &self.replicas {
            check(
                is_http_url(r),
                "monitor.replicas",
                redact_url(r),
                "http:// or https:// URLs",
            )?;
        }
        Ok(())
    }
}
