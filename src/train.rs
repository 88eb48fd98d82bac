//! Background training: builds every model from the store and swaps an immutable [`Snapshot`] into
//! the engine.
//!
//! One training run streams items and feedback over one pooled connection (released before any
//! computing starts), fits the models on a blocking thread (rayon inside), and stores the result
//! with `ArcSwap`: serving never waits for training. A failed run keeps the previous snapshot and is
//! logged and counted. Runs happen every `recommend.train_interval` seconds and early once
//! `recommend.retrain_after_events` feedback events have arrived (at most once a minute).
//!
//! Models live in the engine's item index space (the live catalogue's compact ids at the time of the
//! run), so a request scores the user's exact in-memory history against them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::algo::Csr;
use crate::algo::content::{self, ItemText, label_tokens};
use crate::algo::popularity::{self, Event, Popularity};
use crate::algo::{als, bpr, enhanced, itemknn};
use crate::config::{RecommendConfig, seconds};
use crate::engine::Engine;
use crate::eval::{self, EvalData};
use crate::metrics::Metrics;
use crate::store::{self, Store};

/// Everything the engines read, trained at one moment.
pub struct Snapshot {
    /// Increases by one per successful run.
    pub version: u64,
    pub trained_at: DateTime<Utc>,
    /// Items `0..n_items` of the engine's index were known to this run.
    pub n_items: usize,
    /// Row of each trained user in `train` and in the factor models.
    pub user_rows: HashMap<Arc<str>, u32>,
    /// Users × items training weights.
    pub train: Csr,
    pub popularity: Popularity,
    /// The most popular items by decayed popularity, best first (at most 1,000).
    pub popular_order: Vec<u32>,
    pub itemknn: itemknn::ItemKnn,
    pub als: als::Als,
    pub bpr: bpr::Bpr,
    pub content: content::Content,
    /// Weights of ALS, BPR, item-to-item and content in the `quality` blend, fitted on a temporal
    /// validation split of this run's data.
    pub quality_weights: Vec<f32>,
    /// The scoring model of `enhanced`, fitted on the same validation split.
    pub ranker: enhanced::Ranker,
    /// Category ids of each item (for `enhanced`'s category features) and the ids' names.
    pub categories: Vec<Box<[u32]>>,
    pub category_names: Vec<String>,
    pub fit_seconds: f64,
}

impl Snapshot {
    /// The models `enhanced` generates candidates from.
    pub fn enhanced_models(&self) -> enhanced::Models<'_> {
        enhanced::Models {
            als: &self.als,
            bpr: &self.bpr,
            itemknn: &self.itemknn,
            content: &self.content,
            popularity: &self.popularity.scores,
            popular_order: &self.popular_order,
            categories: &self.categories,
        }
    }
}

/// Why a training run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading training data: {0}")]
    Store(#[from] store::Error),
    #[error("fitting panicked or was cancelled: {0}")]
    Fit(String),
}

/// The raw material of a run, read from the store (or generated, in benchmarks).
pub struct TrainingData {
    /// Items `0..n_items` of the engine's index.
    pub n_items: usize,
    pub user_rows: HashMap<Arc<str>, u32>,
    /// (user row, item, weight, unix seconds)
    pub interactions: Vec<(u32, u32, f32, i64)>,
    pub texts: Vec<ItemText>,
}

/// Training weight of a feedback row, or `None` when it does not train.
pub fn weight(config: &RecommendConfig, feedback_type: &str, value: f64) -> Option<f32> {
    if feedback_type == "rating" && value < config.rating_threshold {
        return None;
    }
    config.positive_weights.get(feedback_type).copied()
}

async fn load(
    store: &Store,
    engine: &Engine,
    config: &RecommendConfig,
) -> Result<TrainingData, Error> {
    let index = engine.item_index();
    let n_items = index.len();
    let mut texts = vec![ItemText::default(); n_items];
    store
        .for_each_item(|item| {
            if let Some(&i) = index.get(item.id.as_str()) {
                texts[i as usize] = ItemText {
                    labels: label_tokens(&item.labels),
                    title: item.title,
                    description: item.description,
                    categories: item.categories,
                };
            }
        })
        .await?;
    let mut user_rows: HashMap<Arc<str>, u32> = HashMap::new();
    let mut interactions = Vec::new();
    store
        .for_each_feedback(|f| {
            let (Some(w), Some(&item)) = (
                weight(config, &f.feedback_type, f.value),
                index.get(f.item_id.as_str()),
            ) else {
                return;
            };
            let next = user_rows.len() as u32;
            let row = *user_rows
                .entry(Arc::from(f.user_id.as_str()))
                .or_insert(next);
            interactions.push((row, item, w, f.timestamp.timestamp()));
        })
        .await?;
    Ok(TrainingData {
        n_items,
        user_rows,
        interactions,
        texts,
    })
}

