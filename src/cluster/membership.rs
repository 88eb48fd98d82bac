//! This replica's membership: registration, heartbeats that move its pool ceiling toward its
//! share of `cluster.connection_budget`, and leaving at shutdown.
//!
//! The budget holds because of two rules, both enforced here:
//! - a replica raises the ceiling it records in `reco_replicas` only while holding the budget's
//!   advisory lock, and only as far as the recorded ceilings of all live replicas stay within
//!   `connection_budget - join_reserve`; its pool grows after the row says so;
//! - a replica lowers its recorded ceiling only after its pool really shrank
//!   ([`Pool::set_ceiling`] waits for checkouts to end and idle connections to close).
//!
//! So the recorded ceilings always bound what is open, and their sum never passes the budget, also
//! while shares move. A replica starting up opens one connection before it can register: that is
//! what `join_reserve` keeps free. A dead replica (no heartbeat for `dead_after`) keeps its recorded
//! share until it is declared dead; its connections closed when its process ended.
//!
//! Heartbeats use one connection the replica keeps for the purpose, so that a saturated pool cannot
//! delay them past `dead_after`. Times are the database server's clock, so replicas with skewed
//! clocks agree on who is alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Row;
use tokio::sync::watch;

use super::budget::{Move, next_move, share};
use super::error::Error;
use super::lock::{TrainingLock, try_training_lock};
use super::snapshots::SnapshotStore;
use super::sql::{backends_on_server, lock_key, server_ms};
use crate::config::{ClusterConfig, seconds};
use crate::db::{Conn, Pool};

/// How long a starting replica keeps backing off a full budget before it registers anyway (the
/// others then shrink for it).
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

/// A replica as recorded in the registry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replica {
    pub id: String,
    pub url: Option<String>,
    pub ceiling: u32,
    /// Milliseconds since its last heartbeat, by the server's clock.
    pub heartbeat_age_ms: i64,
}

/// This replica's membership in the cluster.
pub struct Cluster {
    pool: Pool,
    id: String,
    application_name: String,
    budget: u32,
    reserve: u32,
    heartbeat: Duration,
    dead_after: Duration,
    snapshots: SnapshotStore,
    url: parking_lot::Mutex<Option<String>>,
    /// The connection heartbeats run on.
    coordination: tokio::sync::Mutex<Option<Conn>>,
    /// The newest complete snapshot in the database, as of the last heartbeat.
    published: watch::Sender<u64>,
    /// When the last heartbeat succeeded (ms after `epoch`).
    last_beat_ms: AtomicU64,
    epoch: Instant,
    /// Live replicas at the last heartbeat.
    live: AtomicU32,
}

/// What one heartbeat read from the registry.
struct Seen {
    /// This replica's share.
    target: u32,
    /// The ceiling recorded for this replica.
    recorded: u32,
    /// What the other replicas hold: recorded ceilings, or backends on the server if more.
    others: u32,
    /// The newest complete snapshot.
    latest: Option<u64>,
}

impl Cluster {
    /// Waits until this starting replica's first connection fits the budget. A replica needs one
    /// connection before it can register, and `join_reserve` keeps one free for that; replicas
    /// starting at the same moment would each take it. So a starting replica that finds more of
    /// the application's backends on the server than the budget hangs up at once and tries again
    /// after a random pause: the excess lasts one round trip instead of until the others shrink.
    pub async fn admit(
        pool: &Pool,
        config: &ClusterConfig,
        application_name: &str,
    ) -> Result<(), Error> {
        let Some(budget) = config.connection_budget else {
            return Ok(());
        };
        let started = Instant::now();
        loop {
            let mut conn = pool.acquire().await?;
            let on_server = backends_on_server(pool, &mut conn, application_name).await?;
            if on_server <= i64::from(budget) || started.elapsed() > JOIN_PATIENCE {
                return Ok(());
            }
            conn.discard_on_drop();
            drop(conn);
            let pause = 100 + rand::random::<u64>() % 900;
            tracing::info!(
                on_server,
                budget,
                pause_ms = pause,
                "the budget is full while another replica joins; retrying"
            );
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Registers this replica (over the connection it keeps for heartbeats) and runs the first
    /// heartbeat. The pool should have been opened with ceiling 1.
    pub async fn join(
        pool: Pool,
        config: &ClusterConfig,
        application_name: &str,
    ) -> Result<Arc<Self>, Error> {
        let budget = config.connection_budget.unwrap_or(u32::MAX);
        let id = uuid::Uuid::new_v4().to_string();
        let cluster = Arc::new(Self {
            snapshots: SnapshotStore::new(pool.clone(), id.clone(), config.keep_snapshots),
            pool,
            id,
            application_name: application_name.to_string(),
            budget,
            reserve: config.join_reserve,
            heartbeat: seconds(config.heartbeat),
            dead_after: seconds(config.dead_after),
            url: parking_lot::Mutex::new(config.advertise_url.clone()),
            coordination: tokio::sync::Mutex::new(None),
            published: watch::channel(0).0,
            last_beat_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            live: AtomicU32::new(1),
        });
        cluster.beat().await?;
        tracing::info!(
            id = %cluster.id,
            budget,
            ceiling = cluster.pool.ceiling(),
            "joined the cluster"
        );
        Ok(cluster)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn budget(&self) -> u32 {
        self.budget
    }

    /// Live replicas (this one included) as of the last heartbeat.
    pub fn live_replicas(&self) -> u32 {
        self.live.load(Ordering::Relaxed)
    }

    /// Sets the URL recorded for this replica unless one was configured.
    pub fn advertise_default(&self, url: String) {
        let mut current = self.url.lock();
        if current.is_none() {
            *current = Some(url);
        }
    }

    /// The snapshots published in the database.
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    /// Takes the training lock if no other replica holds it.
    pub async fn try_training_lock(&self) -> Result<Option<TrainingLock>, Error> {
        try_training_lock(&self.pool, &self.application_name).await
    }

    /// Notified with the newest complete snapshot version after each heartbeat.
    pub fn published(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Heartbeats every `cluster.heartbeat` until the task is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        let period = self.heartbeat;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                if let Err(e) = me.beat().await {
                    tracing::warn!(error = %e, "cluster heartbeat failed");
                    me.fence().await;
                }
            }
        })
    }

