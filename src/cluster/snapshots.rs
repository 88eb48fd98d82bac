//! Trained snapshots in the database: one replica publishes what it trained (in chunks, one
//! transaction), the others fetch it instead of training. The newest `cluster.keep_snapshots` are
//! kept.

use sqlx::{AssertSqlSafe, Row};

use super::error::Error;
use super::sql::server_ms;
use crate::db::Pool;

/// Size of one stored piece of a snapshot.
const CHUNK_BYTES: usize = 4 << 20;

/// A published snapshot, as listed in `reco_snapshots`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub version: u64,
    /// Server time of its training, epoch milliseconds.
    pub trained_ms: i64,
    /// Server time now, epoch milliseconds (to tell its age).
    pub now_ms: i64,
}

/// The snapshots stored in the database, as one replica reads and writes them.
pub struct SnapshotStore {
    pool: Pool,
    /// The replica recorded as their trainer.
    replica_id: String,
    keep: u32,
}

impl SnapshotStore {
    pub(super) fn new(pool: Pool, replica_id: String, keep: u32) -> Self {
        Self {
            pool,
            replica_id,
            keep,
        }
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
    ///
    /// Cancellation-safe: the header row is written incomplete and marked complete last, so no
    /// reader ever takes a partial snapshot; and the connection is closed, not returned, if this
    /// future is dropped before the end (the server then rolls the transaction back), so no later
    /// user of the pool finds itself inside the abandoned transaction.
    pub async fn publish(&self, version: u64, bytes: &[u8]) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await?;
        // Also behind a transaction-mode pooler, whose checkouts are committed when returned.
        conn.discard_on_drop();
        let pool = &self.pool;
        conn.begin_transaction().await?;
        let write = async {
            let chunks = bytes.chunks(CHUNK_BYTES).collect::<Vec<_>>();
            pool.query(concat!(
                "INSERT INTO reco_snapshots (version, trained_by, trained_ms, chunks, bytes, complete) \
                 VALUES ($1, $2, ",
                server_ms!(),
                ", $3, $4, FALSE)"
            ))
            .bind(version as i64)
            .bind(&self.replica_id)
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
            pool.query("UPDATE reco_snapshots SET complete = TRUE WHERE version = $1")
                .bind(version as i64)
                .execute(&mut *conn)
                .await?;
            // Leftovers of an abandoned publish (incomplete), and all but the newest complete.
            pool.query(AssertSqlSafe(format!(
                "DELETE FROM reco_snapshots WHERE NOT complete OR version NOT IN \
                 (SELECT version FROM reco_snapshots WHERE complete ORDER BY version DESC LIMIT {})",
                self.keep
            )))
            .execute(&mut *conn)
            .await?;
            Ok::<_, Error>(())
        }
        .await;
        match write {
            Ok(()) => {
                conn.commit_transaction().await?;
                conn.keep_on_drop();
                Ok(())
            }
            Err(e) => {
                if conn.rollback_transaction().await.is_ok() {
                    conn.keep_on_drop();
                }
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
