//! The database layer: the one place that talks to the database driver.
//!
//! [`Pool`] is the process's only connection pool. It is built once at start-up (by
//! [`crate::app::App::build`] for the server, or by a CLI command for its own run) and handed to
//! every component as a clone of the same handle. Nothing else in the crate opens a connection: the
//! driver's connect functions are only called from this module.
//!
//! What the pool adds on top of sqlx's pool, and why it is our own code: sqlx has no notion of
//! `max_overflow`, no waiting count, no hold-time or acquire-wait histograms, no close reasons and no
//! leak detection with the code location that took a connection. Those are the things operators of a
//! 20-connection managed PostgreSQL need, so [`Pool`] wraps sqlx's pool with:
//! - a semaphore gate holding exactly `pool_size + max_overflow` permits: the hard ceiling, and the
//!   queue whose length is the waiting count. The ceiling can be lowered and raised while running
//!   ([`Pool::set_ceiling`]): the cluster budget ([`crate::cluster`]) shares one database's
//!   connections between replicas that way;
//! - sqlx hooks that recycle connections by age and pre-ping connections that sat idle;
//! - a checkout registry: every [`Conn`] remembers when and where it was taken;
//! - a maintenance task that reports checkouts held longer than `leak_threshold` and closes idle
//!   connections beyond `pool_size` (overflow is closed again once the burst is over).
//!
//! Errors of this layer are [`Error`]; the API maps [`Error::Busy`] to 503 with `Retry-After`.

mod checkout;
mod metrics;

use std::panic::Location;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{DbConfig, Pooler, seconds};
use checkout::Checkouts;
pub use checkout::LeakSuspect;
pub use metrics::{CloseReason, PoolMetrics};

/// A connection idle for at least this long is pinged before it is handed out (when
/// `pool_pre_ping` is on). A connection used within the last second is known to be alive, and pinging
/// it would add a round trip to every checkout under load.
const PRE_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Which database the URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// The backend named by a URL's scheme, if it is one reco supports.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }
}

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection became free within `pool_timeout`: the caller should retry later.
    #[error("database busy: no connection free after {waited:?}")]
    Busy { waited: Duration },
    /// The pool was closed (shutdown or rebuild in progress).
    #[error("database pool is closed")]
    Closed,
    /// Anything the driver reported. Internal detail: never shown to HTTP clients.
    #[error(transparent)]
    Driver(#[from] sqlx::Error),
}

impl Error {
    /// Whether this error means "try again soon" rather than "something is broken".
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Busy { .. } => true,
            Error::Driver(sqlx::Error::PoolTimedOut) => true,
            Error::Driver(sqlx::Error::Database(e)) => {
                // 57014: statement timeout / query canceled; 53300: too many connections;
                // 55P03: lock not available; SQLite 5/6: database busy/locked.
                matches!(
                    e.code().as_deref(),
                    Some("57014" | "53300" | "55P03" | "5" | "6" | "517")
                )
            }
            _ => false,
        }
    }
}

/// The outcome of [`Pool::rebuild`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rebuilt {
    pub generation: u64,
    /// Connections in use at the rebuild; each is closed when it comes back.
    pub busy_on_old_pool: u32,
    /// Idle connections, closed at once.
    pub idle_closed: u32,
}

/// How long a connection closed after a rebuild keeps its permit after hanging up: the server's
/// backend exits (and frees its slot) a moment after the client closes the socket.
const BACKEND_EXIT_GRACE: Duration = Duration::from_millis(100);

/// Pool settings resolved from [`DbConfig`].
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub pool_size: u32,
    pub max_overflow: u32,
    pub pool_timeout: Duration,
    pub pool_recycle: Duration,
    pub pool_pre_ping: bool,
    pub leak_threshold: Duration,
    pub connect_timeout: Duration,
}