    /// Without a successful heartbeat for half of `dead_after`, the others may soon count this
    /// replica out and hand its share around: drop to one connection before they do.
    async fn fence(&self) {
        let since =
            self.epoch.elapsed().as_millis() as u64 - self.last_beat_ms.load(Ordering::Relaxed);
        if Duration::from_millis(since) >= self.dead_after / 2 && self.pool.ceiling() > 1 {
            tracing::warn!("no heartbeat for {since} ms: lowering the pool ceiling to 1");
            self.pool.set_ceiling(1, self.dead_after / 2).await;
        }
    }

    /// One heartbeat: record liveness, drop dead replicas, then move this replica's ceiling toward
    /// its share (shrinking before recording, recording before growing).
    pub async fn beat(&self) -> Result<(), Error> {
        let mut guard = self.coordination.lock().await;
        let stale = guard.as_ref().is_some_and(|c| c.is_stale());
        if stale {
            *guard = None;
        }
        if guard.is_none() {
            *guard = Some(self.pool.acquire().await?);
        }
        let conn = guard.as_mut().expect("just set");
        let result = self.beat_on(conn).await;
        if result.is_err() {
            // The session's state is unknown (a transaction may be open): replace it next time.
            if let Some(mut c) = guard.take() {
                c.discard_on_drop();
            }
        } else {
            self.last_beat_ms
                .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        result
    }

    async fn beat_on(&self, conn: &mut Conn) -> Result<(), Error> {
        let pool = &self.pool;
        let mine = pool.ceiling();
        conn.begin_transaction().await?;
        let seen = match self.register_and_count(conn, mine).await {
            Ok(v) => v,
            Err(e) => {
                let _ = conn.rollback_transaction().await;
                return Err(e);
            }
        };
        if let Some(v) = seen.latest {
            self.published.send_if_modified(|cur| {
                let changed = *cur != v;
                *cur = v;
                changed
            });
        }
        let step = next_move(
            self.budget,
            self.reserve,
            seen.target,
            seen.recorded,
            mine,
            seen.others,
        );
        match step {
            Move::Shrink(target) => {
                // The lock is not needed (others only gain room once the row is lowered).
                conn.commit_transaction().await?;
                // Bounded well below `dead_after`: heartbeats wait while this runs.
                let wait = pool.settings().pool_timeout.min(self.dead_after / 3);
                let reached = pool.set_ceiling(target, wait).await;
                conn.begin_transaction().await?;
                self.record_ceiling(conn, reached).await?;
                conn.commit_transaction().await?;
            }
            Move::Grow(to) => {
                self.record_ceiling(conn, to).await?;
                conn.commit_transaction().await?;
                pool.set_ceiling(to, Duration::ZERO).await;
            }
            Move::Catch(recorded) => {
                conn.commit_transaction().await?;
                pool.set_ceiling(recorded, Duration::ZERO).await;
            }
            Move::Stay => conn.commit_transaction().await?,
        }
        Ok(())
    }

    /// Under the budget's lock (in the caller's transaction): records this replica's heartbeat,
    /// deletes dead replicas, and reads what the others hold and the newest snapshot.
    async fn register_and_count(&self, conn: &mut Conn, mine: u32) -> Result<Seen, Error> {
        let pool = &self.pool;
        let url = self.url.lock().clone();
        pool.query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key("budget", &self.application_name))
            .execute(&mut **conn)
            .await?;
        let now: i64 = pool
            .query(concat!("SELECT ", server_ms!()))
            .fetch_one(&mut **conn)
            .await?
            .try_get(0)?;
        pool.query(
            "INSERT INTO reco_replicas (id, url, application_name, started_ms, heartbeat_ms, ceiling) \
             VALUES ($1, $2, $3, $4, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms, url = excluded.url",
        )
        .bind(&self.id)
        .bind(url)
        .bind(&self.application_name)
        .bind(now)
        .bind(mine as i32)
        .execute(&mut **conn)
        .await?;
        let dead = pool
            .query(
                "DELETE FROM reco_replicas WHERE application_name = $1 AND heartbeat_ms < $2 \
                 RETURNING id, ceiling",
            )
            .bind(&self.application_name)
            .bind(now - self.dead_after.as_millis() as i64)
            .fetch_all(&mut **conn)
            .await?;
        for row in &dead {
            let id: String = row.try_get(0)?;
            let ceiling: i32 = row.try_get(1)?;
            tracing::warn!(replica = %id, ceiling, "replica missed its heartbeats: its share is handed out");
        }
        let rows = pool
            .query(
                "SELECT id, ceiling FROM reco_replicas WHERE application_name = $1 \
                 ORDER BY started_ms, id",
            )
            .bind(&self.application_name)
            .fetch_all(&mut **conn)
            .await?;
        let mut seen = Seen {
            target: 0,
            recorded: mine,
            others: 0,
            latest: None,
        };
        let mut rank = 0;
        for (i, row) in rows.iter().enumerate() {
            let id: String = row.try_get(0)?;
            let ceiling = row.try_get::<i32, _>(1)?.max(0) as u32;
            if id == self.id {
                rank = i;
                seen.recorded = ceiling;
            } else {
                seen.others += ceiling;
            }
        }
        // Backends the server shows for this application that are not this replica's: a
        // replica's closed connections linger while their backends exit, and a starting one's
        // first connection is not registered yet. Growth counts them too.
        let on_server = backends_on_server(pool, conn, &self.application_name).await?;
        let others_on_server = (on_server.max(0) as u32).saturating_sub(pool.open_connections());
        seen.others = seen.others.max(others_on_server);
        self.live.store(rows.len() as u32, Ordering::Relaxed);
        let max_each = pool.settings().ceiling();
        seen.target = share(self.budget, self.reserve, rows.len(), rank, max_each);
        let latest: Option<i64> = pool
            .query("SELECT max(version) FROM reco_snapshots WHERE complete")
            .fetch_one(&mut **conn)
            .await?
            .try_get(0)?;
        seen.latest = latest.map(|v| v as u64);
        Ok(seen)
    }

