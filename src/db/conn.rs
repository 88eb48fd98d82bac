//! A checked-out connection: [`Conn`] derefs to the driver's connection, runs the transactions of
//! a transaction-mode pooler, and gives its permit back only once the connection is idle again.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use sqlx::{AnyConnection, Executor};
use tokio::sync::OwnedSemaphorePermit;

use super::error::Error;
use super::shared::{BACKEND_EXIT_GRACE, PoolInner};
use crate::config::Pooler;
use crate::metrics::CloseReason;

/// A checked-out connection. Derefs to the driver's connection; returns to the pool on drop,
/// recording how long it was held.
pub struct Conn {
    /// `None` only during drop.
    pub(super) conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    /// The pool's generation when it was checked out.
    pub(super) generation: u64,
    pub(super) checkout_id: u64,
    pub(super) taken_at: Instant,
    pub(super) pool: Arc<PoolInner>,
    /// The gate's permit; `None` during drop, after [`Conn::into_slot`], and for a parked
    /// replica's heartbeat connection ([`super::Pool::acquire_parked`]).
    pub(super) permit: Option<OwnedSemaphorePermit>,
    /// Close the connection instead of returning it (its session state cannot be trusted).
    pub(super) discard: bool,
    /// Behind a transaction-mode pooler every checkout runs inside a transaction (see
    /// [`Conn::finish`]); committed when the connection comes back.
    pub(super) pooled_transaction: bool,
}

/// A permit of the pool's gate kept without a connection: the cluster heartbeat's place in the
/// ceiling. A heartbeat whose connection broke (a database restart, a terminated backend, a rebuild)
/// reconnects under the permit it already holds ([`super::Pool::acquire_in`]) instead of queueing
/// for one behind request traffic, where it could wait up to `pool_timeout`, past `dead_after`.
pub struct Slot {
    /// `None` only during drop.
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<PoolInner>,
}

impl Slot {
    pub(super) fn into_parts(mut self) -> (OwnedSemaphorePermit, Arc<PoolInner>) {
        let permit = self.permit.take().expect("present until drop");
        (permit, self.pool.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.pool.release(permit);
        }
    }
}

impl Conn {
    /// Registers a checkout of `conn` (under `permit`, if any) and, behind a transaction-mode
    /// pooler, opens its transaction.
    pub(super) async fn checked_out(
        pool: Arc<PoolInner>,
        conn: sqlx::pool::PoolConnection<sqlx::Any>,
        permit: Option<OwnedSemaphorePermit>,
        location: &'static Location<'static>,
        generation: u64,
    ) -> Result<Conn, Error> {
        use sqlx_core::transaction::TransactionManager;
        let taken_at = Instant::now();
        let checkout_id = pool.checkouts.insert(location, taken_at);
        let pooled = pool.pooler == Pooler::Transaction;
        let mut conn = Conn {
            conn: Some(conn),
            generation,
            checkout_id,
            taken_at,
            pool,
            permit,
            discard: false,
            pooled_transaction: false,
        };
        if pooled {
            let c: &mut AnyConnection = &mut conn;
            if let Err(e) = <sqlx::Any as sqlx::Database>::TransactionManager::begin(c, None).await
            {
                conn.discard_on_drop();
                return Err(Error::Driver(e));
            }
            conn.pooled_transaction = true;
        }
        Ok(conn)
    }

    /// Closes the connection and keeps its permit (see [`Slot`]). Returns once the connection is
    /// closed and its server backend had a moment to exit, so the next connection under the same
    /// permit does not overlap it on the server.
    /// Without a permit (a parked heartbeat's connection) it only closes the connection.
    pub async fn into_slot(mut self) -> Option<Slot> {
        if let Some(conn) = self.conn.take() {
            self.pool.metrics.record_close(CloseReason::Other);
            let _ = conn.close().await;
            tokio::time::sleep(BACKEND_EXIT_GRACE).await;
        }
        let permit = self.permit.take()?;
        Some(Slot {
            permit: Some(permit),
            pool: self.pool.clone(),
        })
    }

    /// Whether this checkout holds a permit of the gate (not a parked heartbeat's connection).
    pub fn holds_permit(&self) -> bool {
        self.permit.is_some()
    }

    /// Marks this checkout as held on purpose for as long as the process runs: the leak detector
    /// leaves it alone.
    pub fn hold_on_purpose(&self) {
        self.pool.checkouts.keep(self.checkout_id);
    }

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

    /// Ends the checkout: behind a transaction-mode pooler, commits its transaction before
    /// returning (so a write is durable before it is reported, and the pooler's server connection
    /// is free again); then the connection goes back to the pool. A failed commit closes it.
    pub async fn done(mut self) -> Result<(), Error> {
        use sqlx_core::transaction::TransactionManager;
        if self.pooled_transaction {
            let conn: &mut AnyConnection = &mut self;
            if let Err(e) = <sqlx::Any as sqlx::Database>::TransactionManager::commit(conn).await {
                self.discard_on_drop();
                return Err(e.into());
            }
            // Committed: nothing for the drop to commit.
            self.pooled_transaction = false;
        }
        Ok(())
    }

    /// Starts a transaction (behind a transaction-mode pooler one is always open: nothing to do).
    ///
    /// Cancellation-safe: until the transaction is committed or rolled back, the connection is
    /// closed on drop instead of returned, so a caller whose future is dropped mid-transaction
    /// never hands the next user a connection inside an open transaction (where single-statement
    /// writes would be acknowledged and then lost).
    pub async fn begin_transaction(&mut self) -> Result<(), Error> {
        if !self.pooled_transaction {
            self.discard_on_drop();
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
        self.keep_on_drop();
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
        self.keep_on_drop();
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
            && self.permit.is_some()
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
        // A connection without a permit (a parked heartbeat's) is never kept either.
        if (self.discard
            || self.permit.is_none()
            || self.generation < self.pool.generation.load(Ordering::Relaxed))
            && let Some(conn) = self.conn.take()
        {
            self.pool.metrics.record_close(CloseReason::Rebuilt);
            let pool = self.pool.clone();
            let permit = self.permit.take();
            tokio::spawn(async move {
                let _ = conn.close().await;
                tokio::time::sleep(BACKEND_EXIT_GRACE).await;
                if let Some(permit) = permit {
                    pool.release(permit);
                }
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
