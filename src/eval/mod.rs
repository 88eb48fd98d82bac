//! Offline evaluation, shared by `reco evaluate`, the quality tests and the benchmarks.
//!
//! Protocol: positives are ratings >= 4 (for data from the store, the rows `crate::policy` calls
//! positive; the caller decides); each user's positives are ordered by time, ties broken by item id, and the first 80% (by
//! `floor(0.8 n)`) train while the rest test; every model ranks the full catalogue minus the user's
//! training items; Precision, Recall, NDCG and hit rate at 10 are averaged over users with at least
//! one test item, and catalogue coverage is the share of items recommended to anyone.

mod data;
mod files;
mod learn;
mod models;
mod score;
mod steps;
mod tune;

use std::time::Duration;

use serde::Serialize;

pub use data::{EvalData, Positive, Split, from_dataset, now_of, split};
pub use files::{Shape, from_files, infer_shape};
pub use learn::{
    Extras, Learned, Members, POPULAR_ORDER_LEN, QUALITY_MEMBERS, Tuning, fit_and_learn,
};
pub use models::{Fitted, QUALITY_DIVERSITY};
pub use score::{Metrics, evaluate};
pub use steps::{Steps, describe as describe_steps};
pub use tune::{Budget, Choice, DEFAULT_HALF_LIFE_DAYS, Settings, describe as describe_choices};

/// One row of `reco evaluate`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub k: usize,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub fit_seconds: f64,
    /// The settings chosen on the validation split (a single model), or the blend weights.
    pub setting: Option<String>,
}

/// The models `reco evaluate` knows, in report order.
pub const MODELS: [&str; 12] = [
    "popularity",
    "recent",
    "itemknn",
    "rp3beta",
    "ease",
    "als",
    "bpr",
    "content",
    "fast",
    "quality",
    "enhanced",
    "smart",
];

/// The models of [`MODELS`] that stand for the server's engines reading histories weighted by
/// recency (`fast` takes its neighbours unweighted, as the server's does).
const ENGINES: [&str; 3] = ["quality", "enhanced", "smart"];

/// The tuning budget of `reco evaluate` unless told otherwise (the server's default).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(20);

/// Fits every model once ([`Fitted`], settings chosen on a validation split shaped like `data`'s
/// test split, within `budget`) and evaluates each named one in turn.
pub fn run(data: &EvalData, models: &[&str], k: usize, budget: Duration) -> Vec<Report> {
    let tuning = Tuning {
        budget: Budget(budget),
        half_life_days: None,
        short_route: None,
    };
    let fitted = Fitted::new(data, tuning);
    // The engines see histories weighted by recency, as the server's requests do; the single
    // models are the peers, scored as they are.
    let weighted = fitted.learned.settings.history_half_life.map(|half_life| {
        let mut weighted = data.clone();
        weighted.weigh_histories(half_life);
        weighted
    });
    models
        .iter()
        .filter_map(|&name| {
            let (scorer, fit_seconds, setting) = fitted.model(name, data)?;
            let scored = match &weighted {
                Some(w) if ENGINES.contains(&name) => w,
                _ => data,
            };
            let metrics = evaluate(scorer.as_ref(), scored, k);
            Some(Report {
                model: name.to_string(),
                k,
                metrics,
                fit_seconds,
                setting,
            })
        })
        .collect()
}

/// The reports as an aligned text table.
pub fn table(reports: &[Report]) -> String {
    let mut out = format!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}\n",
        "model", "P@10", "R@10", "NDCG@10", "HR@10", "coverage", "fit (s)"
    );
    for r in reports {
        let m = &r.metrics;
        out.push_str(&format!(
            "{:<12} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9.4} {:>9.3}\n",
            r.model, m.precision, m.recall, m.ndcg, m.hit_rate, m.coverage, r.fit_seconds
        ));
    }
    let chosen: Vec<&Report> = reports.iter().filter(|r| r.setting.is_some()).collect();
    if !chosen.is_empty() {
        out.push_str("\nchosen on the validation split:\n");
        for r in chosen {
            let setting = r.setting.as_deref().unwrap_or_default();
            out.push_str(&format!("  {:<10} {setting}\n", r.model));
        }
    }
    out
}

#[cfg(test)]
mod tests;
