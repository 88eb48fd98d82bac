//! The change feed (PostgreSQL, clustered replicas only): the row each write adds to
//! `reco_changes` in its own transaction, and the queries a follower reads, starts and prunes it
//! with. The argument for reading it safely is `cluster::Frontier`'s; this file only runs the SQL.
//!
//! A write records a change only on a store made with [`Store::recording_changes`] (the
//! catalogue's, when `cluster.connection_budget` is set); elsewhere the writes are what they were.
//! The replica's id is bound as a parameter, never set on the session, so a transaction-mode
//! pooler in between changes nothing.

use std::sync::Arc;

use serde::Deserialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::access::Store;
use super::error::{Error, Result};
use super::model::{Feedback, Item, from_ms};
use crate::kinds::Backend;

/// What one change did, as a follower applies it.
#[derive(Debug, Clone)]
pub enum Change {
    /// Feedback rows upserted (a whole group commit).
    Feedback(Vec<Feedback>),
    /// Feedback rows deleted.
    Unfeedback(Vec<Feedback>),
    /// Items upserted or patched (as stored after the write).
    Items(Vec<Item>),
    DeleteItem(String),
    /// Users upserted (the engine holds only their ids).
    Users(Vec<String>),
    DeleteUser(String),
    /// Too much changed to say row by row (`reco import`, or a kind this version does not know):
    /// reload from the tables.
    Reload,
}

/// One row of the feed.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub pos: i64,
    /// The replica that wrote it (`import` for `reco import`).
    pub replica: String,
    /// When it was written, by the server's clock (epoch ms).
    pub at_ms: i64,
    pub change: Change,
}

/// One read of the feed, all under one snapshot.
#[derive(Debug, Clone)]
pub struct FeedRead {
    /// The snapshot's `xmin` and `xmax` (`pg_snapshot_xmin`/`xmax`): see `cluster::Frontier`.
    pub xmin: u64,
    pub xmax: u64,
    /// Everything at or below this was pruned.
    pub horizon: i64,
    /// The server's clock when the snapshot was taken (epoch ms).
    pub now_ms: i64,
    pub entries: Vec<FeedEntry>,
    /// More changes wait above those read (the read stopped at its count or its bytes).
    pub cut: bool,
}

/// Where a follower starts, read before it loads the tables.
#[derive(Debug, Clone)]
pub struct FeedStart {
    pub horizon: i64,
    /// The highest position drawn and visible (or the horizon, if higher).
    pub top: i64,
    /// Positions in the last `window` below `top` that the snapshot does not show (their
    /// transactions are running, aborted, or they were never used).
    pub gaps: Vec<i64>,
    pub xmax: u64,
}

/// A feedback row as the feed carries it (the table's columns).
#[derive(Deserialize)]
struct FeedbackRow {
    user_id: String,
    item_id: String,
    feedback_type: String,
    value: f64,
    timestamp_ms: i64,
}

impl From<FeedbackRow> for Feedback {
    fn from(r: FeedbackRow) -> Self {
        Feedback {
            user_id: r.user_id,
            item_id: r.item_id,
            feedback_type: r.feedback_type,
            value: r.value,
            timestamp: from_ms(r.timestamp_ms),
        }
    }
}

fn decode_change(kind: &str, payload: Option<&str>) -> Result<Change> {
    fn parse<T: serde::de::DeserializeOwned>(kind: &str, payload: Option<&str>) -> Result<T> {
        serde_json::from_str(payload.unwrap_or("null"))
            .map_err(|e| Error::Corrupt(format!("reco_changes ({kind}): {e}")))
    }
    let rows = |p| -> Result<Vec<Feedback>> {
        let rows: Vec<FeedbackRow> = parse(kind, p)?;
        Ok(rows.into_iter().map(Feedback::from).collect())
    };
    Ok(match kind {
        "feedback" => Change::Feedback(rows(payload)?),
        "unfeedback" => Change::Unfeedback(rows(payload)?),
        "items" => Change::Items(parse(kind, payload)?),
        "delete_item" => Change::DeleteItem(parse(kind, payload)?),
        "users" => Change::Users(parse(kind, payload)?),
        "delete_user" => Change::DeleteUser(parse(kind, payload)?),
        _ => Change::Reload,
    })
}

