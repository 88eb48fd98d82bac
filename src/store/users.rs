//! Queries on users.

use futures::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::model::{from_ms, to_ms};
use super::{Error, Page, Result, Store, User, UserPatch, chunk_rows, values_placeholders};

fn decode(row: &AnyRow) -> Result<User> {
    let labels: String = row.try_get("labels")?;
    Ok(User {
        id: row.try_get("id")?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| Error::Corrupt(format!("users.labels: {e}")))?,
        created_at: from_ms(row.try_get("created_ms")?),
    })
}

impl Store {
    /// Inserts or replaces users (labels), all in one transaction. `created_at` of an existing user
    /// is kept.
    pub async fn upsert_users(&self, users: &[User]) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        for chunk in users.chunks(chunk_rows(3)) {
            let sql = format!(
                "INSERT INTO users (id, labels, created_ms) VALUES {} \
                 ON CONFLICT (id) DO UPDATE SET labels = excluded.labels",
                values_placeholders(self.pool.backend(), chunk.len(), 3)
            );
            let mut q = self.pool.query(AssertSqlSafe(sql));
            for user in chunk {
                q = q
                    .bind(user.id.clone())
                    .bind(user.labels.to_string())
                    .bind(to_ms(user.created_at));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        conn.finish().await?;
        Ok(())
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await?;
        let row = self
            .pool
            .query("SELECT id, labels, created_ms FROM users WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    pub async fn patch_user(&self, id: &str, patch: &UserPatch) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await?;
        let row = self.pool.query(
            "UPDATE users SET labels = COALESCE($2, labels) WHERE id = $1 RETURNING id, labels, created_ms",
        )
        .bind(id.to_owned())
        .bind(patch.labels.as_ref().map(|l| l.to_string()))
        .fetch_optional(&mut *conn)
        .await?;
        conn.finish().await?;
        row.as_ref().map(decode).transpose()
    }

    /// Deletes a user and (by cascade) their feedback. False when they did not exist.
    pub async fn delete_user(&self, id: &str) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        let done = self
            .pool
            .query("DELETE FROM users WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *conn)
            .await?;
        conn.finish().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn list_users(&self, cursor: Option<&str>, limit: usize) -> Result<Page<User>> {
        let mut conn = self.pool.acquire().await?;
        let rows = self
            .pool
            .query("SELECT id, labels, created_ms FROM users WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(cursor.unwrap_or("").to_owned())
            .bind(limit as i64 + 1)
            .fetch_all(&mut *conn)
            .await?;
        let rows = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(rows, limit, |u| u.id.clone()))
    }

    /// Streams every user id through `f` over one connection (start-up loading).
    pub async fn for_each_user_id(&self, mut f: impl FnMut(String)) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let mut rows = self.pool.query("SELECT id FROM users").fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            f(row.try_get("id")?);
        }
        Ok(())
    }
}
