//! The writing half of an import: each batch a source sends is written in one transaction
//! through the pool (items and users upserted; feedback upserted on its key, creating the users
//! and items it names). A batch that fails is rolled back whole and retried while the database
//! is only busy or restarting; nothing of a failed batch stays behind, and every batch before it
//! is committed, so re-running an import after fixing its cause is safe.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::batch::{Batch, Problem, Rows};
use super::read::{Sent, Stop};
use crate::store::{self, Store};

/// How many times a batch is tried while the database is busy or restarting.
const ATTEMPTS: u32 = 6;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Rows committed.
    pub rows: u64,
    /// Bad rows skipped (`--skip-bad`).
    pub skipped: u64,
    /// The first bad rows skipped, for the report.
    pub problems: Vec<Problem>,
    pub batches: u64,
    pub seconds: f64,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A bad row, without `--skip-bad`.
    #[error(
        "{problem}. Every row before it is imported ({committed} rows); nothing from it on is. \
         Fix it (or pass --skip-bad) and run the import again: rows are upserted, so a re-run \
         is safe"
    )]
    Bad { problem: Problem, committed: u64 },
    /// The source failed (unreadable file, missing required column, failed query).
    #[error("{message} ({committed} rows imported before it)")]
    Source { message: String, committed: u64 },
    /// A batch could not be written; it was rolled back.
    #[error(
        "writing lines {first_line}-{last_line} failed and was rolled back ({committed} rows \
         before them are imported): {source}"
    )]
    Store {
        first_line: u64,
        last_line: u64,
        committed: u64,
        source: store::Error,
    },
}

/// Writes every batch `rx` brings, calling `progress` with the summary so far after each.
pub async fn write_batches(
    store: &Store,
    mut rx: mpsc::Receiver<Sent>,
    mut progress: impl FnMut(&Summary),
) -> Result<Summary, ImportError> {
    let started = Instant::now();
    let mut summary = Summary::default();
    while let Some(sent) = rx.recv().await {
        let batch = match sent {
            Ok(batch) => batch,
            Err(Stop::Bad(problem)) => {
                return Err(ImportError::Bad {
                    problem,
                    committed: summary.rows,
                });
            }
            Err(Stop::Failed(message)) => {
                return Err(ImportError::Source {
                    message,
                    committed: summary.rows,
                });
            }
        };
        summary.skipped += batch.skipped;
        summary.problems.extend(batch.problems.iter().cloned());
        summary.problems.truncate(10);
        if !batch.is_empty() {
            write(store, &batch)
                .await
                .map_err(|source| ImportError::Store {
                    first_line: batch.first_line,
                    last_line: batch.last_line,
                    committed: summary.rows,
                    source,
                })?;
            summary.rows += batch.len() as u64;
            summary.batches += 1;
        }
        summary.seconds = started.elapsed().as_secs_f64();
        progress(&summary);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// One batch in one transaction, tried again while the database is busy or restarting.
async fn write(store: &Store, batch: &Batch) -> Result<(), store::Error> {
    let mut wait = Duration::from_millis(200);
    for attempt in 1.. {
        let result = match &batch.rows {
            Rows::Items(rows) => store.upsert_items(rows).await,
            Rows::Users(rows) => store.upsert_users(rows).await,
            Rows::Feedback(rows) => store.insert_feedback(rows, true).await,
        };
        match result {
            Err(e) if e.is_busy() && attempt < ATTEMPTS => {
                tracing::warn!(
                    error = %e,
                    attempt,
                    "the database is busy; trying the batch again"
                );
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other.map(drop),
        }
    }
    unreachable!("the loop returns on its last attempt")
}
