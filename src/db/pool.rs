//! [`Pool`]: the process's one connection pool (see the module `db` for what it adds to sqlx's).

use std::panic::Location;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::Connection;
use tokio::sync::Semaphore;

use super::checkout::{Checkouts, LeakSuspect};
use super::conn::{Conn, Slot};
use super::connect::{connect_options, pool_options};
use super::error::Error;
use super::shared::{BACKEND_EXIT_GRACE, PoolInner, PoolSettings};
use crate::config::{DbConfig, Pooler};
use crate::kinds::Backend;
use crate::metrics::{CloseReason, HistogramSummary, PoolMetrics};

/// The outcome of [`Pool::rebuild`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rebuilt {
    pub generation: u64,
    /// Connections in use at the rebuild; each is closed when it comes back.
    pub busy_on_old_pool: u32,
    /// Idle connections, closed at once.
    pub idle_closed: u32,
}

/// The process's one connection pool. Cheap to clone: every clone is the same pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

/// A point-in-time view of the pool, served at `/api/admin/pool`.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    pub backend: Backend,
    pub pool_size: u32,
    pub max_overflow: u32,
    pub ceiling: u32,
    /// How many times the pool was rebuilt (`reco reset`).
    pub generation: u64,
    /// Open connections.
    pub size: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Checkouts beyond `pool_size`.
    pub overflow_in_use: u32,
    pub waiting: u32,
    pub timeouts_total: u64,
    pub opened_total: u64,
    pub closed_total: std::collections::BTreeMap<&'static str, u64>,
    pub pre_ping_failures_total: u64,
    pub leaks_total: u64,
    pub leak_suspects: Vec<LeakSuspect>,
    pub acquire_wait: HistogramSummary,
    pub hold_time: HistogramSummary,
}

impl Pool {
    /// Opens the pool: connects `pool_size` connections (the first within `connect_timeout`) and
    /// starts the leak detector. Errors here mean the database is unreachable or the URL is wrong.
    pub async fn open(config: &DbConfig, metrics: PoolMetrics) -> Result<Self, Error> {
        let ceiling = PoolSettings::from_config(config).ceiling();
        Self::open_with_ceiling(config, metrics, ceiling).await
    }

    /// [`Pool::open`] with a lower starting ceiling (at least 1): a replica joining a cluster
    /// budget starts with one connection and grows when its share is free.
    pub async fn open_with_ceiling(
        config: &DbConfig,
        metrics: PoolMetrics,
        ceiling: u32,
    ) -> Result<Self, Error> {
        let settings = PoolSettings::from_config(config);
        let ceiling = ceiling.clamp(1, settings.ceiling().max(1));
        let url = config.url.expose_secret();
        let backend = Backend::from_url(url).ok_or_else(|| {
            Error::Driver(sqlx::Error::Configuration(
                "unsupported database URL scheme".into(),
            ))
        })?;
        sqlx::any::install_default_drivers();
        let connect_options = connect_options(url, backend, config)?;
        let rebuilt_at = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let sqlx_pool = pool_options(&settings, backend, &metrics, rebuilt_at.clone(), epoch)
            .connect_lazy_with(connect_options);

        let inner = Arc::new(PoolInner {
            sqlx: sqlx_pool,
            rebuilt_at,
            epoch,
            generation: AtomicU64::new(0),
            gate: Arc::new(Semaphore::new(ceiling as usize)),
            ceiling: AtomicU32::new(ceiling),
            debt: AtomicU32::new(0),
            resizing: tokio::sync::Mutex::new(()),
            waiting: AtomicI64::new(0),
            settings,
            backend,
            pooler: config.pooler,
            metrics,
            checkouts: Checkouts::default(),
        });
        let pool = Pool { inner };
        pool.warm_up().await?;
        spawn_maintenance(Arc::downgrade(&pool.inner));
        Ok(pool)
    }