impl PoolSettings {
    pub fn from_config(c: &DbConfig) -> Self {
        Self {
            pool_size: c.pool_size,
            max_overflow: c.max_overflow,
            pool_timeout: seconds(c.pool_timeout),
            pool_recycle: seconds(c.pool_recycle),
            pool_pre_ping: c.pool_pre_ping,
            leak_threshold: seconds(c.leak_threshold),
            connect_timeout: seconds(c.connect_timeout),
        }
    }

    /// The hard ceiling of open connections.
    pub fn ceiling(&self) -> u32 {
        self.pool_size + self.max_overflow
    }
}

/// The process's one connection pool. Cheap to clone: every clone is the same pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    /// The driver's pool: opens, stores and closes the connections.
    sqlx: AnyPool,
    /// When the pool was last rebuilt, in ms after `epoch` (0 = never): connections opened before
    /// are replaced at their next checkout and closed when they come back.
    rebuilt_at: Arc<AtomicU64>,
    epoch: Instant,
    /// Rebuilds so far.
    generation: AtomicU64,
    /// `ceiling` permits; held by every checkout, so the ceiling cannot be passed.
    gate: Arc<Semaphore>,
    /// The current ceiling: `pool_size + max_overflow`, or less when a cluster budget shares the
    /// database with other replicas. Changed only by [`Pool::set_ceiling`], one change at a time.
    ceiling: AtomicU32,
    /// Permits still owed by a lowering: checkouts that end while it is above zero forget their
    /// permit instead of giving it back. Paid ahead of any queued checkout, unlike taking permits
    /// through the semaphore's (fair, FIFO) queue.
    debt: AtomicU32,
    resizing: tokio::sync::Mutex<()>,
    /// Tasks currently queued for a connection.
    waiting: AtomicI64,
    settings: PoolSettings,
    backend: Backend,
    pooler: Pooler,
    metrics: PoolMetrics,
    checkouts: Checkouts,
}

/// A checked-out connection. Derefs to the driver's connection; returns to the pool on drop,
/// recording how long it was held.
pub struct Conn {
    /// `None` only during drop.
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    /// The pool's generation when it was checked out.
    generation: u64,
    checkout_id: u64,
    taken_at: Instant,
    pool: Arc<PoolInner>,
    /// `None` only during drop.
    permit: Option<OwnedSemaphorePermit>,
    /// Close the connection instead of returning it (its session state cannot be trusted).
    discard: bool,
    /// Behind a transaction-mode pooler every checkout runs inside a transaction (see
    /// [`Conn::finish`]); committed when the connection comes back.
    pooled_transaction: bool,
}

impl Conn {
    /// Commits the work done so far. Behind a transaction-mode pooler a checkout is one
    /// transaction (sqlx prepares and executes a statement in two round trips, and between them the
    /// pooler may hand the client another server connection unless a transaction pins it), so a
    /// write must call this before it reports success; a new transaction then begins for whatever
    /// follows. Without a pooler it does nothing.
    pub async fn finish(&mut self) -> Result<(), Error> {
        use sqlx_core::transaction::TransactionManager;
        if !self.pooled_transaction {
            return Ok(());
        }
        let conn: &mut AnyConnection = self;
        <sqlx::Any as sqlx::Database>::TransactionManager::commit(conn).await?;
        <sqlx::Any as sqlx::Database>::TransactionManager::begin(conn, None).await?;
        Ok(())
    }

    /// Starts a transaction (behind a transaction-mode pooler one is always open: nothing to do).
    pub async fn begin_transaction(&mut self) -> Result<(), Error> {
        if !self.pooled_transaction {
            self.execute("BEGIN").await?;
        }
        Ok(())
    }

    /// Commits the transaction begun with [`Conn::begin_transaction`].
    pub async fn commit_transaction(&mut self) -> Result<(), Error> {
        if self.pooled_transaction {
            return self.finish().await;
        }
        self.execute("COMMIT").await?;
        Ok(())
    }

