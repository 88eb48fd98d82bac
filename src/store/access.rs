//! [`Store`] and the one way its queries get a connection ([`Store::with_conn`]), plus the SQL
//! pieces every table shares: multi-row upserts in chunks, deletes and pages by id.

use std::marker::PhantomData;
use std::panic::Location;

use futures::TryStreamExt;
use futures::future::BoxFuture;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};

use super::error::Result;
use crate::db::{Conn, Pool};
use crate::kinds::Backend;

/// Most bind parameters put in one statement: under SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_PARAMS: usize = 30_000;

/// Typed access to the data, over the shared pool.
#[derive(Clone)]
pub struct Store {
    pub(super) pool: Pool,
    /// The replica every write records a change as (`Store::recording_changes`), if any.
    pub(super) feed: Option<std::sync::Arc<str>>,
}

/// Where a write landed in the change feed (`store::changes`): `None` when the store records no
/// changes.
pub type Position = Option<i64>;

/// A page of a cursor-paginated listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `limit + 1` fetched rows: the extra row only says that another page exists, and
    /// the cursor is made from the last row kept.
    pub(super) fn from_rows(
        mut rows: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor_of)
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// Says that the connection's borrow `'c` ends within `'s` (an implied bound), so that the work
/// given to [`Store::with_conn`] may borrow from its caller for as long as it holds the connection.
pub(super) type Within<'c, 's> = PhantomData<&'c &'s ()>;

/// A statement with its bound values.
pub(super) type Query = sqlx::query::Query<'static, sqlx::Any, AnyArguments>;

/// One statement's rows binder: adds one row's values to a multi-row statement.
pub(super) type BindRow<R> = fn(Query, &R) -> Query;

impl Store {
    pub fn new(pool: Pool) -> Self {
        Self { pool, feed: None }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Checks a connection out, runs `work` on it and ends the checkout with
    /// [`Conn::done`](crate::db::Conn::done) (behind a transaction-mode pooler: commits before
    /// returning). Every query of the store runs through here, so none can forget that step. The
    /// checkout is recorded at the caller's location, for leak reports.
    #[track_caller]
    pub(super) fn with_conn<'s, T, F>(
        &'s self,
        work: F,
    ) -> impl Future<Output = Result<T>> + Send + 's
    where
        T: Send + 's,
        F: for<'c> FnOnce(&'c mut Conn, Within<'c, 's>) -> BoxFuture<'c, Result<T>> + Send + 's,
    {
        let location = Location::caller();
        let acquire = self.pool.acquire_at(location);
        async move {
            let mut conn = acquire.await?;
            let out = work(&mut conn, PhantomData).await?;
            conn.done().await?;
            Ok(out)
        }
    }

    /// Upserts `rows` with `insert` (`INSERT INTO t (cols) VALUES`) followed by `conflict`
    /// (`ON CONFLICT …`), `cols` values per row bound by `bind`, in statements of at most
    /// [`MAX_PARAMS`] parameters, all in one transaction: every row is written or none. When
    /// this store records changes, `change` (its kind and the JSON payload it makes) is recorded
    /// in the same transaction, after the rows (so after their locks are taken).
    #[track_caller]
    pub(super) fn upsert_rows<'s, R: Sync>(
        &'s self,
        insert: &'static str,
        conflict: &'static str,
        cols: usize,
        rows: &'s [R],
        bind: BindRow<R>,
        change: (&'static str, fn(&[R]) -> String),
    ) -> impl Future<Output = Result<Position>> + Send + 's {
        let backend = self.pool.backend();
        let pool = &self.pool;
        self.with_conn(move |conn, _| {
            Box::pin(async move {
                let mut tx = Connection::begin(&mut **conn).await?;
                let statement = Statement {
                    insert,
                    conflict,
                    cols,
                    bind,
                };
                insert_chunks(pool, &mut tx, backend, &statement, rows).await?;
                let pos = match self.feed() {
                    Some(replica) => {
                        let (kind, payload) = change;
                        Some(record_change(self, &mut tx, replica, kind, payload(rows)).await?)
                    }
                    None => None,
                };
                tx.commit().await?;
                Ok(pos)
            })
        })
    }

    /// Runs a `DELETE FROM t WHERE id = $1`; whether a row was deleted, and (when this store
    /// records changes) the position of the change of `kind` recorded with it in one statement.
    #[track_caller]
    pub(super) fn delete_by_id(
        &self,
        sql: &'static str,
        kind: &'static str,
        id: &str,
    ) -> impl Future<Output = Result<(bool, Position)>> + Send + '_ {
        let q = match self.feed() {
            None => self.pool.query(sql),
            Some(_) => self.pool.query(AssertSqlSafe(format!(
                "WITH d AS ({sql} RETURNING id) INSERT INTO reco_changes (replica, kind, payload) \
                 SELECT $2, '{kind}', to_jsonb(d.id) FROM d RETURNING pos"
            ))),
        };
        let mut q = q.bind(id.to_owned());
        if let Some(replica) = self.feed() {
            q = q.bind(replica.to_owned());
        }
        let recording = self.feed().is_some();
        self.with_conn(move |conn, _| {
            Box::pin(async move {
                if !recording {
                    return Ok((q.execute(&mut **conn).await?.rows_affected() > 0, None));
                }
                let pos: Option<i64> = q
                    .fetch_optional(&mut **conn)
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                Ok((pos.is_some(), pos))
            })
        })
    }

    /// One row by id (`sql` takes the id as `$1`), decoded.
    #[track_caller]
    pub(super) fn by_id<T: Send + 'static>(
        &self,
        sql: String,
        id: &str,
        decode: fn(&AnyRow) -> Result<T>,
    ) -> impl Future<Output = Result<Option<T>>> + Send + '_ {
        let q = self.pool.query(AssertSqlSafe(sql)).bind(id.to_owned());
        self.with_conn(move |conn, _| {
            Box::pin(async move {
                let row = q.fetch_optional(&mut **conn).await?;
                row.as_ref().map(decode).transpose()
            })
        })
    }

    /// A page of rows ordered by id after `cursor` (`sql` takes the cursor as `$1` and the limit
    /// as `$2`).
    #[track_caller]
    pub(super) fn page_by_id<T: Send + 'static>(
        &self,
        sql: String,
        cursor: Option<&str>,
        limit: usize,
        decode: fn(&AnyRow) -> Result<T>,
        id_of: fn(&T) -> String,
    ) -> impl Future<Output = Result<Page<T>>> + Send + '_ {
        let q = self
            .pool
            .query(AssertSqlSafe(sql))
            .bind(cursor.unwrap_or("").to_owned())
            .bind(limit as i64 + 1);
        let rows = self
            .with_conn(move |conn, _| Box::pin(async move { Ok(q.fetch_all(&mut **conn).await?) }));
        async move {
            let rows = rows.await?;
            let rows = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
            Ok(Page::from_rows(rows, limit, id_of))
        }
    }
}

