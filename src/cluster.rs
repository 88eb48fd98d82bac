//! Replicas sharing one PostgreSQL: the registry with heartbeats, each replica's share of
//! `cluster.connection_budget`, the training lock, and the trained snapshots one replica publishes
//! for the others to load.
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Row};
use tokio::sync::watch;

use crate::config::{ClusterConfig, Pooler, seconds};
use crate::db::{self, Conn, Pool};

/// How long a starting replica keeps backing off a full budget before it registers anyway (the
/// others then shrink for it).
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

/// Size of one stored piece of a snapshot.
const CHUNK_BYTES: usize = 4 << 20;

/// Errors of cluster coordination.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("snapshot {version} is incomplete or does not decode: {reason}")]
    Snapshot { version: u64, reason: String },
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Db(db::Error::Driver(e))
    }
}

/// A replica as recorded in the registry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replica {
    pub id: String,
    pub url: Option<String>,
    pub ceiling: u32,
    /// Milliseconds since its last heartbeat, by the server's clock.
    pub heartbeat_age_ms: i64,
}

/// A published snapshot, as listed in `reco_snapshots`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub version: u64,
    /// Server time of its training, epoch milliseconds.
    pub trained_ms: i64,
    /// Server time now, epoch milliseconds (to tell its age).
    pub now_ms: i64,
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
    keep_snapshots: u32,
    url: parking_lot::Mutex<Option<String>>,
    /// The connection heartbeats run on.
    coordination: tokio::sync::Mutex<Option<Conn>>,
    /// The newest complete snapshot in the database, as of the last heartbeat.
    published: watch::Sender<u64>,
    /// When the last heartbeat succeeded (ms after `epoch`).
    last_beat_ms: AtomicU64,
    epoch: Instant,
    /// Live replicas at the last heartbeat.
    live: std::sync::atomic::AtomicU32,
}

/// Lock keys: fixed per purpose and application name, so two deployments in one database do not
/// share a budget or a trainer.
fn lock_key(purpose: &str, application_name: &str) -> i64 {
    crate::orchestrator::stable_hash(&format!("reco:{purpose}:{application_name}")) as i64
}

/// The database server's clock in epoch milliseconds, as SQL: every time in the registry is the
/// server's, so replicas with skewed clocks agree.
macro_rules! server_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

