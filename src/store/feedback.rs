//! Queries on feedback.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};

use super::access::Position;
use super::access::{Page, Query, Statement, Store, insert_chunks};
use super::error::Result;
use super::model::{Feedback, FeedbackOf, from_ms, to_ms};
use crate::db::Pool;
use crate::kinds::Backend;

const COLUMNS: &str = "user_id, item_id, feedback_type, value, timestamp_ms";

fn decode(row: &AnyRow) -> Result<Feedback> {
    Ok(Feedback {
        user_id: row.try_get("user_id")?,
        item_id: row.try_get("item_id")?,
        feedback_type: row.try_get("feedback_type")?,
        value: row.try_get("value")?,
        timestamp: from_ms(row.try_get("timestamp_ms")?),
    })
}

/// Cursor of a feedback listing: the other id and the type of the last row, tab-separated (ids
/// cannot contain control characters, so the tab is unambiguous).
fn split_cursor(cursor: Option<&str>) -> (String, String) {
    match cursor.and_then(|c| c.split_once('\t')) {
        Some((id, ty)) => (id.to_owned(), ty.to_owned()),
        None => (cursor.unwrap_or("").to_owned(), String::new()),
    }
}

impl Store {
    /// Writes a group of feedback rows in one transaction. With `auto_create`, unknown users and
    /// items are created first (items hidden-free and empty, users without labels). Rows with the
    /// same key keep the last one sent. When this store records changes, the rows as written are
    /// one change of the same statement.
    pub async fn insert_feedback(&self, rows: &[Feedback], auto_create: bool) -> Result<Position> {
        let rows = dedupe_last_wins(rows);
        if self.pool.backend() == Backend::Postgres {
            return self.insert_feedback_postgres(&rows, auto_create).await;
        }
        let pool = &self.pool;
        self.with_conn(|conn, _| {
            Box::pin(async move {
                let mut tx = Connection::begin(&mut **conn).await?;
                if auto_create {
                    create_missing(pool, &mut tx, &rows).await?;
                }
                let insert = Statement {
                    insert: "INSERT INTO feedback \
                             (user_id, item_id, feedback_type, value, timestamp_ms) VALUES",
                    conflict: "ON CONFLICT (user_id, item_id, feedback_type) \
                               DO UPDATE SET value = excluded.value, \
                               timestamp_ms = excluded.timestamp_ms",
                    cols: 5,
                    bind: |q, f: &&Feedback| {
                        q.bind(f.user_id.clone())
                            .bind(f.item_id.clone())
                            .bind(f.feedback_type.clone())
                            .bind(f.value)
                            .bind(to_ms(f.timestamp))
                    },
                };
                insert_chunks(pool, &mut tx, pool.backend(), &insert, &rows).await?;
                tx.commit().await?;
                Ok(None)
            })
        })
        .await
    }

