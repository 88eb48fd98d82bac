//! Queries on users.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::access::Position;
use super::access::{Page, Store};
use super::error::{Error, Result};
use super::model::{User, UserPatch, from_ms, to_ms};

const COLUMNS: &str = "id, labels, created_ms";

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
    pub async fn upsert_users(&self, users: &[User]) -> Result<Position> {
        self.upsert_rows(
            "INSERT INTO users (id, labels, created_ms) VALUES",
            "ON CONFLICT (id) DO UPDATE SET labels = excluded.labels",
            3,
            users,
            |q, user| {
                q.bind(user.id.clone())
                    .bind(user.labels.to_string())
                    .bind(to_ms(user.created_at))
            },
            ("users", |users| {
                let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
                serde_json::to_string(&ids).expect("ids serialise")
            }),
        )
        .await
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        self.by_id(sql, id, decode).await
    }

    pub async fn patch_user(&self, id: &str, patch: &UserPatch) -> Result<Option<User>> {
        let q = self
            .pool
            .query(
                "UPDATE users SET labels = COALESCE($2, labels) WHERE id = $1 \
                 RETURNING id, labels, created_ms",
            )
            .bind(id.to_owned())
            .bind(patch.labels.as_ref().map(|l| l.to_string()));
        self.with_conn(|conn, _| {
            Box::pin(async move {
                let row = q.fetch_optional(&mut **conn).await?;
                row.as_ref().map(decode).transpose()
            })
        })
        .await
    }

    /// Deletes a user and (by cascade) their feedback. False when they did not exist.
    pub async fn delete_user(&self, id: &str) -> Result<(bool, Position)> {
        self.delete_by_id("DELETE FROM users WHERE id = $1", "delete_user", id)
            .await
    }

    pub async fn list_users(&self, cursor: Option<&str>, limit: usize) -> Result<Page<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
        self.page_by_id(sql, cursor, limit, decode, |u| u.id.clone())
            .await
    }

    /// Streams every user id through `f` over one connection (start-up loading).
    pub async fn for_each_user_id(&self, f: impl FnMut(String) + Send) -> Result<()> {
        let id = |row: &AnyRow| Ok(row.try_get("id")?);
        self.for_each_row("SELECT id FROM users".into(), id, f)
            .await
    }

    /// Streams every user row (with `since`: those whose `created_ms` is at or after it, epoch
    /// ms) through `f` over one connection, until `f` returns false (`reco export`).
    pub async fn export_users(
        &self,
        since_ms: Option<i64>,
        f: impl FnMut(User) -> bool + Send,
    ) -> Result<()> {
        let sql = format!("SELECT {COLUMNS} FROM users");
        self.stream_rows(sql, since_ms.map(|ms| ("created_ms", ms)), decode, f)
            .await
    }
}
