//! The state one pool's handles, checkouts and maintenance share: the driver's pool, the permit
//! gate that is the hard ceiling, and the counters behind the pool's status.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::checkout::Checkouts;
use crate::config::{DbConfig, Pooler, seconds};
use crate::kinds::Backend;
use crate::metrics::{CloseReason, PoolMetrics};

/// How long a connection closed after a rebuild keeps its permit after hanging up: the server's
/// backend exits (and frees its slot) a moment after the client closes the socket.
pub(super) const BACKEND_EXIT_GRACE: Duration = Duration::from_millis(100);

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

pub(super) struct PoolInner {
    /// The driver's pool: opens, stores and closes the connections.
    pub(super) sqlx: AnyPool,
    /// When the pool was last rebuilt, in ms after `epoch` (0 = never): connections opened before
    /// are replaced at their next checkout and closed when they come back.
    pub(super) rebuilt_at: Arc<AtomicU64>,
    pub(super) epoch: Instant,
    /// Rebuilds so far.
    pub(super) generation: AtomicU64,
    /// `ceiling` permits; held by every checkout, so the ceiling cannot be passed.
    pub(super) gate: Arc<Semaphore>,
    /// The current ceiling: `pool_size + max_overflow`, or less when a cluster budget shares the
    /// database with other replicas. Changed only by [`Pool::set_ceiling`], one change at a time.
    pub(super) ceiling: AtomicU32,
    /// Permits still owed by a lowering: checkouts that end while it is above zero forget their
    /// permit instead of giving it back. Paid ahead of any queued checkout, unlike taking permits
    /// through the semaphore's (fair, FIFO) queue.
    pub(super) debt: AtomicU32,
    pub(super) resizing: tokio::sync::Mutex<()>,
    /// Tasks currently queued for a connection.
    pub(super) waiting: AtomicI64,
    pub(super) settings: PoolSettings,
    pub(super) backend: Backend,
    pub(super) pooler: Pooler,
    pub(super) metrics: PoolMetrics,
    pub(super) checkouts: Checkouts,
}

impl PoolInner {
    /// Gives a checkout's permit back, or forgets it while a lowering of the ceiling is owed one.
    pub(super) fn release(&self, permit: OwnedSemaphorePermit) {
        let paid = self
            .debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok();
        if paid {
            permit.forget();
        }
    }

    /// How many idle connections are kept open: `pool_size`, or the ceiling when it is lower.
    pub(super) fn keep_idle(&self) -> u32 {
        self.settings
            .pool_size
            .min(self.ceiling.load(Ordering::Relaxed))
    }

    /// Closes idle connections while more than `pool_size` (or the ceiling) are idle, and while
    /// more than the ceiling are open. Done here rather than at return time: returns race with each
    /// other, and a short delay keeps bursts from churning connections.
    pub(super) async fn close_idle_overflow(&self) {
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
