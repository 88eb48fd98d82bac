//! The application: one [`App`] built at start-up holding the pool, the store, the in-memory engine,
//! the write service, the configuration and the metrics, shared as [`AppState`]. Nothing else
//! constructs a pool or a connection. `api::serve` runs the HTTP server on it until a shutdown
//! signal, then [`App::shutdown`] stops the rest in order: commit queued feedback, stop the
//! background tasks, leave the cluster, close the pool.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::catalogue::{self, Catalogue};
use crate::cluster::Cluster;
use crate::config::{Config, seconds};
use crate::data::demo;
use crate::db::{Backend, Pool};
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;
use crate::policy::FeedbackPolicy;
use crate::store::Store;
use crate::train::Trainer;

/// Everything a request handler can reach.
pub struct App {
    pub config: Config,
    /// The process's one pool (also reachable through `store`).
    pub pool: Pool,
    /// Reads. Writes go through `catalogue`.
    pub store: Store,
    /// Serves recommendations from memory. Changed only by `catalogue` and training.
    pub engine: Arc<Engine>,
    /// Answers `engine=auto` and attributes clicks; wraps `engine`.
    pub orchestrator: Arc<Orchestrator>,
    /// Every write: items, users, feedback (group commit).
    pub catalogue: Catalogue,
    pub metrics: Arc<Metrics>,
    /// Background training; `train_once` is also reachable through the admin API.
    pub trainer: Arc<Trainer>,
    /// Membership in a cluster sharing `cluster.connection_budget`; `None` without a budget.
    pub cluster: Option<Arc<Cluster>>,
    pub started_at: Instant,
    /// Set when the shutdown deadline has passed: requests still running answer 503.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Background tasks stopped at shutdown.
    tasks: Arc<parking_lot::Mutex<Option<Tasks>>>,
    /// Background tasks that ended before shutdown, with why: `/health/ready` reports them (503).
    failures: Arc<parking_lot::Mutex<Vec<(&'static str, String)>>>,
}

/// The feedback writer's task name; it ends by itself after `FeedbackWriter::close`, once queued
/// feedback is committed.
const WRITER: &str = "feedback writer";

/// The background tasks: the feedback writer, the re-ranker, the trainer (aborted at shutdown: a
/// run in progress is abandoned, the snapshot stays), the cluster heartbeat (aborted before the
/// pool shrinks and closes) and the change feed's follower. Every one of them runs until
/// shutdown; one that ends earlier is found by the watchdog.
struct Tasks(Vec<(&'static str, JoinHandle<()>)>);

/// Every second, takes the tasks that ended (they should not before shutdown), logs why and
/// records it for `/health/ready`. Ends when shutdown takes the tasks.
fn spawn_watchdog(
    tasks: Arc<parking_lot::Mutex<Option<Tasks>>>,
    failures: Arc<parking_lot::Mutex<Vec<(&'static str, String)>>>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let ended: Vec<(&'static str, JoinHandle<()>)> = {
                let mut guard = tasks.lock();
                let Some(Tasks(list)) = guard.as_mut() else {
                    return;
                };
                let (done, running) = std::mem::take(list)
                    .into_iter()
                    .partition(|(_, h)| h.is_finished());
                *list = running;
                done
            };
            for (name, handle) in ended {
                let reason = match handle.await {
                    Ok(()) => "ended".to_string(),
                    Err(e) if e.is_panic() => {
                        let panic = e.into_panic();
                        let text = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        format!("panicked: {text}")
                    }
                    Err(_) => "cancelled".to_string(),
                };
                tracing::error!(task = name, %reason, "a background task stopped; the server is not ready");
                failures.lock().push((name, reason));
            }
        }
    });
}