    /// The PostgreSQL form of [`Store::insert_feedback`]: one statement, so one round trip. The
    /// rows travel as one JSON parameter (`json_to_recordset`), so the statement's text is the
    /// same for every group: prepared once per connection, and no parameter limit to chunk
    /// around. The users and items it creates are data-modifying CTEs of the same statement
    /// (the foreign keys are checked at its end, where they see them), inserted in id order like
    /// [`create_missing`], so concurrent writers take their locks in one order. A statement is
    /// its own transaction (behind a transaction-mode pooler, the checkout's): every row is
    /// written or none. Five round trips (`BEGIN`, users, items, feedback, `COMMIT`) took twice
    /// as long under load and gave half the throughput (docs/BENCHMARKS.md).
    async fn insert_feedback_postgres(
        &self,
        rows: &[&Feedback],
        auto_create: bool,
    ) -> Result<Position> {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            user_id: &'a str,
            item_id: &'a str,
            feedback_type: &'a str,
            value: f64,
            timestamp_ms: i64,
        }
        let json: Vec<Row> = rows
            .iter()
            .map(|f| Row {
                user_id: &f.user_id,
                item_id: &f.item_id,
                feedback_type: &f.feedback_type,
                value: f.value,
                timestamp_ms: to_ms(f.timestamp),
            })
            .collect();
        let json = serde_json::to_string(&json).expect("feedback rows serialise");
        let sql = match (auto_create, self.feed().is_some()) {
            (false, false) => UPSERT_FEEDBACK,
            (true, false) => UPSERT_FEEDBACK_CREATING,
            (false, true) => UPSERT_FEEDBACK_RECORDED,
            (true, true) => UPSERT_FEEDBACK_CREATING_RECORDED,
        };
        // Parameters: the rows, the creation time when creating, the replica when recording.
        let mut q = self.pool.query(sql).bind(json);
        if auto_create {
            q = q.bind(to_ms(chrono::Utc::now()));
        }
        let Some(replica) = self.feed() else {
            return self
                .with_conn(|conn, _| {
                    Box::pin(async move { Ok(q.execute(&mut **conn).await.map(|_| None)?) })
                })
                .await;
        };
        let q = q.bind(replica.to_owned());
        self.with_conn(|conn, _| {
            Box::pin(async move {
                let row = q.fetch_optional(&mut **conn).await?;
                Ok(row.map(|r| r.try_get(0)).transpose()?)
            })
        })
        .await
    }

    /// One user's or one item's feedback, ordered by the other id and the type.
    pub async fn list_feedback(
        &self,
        of: FeedbackOf,
        id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Feedback>> {
        let (key, other) = match of {
            FeedbackOf::User => ("user_id", "item_id"),
            FeedbackOf::Item => ("item_id", "user_id"),
        };
        let (after_id, after_type) = split_cursor(cursor);
        let q = self
            .pool
            .query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM feedback WHERE {key} = $1 \
             AND ({other} > $2 OR ({other} = $2 AND feedback_type > $3)) \
             ORDER BY {other}, feedback_type LIMIT $4"
            )))
            .bind(id.to_owned())
            .bind(after_id)
            .bind(after_type)
            .bind(limit as i64 + 1);
        let rows = self
            .with_conn(|conn, _| Box::pin(async move { Ok(q.fetch_all(&mut **conn).await?) }))
            .await?;
        let rows = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(rows, limit, |f| {
            let other_id = match of {
                FeedbackOf::User => &f.item_id,
                FeedbackOf::Item => &f.user_id,
            };
            format!("{other_id}\t{}", f.feedback_type)
        }))
    }

    /// Deletes a user's feedback on an item (of one type, or all types). Returns the deleted
    /// rows, and the change recorded with them in the same statement when this store records
    /// changes (none when nothing was deleted).
    pub async fn delete_feedback(
        &self,
        user_id: &str,
        item_id: &str,
        feedback_type: Option<&str>,
    ) -> Result<(Vec<Feedback>, Position)> {
        let delete = format!(
            "DELETE FROM feedback WHERE user_id = $1 AND item_id = $2 \
             AND ($3 = '' OR feedback_type = $3) RETURNING {COLUMNS}"
        );
        let recording = self.feed().is_some();
        let sql = if recording {
            format!(
                "WITH d AS ({delete}), c AS (INSERT INTO reco_changes (replica, kind, payload) \
                 SELECT $4, 'unfeedback', jsonb_agg(d) FROM d HAVING count(*) > 0 RETURNING pos) \
                 SELECT d.*, (SELECT pos FROM c) AS pos FROM d"
            )
        } else {
            delete
        };
        let mut q = self
            .pool
            .query(AssertSqlSafe(sql))
            .bind(user_id.to_owned())
            .bind(item_id.to_owned())
            .bind(feedback_type.unwrap_or("").to_owned());
        if let Some(replica) = self.feed() {
            q = q.bind(replica.to_owned());
        }
        let rows = self
            .with_conn(|conn, _| Box::pin(async move { Ok(q.fetch_all(&mut **conn).await?) }))
            .await?;
        let pos = match rows.first() {
            Some(row) if recording => row.try_get("pos")?,
            _ => None,
        };
        Ok((rows.iter().map(decode).collect::<Result<_>>()?, pos))
    }

    /// Streams every feedback row through `f` over one connection (start-up loading).
    pub async fn for_each_feedback(&self, f: impl FnMut(Feedback) + Send) -> Result<()> {
        self.for_each_row(format!("SELECT {COLUMNS} FROM feedback"), decode, f)
            .await
    }

    /// Streams every feedback row (with `since`: those whose `timestamp_ms` is at or after it, epoch
    /// ms) through `f` over one connection, until `f` returns false (`reco export`).
    pub async fn export_feedback(
        &self,
        since_ms: Option<i64>,
        f: impl FnMut(Feedback) -> bool + Send,
    ) -> Result<()> {
        let sql = format!("SELECT {COLUMNS} FROM feedback");
        self.stream_rows(sql, since_ms.map(|ms| ("timestamp_ms", ms)), decode, f)
            .await
    }
}

/// The rows of `$1` (a JSON array) as a table.
macro_rules! feedback_rows {
    () => {
        "r AS (SELECT * FROM json_to_recordset($1::json) AS r(user_id TEXT, item_id TEXT, \
         feedback_type TEXT, value DOUBLE PRECISION, timestamp_ms BIGINT))"
    };
}