    async fn record_ceiling(&self, conn: &mut Conn, ceiling: u32) -> Result<(), Error> {
        self.pool
            .query("UPDATE reco_replicas SET ceiling = $1 WHERE id = $2")
            .bind(ceiling as i32)
            .bind(&self.id)
            .execute(&mut **conn)
            .await?;
        Ok(())
    }

    /// Leaves at shutdown: lowers the pool to the heartbeat connection, records that, and closes
    /// it. The row stays until `dead_after` passes, so no replica grows while this one's last
    /// connection may still be open.
    pub async fn leave(&self) {
        self.pool.set_ceiling(1, Duration::from_secs(5)).await;
        let mut guard = self.coordination.lock().await;
        if let Some(conn) = guard.as_mut()
            && conn.begin_transaction().await.is_ok()
        {
            let _ = self.record_ceiling(conn, 1).await;
            let _ = conn.commit_transaction().await;
        }
        if let Some(mut conn) = guard.take() {
            conn.discard_on_drop();
        }
    }

    /// The live replicas of this application, oldest first.
    pub async fn replicas(pool: &Pool, application_name: &str) -> Result<Vec<Replica>, Error> {
        let mut conn = pool.acquire().await?;
        let rows = pool
            .query(concat!(
                "SELECT id, url, ceiling, ",
                server_ms!(),
                " - heartbeat_ms FROM reco_replicas WHERE application_name = $1 \
                 ORDER BY started_ms, id"
            ))
            .bind(application_name)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Replica {
                    id: r.try_get(0)?,
                    url: r.try_get(1)?,
                    ceiling: r.try_get::<i32, _>(2)?.max(0) as u32,
                    heartbeat_age_ms: r.try_get(3)?,
                })
            })
            .collect()
    }
}
