//! One training run's computation: every model fitted on the data read from the store, into an
//! immutable [`Snapshot`], with the time of each step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use crate::algo::content::ItemText;
use crate::engine::Snapshot;
use crate::eval::{self, EvalData};

/// The raw material of a run, read from the store (or generated, in benchmarks).
pub struct TrainingData {
    /// Items `0..n_items` of the engine's index.
    pub n_items: usize,
    /// Their ids, by index.
    pub item_ids: Vec<Arc<str>>,
    pub user_rows: HashMap<Arc<str>, u32>,
    /// (user row, item, weight, unix seconds)
    pub interactions: Vec<(u32, u32, f32, i64)>,
    pub texts: Vec<ItemText>,
}

/// Fits every model: CPU work for a blocking thread (rayon inside). `tuning` bounds the search
/// for settings on the validation split.
pub fn fit(data: TrainingData, version: u64, tuning: eval::Tuning) -> Snapshot {
    let started = Instant::now();
    let steps = eval::Steps::default();
    let set = steps.time("interactions", || {
        EvalData::from_interactions(
            data.user_rows.len(),
            data.n_items,
            data.interactions,
            data.texts,
        )
    });
    // Serving ranks each user's next items from everything they did up to now, so the settings
    // are chosen on each user's newest interactions held out (per user by time).
    tracing::info!(
        validation = %set.validation,
        why = "serving predicts each user's next items from their history so far",
        "choosing settings on a validation split"
    );
    let (members, learned) = eval::fit_and_learn(&set, true, tuning, &steps);
    let eval::Extras {
        popular_order,
        categories,
        category_names,
    } = eval::Extras::of(&set, &members);
    let eval::Members {
        als,
        bpr,
        itemknn,
        content,
        ease,
        recent,
    } = members;
    Snapshot {
        version,
        trained_at: Utc::now(),
        n_items: data.n_items,
        item_ids: data.item_ids,
        user_rows: data.user_rows,
        train: set.train,
        popularity: recent,
        popular_order,
        categories,
        category_names,
        itemknn,
        als,
        bpr,
        content,
        ease,
        quality_weights: learned.quality_weights,
        short_route: learned.short_route,
        history_half_life: learned.settings.history_half_life,
        ranker: learned.ranker,
        tuning: learned.choices,
        fit_seconds: started.elapsed().as_secs_f64(),
        steps: steps.into_list(),
    }
}