fn decode_entry(row: &AnyRow) -> Result<Option<FeedEntry>> {
    let Some(pos) = row.try_get::<Option<i64>, _>("pos")? else {
        return Ok(None);
    };
    let kind: String = row.try_get("kind")?;
    let payload: Option<String> = row.try_get("payload")?;
    Ok(Some(FeedEntry {
        pos,
        replica: row.try_get("replica")?,
        at_ms: row.try_get("at_ms")?,
        change: decode_change(&kind, payload.as_deref())?,
    }))
}

/// The server's clock in epoch milliseconds.
macro_rules! server_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

/// The snapshot's bounds and the server's clock, as columns of a feed query.
macro_rules! snapshot_columns {
    () => {
        concat!(
            "pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin, \
             pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax, \
             (SELECT horizon FROM reco_feed) AS horizon, ",
            server_ms!(),
            " AS now_ms"
        )
    };
}

/// The first changes above `$1`, at most `$3` of them and (after the first) at most `$4` bytes of
/// payload, and every change listed in `$2` (comma-separated: the follower must learn of each
/// listed one whether it committed), in position order, with the snapshot they were read under
/// and whether more changes wait above them (`cut`). One statement, so one snapshot
/// (`pg_current_snapshot()` is the statement's own under READ COMMITTED). Two index scans joined,
/// not one `OR`: with an `OR` the planner walks the whole index (14 ms at 45,000 changes).
const READ: &str = concat!(
    "WITH n AS (SELECT pos, replica, kind, payload, at_ms, \
     sum(COALESCE(pg_column_size(payload), 0)) OVER (ORDER BY pos) \
     - COALESCE(pg_column_size(payload), 0) AS before \
     FROM (SELECT * FROM reco_changes WHERE pos > $1 ORDER BY pos LIMIT $3) l), \
     s AS (SELECT ",
    snapshot_columns!(),
    ", (SELECT count(*) >= $3 OR COALESCE(bool_or(before >= $4), FALSE) FROM n) AS cut), \
     c AS ((SELECT pos, replica, kind, payload, at_ms FROM n WHERE before < $4) UNION ALL \
     (SELECT pos, replica, kind, payload, at_ms FROM reco_changes \
     WHERE pos = ANY(string_to_array($2, ',')::bigint[]))) \
     SELECT s.*, c.pos, c.replica, c.kind, c.payload::text AS payload, c.at_ms \
     FROM s LEFT JOIN c ON TRUE ORDER BY c.pos"
);

/// Where a follower starts: the horizon, the top position, and the gaps in the last `$1`
/// positions below it.
const START: &str = concat!(
    "WITH s AS (SELECT ",
    snapshot_columns!(),
    "), t AS (SELECT s.*, GREATEST(s.horizon, COALESCE((SELECT max(pos) FROM reco_changes), 0)) \
     AS top FROM s) \
     SELECT t.xmax, t.horizon, t.top, g.p FROM t LEFT JOIN LATERAL (\
     SELECT p FROM generate_series(GREATEST(t.horizon, t.top - $1) + 1, t.top) AS p \
     WHERE NOT EXISTS (SELECT 1 FROM reco_changes c WHERE c.pos = p)) g ON TRUE ORDER BY g.p"
);

/// Prunes what every replica has passed: at most `$1` (the pruner's own settled position, so
/// everything pruned is committed or never will be), at most the lowest position a replica
/// recorded, and only changes older than `$3` ms; changes older than `$2` ms go whatever the
/// replicas recorded (a replica that needed them reloads).
const PRUNE: &str = concat!(
    "WITH now AS (SELECT ",
    server_ms!(),
    " AS ms), \
     h AS (SELECT GREATEST(\
     LEAST($1::bigint, COALESCE((SELECT min(feed_pos) FROM reco_replicas), $1::bigint), \
     COALESCE((SELECT max(pos) FROM reco_changes, now WHERE at_ms < now.ms - $3), 0)), \
     COALESCE((SELECT max(pos) FROM reco_changes, now WHERE pos <= $1 AND at_ms < now.ms - $2), 0)\
     ) AS p), \
     d AS (DELETE FROM reco_changes WHERE pos <= (SELECT p FROM h) RETURNING 1) \
     UPDATE reco_feed SET horizon = GREATEST(horizon, (SELECT p FROM h)) \
     RETURNING horizon, (SELECT count(*) FROM d) AS pruned"
);