    /// Rolls back the transaction begun with [`Conn::begin_transaction`].
    pub async fn rollback_transaction(&mut self) -> Result<(), Error> {
        use sqlx_core::transaction::TransactionManager;
        if self.pooled_transaction {
            let conn: &mut AnyConnection = self;
            <sqlx::Any as sqlx::Database>::TransactionManager::rollback(conn).await?;
            <sqlx::Any as sqlx::Database>::TransactionManager::begin(conn, None).await?;
            return Ok(());
        }
        self.execute("ROLLBACK").await?;
        Ok(())
    }

    /// Closes this connection when it is dropped instead of returning it to the pool: for a
    /// connection whose session state (an open transaction, a session lock) may outlive its user.
    pub fn discard_on_drop(&mut self) {
        self.discard = true;
    }

    /// Undoes [`Conn::discard_on_drop`]: the session is clean again.
    pub fn keep_on_drop(&mut self) {
        self.discard = false;
    }

    /// Whether the pool was rebuilt since this connection was checked out (it will be closed on
    /// return): a long-held connection should be given back and replaced.
    pub fn is_stale(&self) -> bool {
        self.generation < self.pool.generation.load(Ordering::Relaxed)
    }
}

impl std::ops::Deref for Conn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The permit is released only once the connection is idle in the driver's pool again (or
        // closed). Released earlier, the next checkout would find no idle connection while this
        // one is still on its way back, and the driver would open another: more connections than
        // the ceiling. `return_to_pool` is the driver's own drop handler, run eagerly.
        if !(self.discard || self.generation < self.pool.generation.load(Ordering::Relaxed))
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
            && let (Some(mut conn), Some(permit)) = (self.conn.take(), self.permit.take())
        {
            let pooled_transaction = self.pooled_transaction;
            let pool = self.pool.clone();
            runtime.spawn(async move {
                if pooled_transaction {
                    use sqlx_core::transaction::TransactionManager;
                    // Reads only: writes committed with `finish`. A failed commit closes it.
                    let c: &mut AnyConnection = &mut conn;
                    if <sqlx::Any as sqlx::Database>::TransactionManager::commit(c)
                        .await
                        .is_err()
                    {
                        let _ = conn.close().await;
                        pool.release(permit);
                        return;
                    }
                }
                conn.return_to_pool().await;
                drop(conn);
                pool.release(permit);
            });
        }
        // Taken before a rebuild: close it rather than return it, and release the permit only
        // once it is closed (and its server backend had a moment to exit).
        if (self.discard || self.generation < self.pool.generation.load(Ordering::Relaxed))
            && let (Some(conn), Some(permit)) = (self.conn.take(), self.permit.take())
        {
            self.pool.metrics.record_close(CloseReason::Rebuilt);
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let _ = conn.close().await;
                tokio::time::sleep(BACKEND_EXIT_GRACE).await;
                pool.release(permit);
            });
        }
        if let Some(permit) = self.permit.take() {
            self.pool.release(permit);
        }
        let held = self.taken_at.elapsed();
        self.pool.metrics.hold_seconds.observe(held.as_secs_f64());
        if let Some(c) = self.pool.checkouts.remove(self.checkout_id)
            && c.reported
        {
            {
                tracing::warn!(
                    location = %c.location,
                    held_ms = held.as_millis() as u64,
                    "suspected leaked connection returned to the pool"
                );
            }
        }
    }
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
    pub acquire_wait: crate::metrics::HistogramSummary,
    pub hold_time: crate::metrics::HistogramSummary,
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
        let location = Location::caller();
        let inner = self.inner.clone();
        async move { acquire(inner, location).await }
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

    /// Changes the ceiling (clamped to `1..=pool_size + max_overflow`) and returns it. Lowering
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
        let target = ceiling.clamp(1, inner.settings.ceiling().max(1));
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