/// Upserts the rows of `$1`; rows with the same key keep the one sent last (deduplicated before).
/// In key order: concurrent writers (several replicas' group commits) lock the rows they share in
/// one order, so they wait for each other instead of deadlocking.
macro_rules! upsert_feedback {
    () => {
        "INSERT INTO feedback (user_id, item_id, feedback_type, value, timestamp_ms) \
         SELECT user_id, item_id, feedback_type, value, timestamp_ms FROM r \
         ORDER BY user_id, item_id, feedback_type \
         ON CONFLICT (user_id, item_id, feedback_type) \
         DO UPDATE SET value = excluded.value, timestamp_ms = excluded.timestamp_ms"
    };
}

/// The users and items the rows name, created first (at time `$2`).
macro_rules! create_missing {
    () => {
        ", new_users AS (INSERT INTO users (id, created_ms) \
         SELECT DISTINCT user_id, $2::BIGINT FROM r ORDER BY 1 ON CONFLICT (id) DO NOTHING), \
         new_items AS (INSERT INTO items (id, timestamp_ms) \
         SELECT DISTINCT item_id, $2::BIGINT FROM r ORDER BY 1 ON CONFLICT (id) DO NOTHING)"
    };
}

/// The upsert as a CTE returning the rows as written, and one change holding them all, as the
/// replica `$n`. The change is built from the upsert's output, so its position is drawn after
/// the rows' locks are held: two writes of one row get positions in their commit order.
macro_rules! recorded {
    ($replica:literal) => {
        concat!(
            ", up AS (",
            upsert_feedback!(),
            " RETURNING user_id, item_id, feedback_type, value, timestamp_ms) \
             INSERT INTO reco_changes (replica, kind, payload) \
             SELECT ",
            $replica,
            ", 'feedback', jsonb_agg(up) FROM up HAVING count(*) > 0 RETURNING pos"
        )
    };
}

/// PostgreSQL: the rows of `$1` upserted.
const UPSERT_FEEDBACK: &str = concat!("WITH ", feedback_rows!(), " ", upsert_feedback!());

/// PostgreSQL: the users and items the rows of `$1` name created first (at time `$2`), then the
/// rows upserted.
const UPSERT_FEEDBACK_CREATING: &str = concat!(
    "WITH ",
    feedback_rows!(),
    create_missing!(),
    " ",
    upsert_feedback!()
);

/// [`UPSERT_FEEDBACK`], recording the change as replica `$2`.
const UPSERT_FEEDBACK_RECORDED: &str = concat!("WITH ", feedback_rows!(), recorded!("$2"));

/// [`UPSERT_FEEDBACK_CREATING`], recording the change as replica `$3`.
const UPSERT_FEEDBACK_CREATING_RECORDED: &str = concat!(
    "WITH ",
    feedback_rows!(),
    create_missing!(),
    recorded!("$3")
);

/// A multi-row upsert may not touch the same key twice (PostgreSQL rejects it), so keep the last.
fn dedupe_last_wins(rows: &[Feedback]) -> Vec<&Feedback> {
    let mut last = HashMap::with_capacity(rows.len());
    for (i, f) in rows.iter().enumerate() {
        last.insert(f.key(), i);
    }
    rows.iter()
        .enumerate()
        .filter(|(i, f)| last[&f.key()] == *i)
        .map(|(_, f)| f)
        .collect()
}

/// Creates the users and items `rows` name that do not exist yet (users without labels, items
/// empty and visible), in the caller's transaction.
async fn create_missing(pool: &Pool, conn: &mut AnyConnection, rows: &[&Feedback]) -> Result<()> {
    let now = to_ms(chrono::Utc::now());
    let sorted_ids = |id: fn(&Feedback) -> &str| {
        let mut ids: Vec<(String, i64)> = rows.iter().map(|f| (id(f).to_owned(), now)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let bind = |q: Query, row: &(String, i64)| q.bind(row.0.clone()).bind(row.1);
    for (table, ids) in [
        (
            "INSERT INTO users (id, created_ms) VALUES",
            sorted_ids(|f| &f.user_id),
        ),
        (
            "INSERT INTO items (id, timestamp_ms) VALUES",
            sorted_ids(|f| &f.item_id),
        ),
    ] {
        let statement = Statement {
            insert: table,
            conflict: "ON CONFLICT (id) DO NOTHING",
            cols: 2,
            bind,
        };
        insert_chunks(pool, conn, pool.backend(), &statement, &ids).await?;
    }
    Ok(())
}
