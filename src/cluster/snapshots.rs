//! Trained snapshots in the database: one replica publishes what it trained (in chunks, one
//! transaction), the others fetch it instead of training. The newest `cluster.keep_snapshots` are
//! kept.
//!
//! Both directions stream: the encoder (on a blocking thread) writes into a [`ChunkWriter`] that
//! hands each full chunk to [`SnapshotStore::publish`] over a small channel, and
//! [`SnapshotStore::fetch`] hands each chunk it reads to a [`ChunkReader`] that the decoder reads
//! from. Neither side ever holds the whole encoded snapshot next to the models.

use std::io;

use sqlx::{AssertSqlSafe, Row};
use tokio::sync::mpsc;

use super::error::Error;
use super::sql::server_ms;
use crate::db::Pool;

/// Size of one stored piece of a snapshot.
const CHUNK_BYTES: usize = 4 << 20;

/// Chunks in flight between the encoder or decoder and the database.
const IN_FLIGHT: usize = 2;

/// The writing end of a snapshot being published: a blocking [`io::Write`] (for a blocking
/// thread) that sends each [`CHUNK_BYTES`] to [`SnapshotStore::publish`]. Only
/// [`ChunkWriter::finish`] marks the snapshot complete: an encoder that fails or panics halfway
/// drops the writer without it, and the publish is rolled back.
pub struct ChunkWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

/// A writer and the receiver to pass to [`SnapshotStore::publish`].
pub fn chunk_channel() -> (ChunkWriter, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let writer = ChunkWriter {
        tx,
        buf: Vec::with_capacity(CHUNK_BYTES),
    };
    (writer, rx)
}

impl ChunkWriter {
    fn send(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the publish stopped"))
    }

    /// Sends what is left and the end mark (an empty chunk).
    pub fn finish(mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.send(last)?;
        }
        self.send(Vec::new())
    }
}

impl io::Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() == CHUNK_BYTES {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
            self.send(full)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end of a snapshot being fetched: a blocking [`io::Read`] (for a blocking thread)
/// over the chunks [`SnapshotStore::fetch`] sends. It ends where the chunks end; whether they were
/// all there is `fetch`'s result.
pub struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

/// A reader and the sender to pass to [`SnapshotStore::fetch`].
pub fn read_channel() -> (ChunkReader, mpsc::Sender<Vec<u8>>) {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let reader = ChunkReader {
        rx,
        chunk: Vec::new(),
        at: 0,
    };
    (reader, tx)
}

impl io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => (self.chunk, self.at) = (chunk, 0),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
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

    /// Stores the encoded snapshot `version` as its chunks arrive (one transaction), and deletes
    /// all but the newest `keep_snapshots`. The chunks come from a [`ChunkWriter`]; the snapshot
    /// is stored only if it ends with the writer's end mark. Returns its size in bytes.
    ///
    /// Cancellation-safe: the header row is written incomplete and marked complete last, so no
    /// reader ever takes a partial snapshot; and the connection is closed, not returned, if this
    /// future is dropped before the end (the server then rolls the transaction back), so no later
    /// user of the pool finds itself inside the abandoned transaction.
    pub async fn publish(
        &self,
        version: u64,
        mut chunks: mpsc::Receiver<Vec<u8>>,
    ) -> Result<u64, Error> {
        let mut conn = self.pool.acquire().await?;
        // Also behind a transaction-mode pooler, whose checkouts are committed when returned.
        conn.discard_on_drop();
        let pool = &self.pool;
        conn.begin_transaction().await?;
        let write = async {
            pool.query(concat!(
                "INSERT INTO reco_snapshots (version, trained_by, trained_ms, chunks, bytes, complete) \
                 VALUES ($1, $2, ",
                server_ms!(),
                ", 0, 0, FALSE)"
            ))
            .bind(version as i64)
            .bind(&self.replica_id)
            .execute(&mut *conn)
            .await?;
            let (mut n, mut bytes) = (0i32, 0i64);
            loop {
                let Some(chunk) = chunks.recv().await else {
                    return Err(Error::Snapshot {
                        version,
                        reason: "its encoding stopped before the end".into(),
                    });
                };
                if chunk.is_empty() {
                    break;
                }
                bytes += chunk.len() as i64;
                pool.query("INSERT INTO reco_snapshot_chunks (version, chunk, data) VALUES ($1, $2, $3)")
                    .bind(version as i64)
                    .bind(n)
                    .bind(chunk)
                    .execute(&mut *conn)
                    .await?;
                n += 1;
            }
            pool.query(
                "UPDATE reco_snapshots SET complete = TRUE, chunks = $2, bytes = $3 WHERE version = $1",
            )
            .bind(version as i64)
            .bind(n)
            .bind(bytes)
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
            Ok::<_, Error>(bytes as u64)
        }
        .await;
        match write {
            Ok(bytes) => {
                conn.commit_transaction().await?;
                conn.keep_on_drop();
                Ok(bytes)
            }
            Err(e) => {
                if conn.rollback_transaction().await.is_ok() {
                    conn.keep_on_drop();
                }
                Err(e)
            }
        }
    }

    /// Sends the chunks of the encoded snapshot `version` to `chunks` (a [`ChunkReader`]'s
    /// sender), one row at a time, and checks that they were all there.
    pub async fn fetch(&self, version: u64, chunks: mpsc::Sender<Vec<u8>>) -> Result<(), Error> {
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
        let (expected, bytes): (i32, i64) = (head.try_get(0)?, head.try_get(1)?);
        let (mut rows, mut read) = (0, 0i64);
        for n in 0..expected {
            let row = self
                .pool
                .query("SELECT data FROM reco_snapshot_chunks WHERE version = $1 AND chunk = $2")
                .bind(version as i64)
                .bind(n)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else { break };
            let data: Vec<u8> = row.try_get(0)?;
            read += data.len() as i64;
            rows += 1;
            if chunks.send(data).await.is_err() {
                break; // the decoder stopped: its error says why
            }
        }
        if rows != expected || read != bytes {
            return Err(Error::Snapshot {
                version,
                reason: format!("{rows} of {expected} chunks, {read} of {bytes} bytes"),
            });
        }
        Ok(())
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
