//! What the database server itself reports: its connection limits and every backend connected to
//! it (PostgreSQL only; SQLite has no server). Read by `reco monitor` and `reco diagnose`.

use serde::Serialize;
use sqlx::Row;

use super::access::Store;
use super::error::Result;
use crate::kinds::Backend;

/// One group of backends in `pg_stat_activity`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackendGroup {
    pub application: String,
    /// `active`, `idle`, `idle in transaction`, … (empty for backends without a state).
    pub state: String,
    pub count: i64,
    /// Seconds since the oldest of them last changed state.
    pub oldest_state_seconds: f64,
}

/// The server's connection limits and its client backends (the asking connection excluded).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerStats {
    pub max_connections: i64,
    /// `superuser_reserved_connections` plus `reserved_connections` (PostgreSQL 16+).
    pub reserved_connections: i64,
    pub backends: Vec<BackendGroup>,
}

impl ServerStats {
    /// Client backends in all.
    pub fn total(&self) -> i64 {
        self.backends.iter().map(|b| b.count).sum()
    }

    /// Backends of one application name.
    pub fn of_application(&self, name: &str) -> i64 {
        self.backends
            .iter()
            .filter(|b| b.application == name)
            .map(|b| b.count)
            .sum()
    }

    /// Connections ordinary clients may open.
    pub fn available(&self) -> i64 {
        (self.max_connections - self.reserved_connections).max(0)
    }
}

impl Store {
    /// The server's limits and backends; `None` on SQLite.
    pub async fn server_stats(&self) -> Result<Option<ServerStats>> {
        if self.pool.backend() != Backend::Postgres {
            return Ok(None);
        }
        let limits = self.pool.query(
            "SELECT current_setting('max_connections')::int8 AS max, \
             current_setting('superuser_reserved_connections')::int8 \
             + coalesce(current_setting('reserved_connections', true), '0')::int8 AS reserved",
        );
        let backends = self.pool.query(
            "SELECT coalesce(application_name, '') AS app, coalesce(state, '') AS state, \
             count(*)::int8 AS n, \
             coalesce(extract(epoch FROM max(now() - state_change)), 0)::float8 AS oldest \
             FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
             GROUP BY 1, 2 ORDER BY 1, 2",
        );
        let (limits, rows) = self
            .with_conn(|conn, _| {
                Box::pin(async move {
                    let limits = limits.fetch_one(&mut **conn).await?;
                    Ok((limits, backends.fetch_all(&mut **conn).await?))
                })
            })
            .await?;
        Ok(Some(ServerStats {
            max_connections: limits.try_get("max")?,
            reserved_connections: limits.try_get("reserved")?,
            backends: rows
                .iter()
                .map(|r| {
                    Ok(BackendGroup {
                        application: r.try_get("app")?,
                        state: r.try_get("state")?,
                        count: r.try_get("n")?,
                        oldest_state_seconds: r.try_get("oldest")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?,
        }))
    }
}

/// Facts about the asking connection and the server's idle timeouts, for `reco diagnose`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConnectionFacts {
    /// The port the server itself listens on (`None` over a Unix socket): differs from the URL's
    /// port when a pooler sits in between.
    pub server_port: Option<i32>,
    /// Whether this connection uses TLS (as far as the server sees it).
    pub ssl: bool,
    /// `idle_session_timeout` in milliseconds (0 = none; PostgreSQL 14+).
    pub idle_session_timeout_ms: i64,
    /// `idle_in_transaction_session_timeout` in milliseconds (0 = none).
    pub idle_in_transaction_timeout_ms: i64,
}

impl Store {
    /// See [`ConnectionFacts`]; `None` on SQLite.
    pub async fn connection_facts(&self) -> Result<Option<ConnectionFacts>> {
        if self.pool.backend() != Backend::Postgres {
            return Ok(None);
        }
        let setting = |name: &str| {
            format!("coalesce((SELECT setting::int8 FROM pg_settings WHERE name = '{name}'), 0)")
        };
        let sql = format!(
            "SELECT inet_server_port() AS port, \
             coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl, \
             {} AS idle, {} AS idle_tx",
            setting("idle_session_timeout"),
            setting("idle_in_transaction_session_timeout")
        );
        let q = self.pool.query(sqlx::AssertSqlSafe(sql));
        let row = self
            .with_conn(|conn, _| Box::pin(async move { Ok(q.fetch_one(&mut **conn).await?) }))
            .await?;
        Ok(Some(ConnectionFacts {
            server_port: row.try_get("port")?,
            ssl: row.try_get("ssl")?,
            idle_session_timeout_ms: row.try_get("idle")?,
            idle_in_transaction_timeout_ms: row.try_get("idle_tx")?,
        }))
    }
}

/// An idle backend that `reco reset --terminate-idle` may end.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IdleBackend {
    pub pid: i32,
    pub application: String,
    pub idle_seconds: f64,
}

impl Store {
    /// The server's clock, in seconds since the epoch.
    pub async fn server_now(&self) -> Result<f64> {
        let q = self
            .pool
            .query("SELECT extract(epoch FROM now())::float8 AS now");
        let row = self
            .with_conn(|conn, _| Box::pin(async move { Ok(q.fetch_one(&mut **conn).await?) }))
            .await?;
        Ok(row.try_get("now")?)
    }

    /// Idle backends of exactly `application` that connected before `started_before` (epoch
    /// seconds), the asking connection excluded.
    pub async fn idle_backends(
        &self,
        application: &str,
        started_before: f64,
    ) -> Result<Vec<IdleBackend>> {
        let q = self
            .pool
            .query(
                "SELECT pid, application_name AS app, \
             extract(epoch FROM now() - state_change)::float8 AS idle \
             FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
             AND application_name = $1 AND state = 'idle' \
             AND backend_start < to_timestamp($2) ORDER BY pid",
            )
            .bind(application.to_owned())
            .bind(started_before);
        let rows = self
            .with_conn(|conn, _| Box::pin(async move { Ok(q.fetch_all(&mut **conn).await?) }))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(IdleBackend {
                    pid: r.try_get("pid")?,
                    application: r.try_get("app")?,
                    idle_seconds: r.try_get("idle")?,
                })
            })
            .collect()
    }

    /// Ends backend `pid` if it is still an idle backend of `application` (re-checked in the same
    /// statement, so a pid reused by another application is never touched). Whether it was ended.
    pub async fn terminate_idle_backend(&self, pid: i32, application: &str) -> Result<bool> {
        // CASE fixes the evaluation order: in a plain WHERE the planner may call
        // pg_terminate_backend before the other conditions, on any backend.
        let q = self
            .pool
            .query(
                "SELECT count(*)::int8 AS n FROM pg_stat_activity \
             WHERE CASE WHEN pid = $1 AND application_name = $2 AND state = 'idle' \
             THEN pg_terminate_backend(pid) ELSE false END",
            )
            .bind(pid)
            .bind(application.to_owned());
        let row = self
            .with_conn(|conn, _| Box::pin(async move { Ok(q.fetch_one(&mut **conn).await?) }))
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}