/// Fits every model: CPU work for a blocking thread (rayon inside).
pub fn fit(data: TrainingData, version: u64, half_life_days: f64) -> Snapshot {
    let started = Instant::now();
    let events: Vec<Event> = data
        .interactions
        .iter()
        .map(|&(_, item, weight, timestamp)| Event {
            item,
            weight,
            timestamp,
        })
        .collect();
    let set = EvalData::from_interactions(
        data.user_rows.len(),
        data.n_items,
        &data.interactions,
        data.texts,
    );
    let popularity = popularity::fit(
        data.n_items,
        events,
        set.now,
        Some(half_life_days * 86_400.0),
    );
    let (members, learned) = eval::fit_and_learn(&set, true);
    let popular_order = crate::algo::top_n(&popularity.scores, &[], eval::POPULAR_ORDER_LEN);
    let (mut categories, category_names) =
        crate::algo::enhanced::category_ids(set.item_texts.iter().map(|t| &t.categories[..]));
    categories.resize(data.n_items, Box::new([]));
    let eval::Members {
        als,
        bpr,
        itemknn,
        content,
    } = members;
    Snapshot {
        version,
        trained_at: Utc::now(),
        n_items: data.n_items,
        user_rows: data.user_rows,
        train: set.train,
        popularity,
        popular_order,
        categories,
        category_names,
        itemknn,
        als,
        bpr,
        content,
        quality_weights: learned.quality_weights,
        ranker: learned.ranker,
        fit_seconds: started.elapsed().as_secs_f64(),
    }
}

/// Least time between the end of one run and an early (event-triggered) run.
const MIN_EARLY_RETRAIN_GAP: Duration = Duration::from_secs(60);

/// Runs trainings for one engine.
pub struct Trainer {
    store: Store,
    engine: Arc<Engine>,
    config: RecommendConfig,
    metrics: Arc<Metrics>,
    version: AtomicU64,
    /// One run at a time: an admin-triggered run waits for a background run, and vice versa.
    running: tokio::sync::Mutex<()>,
}

impl Trainer {
    pub fn new(
        store: Store,
        engine: Arc<Engine>,
        config: RecommendConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            engine,
            config,
            metrics,
            version: AtomicU64::new(0),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// One run: read, fit on a blocking thread, swap. The previous snapshot stays on failure.
    pub async fn train_once(&self) -> Result<Arc<Snapshot>, Error> {
        let _one_at_a_time = self.running.lock().await;
        let started = Instant::now();
        let events_before = self.engine.events_since_training();
        let result = async {
            let data = load(&self.store, &self.engine, &self.config).await?;
            let version = self.version.load(Ordering::Relaxed) + 1;
            let half_life = self.config.popularity_half_life_days;
            let snapshot = tokio::task::spawn_blocking(move || fit(data, version, half_life))
                .await
                .map_err(|e| Error::Fit(e.to_string()))?;
            Ok::<_, Error>(Arc::new(snapshot))
        }
        .await;
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(snapshot) => {
                self.version.store(snapshot.version, Ordering::Relaxed);
                self.engine.install(snapshot.clone(), events_before);
                self.metrics.record_training(true, seconds);
                tracing::info!(
                    version = snapshot.version,
                    users = snapshot.user_rows.len(),
                    items = snapshot.n_items,
                    interactions = snapshot.train.nnz(),
                    fit_s = snapshot.fit_seconds,
                    total_s = seconds,
                    "training finished"
                );
            }
            Err(e) => {
                self.metrics.record_training(false, seconds);
                tracing::error!(error = %e, "training failed; keeping the previous models");
            }
        }
        result
    }

    /// Trains now, then every `train_interval`, and early after `retrain_after_events` events.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let interval = seconds(self.config.train_interval);
            let _ = self.train_once().await;
            // When the last run ended: intervals and gaps count from there.
            let mut last = Instant::now();
            let mut poll = tokio::time::interval(Duration::from_millis(500).min(interval));
            loop {
                poll.tick().await;
                let due = last.elapsed() >= interval;
                // Early runs wait for a gap, so a stream of feedback does not keep the cores busy
                // training.
                let busy = self.engine.events_since_training() >= self.config.retrain_after_events
                    && last.elapsed() >= MIN_EARLY_RETRAIN_GAP.min(interval);
                if due || busy {
                    let _ = self.train_once().await;
                    last = Instant::now();
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_configuration() {
        let c = RecommendConfig::default();
        assert_eq!(weight(&c, "like", 1.0), Some(1.0));
        assert_eq!(weight(&c, "view", 1.0), Some(0.1));
        assert_eq!(weight(&c, "rating", 5.0), Some(1.0));
        assert_eq!(weight(&c, "rating", 3.0), None);
        assert_eq!(weight(&c, "dislike", 1.0), None);
        assert_eq!(weight(&c, "unknown", 1.0), None);
    }
}
