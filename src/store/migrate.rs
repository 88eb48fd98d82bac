//! Schema migrations for both backends, and counts of what is stored.

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Row};

use super::access::Store;
use super::error::Result;
use crate::config::DbConfig;
use crate::db;
use crate::kinds::Backend;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

impl Store {
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
    pub async fn migrate(&self, config: &DbConfig) -> Result<()> {
        let migrator = self.migrator();
        if let Some(url) = &config.direct_url {
            let name = format!("{}-migrate", config.application_name);
            let mut conn = db::connect_direct(url.expose_secret(), &name).await?;
            migrator.run(&mut conn).await?;
            let _ = sqlx::Connection::close(conn).await;
            return Ok(());
        }
        // The one checkout outside `with_conn`: sqlx's migrator takes its connection through
        // `Acquire`, which cannot be implemented for every lifetime `with_conn` lends. It ends the
        // same way.
        let mut conn = self.pool.acquire().await?;
        migrator.run(&mut *conn).await?;
        Ok(conn.done().await?)
    }

    /// Whether every migration this binary knows has been applied.
    pub async fn migrations_current(&self) -> Result<bool> {
        let migrator = self.migrator();
        // A plain query rather than sqlx's migration API, whose named statements a
        // transaction-mode pooler would break.
        let q = self.pool.query(AssertSqlSafe(format!(
            "SELECT version FROM {} WHERE success",
            migrator.table_name
        )));
        let applied = self
            .with_conn(|conn, _| {
                Box::pin(async move {
                    Ok(match q.fetch_all(&mut **conn).await {
                        Ok(rows) => rows.iter().filter_map(|r| r.try_get(0).ok()).collect(),
                        // No migrations table yet.
                        Err(_) => Vec::<i64>::new(),
                    })
                })
            })
            .await?;
        Ok(migrator.iter().all(|m| applied.contains(&m.version)))
    }

    /// Counts (items, users, feedback rows).
    pub async fn counts(&self) -> Result<(i64, i64, i64)> {
        let q = self.pool.query(
            "SELECT (SELECT COUNT(*) FROM items) AS i, (SELECT COUNT(*) FROM users) AS u, \
             (SELECT COUNT(*) FROM feedback) AS f",
        );
        self.with_conn(|conn, _| {
            Box::pin(async move {
                let row = q.fetch_one(&mut **conn).await?;
                Ok((row.try_get("i")?, row.try_get("u")?, row.try_get("f")?))
            })
        })
        .await
    }
}
