//! Background training: builds every model from the store and swaps an immutable
//! `engine::Snapshot` into the engine.
//!
//! One training run streams items and feedback over one pooled connection (released before any
//! computing starts), fits the models on a blocking thread (rayon inside), and stores the result
//! with `ArcSwap`: serving never waits for training. A failed run keeps the previous snapshot and is
//! logged and counted. Runs happen every `recommend.train_interval` seconds and early once
//! `recommend.retrain_after_events` feedback events have arrived (at most once a minute).
//!
//! Training the admin route asks for runs as a job (`jobs`): the route answers at once, the job
//! is a task of its own.
//!
//! Models live in the engine's item index space (the live catalogue's compact ids at the time of the
//! run), so a request scores the user's exact in-memory history against them.

mod fit;
mod jobs;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::algo::content::{ItemText, label_tokens};
use crate::algo::smart::ShortRoute;
use crate::cluster::{self, Cluster};
use crate::config::{RecommendConfig, ShortHistoryRoute, seconds};
use crate::engine::{Engine, Snapshot};
use crate::eval;
use crate::metrics::Metrics;
use crate::policy::FeedbackPolicy;
use crate::store::{self, Store};
pub use fit::{TrainingData, fit};
pub use jobs::{Job, Jobs, Status, Trained};

/// Why a training run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading training data: {0}")]
    Store(#[from] store::Error),
    #[error("fitting panicked or was cancelled: {0}")]
    Fit(String),
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::Error),
    #[error("another replica kept the training lock")]
    Busy,
}

/// Reads the items' texts and every positive feedback row (weighted by the policy), in the
/// engine's item index space.
async fn load(
    store: &Store,
    engine: &Engine,
    policy: &FeedbackPolicy,
) -> Result<TrainingData, Error> {
    let index = engine.item_index();
    let n_items = index.len();
    let mut item_ids: Vec<Arc<str>> = vec![Arc::from(""); n_items];
    for (id, &i) in &index {
        item_ids[i as usize] = id.clone();
    }
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
                policy.weight(&f.feedback_type, f.value),
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
        item_ids,
        user_rows,
        interactions,
        texts,
    })
}

