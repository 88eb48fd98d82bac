//! The training lock: one replica at a time trains, under a PostgreSQL advisory lock.

use sqlx::Row;

use super::error::Error;
use super::sql::lock_key;
use crate::config::Pooler;
use crate::db::{self, Conn, Pool};

/// Takes the training lock of `application_name` if no other replica holds it. Behind a
/// transaction-mode pooler the lock lives in a transaction kept open for the run (a session lock
/// would stay on whichever server connection ran it); otherwise it is a session lock.
pub async fn try_training_lock(
    pool: &Pool,
    application_name: &str,
) -> Result<Option<TrainingLock>, Error> {
    let mut conn = pool.acquire().await?;
    let key = lock_key("train", application_name);
    let transactional = pool.pooler() == Pooler::Transaction;
    // If this task is cancelled with the lock held, the connection must not go back to the
    // pool with it.
    conn.discard_on_drop();
    let sql = if transactional {
        conn.begin_transaction().await?;
        "SELECT pg_try_advisory_xact_lock($1)"
    } else {
        "SELECT pg_try_advisory_lock($1)"
    };
    let got: bool = pool
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
        pool: pool.clone(),
    }))
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