    /// Opens `pool_size` connections so the first requests do not pay for connecting. The first
    /// must succeed within `connect_timeout` (fail fast on a wrong URL or an unreachable server);
    /// the others are best effort. They are held together, so each acquire opens a new one.
    async fn warm_up(&self) -> Result<(), Error> {
        let timeout = self.inner.settings.connect_timeout;
        let first = tokio::time::timeout(timeout, self.inner.sqlx.acquire())
            .await
            .map_err(|_| Error::Busy { waited: timeout })??;
        let mut held = vec![first];
        let keep = self.inner.keep_idle() as usize;
        while held.len() < keep {
            match tokio::time::timeout(timeout, self.inner.sqlx.acquire()).await {
                Ok(Ok(c)) => held.push(c),
                _ => break,
            }
        }
        // Back into the idle queue before anyone checks out: dropped, they would return in the
        // background, and a checkout meanwhile would open one more than the ceiling.
        for mut c in held {
            c.return_to_pool().await;
        }
        Ok(())
    }

    /// Checks out a connection, waiting at most `pool_timeout`. The caller's source location is
    /// remembered for leak reports.
    #[track_caller]
    pub fn acquire(
        &self,
    ) -> impl std::future::Future<Output = Result<Conn, Error>> + Send + 'static {
        self.acquire_at(Location::caller())
    }

    /// [`Pool::acquire`] recorded at `location`: for helpers that check out on their caller's
    /// behalf (the leak report should name the caller).
    pub fn acquire_at(
        &self,
        location: &'static Location<'static>,
    ) -> impl std::future::Future<Output = Result<Conn, Error>> + Send + 'static {
        let inner = self.inner.clone();
        async move { acquire(inner, location).await }
    }

    /// Checks out a connection under the permit `slot` holds, without queueing at the gate (see
    /// [`Slot`]); the checkout is held on purpose, so it is never reported as a leak. The slot is
    /// taken only once a connection was had, so a failed attempt can be retried under it.
    pub async fn acquire_in(&self, slot: &mut Option<Slot>) -> Result<Conn, Error> {
        if slot.is_none() {
            return Err(Error::Closed);
        }
        let generation = self.inner.generation.load(Ordering::Relaxed);
        let conn = self.driver_checkout().await?;
        let (permit, inner) = slot.take().map(Slot::into_parts).expect("checked above");
        let conn =
            Conn::checked_out(inner, conn, Some(permit), Location::caller(), generation).await?;
        self.inner.checkouts.keep(conn.checkout_id);
        Ok(conn)
    }

    /// A connection outside the gate, for a replica parked at ceiling 0 by the cluster budget: its
    /// heartbeat runs on one short connection through `cluster.join_reserve`, as a starting
    /// replica's first one does. Closed when dropped.
    pub async fn acquire_parked(&self) -> Result<Conn, Error> {
        let generation = self.inner.generation.load(Ordering::Relaxed);
        let conn = self.driver_checkout().await?;
        let mut conn = Conn::checked_out(
            self.inner.clone(),
            conn,
            None,
            Location::caller(),
            generation,
        )
        .await?;
        conn.discard_on_drop();
        Ok(conn)
    }

    /// A connection from the driver's pool within `pool_timeout`, past the gate.
    async fn driver_checkout(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, Error> {
        let timeout = self.inner.settings.pool_timeout;
        match tokio::time::timeout(timeout, self.inner.sqlx.acquire()).await {
            Ok(result) => result.map_err(|e| driver_error(e, timeout)),
            Err(_) => Err(Error::Busy { waited: timeout }),
        }
    }

    /// A statement for this pool's database. Behind a transaction-mode pooler it is sent unnamed
    /// (parsed for each execution): a named prepared statement lives on one server connection,
    /// and the pooler hands the next transaction another one.
    pub fn query<'q>(
        &self,
        sql: impl sqlx::SqlSafeStr,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        sqlx::query(sql).persistent(self.inner.pooler != Pooler::Transaction)
    }

    /// The pooler in front of the database, as configured.
    pub fn pooler(&self) -> Pooler {
        self.inner.pooler
    }

    /// Which database this pool talks to.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The pool's settings.
    pub fn settings(&self) -> &PoolSettings {
        &self.inner.settings
    }

    /// Checks that the database answers, within `connect_timeout`.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let started = Instant::now();
        let timeout = self.inner.settings.connect_timeout;
        let ping = async {
            let mut conn = self.acquire().await?;
            conn.ping().await?;
            Ok::<_, Error>(())
        };
        tokio::time::timeout(timeout, ping)
            .await
            .map_err(|_| Error::Busy { waited: timeout })??;
        Ok(started.elapsed())
    }

    /// The pool's current state.
    pub fn status(&self) -> PoolStatus {
        let inner = &self.inner;
        let s = &inner.settings;
        let size = inner.sqlx.size();
        let idle = inner.sqlx.num_idle() as u32;
        let in_use = inner.checkouts.len() as u32;
        let m = &inner.metrics;
        PoolStatus {
            backend: inner.backend,
            pool_size: s.pool_size,
            max_overflow: s.max_overflow,
            ceiling: inner.ceiling.load(Ordering::Relaxed),
            generation: inner.generation.load(Ordering::Relaxed),
            size,
            idle,
            in_use,
            overflow_in_use: in_use.saturating_sub(s.pool_size),
            waiting: inner.waiting.load(Ordering::Relaxed).max(0) as u32,
            timeouts_total: m.timeouts.get(),
            opened_total: m.opened.get(),
            closed_total: m.closed_by_reason(size),
            pre_ping_failures_total: m.pre_ping_failures.get(),
            leaks_total: m.leaks.get(),
            leak_suspects: inner.checkouts.suspects(s.leak_threshold),
            acquire_wait: m.acquire_wait_summary(),
            hold_time: m.hold_summary(),
        }
    }

    /// Publishes the gauges (size, idle, in use, waiting) into the metrics registry; called at
    /// scrape time so the values are current.
    pub fn publish_gauges(&self) {
        let st = self.status();
        let m = &self.inner.metrics;
        m.size.set(st.size as i64);
        m.idle.set(st.idle as i64);
        m.in_use.set(st.in_use as i64);
        m.overflow_in_use.set(st.overflow_in_use as i64);
        m.waiting.set(st.waiting as i64);
        m.ceiling.set(st.ceiling as i64);
        m.leak_suspects.set(st.leak_suspects.len() as i64);
        m.publish_other_closes(st.size);
    }

    /// Connections open right now (in use, idle, or being opened or closed).
    pub fn open_connections(&self) -> u32 {
        self.inner.sqlx.size()
    }

    /// The current ceiling of open connections.
    pub fn ceiling(&self) -> u32 {
        self.inner.ceiling.load(Ordering::Relaxed)
    }

    /// Changes the ceiling (clamped to `0..=pool_size + max_overflow`; 0 parks a replica the
    /// cluster budget has no room for) and returns it. Lowering
    /// waits until the pool really holds no more than the new ceiling: free permits are taken at
    /// once, busy ones as their checkouts end (ahead of queued checkouts), idle connections beyond
    /// it are closed, and the server is given a moment to end their backends. Only then may
    /// another replica count on the freed connections. Raising takes effect at once. Lowering gives
    /// up waiting after `wait` (a checkout held that long is a leak) and then returns how many
    /// connections the pool may still hold: the new ceiling plus what is still owed, or the open
    /// count if higher. That bound only falls from there.
    pub async fn set_ceiling(&self, ceiling: u32, wait: Duration) -> u32 {
        let inner = &self.inner;
        let _one_change = inner.resizing.lock().await;
        let target = ceiling.min(inner.settings.ceiling().max(1));
        let current = inner.ceiling.load(Ordering::Relaxed);
        if target >= current {
            let add = target - current;
            // Cancel what a lowering still owes before adding permits.
            let owed = inner
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                    Some(d - d.min(add))
                })
                .unwrap_or(0);
            inner.gate.add_permits((add - owed.min(add)) as usize);
            inner.ceiling.store(target, Ordering::Relaxed);
            if add > 0 {
                tracing::info!(from = current, to = target, "pool ceiling raised");
            }
            return target + inner.debt.load(Ordering::Relaxed);
        }
        let deadline = Instant::now() + wait;
        let lower = current - target;
        let taken = inner.gate.forget_permits(lower as usize) as u32;
        inner.debt.fetch_add(lower - taken, Ordering::Relaxed);
        inner.ceiling.store(target, Ordering::Relaxed);
        // Wait for checkouts to pay the debt, closing idle connections beyond the ceiling.
        loop {
            inner.close_idle_overflow().await;
            let owed = inner.debt.load(Ordering::Relaxed);
            if (owed == 0 && inner.sqlx.size() <= target) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(BACKEND_EXIT_GRACE).await;
        // Permits still out and connections still open count until they are gone.
        let bound = (target + inner.debt.load(Ordering::Relaxed)).max(inner.sqlx.size());
        tracing::info!(from = current, to = bound, "pool ceiling lowered");
        bound
    }

    /// Closes every connection: waits for checked-out connections to come back first.
    pub async fn close(&self) {
        self.inner.sqlx.close().await;
    }

    /// Replaces every connection gracefully (`reco reset`): idle ones are closed now, checkouts
    /// from now on get newly opened connections, and connections in use finish their work and are
    /// closed when they come back. It stays one driver pool, so the ceiling holds throughout, and
    /// no waiting or running request fails.
    pub fn rebuild(&self) -> Rebuilt {
        let inner = &self.inner;
        let now_ms = (inner.epoch.elapsed().as_millis() as u64).max(1);
        inner.rebuilt_at.store(now_ms, Ordering::Relaxed);
        let generation = inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let busy = inner.checkouts.len() as u32;
        let idle = inner.sqlx.num_idle() as u32;
        tracing::info!(
            generation,
            busy,
            idle,
            "rebuilding the pool: every connection is replaced"
        );
        let sqlx = inner.sqlx.clone();
        let metrics = inner.metrics.clone();
        tokio::spawn(async move {
            for _ in 0..idle {
                // Idle connections are all from before; taking one runs the hook that closes it.
                let Some(conn) = sqlx.try_acquire() else {
                    break;
                };
                metrics.record_close(CloseReason::Rebuilt);
                let _ = conn.close().await;
            }
        });
        Rebuilt {
            generation,
            busy_on_old_pool: busy,
            idle_closed: idle,
        }
    }
}

