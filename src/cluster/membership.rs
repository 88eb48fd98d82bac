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
//! delay them past `dead_after`; when it breaks, the next one is opened under the permit the old
//! one held ([`Slot`]), never queued behind request traffic. A replica the budget has no room for
//! (more replicas than connections) is parked: ceiling 0, no connection between heartbeats, each
//! heartbeat one short connection through `join_reserve` as a starting replica's first one. Its
//! `/health/ready` is red (the pool cannot be pinged) until an older replica leaves. Times are the
//! database server's clock, so replicas with skewed clocks agree on who is alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Row;
use tokio::sync::watch;

use super::budget::{Move, next_move};
use super::error::Error;
use super::lock::{TrainingLock, try_training_lock};
use super::snapshots::SnapshotStore;
use super::sql::{backends_on_server, server_ms};
use crate::config::{ClusterConfig, seconds};
use crate::db::{Conn, Pool, Slot};

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
    /// Where its change-feed follower stood at that heartbeat.
    pub feed_position: Option<i64>,
}

/// This replica's membership in the cluster.
pub struct Cluster {
    pub(super) pool: Pool,
    pub(super) id: String,
    pub(super) application_name: String,
    pub(super) budget: u32,
    pub(super) reserve: u32,
    heartbeat: Duration,
    pub(super) dead_after: Duration,
    snapshots: SnapshotStore,
    pub(super) url: parking_lot::Mutex<Option<String>>,
    /// What heartbeats run on.
    coordination: tokio::sync::Mutex<Hold>,
    /// Registered at least once: a later registration (the row was counted out) takes only the
    /// room left.
    pub(super) registered: AtomicBool,
    /// Set once the engine is in memory ([`Cluster::may_park`]): before, a replica whose share is
    /// 0 keeps its one connection (inside `join_reserve`) to load what it will serve.
    may_park: AtomicBool,
    /// The newest complete snapshot in the database, as of the last heartbeat.
    published: watch::Sender<u64>,
    /// When the last heartbeat succeeded (ms after `epoch`).
    last_beat_ms: AtomicU64,
    epoch: Instant,
    /// Live replicas at the last heartbeat.
    pub(super) live: AtomicU32,
    /// Where this replica's change-feed follower stands (`i64::MIN` until it has a position):
    /// recorded with each heartbeat, so pruning keeps what it still needs.
    feed_pos: AtomicI64,
}

/// What the heartbeat keeps between beats.
enum Hold {
    /// Nothing: before the first beat, or parked at ceiling 0.
    Nothing,
    /// The permit of a connection that broke, kept for the next one.
    Slot(Slot),
    Conn(Conn),
}

/// How a heartbeat ended.
enum Beat {
    /// Keep the connection for the next beat, so a saturated pool cannot delay it.
    Keep,
    /// The share is one connection (or none, while the engine is still loading): kept by the
    /// heartbeat it would leave nothing for the engine, the writer and the trainer, so it goes
    /// back to the pool between beats.
    Lend,
    /// The share is 0 and the engine is loaded: give back the heartbeat's own permit and park.
    Park,
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
            coordination: tokio::sync::Mutex::new(Hold::Nothing),
            registered: AtomicBool::new(false),
            may_park: AtomicBool::new(false),
            published: watch::channel(0).0,
            last_beat_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            live: AtomicU32::new(1),
            feed_pos: AtomicI64::new(i64::MIN),
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

    /// Records where this replica's feed follower stands (sent with the next heartbeat).
    pub fn set_feed_position(&self, settled: i64) {
        self.feed_pos.store(settled, Ordering::Relaxed);
    }

    /// Where this replica's feed follower stands, once it has a position.
    pub fn feed_position(&self) -> Option<i64> {
        let pos = self.feed_pos.load(Ordering::Relaxed);
        (pos != i64::MIN).then_some(pos)
    }

