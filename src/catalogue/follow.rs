//! The change feed's follower: how the other replicas' writes reach this replica's memory.
//!
//! Every `cluster.sync_interval` it reads the feed once (one short checkout from the pool, one
//! statement), hands what it read to the [`Frontier`] (which says what is new and how far it is
//! safe to advance: its doc has the argument), and applies each new change in position order
//! through the [`Ledger`] exactly as the catalogue applies its own writes: histories, exclusions,
//! hidden and deleted items; the users' and the catalogue's generations move, so cached answers go
//! stale. Feedback from elsewhere is also reported to the orchestrator, so a click on an item this
//! replica recommended counts wherever it was written.
//!
//! A follower that finds its position below the pruned horizon, or a `reload` change (`reco
//! import`), reloads from the tables instead; changes it then reads again are applied again,
//! which is harmless (every change sets a state, none adds to one). It also prunes the feed now
//! and then (`store::Store::prune_changes` has the rule). No LISTEN/NOTIFY: a transaction-mode
//! pooler would not carry it, and a read every quarter second is cheap.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::ledger::Ledger;
use crate::cluster::{Cluster, Frontier, MAX_GAPS};
use crate::engine::{self, Engine};
use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;
use crate::store::{self, Change, FeedEntry, Store};

/// Most changes one read applies, and most bytes of payload (after the first change): a replica
/// far behind catches up over several reads instead of holding gigabytes at once (a change can
/// hold a 5,000-row group commit or a batch of items up to `http.max_body_bytes`).
const BATCH: usize = 5_000;
const BATCH_BYTES: usize = 16 << 20;

/// Reads between two prunes.
const PRUNE_EVERY: u32 = 40;

/// A change stays at least this long, so a replica that just started (its position not yet
/// recorded by a heartbeat) does not find what it needs pruned.
const PRUNE_MIN_AGE: Duration = Duration::from_secs(60);

/// Where the follower stands, for `/metrics` and `/api/admin/pool`.
#[derive(Debug)]
pub struct FeedStatus {
    /// The frontier's settled position (`i64::MIN` while not following).
    position: AtomicI64,
    /// When the last read that applied everything it found started.
    caught_up: parking_lot::Mutex<Instant>,
}

impl Default for FeedStatus {
    fn default() -> Self {
        Self {
            position: AtomicI64::new(i64::MIN),
            caught_up: parking_lot::Mutex::new(Instant::now()),
        }
    }
}

impl FeedStatus {
    /// The position and the lag in seconds (every change committed longer ago than this is
    /// applied); `None` when this replica follows no feed.
    pub fn get(&self) -> Option<(i64, f64)> {
        let position = self.position.load(Ordering::Relaxed);
        (position != i64::MIN).then(|| (position, self.caught_up.lock().elapsed().as_secs_f64()))
    }
}

/// The follower task's state.
pub(super) struct Follower {
    pub(super) store: Store,
    pub(super) engine: Arc<Engine>,
    pub(super) orchestrator: Arc<Orchestrator>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) ledger: Arc<Ledger>,
    pub(super) cluster: Arc<Cluster>,
    pub(super) status: Arc<FeedStatus>,
    pub(super) frontier: Frontier,
    pub(super) interval: Duration,
    pub(super) retention: Duration,
}

/// Where a follower starts: read before the engine loads the tables, so that everything at or
/// below the frontier is in what it loads.
pub async fn start_position(store: &Store) -> Result<Frontier, store::Error> {
    let s = store.feed_start(MAX_GAPS).await?;
    Ok(Frontier::resume(s.horizon, s.top, &s.gaps, s.xmax))
}

