//! Queries on feedback.

use std::collections::HashMap;

use futures::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};

use super::model::{from_ms, to_ms};
use super::{Feedback, Page, Result, Store, chunk_rows, values_placeholders};
use crate::db::Pool;

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

/// Which side of a feedback row a listing is keyed by.
#[derive(Debug, Clone, Copy)]
pub enum FeedbackOf {
    User,
    Item,
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
    /// same key keep the last one sent.
    pub async fn insert_feedback(&self, rows: &[Feedback], auto_create: bool) -> Result<()> {
        let rows = dedupe_last_wins(rows);
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        if auto_create {
            create_missing(&self.pool, &mut tx, &rows).await?;
        }
        for chunk in rows.chunks(chunk_rows(5)) {
            let sql = format!(
                "INSERT INTO feedback ({COLUMNS}) VALUES {} ON CONFLICT (user_id, item_id, feedback_type) \
                 DO UPDATE SET value = excluded.value, timestamp_ms = excluded.timestamp_ms",
                values_placeholders(self.pool.backend(), chunk.len(), 5)
            );
            let mut q = self.pool.query(AssertSqlSafe(sql));
            for f in chunk {
                q = q
                    .bind(f.user_id.clone())
                    .bind(f.item_id.clone())
                    .bind(f.feedback_type.clone())
                    .bind(f.value)
                    .bind(to_ms(f.timestamp));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        conn.finish().await?;
        Ok(())
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
        let mut conn = self.pool.acquire().await?;
        let rows = self
            .pool
            .query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM feedback WHERE {key} = $1 \
             AND ({other} > $2 OR ({other} = $2 AND feedback_type > $3)) \
             ORDER BY {other}, feedback_type LIMIT $4"
            )))
            .bind(id.to_owned())
            .bind(after_id)
            .bind(after_type)
            .bind(limit as i64 + 1)
            .fetch_all(&mut *conn)
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

    /// Deletes a user's feedback on an item (of one type, or all types). Returns the deleted rows.
    pub async fn delete_feedback(
        &self,
        user_id: &str,
        item_id: &str,
        feedback_type: Option<&str>,
    ) -> Result<Vec<Feedback>> {
        let mut conn = self.pool.acquire().await?;
        let rows = self.pool.query(AssertSqlSafe(format!(
            "DELETE FROM feedback WHERE user_id = $1 AND item_id = $2 AND ($3 = '' OR feedback_type = $3) \
             RETURNING {COLUMNS}"
        )))
        .bind(user_id.to_owned())
        .bind(item_id.to_owned())
        .bind(feedback_type.unwrap_or("").to_owned())
        .fetch_all(&mut *conn)
        .await?;
        conn.finish().await?;
        rows.iter().map(decode).collect()
    }

    /// Streams every feedback row through `f` over one connection (start-up loading).
    pub async fn for_each_feedback(&self, mut f: impl FnMut(Feedback)) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let mut rows = self
            .pool
            .query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM feedback")))
            .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            f(decode(&row)?);
        }
        Ok(())
    }
}

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

async fn create_missing(pool: &Pool, conn: &mut AnyConnection, rows: &[&Feedback]) -> Result<()> {
    let backend = pool.backend();
    let now = to_ms(chrono::Utc::now());
    let mut users: Vec<&str> = rows.iter().map(|f| f.user_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    for chunk in users.chunks(chunk_rows(2)) {
        let sql = format!(
            "INSERT INTO users (id, created_ms) VALUES {} ON CONFLICT (id) DO NOTHING",
            values_placeholders(backend, chunk.len(), 2)
        );
        let mut q = pool.query(AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.to_string()).bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    let mut items: Vec<&str> = rows.iter().map(|f| f.item_id.as_str()).collect();
    items.sort_unstable();
    items.dedup();
    for chunk in items.chunks(chunk_rows(2)) {
        let sql = format!(
            "INSERT INTO items (id, timestamp_ms) VALUES {} ON CONFLICT (id) DO NOTHING",
            values_placeholders(backend, chunk.len(), 2)
        );
        let mut q = pool.query(AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.to_string()).bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