/// The shared state handed to every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    /// Opens the pool, applies migrations, seeds the demo catalogue into an empty embedded
    /// database if configured, loads the engine and starts the background tasks.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        let metrics = Arc::new(Metrics::new());
        let clustered = config.cluster.connection_budget.is_some();
        // A replica joining a budget starts with one connection: the others have to make room
        // before it may hold more.
        let pool = if clustered {
            Pool::open_with_ceiling(&config.db, metrics.pool.clone(), 1).await
        } else {
            Pool::open(&config.db, metrics.pool.clone()).await
        }
        .context("opening the database pool")?;
        if clustered {
            Cluster::admit(&pool, &config.cluster, &config.db.application_name)
                .await
                .context("waiting for room in the connection budget")?;
        }
        let store = Store::new(pool.clone());
        store
            .migrate(&config.db)
            .await
            .context("applying migrations")?;
        let cluster = if clustered {
            let c = Cluster::join(pool.clone(), &config.cluster, &config.db.application_name)
                .await
                .context("joining the cluster")?;
            Some(c)
        } else {
            None
        };
        let heartbeat = cluster.as_ref().map(|c| c.spawn());
        if config.demo.seed_if_empty && pool.backend() == Backend::Sqlite {
            seed_demo(&store, config.demo.seed).await?;
        }
        // A replica follows the change feed from where it stood before the load: everything at or
        // below that is in what it loads.
        let feed_start = match &cluster {
            Some(c) => {
                let start = catalogue::start_position(&store)
                    .await
                    .context("reading the change feed's position")?;
                c.set_feed_position(start.settled());
                Some(start)
            }
            None => None,
        };
        let policy = FeedbackPolicy::from_config(&config.recommend);
        let engine = Arc::new(Engine::new(policy.clone(), config.recommend.diversity));
        let started = Instant::now();
        engine
            .load(&store)
            .await
            .context("loading the recommender")?;
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "recommender loaded"
        );
        if let Some(c) = &cluster {
            c.may_park();
        }
        let reranker = engine.spawn_reranker(seconds(config.recommend.rerank_interval));
        let orchestrator = Arc::new(Orchestrator::new(
            engine.clone(),
            &config.orchestrator,
            policy,
            metrics.clone(),
        ));
        // With a budget every write is also a change in the feed the other replicas follow.
        let writes = match &cluster {
            Some(c) => store.clone().recording_changes(c.id()),
            None => store.clone(),
        };
        let (catalogue, writer_task) = Catalogue::start(
            writes,
            engine.clone(),
            orchestrator.clone(),
            metrics.clone(),
            &config.feedback,
        );
        let trainer = Arc::new(Trainer::new(
            store.clone(),
            engine.clone(),
            config.recommend.clone(),
            metrics.clone(),
            cluster.clone(),
        ));
        let trainer_task = trainer.clone().spawn();
        let mut list = vec![
            (WRITER, writer_task),
            ("re-ranker", reranker),
            ("trainer", trainer_task),
        ];
        list.extend(heartbeat.map(|h| ("cluster heartbeat", h)));
        if let (Some(c), Some(start)) = (&cluster, feed_start) {
            list.push((
                "feed follower",
                catalogue.follow(c.clone(), start, &config.cluster),
            ));
        }
        let tasks = Arc::new(parking_lot::Mutex::new(Some(Tasks(list))));
        let failures = Arc::default();
        spawn_watchdog(tasks.clone(), Arc::clone(&failures));
        Ok(AppState(Arc::new(App {
            config,
            pool,
            store,
            engine,
            orchestrator,
            catalogue,
            metrics,
            trainer,
            cluster,
            started_at: Instant::now(),
            stopping: tokio::sync::watch::Sender::new(false),
            tasks,
            failures,
        })))
    }

    /// Background tasks that stopped before shutdown, and why (empty when all run).
    pub fn task_failures(&self) -> Vec<(&'static str, String)> {
        self.failures.lock().clone()
    }

    /// Fault injection for tests: aborts the named background task as a crash would.
    #[doc(hidden)]
    pub fn abort_task(&self, name: &str) {
        if let Some(Tasks(list)) = self.tasks.lock().as_ref() {
            for (_, h) in list.iter().filter(|(n, _)| *n == name) {
                h.abort();
            }
        }
    }

    /// Commits queued feedback, stops background tasks and closes the pool.
    pub async fn shutdown(&self) {
        // Taken first: the watchdog stops, and the writer ending on close is no failure.
        let tasks = self.tasks.lock().take();
        self.catalogue.close().await;
        for (name, handle) in tasks.map(|t| t.0).unwrap_or_default() {
            if name != WRITER {
                handle.abort();
            } else if let Err(e) = handle.await {
                tracing::error!(error = %e, "feedback writer ended abnormally");
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        self.pool.close().await;
        tracing::info!("pool closed");
    }
}

/// Seeds the demo catalogue into an empty database.
async fn seed_demo(store: &Store, seed: u64) -> anyhow::Result<()> {
    let (items, _, _) = store.counts().await?;
    if items > 0 {
        return Ok(());
    }
    let started = Instant::now();
    let data = demo::generate(&demo::DemoSpec::default(), seed);
    data.write(store).await.context("seeding demo data")?;
    tracing::info!(
        items = data.items.len(),
        users = data.users.len(),
        feedback = data.feedback.len(),
        ms = started.elapsed().as_millis() as u64,
        "seeded demo catalogue into the empty database"
    );
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
