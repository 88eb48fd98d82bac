//! Queries on items.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::access::{Page, Store};
use super::access::{Position, record_change};
use super::error::{Error, Result};
use super::model::{Item, ItemPatch, from_ms, to_ms};

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

/// Items as the change feed carries them.
fn items_json(items: &[Item]) -> String {
    serde_json::to_string(items).expect("items serialise")
}

fn categories_json(categories: &[String]) -> String {
    serde_json::to_string(categories).expect("strings serialize")
}

impl Store {
    /// Inserts or replaces items, all in one transaction: either every item is written or none.
    pub async fn upsert_items(&self, items: &[Item]) -> Result<Position> {
        self.upsert_rows(
            "INSERT INTO items (id, categories, labels, title, description, timestamp_ms, hidden) \
             VALUES",
            "ON CONFLICT (id) DO UPDATE SET categories = excluded.categories, \
             labels = excluded.labels, title = excluded.title, \
             description = excluded.description, timestamp_ms = excluded.timestamp_ms, \
             hidden = excluded.hidden",
            7,
            items,
            |q, item| {
                q.bind(item.id.clone())
                    .bind(categories_json(&item.categories))
                    .bind(item.labels.to_string())
                    .bind(item.title.clone())
                    .bind(item.description.clone())
                    .bind(to_ms(item.timestamp))
                    .bind(item.hidden as i64)
            },
            ("items", items_json),
        )
        .await
    }

    pub async fn get_item(&self, id: &str) -> Result<Option<Item>> {
        let sql = format!("SELECT {COLUMNS} FROM items WHERE id = $1");
        self.by_id(sql, id, decode).await
    }

    /// Changes the given fields; `None` when the item does not exist. When this store records
    /// changes, the item as stored is recorded in the same transaction.
    pub async fn patch_item(
        &self,
        id: &str,
        patch: &ItemPatch,
    ) -> Result<Option<(Item, Position)>> {
        let q = self.pool.query(AssertSqlSafe(format!(
            "UPDATE items SET categories = COALESCE($2, categories), labels = COALESCE($3, labels), \
             title = COALESCE($4, title), description = COALESCE($5, description), \
             timestamp_ms = COALESCE($6, timestamp_ms), hidden = COALESCE($7, hidden) \
             WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id.to_owned())
        .bind(patch.categories.as_deref().map(categories_json))
        .bind(patch.labels.as_ref().map(|l| l.to_string()))
        .bind(patch.title.clone())
        .bind(patch.description.clone())
        .bind(patch.timestamp.map(to_ms))
        .bind(patch.hidden.map(|h| h as i64));
        self.with_conn(|conn, _| {
            Box::pin(async move {
                let Some(replica) = self.feed() else {
                    let row = q.fetch_optional(&mut **conn).await?;
                    return Ok(row.as_ref().map(decode).transpose()?.map(|i| (i, None)));
                };
                let mut tx = Connection::begin(&mut **conn).await?;
                let row = q.fetch_optional(&mut *tx).await?;
                let Some(item) = row.as_ref().map(decode).transpose()? else {
                    return Ok(None);
                };
                let payload = items_json(std::slice::from_ref(&item));
                let pos = record_change(self, &mut tx, replica, "items", payload).await?;
                tx.commit().await?;
                Ok(Some((item, Some(pos))))
            })
        })
        .await
    }

    /// Deletes an item and (by cascade) its feedback. False when it did not exist.
    pub async fn delete_item(&self, id: &str) -> Result<(bool, Position)> {
        self.delete_by_id("DELETE FROM items WHERE id = $1", "delete_item", id)
            .await
    }

    /// Items ordered by id, after `cursor` (the last id of the previous page).
    pub async fn list_items(&self, cursor: Option<&str>, limit: usize) -> Result<Page<Item>> {
        let sql = format!("SELECT {COLUMNS} FROM items WHERE id > $1 ORDER BY id LIMIT $2");
        self.page_by_id(sql, cursor, limit, decode, |i| i.id.clone())
            .await
    }

    /// Streams every item through `f` over one connection (start-up loading).
    pub async fn for_each_item(&self, f: impl FnMut(Item) + Send) -> Result<()> {
        self.for_each_row(format!("SELECT {COLUMNS} FROM items"), decode, f)
            .await
    }

    /// Streams every item row (with `since`: those whose `timestamp_ms` is at or after it, epoch
    /// ms) through `f` over one connection, until `f` returns false (`reco export`).
    pub async fn export_items(
        &self,
        since_ms: Option<i64>,
        f: impl FnMut(Item) -> bool + Send,
    ) -> Result<()> {
        let sql = format!("SELECT {COLUMNS} FROM items");
        self.stream_rows(sql, since_ms.map(|ms| ("timestamp_ms", ms)), decode, f)
            .await
    }
}