/// Backends of `application_name` the server shows: every replica's connections, including
/// closing ones whose backends have not exited yet and a starting replica's first one.
async fn backends_on_server(
    pool: &Pool,
    conn: &mut Conn,
    application_name: &str,
) -> Result<i64, Error> {
    Ok(pool
        .query("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(application_name)
        .fetch_one(&mut **conn)
        .await?
        .try_get(0)?)
}

/// A replica's share of the budget: `budget - reserve` split evenly over `live` replicas, the
/// first `remainder` (oldest first) taking one more; never more than `max_each`.
pub fn share(budget: u32, reserve: u32, live: usize, rank: usize, max_each: u32) -> u32 {
    let live = live.max(1) as u32;
    let usable = budget.saturating_sub(reserve);
    let base = usable / live;
    let extra = u32::from((rank as u32) < usable % live);
    (base + extra).min(max_each).max(1)
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
        let cluster = Arc::new(Self {
            pool,
            id: uuid::Uuid::new_v4().to_string(),
            application_name: application_name.to_string(),
            budget,
            reserve: config.join_reserve,
            heartbeat: seconds(config.heartbeat),
            dead_after: seconds(config.dead_after),
            keep_snapshots: config.keep_snapshots,
            url: parking_lot::Mutex::new(config.advertise_url.clone()),
            coordination: tokio::sync::Mutex::new(None),
            published: watch::channel(0).0,
            last_beat_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            live: std::sync::atomic::AtomicU32::new(1),
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
        let url = self.url.lock().clone();
        let mine = pool.ceiling();
        conn.begin_transaction().await?;
        let step = async {
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
            let mut others = 0u32;
            let mut recorded = mine;
            let mut rank = 0;
            for (i, row) in rows.iter().enumerate() {
                let id: String = row.try_get(0)?;
                let ceiling = row.try_get::<i32, _>(1)?.max(0) as u32;
                if id == self.id {
                    rank = i;
                    recorded = ceiling;
                } else {
                    others += ceiling;
                }
            }
            // Backends the server shows for this application that are not this replica's: a
            // replica's closed connections linger while their backends exit, and a starting one's
            // first connection is not registered yet. Growth counts them too.
            let on_server = backends_on_server(pool, conn, &self.application_name).await?;
            let others_on_server = (on_server.max(0) as u32).saturating_sub(pool.open_connections());
            others = others.max(others_on_server);
            self.live.store(rows.len() as u32, Ordering::Relaxed);
            let target = share(
                self.budget,
                self.reserve,
                rows.len(),
                rank,
                pool.settings().ceiling(),
            );
            let latest: Option<i64> = pool
                .query(
                    "SELECT max(version) FROM reco_snapshots WHERE complete",
                )
                .fetch_one(&mut **conn)
                .await?
                .try_get(0)?;
            Ok::<_, Error>((target, recorded, others, latest))
        }
        .await;
        let (target, recorded, others, latest) = match step {
            Ok(v) => v,
            Err(e) => {
                let _ = conn.rollback_transaction().await;
                return Err(e);
            }
        };
        if let Some(v) = latest {
            self.published.send_if_modified(|cur| {
                let changed = *cur != v as u64;
                *cur = v as u64;
                changed
            });
        }
        let room = self
            .budget
            .saturating_sub(self.reserve)
            .saturating_sub(others);
        let grow_to = target.min(room.max(recorded));
        if target < recorded || target < mine {
            // Shrink: the lock is not needed (others only gain room once the row is lowered).
            conn.commit_transaction().await?;
            // Bounded well below `dead_after`: heartbeats wait while this runs.
            let wait = pool.settings().pool_timeout.min(self.dead_after / 3);
            let reached = pool.set_ceiling(target, wait).await;
            conn.begin_transaction().await?;
            self.record_ceiling(conn, reached).await?;
            conn.commit_transaction().await?;
        } else if grow_to > recorded {
            self.record_ceiling(conn, grow_to).await?;
            conn.commit_transaction().await?;
            pool.set_ceiling(grow_to, Duration::ZERO).await;
        } else {
            conn.commit_transaction().await?;
            if recorded > mine {
                // Recorded earlier, not yet applied (a previous grow was interrupted).
                pool.set_ceiling(recorded, Duration::ZERO).await;
            }
        }
        Ok(())
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

    /// Takes the training lock if no other replica holds it. Behind a transaction-mode pooler the
    /// lock lives in a transaction kept open for the run (a session lock would stay on whichever
    /// server connection ran it); otherwise it is a session lock.
    pub async fn try_training_lock(&self) -> Result<Option<TrainingLock>, Error> {
        let mut conn = self.pool.acquire().await?;
        let key = lock_key("train", &self.application_name);
        let transactional = self.pool.pooler() == Pooler::Transaction;
        // If this task is cancelled with the lock held, the connection must not go back to the
        // pool with it.
        conn.discard_on_drop();
        let sql = if transactional {
            conn.begin_transaction().await?;
            "SELECT pg_try_advisory_xact_lock($1)"
        } else {
            "SELECT pg_try_advisory_lock($1)"
        };
        let got: bool = self
            .pool
            .query(sql)
            .bind(key)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if !got {
            if transactional {
                conn.rollback_transaction().await?;
            }
            conn.keep_on_drop();
            return Ok(None);
        }
        Ok(Some(TrainingLock {
            conn,
            key,
            transactional,
            pool: self.pool.clone(),
        }))
    }

    /// The newest complete snapshot in the database.
    pub async fn latest_published(&self) -> Result<Option<Published>, Error> {
        let mut conn = self.pool.acquire().await?;
        let row = self
            .pool
            .query(concat!(
                "SELECT version, trained_ms, ",
                server_ms!(),
                " FROM reco_snapshots WHERE complete ORDER BY version DESC LIMIT 1"
            ))
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|r| {
            Ok(Published {
                version: r.try_get::<i64, _>(0)? as u64,
                trained_ms: r.try_get(1)?,
                now_ms: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Stores an encoded snapshot as `version` (one transaction), and deletes all but the newest
    /// `keep_snapshots`.
    pub async fn publish(&self, version: u64, bytes: &[u8]) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await?;
        let pool = &self.pool;
        conn.begin_transaction().await?;
        let write = async {
            let chunks = bytes.chunks(CHUNK_BYTES).collect::<Vec<_>>();
            pool.query(concat!(
                "INSERT INTO reco_snapshots (version, trained_by, trained_ms, chunks, bytes, complete) \
                 VALUES ($1, $2, ",
                server_ms!(),
                ", $3, $4, TRUE)"
            ))
            .bind(version as i64)
            .bind(&self.id)
            .bind(chunks.len() as i32)
            .bind(bytes.len() as i64)
            .execute(&mut *conn)
            .await?;
            for (i, chunk) in chunks.iter().enumerate() {
                pool.query("INSERT INTO reco_snapshot_chunks (version, chunk, data) VALUES ($1, $2, $3)")
                    .bind(version as i64)
                    .bind(i as i32)
                    .bind(chunk.to_vec())
                    .execute(&mut *conn)
                    .await?;
            }
            pool.query(AssertSqlSafe(format!(
                "DELETE FROM reco_snapshots WHERE version NOT IN \
                 (SELECT version FROM reco_snapshots ORDER BY version DESC LIMIT {})",
                self.keep_snapshots
            )))
            .execute(&mut *conn)
            .await?;
            Ok::<_, Error>(())
        }
        .await;
        match write {
            Ok(()) => {
                conn.commit_transaction().await?;
                Ok(())
            }
            Err(e) => {
                let _ = conn.rollback_transaction().await;
                Err(e)
            }
        }
    }

    /// The encoded snapshot `version`.
    pub async fn fetch(&self, version: u64) -> Result<Vec<u8>, Error> {
        let mut conn = self.pool.acquire().await?;
        let head = self
            .pool
            .query("SELECT chunks, bytes FROM reco_snapshots WHERE version = $1 AND complete")
            .bind(version as i64)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(head) = head else {
            return Err(Error::Snapshot {
                version,
                reason: "not in the database (deleted by a newer one?)".into(),
            });
        };
        let (chunks, bytes): (i32, i64) = (head.try_get(0)?, head.try_get(1)?);
        let mut out = Vec::with_capacity(bytes.max(0) as usize);
        let mut rows = 0;
        for n in 0..chunks {
            let row = self
                .pool
                .query("SELECT data FROM reco_snapshot_chunks WHERE version = $1 AND chunk = $2")
                .bind(version as i64)
                .bind(n)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else { break };
            let data: Vec<u8> = row.try_get(0)?;
            out.extend_from_slice(&data);
            rows += 1;
        }
        if rows != chunks || out.len() as i64 != bytes {
            return Err(Error::Snapshot {
                version,
                reason: format!("{rows} of {chunks} chunks, {} of {bytes} bytes", out.len()),
            });
        }
        Ok(out)
    }

    /// The next snapshot version: one past the newest stored (call with the training lock held).
    pub async fn next_version(&self) -> Result<u64, Error> {
        let mut conn = self.pool.acquire().await?;
        let v: Option<i64> = self
            .pool
            .query("SELECT max(version) FROM reco_snapshots")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok(v.unwrap_or(0) as u64 + 1)
    }
}

/// The training lock; released by [`TrainingLock::release`], or by closing its connection when
/// dropped (a cancelled run).
pub struct TrainingLock {
    conn: Conn,
    key: i64,
    transactional: bool,
    pool: Pool,
}

impl TrainingLock {
    pub async fn release(mut self) {
        let released = if self.transactional {
            self.conn.commit_transaction().await
        } else {
            self.pool
                .query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut *self.conn)
                .await
                .map(|_| ())
                .map_err(db::Error::from)
        };
        if released.is_ok() {
            self.conn.keep_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_the_budget_less_the_reserve() {
        // 15 with one kept for a joiner: 14 over three replicas is 5, 5, 4.
        let three: Vec<u32> = (0..3).map(|r| share(15, 1, 3, r, 15)).collect();
        assert_eq!(three, [5, 5, 4]);
        assert_eq!(three.iter().sum::<u32>(), 14);
        assert_eq!([share(15, 1, 2, 0, 15), share(15, 1, 2, 1, 15)], [7, 7]);
        assert_eq!(share(15, 1, 1, 0, 15), 14);
        // Capped by the replica's own pool_size + max_overflow.
        assert_eq!(share(100, 1, 1, 0, 15), 15);
        // Never zero: a replica needs its heartbeat connection.
        assert_eq!(share(3, 1, 5, 4, 15), 1);
        for live in 1..20usize {
            let total: u32 = (0..live).map(|r| share(40, 1, live, r, 100)).sum();
            assert!(total <= 39, "{live} replicas: {total}");
        }
    }

    #[test]
    fn lock_keys_differ_by_purpose_and_application() {
        assert_ne!(lock_key("train", "reco"), lock_key("budget", "reco"));
        assert_ne!(lock_key("train", "reco"), lock_key("train", "reco-b"));
        assert_eq!(lock_key("train", "reco"), lock_key("train", "reco"));
    }
}
