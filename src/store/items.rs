//! Queries on items.

use futures::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::model::{from_ms, to_ms};
use super::{Error, Item, ItemPatch, Page, Result, Store, chunk_rows, values_placeholders};

const COLUMNS: &str = "id, categories, labels, title, description, timestamp_ms, hidden";

fn decode(row: &AnyRow) -> Result<Item> {
    let categories: String = row.try_get("categories")?;
    let labels: String = row.try_get("labels")?;
    Ok(Item {
        id: row.try_get("id")?,
        categories: serde_json::from_str(&categories)
            .map_err(|e| Error::Corrupt(format!("items.categories: {e}")))?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| Error::Corrupt(format!("items.labels: {e}")))?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        timestamp: from_ms(row.try_get("timestamp_ms")?),
        hidden: row.try_get::<i64, _>("hidden")? != 0,
    })
}

impl Store {
    /// Inserts or replaces items, all in one transaction: either every item is written or none.
    pub async fn upsert_items(&self, items: &[Item]) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        for chunk in items.chunks(chunk_rows(7)) {
            let sql = format!(
                "INSERT INTO items ({COLUMNS}) VALUES {} ON CONFLICT (id) DO UPDATE SET \
                 categories = excluded.categories, labels = excluded.labels, title = excluded.title, \
                 description = excluded.description, timestamp_ms = excluded.timestamp_ms, hidden = excluded.hidden",
                values_placeholders(self.pool.backend(), chunk.len(), 7)
            );
            let mut q = self.pool.query(AssertSqlSafe(sql));
            for item in chunk {
                q = q
                    .bind(item.id.clone())
                    .bind(serde_json::to_string(&item.categories).expect("strings serialize"))
                    .bind(item.labels.to_string())
                    .bind(item.title.clone())
                    .bind(item.description.clone())
                    .bind(to_ms(item.timestamp))
                    .bind(item.hidden as i64);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        conn.finish().await?;
        Ok(())
    }

    pub async fn get_item(&self, id: &str) -> Result<Option<Item>> {
        let mut conn = self.pool.acquire().await?;
        let row = self
            .pool
            .query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM items WHERE id = $1"
            )))
            .bind(id.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Changes the given fields; `None` when the item does not exist.
    pub async fn patch_item(&self, id: &str, patch: &ItemPatch) -> Result<Option<Item>> {
        let mut conn = self.pool.acquire().await?;
        let row = self.pool.query(AssertSqlSafe(format!(
            "UPDATE items SET categories = COALESCE($2, categories), labels = COALESCE($3, labels), \
             title = COALESCE($4, title), description = COALESCE($5, description), \
             timestamp_ms = COALESCE($6, timestamp_ms), hidden = COALESCE($7, hidden) \
             WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id.to_owned())
        .bind(patch.categories.as_ref().map(|c| serde_json::to_string(c).expect("strings serialize")))
        .bind(patch.labels.as_ref().map(|l| l.to_string()))
        .bind(patch.title.clone())
        .bind(patch.description.clone())
        .bind(patch.timestamp.map(to_ms))
        .bind(patch.hidden.map(|h| h as i64))
        .fetch_optional(&mut *conn)
        .await?;
        conn.finish().await?;
        row.as_ref().map(decode).transpose()
    }

    /// Deletes an item and (by cascade) its feedback. False when it did not exist.
    pub async fn delete_item(&self, id: &str) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        let done = self
            .pool
            .query("DELETE FROM items WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *conn)
            .await?;
        conn.finish().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Items ordered by id, after `cursor` (the last id of the previous page).
    pub async fn list_items(&self, cursor: Option<&str>, limit: usize) -> Result<Page<Item>> {
        let mut conn = self.pool.acquire().await?;
        let rows = self
            .pool
            .query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM items WHERE id > $1 ORDER BY id LIMIT $2"
            )))
            .bind(cursor.unwrap_or("").to_owned())
            .bind(limit as i64 + 1)
            .fetch_all(&mut *conn)
            .await?;
        let rows = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(rows, limit, |r| r.id.clone()))
    }

    /// Streams every item through `f` over one connection (start-up loading).
    pub async fn for_each_item(&self, mut f: impl FnMut(Item)) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let mut rows = self
            .pool
            .query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM items")))
            .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            f(decode(&row)?);
        }
        Ok(())
    }
}