async fn acquire(
    inner: Arc<PoolInner>,
    location: &'static Location<'static>,
) -> Result<Conn, Error> {
    let started = Instant::now();
    let timeout = inner.settings.pool_timeout;
    // Read before the checkout: a rebuild in between makes this connection count as old (closed on
    // return), never an old connection as new.
    let generation = inner.generation.load(Ordering::Relaxed);
    inner.waiting.fetch_add(1, Ordering::Relaxed);
    let result = tokio::time::timeout(timeout, async {
        let permit = inner
            .gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let conn = inner.sqlx.acquire().await.map_err(|e| match e {
            sqlx::Error::PoolClosed => Error::Closed,
            sqlx::Error::PoolTimedOut => Error::Busy {
                waited: started.elapsed(),
            },
            other => Error::Driver(other),
        })?;
        Ok::<_, Error>((permit, conn))
    })
    .await;
    inner.waiting.fetch_sub(1, Ordering::Relaxed);
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
    let taken_at = Instant::now();
    let checkout_id = inner.checkouts.insert(location, taken_at);
    let pooled = inner.pooler == Pooler::Transaction;
    let mut checkout = Ok(Conn {
        conn: Some(conn),
        generation,
        checkout_id,
        taken_at,
        pool: inner,
        permit: Some(permit),
        discard: false,
        pooled_transaction: false,
    });
    if pooled {
        use sqlx_core::transaction::TransactionManager;
        let conn = checkout.as_mut().expect("just built");
        let c: &mut AnyConnection = conn;
        if let Err(e) = <sqlx::Any as sqlx::Database>::TransactionManager::begin(c, None).await {
            conn.discard_on_drop();
            return Err(Error::Driver(e));
        }
        conn.pooled_transaction = true;
    }
    checkout
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

impl PoolInner {
    /// Gives a checkout's permit back, or forgets it while a lowering of the ceiling is owed one.
    fn release(&self, permit: OwnedSemaphorePermit) {
        let paid = self
            .debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok();
        if paid {
            permit.forget();
        }
    }

    /// How many idle connections are kept open: `pool_size`, or the ceiling when it is lower.
    fn keep_idle(&self) -> u32 {
        self.settings
            .pool_size
            .min(self.ceiling.load(Ordering::Relaxed))
    }

    /// Closes idle connections while more than `pool_size` (or the ceiling) are idle, and while
    /// more than the ceiling are open. Done here rather than at return time: returns race with each
    /// other, and a short delay keeps bursts from churning connections.
    async fn close_idle_overflow(&self) {
        let keep = self.keep_idle() as usize;
        let ceiling = self.ceiling.load(Ordering::Relaxed) as usize;
        while self.sqlx.num_idle() > 0
            && ((self.sqlx.num_idle() > keep && self.sqlx.size() as usize > keep)
                || self.sqlx.size() as usize > ceiling)
        {
            let Some(conn) = self.sqlx.try_acquire() else {
                break;
            };
            self.metrics.record_close(CloseReason::Overflow);
            let _ = conn.close().await;
        }
    }
}

/// One connection straight to PostgreSQL, outside the pool, for migrations behind a
/// transaction-mode pooler (`db.direct_url`). Short-lived: it is closed when they are applied.
pub async fn connect_direct(url: &str, application_name: &str) -> Result<AnyConnection, Error> {
    sqlx::any::install_default_drivers();
    let mut parsed = url::Url::parse(url).map_err(|e| {
        Error::Driver(sqlx::Error::Configuration(
            format!("invalid direct URL: {e}").into(),
        ))
    })?;
    if !parsed.query_pairs().any(|(k, _)| k == "application_name") {
        parsed
            .query_pairs_mut()
            .append_pair("application_name", application_name);
    }
    let options: AnyConnectOptions = parsed.as_str().parse()?;
    Ok(options.disable_statement_logging().connect().await?)
}

/// The driver's connect options: the URL plus what reco sets on every connection.
fn connect_options(
    url: &str,
    backend: Backend,
    config: &DbConfig,
) -> Result<AnyConnectOptions, Error> {
    let mut parsed = url::Url::parse(url).map_err(|e| {
        Error::Driver(sqlx::Error::Configuration(
            format!("invalid database URL: {e}").into(),
        ))
    })?;
    match backend {
        Backend::Postgres => {
            let has = |k: &str| parsed.query_pairs().any(|(key, _)| key == k);
            let set_name = !has("application_name");
            let mut q = parsed.query_pairs_mut();
            if set_name {
                q.append_pair("application_name", &config.application_name);
            }
            if config.pooler == Pooler::Transaction {
                // No named statements to cache: they would outlive the transaction's server
                // connection.
                q.append_pair("statement-cache-capacity", "0");
            }
            // Startup `options` are rejected by PgBouncer in transaction mode; there the timeout
            // belongs on the role (`ALTER ROLE … SET statement_timeout`), which `diagnose` says.
            if config.statement_timeout > 0.0 && config.pooler != Pooler::Transaction {
                let ms = (config.statement_timeout * 1000.0).round() as u64;
                q.append_pair("options[statement_timeout]", &ms.to_string());
            }
        }
        Backend::Sqlite => {
            if !parsed.query_pairs().any(|(k, _)| k == "mode") {
                parsed.query_pairs_mut().append_pair("mode", "rwc");
            }
        }
    }
    let options: AnyConnectOptions = parsed.as_str().parse()?;
    // Statements are not logged by the driver: they would flood the logs, and literal values in
    // them can be personal data.
    Ok(options.disable_statement_logging())
}

/// sqlx's pool options with reco's hooks for recycling, pre-ping and overflow closing.
fn pool_options(
    settings: &PoolSettings,
    backend: Backend,
    metrics: &PoolMetrics,
    rebuilt_at: Arc<AtomicU64>,
    epoch: Instant,
) -> AnyPoolOptions {
    let recycle = settings.pool_recycle;
    let pre_ping = settings.pool_pre_ping;
    let (m_connect, m_acquire, m_release) = (metrics.clone(), metrics.clone(), metrics.clone());
    AnyPoolOptions::new()
        .max_connections(settings.ceiling())
        // No `min_connections`: sqlx would replace closed connections from a background task,
        // outside the gate. `warm_up` opens `pool_size` at start; recycling replaces within an
        // acquire.
        .min_connections(0)
        .acquire_timeout(settings.pool_timeout)
        // Age and idleness are handled by the hooks below, where the close reason is known.
        .max_lifetime(None)
        .idle_timeout(None)
        .test_before_acquire(false)
        .after_connect(
            move |conn, _meta| -> BoxFuture<'_, Result<(), sqlx::Error>> {
                let metrics = m_connect.clone();
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers proceed while the feedback writer commits; foreign keys make
                        // deleting a user or item remove its feedback.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                    }
                    metrics.opened.inc();
                    Ok(())
                })
            },
        )
        .before_acquire(
            move |conn, meta| -> BoxFuture<'_, Result<bool, sqlx::Error>> {
                let metrics = m_acquire.clone();
                let rebuilt = rebuilt_at.load(Ordering::Relaxed);
                Box::pin(async move {
                    if meta.age >= recycle {
                        metrics.record_close(CloseReason::Recycled);
                        return Ok(false);
                    }
                    // Opened before the last rebuild: replace it.
                    let opened_ms = (epoch.elapsed().saturating_sub(meta.age)).as_millis() as u64;
                    if rebuilt > 0 && opened_ms < rebuilt {
                        metrics.record_close(CloseReason::Rebuilt);
                        return Ok(false);
                    }
                    if pre_ping
                        && meta.idle_for >= PRE_PING_AFTER_IDLE
                        && let Err(e) = conn.ping().await
                    {
                        tracing::warn!(error = %e, "pre-ping failed; replacing the connection");
                        metrics.pre_ping_failures.inc();
                        metrics.record_close(CloseReason::PrePingFailed);
                        return Ok(false);
                    }
                    Ok(true)
                })
            },
        )
        .after_release(
            move |_conn, meta| -> BoxFuture<'_, Result<bool, sqlx::Error>> {
                let metrics = m_release.clone();
                Box::pin(async move {
                    if meta.age >= recycle {
                        metrics.record_close(CloseReason::Recycled);
                        return Ok(false);
                    }
                    Ok(true)
                })
            },
        )
}