impl Store {
    /// Streams every row of `sql` through `decode`, then `f`, over one connection (start-up
    /// loading and training read whole tables this way, without holding them in memory twice).
    pub(super) async fn for_each_row<T>(
        &self,
        sql: String,
        decode: fn(&AnyRow) -> Result<T>,
        mut f: impl FnMut(T) + Send,
    ) -> Result<()> {
        self.stream_rows(sql, None, decode, |row| {
            f(row);
            true
        })
        .await
    }

    /// [`Store::for_each_row`] until `f` returns false (an export whose output failed stops
    /// reading); with `since` = `(column, ms)`, only the rows whose `column` is at or after `ms`.
    pub(super) async fn stream_rows<T>(
        &self,
        mut sql: String,
        since: Option<(&str, i64)>,
        decode: fn(&AnyRow) -> Result<T>,
        mut f: impl FnMut(T) -> bool + Send,
    ) -> Result<()> {
        if let Some((column, _)) = since {
            sql.push_str(&format!(" WHERE {column} >= $1"));
        }
        let mut q = self.pool.query(AssertSqlSafe(sql));
        if let Some((_, ms)) = since {
            q = q.bind(ms);
        }
        self.with_conn(|conn, _| {
            Box::pin(async move {
                let mut rows = q.fetch(&mut **conn);
                while let Some(row) = rows.try_next().await? {
                    if !f(decode(&row)?) {
                        break;
                    }
                }
                Ok(())
            })
        })
        .await
    }
}

/// A multi-row `INSERT … VALUES … ON CONFLICT …` of `cols` values per row.
pub(super) struct Statement<R> {
    /// `INSERT INTO t (cols) VALUES`
    pub insert: &'static str,
    /// `ON CONFLICT …`
    pub conflict: &'static str,
    pub cols: usize,
    pub bind: BindRow<R>,
}

/// `statement` for `rows`, in chunks of at most [`MAX_PARAMS`] parameters, on an open
/// transaction (also used for the users and items that feedback creates on the fly).
pub(super) async fn insert_chunks<R>(
    pool: &Pool,
    conn: &mut AnyConnection,
    backend: Backend,
    statement: &Statement<R>,
    rows: &[R],
) -> Result<()> {
    let cols = statement.cols;
    for chunk in rows.chunks(chunk_rows(cols)) {
        let sql = format!(
            "{} {} {}",
            statement.insert,
            values_placeholders(backend, chunk.len(), cols),
            statement.conflict
        );
        let mut q = pool.query(AssertSqlSafe(sql));
        for row in chunk {
            q = (statement.bind)(q, row);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `($1, $2, $3), ($4, $5, $6), …` for `rows` rows of `cols` columns on PostgreSQL, and
/// `(?, ?, ?), (?, ?, ?), …` on SQLite, where numbered parameters cost a linear lookup each when the
/// statement is compiled (quadratic in the row count: seconds for a 10,000-row batch).
fn values_placeholders(backend: Backend, rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            match backend {
                Backend::Postgres => {
                    out.push('$');
                    out.push_str(&(r * cols + c + 1).to_string());
                }
                Backend::Sqlite => out.push('?'),
            }
        }
        out.push(')');
    }
    out
}

/// Rows per multi-row statement for a table with `cols` columns.
fn chunk_rows(cols: usize) -> usize {
    (MAX_PARAMS / cols).max(1)
}

/// Adds a change of `kind` with `payload` (JSON) as `replica`, on the caller's open
/// transaction; returns its position.
pub(super) async fn record_change(
    store: &Store,
    conn: &mut AnyConnection,
    replica: &str,
    kind: &'static str,
    payload: String,
) -> Result<i64> {
    Ok(store
        .pool
        .query(
            "INSERT INTO reco_changes (replica, kind, payload) VALUES ($1, $2, $3::jsonb) \
             RETURNING pos",
        )
        .bind(replica.to_owned())
        .bind(kind)
        .bind(payload)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_and_columns() {
        use crate::kinds::Backend::{Postgres, Sqlite};
        assert_eq!(
            super::values_placeholders(Postgres, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(super::values_placeholders(Postgres, 1, 1), "($1)");
        assert_eq!(super::values_placeholders(Sqlite, 2, 2), "(?, ?), (?, ?)");
    }
}
