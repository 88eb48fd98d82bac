//! `reco import --from-database URL --query 'SELECT ...'`: the rows of a query on an existing
//! PostgreSQL database (the application's own), read over one connection of their own, in a
//! read-only transaction, named `reco-import` in `application_name` so a DBA sees who it is.
//!
//! Each row is turned into JSON by PostgreSQL itself (`to_jsonb` of the query's row), so every
//! column type the server knows arrives typed (numbers, booleans, arrays, JSON, times as ISO
//! text) without a decoder per type here; the column names are the query's, mapped like a
//! file's with `--columns`.

use std::str::FromStr;

use futures::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, Row};
use tokio::sync::mpsc;

use super::batch::Batcher;
use super::read::{Sent, Stop};
use super::schema::Cell;

/// What the connection calls itself on the source database.
pub const APPLICATION_NAME: &str = "reco-import";

/// Runs `query` on `url` and sends its rows as batches to `tx`.
pub async fn read_query(url: &str, query: &str, mut batcher: Batcher, tx: mpsc::Sender<Sent>) {
    let outcome = stream(url, query, &mut batcher, &tx).await;
    let rest = batcher.take();
    if (!rest.is_empty() || rest.skipped > 0) && tx.send(Ok(rest)).await.is_err() {
        return;
    }
    if let Err(Some(stop)) = outcome {
        let _ = tx.send(Err(stop)).await;
    }
}

async fn stream(
    url: &str,
    query: &str,
    batcher: &mut Batcher,
    tx: &mpsc::Sender<Sent>,
) -> Result<(), Option<Stop>> {
    let failed = |what: &str, e: sqlx::Error| Some(Stop::Failed(format!("{what}: {e}")));
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| failed("the source database URL", e))?
        .application_name(APPLICATION_NAME);
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| failed("connecting to the source database", e))?;
    conn.execute("BEGIN TRANSACTION READ ONLY")
        .await
        .map_err(|e| failed("starting a read-only transaction", e))?;
    let query = query.trim().trim_end_matches(';');
    // The query runs as a subquery: one statement, no trailing `;`, its rows as JSON objects.
    let wrapped = format!("SELECT to_jsonb(q)::text AS row FROM ({query}) AS q");
    let mut rows = sqlx::raw_sql(sqlx::AssertSqlSafe(wrapped)).fetch(&mut conn);
    let mut checked_header = false;
    let mut line = 0;
    while let Some(row) = rows.try_next().await.map_err(|e| failed("the query", e))? {
        line += 1;
        let text: String = row.try_get("row").map_err(|e| failed("the query", e))?;
        let object: Map<String, Value> = serde_json::from_str(&text)
            .map_err(|e| Some(Stop::Failed(format!("row {line} is not an object: {e}"))))?;
        if !checked_header {
            batcher
                .mapping()
                .check_header(object.keys().map(String::as_str))
                .map_err(|e| Some(Stop::Failed(e)))?;
            checked_header = true;
        }
        match batcher.push(line, |column| object.get(column).map(Cell::Json)) {
            Ok(Some(batch)) => tx.send(Ok(batch)).await.map_err(|_| None)?,
            Ok(None) => {}
            Err(problem) => return Err(Some(Stop::Bad(problem))),
        }
    }
    drop(rows);
    let _ = conn.execute("ROLLBACK").await;
    let _ = conn.close().await;
    Ok(())
}