/// One task waiting for a connection, counted in `waiting` for as long as it lives.
struct Waiting<'a>(&'a PoolInner);

impl<'a> Waiting<'a> {
    fn new(inner: &'a PoolInner) -> Self {
        inner.waiting.fetch_add(1, Ordering::Relaxed);
        Self(inner)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn acquire(
    inner: Arc<PoolInner>,
    location: &'static Location<'static>,
) -> Result<Conn, Error> {
    let started = Instant::now();
    let timeout = inner.settings.pool_timeout;
    // Read before the checkout: a rebuild in between makes this connection count as old (closed on
    // return), never an old connection as new.
    let generation = inner.generation.load(Ordering::Relaxed);
    // Counted by a guard: a caller that gives up (its future dropped mid-wait) is uncounted too.
    let waiting = Waiting::new(&inner);
    let result = tokio::time::timeout(timeout, async {
        let permit = inner
            .gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let conn = inner
            .sqlx
            .acquire()
            .await
            .map_err(|e| driver_error(e, started.elapsed()))?;
        Ok::<_, Error>((permit, conn))
    })
    .await;
    drop(waiting);
    let waited = started.elapsed();
    inner
        .metrics
        .acquire_wait_seconds
        .observe(waited.as_secs_f64());
    let (permit, conn) = match result {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            if matches!(e, Error::Busy { .. }) {
                inner.metrics.timeouts.inc();
            }
            return Err(e);
        }
        Err(_) => {
            inner.metrics.timeouts.inc();
            return Err(Error::Busy { waited });
        }
    };
    Conn::checked_out(inner, conn, Some(permit), location, generation).await
}

/// The pool's error for a failed checkout from the driver's pool, after `waited`.
fn driver_error(e: sqlx::Error, waited: Duration) -> Error {
    match e {
        sqlx::Error::PoolClosed => Error::Closed,
        sqlx::Error::PoolTimedOut => Error::Busy { waited },
        other => Error::Driver(other),
    }
}

/// Runs a few times per `leak_threshold` (at least every second) until the pool is dropped:
/// reports new leak suspects and closes idle connections beyond `pool_size`.
fn spawn_maintenance(pool: Weak<PoolInner>) {
    let Some(threshold) = pool.upgrade().map(|p| p.settings.leak_threshold) else {
        return;
    };
    let period = (threshold / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = pool.upgrade() else { return };
            if inner.sqlx.is_closed() {
                return;
            }
            for (location, held) in inner.checkouts.newly_leaked(threshold) {
                inner.metrics.leaks.inc();
                tracing::warn!(
                    %location,
                    held_ms = held.as_millis() as u64,
                    threshold_ms = threshold.as_millis() as u64,
                    "connection held past leak_threshold: suspected leak"
                );
            }
            inner.close_idle_overflow().await;
        }
    });
}