impl Follower {
    pub(super) fn spawn(mut self) -> JoinHandle<()> {
        self.publish();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reads = 0u32;
            let mut warned: Option<Instant> = None;
            loop {
                tick.tick().await;
                let result = match self.step().await {
                    Ok(()) if reads % PRUNE_EVERY == PRUNE_EVERY - 1 => self.prune().await,
                    other => other,
                };
                reads = reads.wrapping_add(1);
                if let Err(e) = result {
                    self.metrics.feed.read_errors.inc();
                    // At most one warning every 10 s: the database may be down for a while.
                    if warned.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "reading the change feed failed; retrying");
                        warned = Some(Instant::now());
                    }
                }
            }
        })
    }

    /// One read, and the changes it brought applied.
    async fn step(&mut self) -> Result<(), store::Error> {
        let started = Instant::now();
        let (above, missing) = self.frontier.wanted();
        let read = self
            .store
            .read_changes(above, &missing, BATCH, BATCH_BYTES)
            .await?;
        self.metrics.feed.reads.inc();
        if self.frontier.settled() < read.horizon {
            tracing::warn!(
                position = self.frontier.settled(),
                horizon = read.horizon,
                "this replica fell behind what the change feed keeps; reloading from the tables"
            );
            return self.reload().await;
        }
        let positions: Vec<i64> = read.entries.iter().map(|e| e.pos).collect();
        // Ascending, like the entries.
        let fresh = self.frontier.read(&positions, read.xmin, read.xmax);
        for entry in read.entries.iter() {
            if fresh.binary_search(&entry.pos).is_err() {
                continue;
            }
            if matches!(entry.change, Change::Reload) {
                return self.reload().await;
            }
            self.apply(entry, read.now_ms);
        }
        if !read.cut {
            *self.status.caught_up.lock() = started;
        }
        self.publish();
        Ok(())
    }

    fn apply(&self, entry: &FeedEntry, now_ms: i64) {
        let own = entry.replica == self.cluster.id();
        let engine = &self.engine;
        let applied = self
            .ledger
            .followed(entry.pos, own, || match &entry.change {
                Change::Feedback(rows) => engine.add_feedback(rows),
                Change::Unfeedback(rows) => engine.remove_feedback(rows),
                Change::Items(items) => engine.upsert_items(items),
                Change::DeleteItem(id) => engine.delete_item(id),
                Change::Users(ids) => engine.ensure_users(ids.iter().map(String::as_str)),
                Change::DeleteUser(id) => engine.delete_user(id),
                Change::Reload => {}
            });
        if !own {
            if let Change::Feedback(rows) = &entry.change {
                self.orchestrator.feedback_committed(rows);
            }
            let delay = (now_ms - entry.at_ms).max(0) as f64 / 1000.0;
            self.metrics.feed.delay_seconds.observe(delay);
        }
        if applied {
            self.metrics.feed.record_applied(own);
        }
    }

    /// Reloads from the tables, starting the frontier over from before the load.
    async fn reload(&mut self) -> Result<(), store::Error> {
        let frontier = start_position(&self.store).await?;
        self.engine
            .refresh(&self.store)
            .await
            .map_err(|e| match e {
                engine::Error::Load(e) => e,
            })?;
        self.ledger.reloaded(|p| frontier.passed(p));
        self.frontier = frontier;
        self.metrics.feed.reloads.inc();
        self.publish();
        Ok(())
    }

    /// Prunes what every live replica has passed (see `Store::prune_changes`).
    async fn prune(&self) -> Result<(), store::Error> {
        let ms = |d: Duration| d.as_millis() as i64;
        let (_, pruned) = self
            .store
            .prune_changes(
                self.frontier.settled(),
                ms(self.retention),
                ms(PRUNE_MIN_AGE),
            )
            .await?;
        self.metrics.feed.pruned.inc_by(pruned as u64);
        Ok(())
    }

    /// Makes the position known: to the metrics, the status, and the next heartbeat.
    fn publish(&self) {
        let settled = self.frontier.settled();
        self.metrics.feed.position.set(settled);
        self.status.position.store(settled, Ordering::Relaxed);
        self.cluster.set_feed_position(settled);
    }
}