    /// Lets heartbeats park this replica when its share is 0: its engine is loaded and it can
    /// answer reads without the database.
    pub fn may_park(&self) {
        self.may_park.store(true, Ordering::Relaxed);
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
        let mut hold = self.coordination.lock().await;
        let mut conn = self.connection(&mut hold).await?;
        let result = self.beat_on(&mut conn).await;
        match result {
            // A parked replica's connection is outside the gate: closed before the next beat
            // opens another through the reserve.
            Ok(Beat::Keep | Beat::Lend) if !conn.holds_permit() => drop(conn.into_slot().await),
            Ok(Beat::Keep) => *hold = Hold::Conn(conn),
            // Back to the pool; the next beat checks out again.
            Ok(Beat::Lend) => drop(conn),
            Ok(Beat::Park) => {
                drop(conn.into_slot().await);
                self.park().await?;
            }
            Err(e) => {
                // The session's state is unknown (a transaction may be open): replace the
                // connection next time, under the same permit.
                *hold = conn.into_slot().await.map_or(Hold::Nothing, Hold::Slot);
                return Err(e);
            }
        }
        self.last_beat_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The heartbeat's connection: the one kept, a new one under a kept permit, a first one from
    /// the pool (bounded well below `dead_after`), or a parked replica's short one.
    async fn connection(&self, hold: &mut Hold) -> Result<Conn, Error> {
        let mut slot = match std::mem::replace(hold, Hold::Nothing) {
            Hold::Conn(c) if !c.is_stale() => return Ok(c),
            Hold::Conn(c) => c.into_slot().await,
            Hold::Slot(s) => Some(s),
            Hold::Nothing => None,
        };
        if slot.is_some() {
            let conn = self.pool.acquire_in(&mut slot).await;
            if let Some(s) = slot {
                *hold = Hold::Slot(s);
            }
            return Ok(conn?);
        }
        if self.pool.ceiling() == 0 {
            return Ok(self.pool.acquire_parked().await?);
        }
        let wait = self.short_wait();
        let conn = tokio::time::timeout(wait, self.pool.acquire())
            .await
            .map_err(|_| crate::db::Error::Busy { waited: wait })??;
        conn.hold_on_purpose();
        Ok(conn)
    }

    /// How long a heartbeat may wait for the pool (a checkout, a shrink): well below `dead_after`,
    /// since the next heartbeats wait meanwhile.
    fn short_wait(&self) -> Duration {
        self.pool.settings().pool_timeout.min(self.dead_after / 3)
    }

    /// Lowers the pool to 0 (the heartbeat's permit already given back) and records what it
    /// reached over a parked connection.
    async fn park(&self) -> Result<(), Error> {
        let wait = self.short_wait();
        let reached = self.pool.set_ceiling(0, wait).await;
        let mut conn = self.pool.acquire_parked().await?;
        conn.begin_transaction().await?;
        self.record_ceiling(&mut conn, reached).await?;
        conn.commit_transaction().await?;
        tracing::warn!(
            budget = self.budget,
            live = self.live_replicas(),
            "parked: the connection budget has no room for this replica; reads are served from \
             memory, writes answer 503, until an older replica leaves"
        );
        Ok(())
    }

    async fn beat_on(&self, conn: &mut Conn) -> Result<Beat, Error> {
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
            Move::Shrink(0) if conn.holds_permit() => {
                conn.commit_transaction().await?;
                if self.may_park.load(Ordering::Relaxed) {
                    return Ok(Beat::Park);
                }
            }
            Move::Shrink(target) => {
                // The lock is not needed (others only gain room once the row is lowered).
                conn.commit_transaction().await?;
                // Bounded well below `dead_after`: heartbeats wait while this runs.
                let wait = self.short_wait();
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
        Ok(if seen.target <= 1 {
            Beat::Lend
        } else {
            Beat::Keep
        })
    }

    /// Leaves at shutdown: lowers the pool to the heartbeat connection, records that, and closes
    /// it. The row stays until `dead_after` passes, so no replica grows while this one's last
    /// connection may still be open.
    pub async fn leave(&self) {
        if self.pool.ceiling() > 1 {
            self.pool.set_ceiling(1, Duration::from_secs(5)).await;
        }
        let mut hold = self.coordination.lock().await;
        if let Hold::Conn(conn) = &mut *hold
            && conn.begin_transaction().await.is_ok()
        {
            let _ = self.record_ceiling(conn, self.pool.ceiling()).await;
            let _ = conn.commit_transaction().await;
        }
        if let Hold::Conn(mut conn) = std::mem::replace(&mut *hold, Hold::Nothing) {
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
                " - heartbeat_ms, feed_pos FROM reco_replicas WHERE application_name = $1 \
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
                    feed_position: r.try_get(4)?,
                })
            })
            .collect()
    }
}
