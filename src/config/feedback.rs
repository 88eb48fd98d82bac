//! `[feedback]`: feedback ingestion.

use serde::{Deserialize, Serialize};

use super::rules::{ConfigError, check, secs};

/// Feedback ingestion settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// Create unknown users and items on the fly (true) or reject the feedback with 404 (false).
    pub auto_create: bool,
    /// Most rows one group commit writes in a transaction.
    pub max_group_rows: usize,
    /// Seconds a feedback timestamp may lie in the future (clock skew between the client and
    /// reco); a later one is rejected with 400.
    pub max_future_skew: f64,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            auto_create: true,
            max_group_rows: 5000,
            max_future_skew: 86_400.0,
        }
    }
}

impl FeedbackConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=100_000).contains(&self.max_group_rows),
            "feedback.max_group_rows",
            self.max_group_rows,
            "1..=100000",
        )?;
        secs(
            self.max_future_skew,
            "feedback.max_future_skew",
            0.0,
            31_536_000.0,
            "0..=31536000 seconds",
        )
    }
}
