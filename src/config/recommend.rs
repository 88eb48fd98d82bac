//! `[recommend]`: the in-memory recommender, its training and what feedback means
//! (`crate::policy` reads `positive_weights`, `rating_threshold` and `negative_types`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rules::{ConfigError, check, secs};

/// In-memory recommender settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendConfig {
    /// Seconds between re-rankings of the popularity list from the in-memory counts.
    pub rerank_interval: f64,
    /// Feedback types that count against an item (excluded, never counted as popularity).
    pub negative_types: Vec<String>,
    /// Default number of items returned when `n` is not given.
    pub default_n: usize,
    /// Weight of each positive feedback type; types not listed are neither positive nor
    /// negative (the item counts as seen). `rating` is positive only at or above
    /// `rating_threshold`.
    pub positive_weights: BTreeMap<String, f32>,
    /// Lowest `rating` value that counts as positive.
    pub rating_threshold: f64,
    /// Seconds between background trainings.
    pub train_interval: f64,
    /// Train early once this many feedback events arrived since the last training.
    pub retrain_after_events: u64,
    /// Half-life of popularity (trending, and a member of the `quality` blend), in days: an
    /// interaction this old counts half. Unset: chosen by each training run on its validation
    /// split (no decay is one of the choices).
    pub popularity_half_life_days: Option<f64>,
    /// Seconds each training run may spend choosing the models' settings on its validation split
    /// (0: keep the defaults), counted in predicted time (`eval::tune`'s cost model), not the
    /// clock, so the choices do not depend on the machine's load. A setting is tried only while
    /// its predicted time fits, so larger data sets try fewer and the training log says which
    /// models kept their defaults.
    pub tuning_budget: f64,
    /// What `smart` gives a user with a short history: `auto` (chosen by each training run on its
    /// validation split), `neighbours` (item-to-item and content neighbours of the history, which
    /// reach items nobody has interacted with yet) or `blend` (`quality`'s blend).
    pub short_history_route: ShortHistoryRoute,
    /// MMR strength of the `quality` engine across categories: 0 = relevance order, 1 = maximal
    /// spread. 0.1 costs 0.002 NDCG@10 on ML-100K (docs/BENCHMARKS.md).
    pub diversity: f32,
    /// Items older than this many days (by their timestamp) are never recommended; 0 = no limit.
    pub item_ttl_days: f64,
}

impl Default for RecommendConfig {
    fn default() -> Self {
        Self {
            rerank_interval: 1.0,
            negative_types: vec!["dislike".into(), "hide".into()],
            default_n: 10,
            positive_weights: [
                ("like", 1.0),
                ("purchase", 1.0),
                ("rating", 1.0),
                ("click", 0.5),
                ("view", 0.1),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            rating_threshold: 4.0,
            train_interval: 300.0,
            retrain_after_events: 10_000,
            popularity_half_life_days: None,
            tuning_budget: 20.0,
            short_history_route: ShortHistoryRoute::Auto,
            diversity: 0.1,
            item_ttl_days: 0.0,
        }
    }
}

/// See [`RecommendConfig::short_history_route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShortHistoryRoute {
    Auto,
    Neighbours,
    Blend,
}

impl RecommendConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        secs(
            self.rerank_interval,
            "recommend.rerank_interval",
            0.01,
            3600.0,
            "0.01..=3600 seconds",
        )?;
        secs(
            self.train_interval,
            "recommend.train_interval",
            0.1,
            604_800.0,
            "0.1..=604800 seconds",
        )?;
        check(
            self.retrain_after_events >= 1,
            "recommend.retrain_after_events",
            self.retrain_after_events,
            "at least 1",
        )?;
        if let Some(half_life) = self.popularity_half_life_days {
            check(
                half_life.is_finite() && half_life > 0.0,
                "recommend.popularity_half_life_days",
                half_life,
                "a positive number of days (or unset: chosen on validation)",
            )?;
        }
        check(
            self.tuning_budget.is_finite() && (0.0..=3600.0).contains(&self.tuning_budget),
            "recommend.tuning_budget",
            self.tuning_budget,
            "0..=3600 seconds",
        )?;
        check(
            (0.0..=1.0).contains(&self.diversity),
            "recommend.diversity",
            self.diversity,
            "0..=1",
        )?;
        check(
            self.item_ttl_days.is_finite() && self.item_ttl_days >= 0.0,
            "recommend.item_ttl_days",
            self.item_ttl_days,
            "0 (no limit) or a positive number of days",
        )?;
        for (t, w) in &self.positive_weights {
            check(
                w.is_finite() && *w > 0.0,
                "recommend.positive_weights",
                format!("{t} = {w}"),
                "weights above 0",
            )?;
        }
        check(
            (1..=1000).contains(&self.default_n),
            "recommend.default_n",
            self.default_n,
            "1..=1000",
        )
    }
}