/// Publishes `snapshot` for the other replicas: encoded on a blocking thread straight into the
/// chunks the database stores, so the encoded bytes are never held whole.
async fn publish(cluster: &Cluster, snapshot: Arc<Snapshot>) -> Result<(), Error> {
    let version = snapshot.version;
    let (writer, chunks) = cluster::chunk_channel();
    let encode = tokio::task::spawn_blocking(move || snapshot.write_to(writer)?.finish());
    let stored = cluster.snapshots().publish(version, chunks).await;
    let encoded = encode.await.map_err(|e| Error::Fit(e.to_string()))?;
    match (stored, encoded) {
        (Ok(bytes), _) => {
            tracing::info!(version, bytes, "published the snapshot");
            Ok(())
        }
        // The encoder failed first (the publish then saw no end mark): its error says why. A
        // broken pipe is the other way round: the publish failed and stopped the encoder.
        (Err(_), Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Fit(format!("encoding the snapshot: {e}")))
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// How a run chooses its settings, from `[recommend]`.
pub fn tuning_of(config: &RecommendConfig) -> eval::Tuning {
    eval::Tuning {
        budget: eval::Budget(seconds(config.tuning_budget)),
        half_life_days: config.popularity_half_life_days.map(Some),
        short_route: match config.short_history_route {
            ShortHistoryRoute::Auto => None,
            ShortHistoryRoute::Neighbours => Some(ShortRoute::Neighbours),
            ShortHistoryRoute::Blend => Some(ShortRoute::Blend),
        },
    }
}

/// Least time between the end of one run and an early (event-triggered) run.
const MIN_EARLY_RETRAIN_GAP: Duration = Duration::from_secs(60);

/// Runs trainings for one engine. In a cluster ([`Cluster`]) one replica at a time trains, under
/// an advisory lock, and publishes the snapshot; the others load it instead of training.
pub struct Trainer {
    store: Store,
    engine: Arc<Engine>,
    config: RecommendConfig,
    policy: FeedbackPolicy,
    metrics: Arc<Metrics>,
    cluster: Option<Arc<Cluster>>,
    version: AtomicU64,
    /// One run at a time: an admin-triggered run waits for a background run, and vice versa.
    running: tokio::sync::Mutex<()>,
    /// Runs the admin route started.
    jobs: Jobs,
}

/// What one call to [`Trainer::run`] did.
pub enum Outcome {
    /// This replica trained (and, in a cluster, published) the snapshot.
    Trained(Arc<Snapshot>),
    /// Loaded a snapshot another replica published.
    Loaded(Arc<Snapshot>),
    /// The installed snapshot is the newest, and younger than `train_interval`.
    UpToDate,
    /// Another replica holds the training lock; its snapshot is loaded once published.
    Busy,
}

impl Trainer {
    pub fn new(
        store: Store,
        engine: Arc<Engine>,
        config: RecommendConfig,
        metrics: Arc<Metrics>,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        Self {
            store,
            engine,
            policy: FeedbackPolicy::from_config(&config),
            config,
            metrics,
            cluster,
            version: AtomicU64::new(0),
            running: tokio::sync::Mutex::new(()),
            jobs: Jobs::default(),
        }
    }

    /// Starts training now as a job (the admin route); `Err` is the job already running.
    pub fn start_job(self: &Arc<Self>) -> Result<Job, Job> {
        let trainer = self.clone();
        self.jobs.start(async move {
            match trainer.train_once().await {
                Ok(s) => Ok(Trained {
                    version: s.version,
                    trained_at: s.trained_at,
                    users: s.user_rows.len(),
                    items: s.n_items,
                    interactions: s.train.nnz(),
                    fit_seconds: s.fit_seconds,
                    settings: s.tuning.clone(),
                    quality_weights: eval::QUALITY_MEMBERS
                        .iter()
                        .map(|m| m.to_string())
                        .zip(s.quality_weights.iter().copied())
                        .collect(),
                    short_histories: s.short_route,
                }),
                Err(e) => {
                    tracing::error!(error = %e, "training job failed");
                    Err(match e {
                        Error::Busy => "another replica kept the training lock".to_string(),
                        Error::Store(e) if e.is_busy() => "the database was busy".to_string(),
                        _ => "training failed (see the server log)".to_string(),
                    })
                }
            }
        })
    }

    /// A training job by id (running, or among the latest finished).
    pub fn job(&self, id: u64) -> Option<Job> {
        self.jobs.get(id)
    }

    /// Trains now (the admin route). In a cluster it waits while another replica trains, up to
    /// `wait`, then trains itself.
    pub async fn train_once(&self) -> Result<Arc<Snapshot>, Error> {
        let deadline = Instant::now() + TRAIN_NOW_WAIT;
        loop {
            match self.run(true).await? {
                Outcome::Trained(s) | Outcome::Loaded(s) => return Ok(s),
                Outcome::Busy | Outcome::UpToDate if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                _ => return Err(Error::Busy),
            }
        }
    }

    fn installed_version(&self) -> u64 {
        self.engine.snapshot().map_or(0, |s| s.version)
    }

    /// One run. `force` trains even when a fresh snapshot is available (in a cluster, it is
    /// otherwise loaded). A failed run keeps the previous snapshot.
    pub async fn run(&self, force: bool) -> Result<Outcome, Error> {
        let _one_at_a_time = self.running.lock().await;
        let Some(cluster) = &self.cluster else {
            return self.train(None).await.map(Outcome::Trained);
        };
        let Some(lock) = cluster.try_training_lock().await? else {
            return Ok(Outcome::Busy);
        };
        let fresh = match cluster.snapshots().latest_published().await {
            Ok(Some(p)) if !force => {
                let age = (p.now_ms - p.trained_ms) as f64 / 1000.0;
                (age < self.config.train_interval).then_some(p.version)
            }
            Ok(_) => None,
            Err(e) => {
                lock.release().await;
                return Err(e.into());
            }
        };
        if let Some(version) = fresh {
            lock.release().await;
            if version > self.installed_version() {
                return self.load(version).await.map(Outcome::Loaded);
            }
            return Ok(Outcome::UpToDate);
        }
        let result = self.train(Some(cluster)).await;
        lock.release().await;
        result.map(Outcome::Trained)
    }

    /// Loads and installs published snapshot `version`.
    async fn load(&self, version: u64) -> Result<Arc<Snapshot>, Error> {
        let cluster = self.cluster.as_ref().expect("loading is for clusters");
        let started = Instant::now();
        let result = async {
            // Decoded as the chunks arrive, never whole in memory next to the models.
            let (reader, chunks) = cluster::read_channel();
            let decode = tokio::task::spawn_blocking(move || Snapshot::read_from(reader));
            let fetched = cluster.snapshots().fetch(version, chunks).await;
            let decoded = decode.await.map_err(|e| Error::Fit(e.to_string()))?;
            fetched?;
            let snapshot =
                decoded.map_err(|reason| cluster::Error::Snapshot { version, reason })?;
            let snapshot = Arc::new(snapshot);
            self.engine
                .install_foreign(&self.store, snapshot.clone())
                .await
                .map_err(|e| match e {
                    crate::engine::Error::Load(e) => Error::Store(e),
                })?;
            Ok::<_, Error>(snapshot)
        }
        .await;
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(s) => {
                self.version.store(s.version, Ordering::Relaxed);
                self.metrics.record_snapshot_load(seconds, s.version);
                tracing::info!(
                    version,
                    seconds,
                    "loaded the snapshot another replica trained"
                );
            }
            Err(e) => tracing::error!(version, error = %e, "loading a published snapshot failed"),
        }
        result
    }

    /// Reads, fits on a blocking thread, publishes (in a cluster), swaps.
    async fn train(&self, cluster: Option<&Arc<Cluster>>) -> Result<Arc<Snapshot>, Error> {
        let started = Instant::now();
        let events_before = self.engine.events_since_training();
        let result = async {
            let version = match cluster {
                Some(c) => c.snapshots().next_version().await?,
                None => self.version.load(Ordering::Relaxed) + 1,
            };
            let data = load(&self.store, &self.engine, &self.policy).await?;
            tracing::debug!(
                seconds = started.elapsed().as_secs_f64(),
                interactions = data.interactions.len(),
                "training data read"
            );
            let tuning = tuning_of(&self.config);
            let snapshot = tokio::task::spawn_blocking(move || fit(data, version, tuning))
                .await
                .map_err(|e| Error::Fit(e.to_string()))?;
            let snapshot = Arc::new(snapshot);
            if let Some(c) = cluster {
                publish(c, snapshot.clone()).await?;
            }
            Ok::<_, Error>(snapshot)
        }
        .await;
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(snapshot) => {
                self.version.store(snapshot.version, Ordering::Relaxed);
                self.engine.install(snapshot.clone(), events_before);
                let validation = snapshot
                    .tuning
                    .iter()
                    .map(|c| (c.model.clone(), c.validation_ndcg))
                    .collect();
                self.metrics
                    .record_training(true, seconds, Some(snapshot.version), validation);
                tracing::info!(
                    version = snapshot.version,
                    users = snapshot.user_rows.len(),
                    items = snapshot.n_items,
                    interactions = snapshot.train.nnz(),
                    fit_s = snapshot.fit_seconds,
                    total_s = seconds,
                    steps = %eval::describe_steps(&snapshot.steps),
                    settings = %eval::describe_choices(&snapshot.tuning),
                    "training finished"
                );
            }
            Err(e) => {
                self.metrics
                    .record_training(false, seconds, None, Vec::new());
                tracing::error!(error = %e, "training failed; keeping the previous models");
            }
        }
        result
    }

    /// Trains (or loads) now, then every `train_interval`, and early after `retrain_after_events`
    /// events. In a cluster it also loads each snapshot another replica publishes.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let interval = seconds(self.config.train_interval);
            let mut published = self.cluster.as_ref().map(|c| c.published());
            let _ = self.run(false).await;
            // When the last run ended: intervals and gaps count from there.
            let mut last = Instant::now();
            let mut poll = tokio::time::interval(Duration::from_millis(500).min(interval));
            loop {
                tokio::select! {
                    _ = poll.tick() => {}
                    Some(version) = next_published(&mut published) => {
                        if version > self.installed_version() {
                            let _one_at_a_time = self.running.lock().await;
                            if version > self.installed_version() && self.load(version).await.is_ok() {
                                last = Instant::now();
                            }
                        }
                        continue;
                    }
                }
                let due = last.elapsed() >= interval;
                // Early runs wait for a gap, so a stream of feedback does not keep the cores busy
                // training.
                let busy = self.engine.events_since_training() >= self.config.retrain_after_events
                    && last.elapsed() >= MIN_EARLY_RETRAIN_GAP.min(interval);
                if due || busy {
                    let _ = self.run(busy && !due).await;
                    last = Instant::now();
                }
            }
        })
    }
}

/// The next snapshot version another replica published; never resolves outside a cluster (or
/// once the cluster is gone).
async fn next_published(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) -> Option<u64> {
    let Some(r) = rx else {
        return std::future::pending().await;
    };
    if r.changed().await.is_err() {
        *rx = None;
        return None;
    }
    Some(*r.borrow_and_update())
}

/// How long the admin route waits for another replica's training before giving up.
const TRAIN_NOW_WAIT: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests;