impl Store {
    /// This store with every write also recording a change for the feed, as `replica` (PostgreSQL
    /// only; on SQLite the store is returned as it was).
    pub fn recording_changes(mut self, replica: &str) -> Store {
        if self.pool.backend() == Backend::Postgres {
            self.feed = Some(Arc::from(replica));
        }
        self
    }

    /// The replica changes are recorded as, when they are.
    pub(super) fn feed(&self) -> Option<&str> {
        self.feed.as_deref()
    }

    /// Reads the feed: the first changes above `above` (at most `limit`, and at most `bytes` of
    /// payload after the first), and every one in `missing`.
    pub async fn read_changes(
        &self,
        above: i64,
        missing: &[i64],
        limit: usize,
        bytes: usize,
    ) -> Result<FeedRead> {
        let list = missing
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let q = self
            .pool
            .query(READ)
            .bind(above)
            .bind(list)
            .bind(limit as i64)
            .bind(bytes as i64);
        let rows = self
            .with_conn(|conn, _| Box::pin(async move { Ok(q.fetch_all(&mut **conn).await?) }))
            .await?;
        let first = rows
            .first()
            .ok_or_else(|| Error::Corrupt("the feed's snapshot row is missing".into()))?;
        Ok(FeedRead {
            xmin: first.try_get::<i64, _>("xmin")? as u64,
            xmax: first.try_get::<i64, _>("xmax")? as u64,
            horizon: first.try_get("horizon")?,
            now_ms: first.try_get("now_ms")?,
            cut: first.try_get("cut")?,
            entries: rows
                .iter()
                .filter_map(|r| decode_entry(r).transpose())
                .collect::<Result<_>>()?,
        })
    }

    /// Where a follower that is about to load the tables starts (see [`FeedStart`]); `window`
    /// bounds how far below the top gaps are looked for.
    pub async fn feed_start(&self, window: i64) -> Result<FeedStart> {
        let q = self.pool.query(START).bind(window);
        let rows = self
            .with_conn(|conn, _| Box::pin(async move { Ok(q.fetch_all(&mut **conn).await?) }))
            .await?;
        let first = rows
            .first()
            .ok_or_else(|| Error::Corrupt("the feed's start row is missing".into()))?;
        Ok(FeedStart {
            horizon: first.try_get("horizon")?,
            top: first.try_get("top")?,
            xmax: first.try_get::<i64, _>("xmax")? as u64,
            gaps: rows
                .iter()
                .filter_map(|r| r.try_get::<Option<i64>, _>("p").transpose())
                .collect::<std::result::Result<_, _>>()?,
        })
    }

    /// Prunes the feed (see `PRUNE`): `settled` is the caller's own position; changes younger
    /// than `min_age_ms` stay, changes older than `retention_ms` go. Returns the new horizon and
    /// how many changes went.
    pub async fn prune_changes(
        &self,
        settled: i64,
        retention_ms: i64,
        min_age_ms: i64,
    ) -> Result<(i64, i64)> {
        let q = self
            .pool
            .query(PRUNE)
            .bind(settled)
            .bind(retention_ms)
            .bind(min_age_ms);
        self.with_conn(|conn, _| {
            Box::pin(async move {
                let row = q.fetch_one(&mut **conn).await?;
                Ok((row.try_get("horizon")?, row.try_get("pruned")?))
            })
        })
        .await
    }

    /// Tells followers to reload from the tables (after `reco import` wrote around the feed).
    /// Nothing on SQLite, which has no feed.
    pub async fn record_reload(&self, replica: &str) -> Result<()> {
        if self.pool.backend() != Backend::Postgres {
            return Ok(());
        }
        let q = self
            .pool
            .query("INSERT INTO reco_changes (replica, kind) VALUES ($1, 'reload')")
            .bind(replica.to_owned());
        self.with_conn(|conn, _| {
            Box::pin(async move { Ok(q.execute(&mut **conn).await.map(drop)?) })
        })
        .await
    }
}
