//! Bringing data in and taking it out: `reco import` from CSV and JSON Lines files or from a SQL
//! query on another PostgreSQL database, and `reco export` to the same formats.
//!
//! An import is two halves joined by a channel of two batches: a source (`read` for files, on a
//! blocking thread; `sql` for a query) checks each row (`schema`, by `crate::rules`, as the API
//! does) and groups them into batches (`batch`); the writer (`import`) commits each batch in one
//! transaction through the pool. Memory holds at most four batches (one being read, two queued, one
//! being written) whatever the input's size.
//! `export` streams a table over one connection into a file.

mod batch;
mod export;
mod import;
mod read;
mod schema;
mod sql;

use std::path::PathBuf;

use tokio::sync::mpsc;

pub use batch::{Batcher, Problem};
pub use export::{ExportError, export};
pub use import::{ImportError, Summary};
pub use read::Format;
pub use schema::{Kind, Mapping, parse_time};
pub use sql::APPLICATION_NAME;

use crate::store::Store;

/// Rows per transaction unless told otherwise.
pub const DEFAULT_BATCH: usize = 5_000;

/// Where an import reads from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file (`None`: standard input) in a format.
    File(Option<PathBuf>, Format),
    /// A query on a PostgreSQL database.
    Query { url: String, query: String },
}

/// Imports `source` into `store` through `batcher`, reporting the summary so far after each
/// committed batch.
pub async fn import(
    store: &Store,
    source: Source,
    batcher: Batcher,
    progress: impl FnMut(&Summary),
) -> Result<Summary, ImportError> {
    let (tx, rx) = mpsc::channel(2);
    let reader = match source {
        Source::File(path, format) => {
            let reading = tokio::task::spawn_blocking(move || {
                read::read_file(path, format, batcher, tx);
            });
            tokio::spawn(async move {
                let _ = reading.await;
            })
        }
        Source::Query { url, query } => tokio::spawn(async move {
            sql::read_query(&url, &query, batcher, tx).await;
        }),
    };
    let result = import::write_batches(store, rx, progress).await;
    // On success every sender is gone, so the source has finished. On an error the receiver is
    // gone and the source stops at its next send; it is not awaited, since a reader blocked on
    // standard input would never get there.
    if result.is_ok() {
        let _ = reader.await;
    }
    result
}
