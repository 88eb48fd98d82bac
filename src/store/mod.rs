//! Storage: typed queries for users, items and feedback, and the schema migrations.
//!
//! One interface over PostgreSQL (production) and SQLite (the embedded default): every query is
//! written once in the SQL both accept (`$n` placeholders, `ON CONFLICT … DO UPDATE`, JSON kept as
//! text, timestamps as epoch milliseconds) and runs through the one [`crate::db::Pool`]. This module
//! never opens a connection itself and never validates user input: that is the API's job, done
//! before anything reaches here. Errors are [`Error`]; the API maps them to HTTP.

mod feedback;
pub use feedback::FeedbackOf;
mod items;
mod model;
mod server;
pub use server::{BackendGroup, ConnectionFacts, IdleBackend, ServerStats};
mod users;

use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::migrate::Migrator;

use crate::db::{self, Backend, Pool};
pub use model::{Feedback, FeedbackKey, Item, ItemPatch, User, UserPatch};

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Most bind parameters put in one statement: under SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_PARAMS: usize = 30_000;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    /// A referenced user or item does not exist (feedback with `auto_create` off).
    #[error("referenced user or item does not exist")]
    MissingReference,
    /// Stored data that does not decode (hand-edited rows, for instance).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if is_foreign_key_violation(&e) {
            return Error::MissingReference;
        }
        Error::Db(db::Error::Driver(e))
    }
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    match e {
        // 23503: PostgreSQL foreign_key_violation; 787: SQLITE_CONSTRAINT_FOREIGNKEY.
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("23503" | "787")),
        _ => false,
    }
}

impl Error {
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Db(e) if e.is_busy())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Typed access to the data, over the shared pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

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
    fn from_rows(mut rows: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Self {
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

impl Store {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool.backend() {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        }
    }

    /// Applies pending migrations. Safe to run concurrently from several replicas on PostgreSQL
    /// (sqlx takes an advisory lock). With `direct_url` set they run over one connection straight
    /// to PostgreSQL: the session lock and sqlx's named statements do not survive a
    /// transaction-mode pooler.
    pub async fn migrate(&self, config: &crate::config::DbConfig) -> Result<()> {
        use secrecy::ExposeSecret;
        if let Some(url) = &config.direct_url {
            let name = format!("{}-migrate", config.application_name);
            let mut conn = db::connect_direct(url.expose_secret(), &name).await?;
            self.migrator().run(&mut conn).await?;
            let _ = sqlx::Connection::close(conn).await;
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        self.migrator().run(&mut *conn).await?;
        Ok(())
    }

    /// Whether every migration this binary knows has been applied.
    pub async fn migrations_current(&self) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        // A plain query rather than sqlx's migration API, whose named statements a
        // transaction-mode pooler would break.
        let applied: Vec<i64> = match self
            .pool
            .query(AssertSqlSafe(format!(
                "SELECT version FROM {} WHERE success",
                self.migrator().table_name
            )))
            .fetch_all(&mut *conn)
            .await
        {
            Ok(rows) => rows.iter().filter_map(|r| r.try_get(0).ok()).collect(),
            // No migrations table yet.
            Err(_) => return Ok(false),
        };
        Ok(self.migrator().iter().all(|m| applied.contains(&m.version)))
    }

    /// Counts (items, users, feedback rows).
    pub async fn counts(&self) -> Result<(i64, i64, i64)> {
        let mut conn = self.pool.acquire().await?;
        let row = self
            .pool
            .query(
                "SELECT (SELECT COUNT(*) FROM items) AS i, (SELECT COUNT(*) FROM users) AS u, \
             (SELECT COUNT(*) FROM feedback) AS f",
            )
            .fetch_one(&mut *conn)
            .await?;
        Ok((row.try_get("i")?, row.try_get("u")?, row.try_get("f")?))
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_and_columns() {
        use crate::db::Backend::{Postgres, Sqlite};
        assert_eq!(
            super::values_placeholders(Postgres, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(super::values_placeholders(Postgres, 1, 1), "($1)");
        assert_eq!(super::values_placeholders(Sqlite, 2, 2), "(?, ?), (?, ?)");
    }
}
