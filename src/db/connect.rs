//! Opening connections: the driver's connect options (what reco sets on every connection), its pool
//! options with reco's hooks (recycling by age, pre-ping, close reasons), and the one direct
//! connection migrations use behind a transaction-mode pooler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, ConnectOptions, Connection, Executor};

use super::error::Error;
use super::shared::PoolSettings;
use crate::config::{DbConfig, Pooler};
use crate::kinds::Backend;
use crate::metrics::{CloseReason, PoolMetrics};

/// A connection idle for at least this long is pinged before it is handed out (when
/// `pool_pre_ping` is on). A connection used within the last second is known to be alive, and pinging
/// it would add a round trip to every checkout under load.
const PRE_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// One connection straight to PostgreSQL, outside the pool, for migrations behind a
/// transaction-mode pooler (`db.direct_url`). Short-lived: it is closed when they are applied.
pub async fn connect_direct(url: &str, application_name: &str) -> Result<AnyConnection, Error> {
    sqlx::any::install_default_drivers();
    let mut parsed = url::Url::parse(url).map_err(|e| {
        Error::Driver(sqlx::Error::Configuration(
            format!("invalid direct URL: {e}").into(),
        ))
    })?;
    if !parsed.query_pairs().any(|(k, _)| k == "application_name") {
        parsed
            .query_pairs_mut()
            .append_pair("application_name", application_name);
    }
    let options: AnyConnectOptions = parsed.as_str().parse()?;
    Ok(options.disable_statement_logging().connect().await?)
}

/// The driver's connect options: the URL plus what reco sets on every connection.
pub(super) fn connect_options(
    url: &str,
    backend: Backend,
    config: &DbConfig,
) -> Result<AnyConnectOptions, Error> {
    let mut parsed = url::Url::parse(url).map_err(|e| {
        Error::Driver(sqlx::Error::Configuration(
            format!("invalid database URL: {e}").into(),
        ))
    })?;
    match backend {
        Backend::Postgres => {
            let has = |k: &str| parsed.query_pairs().any(|(key, _)| key == k);
            let set_name = !has("application_name");
            let mut q = parsed.query_pairs_mut();
            if set_name {
                q.append_pair("application_name", &config.application_name);
            }
            if config.pooler == Pooler::Transaction {
                // No named statements to cache: they would outlive the transaction's server
                // connection.
                q.append_pair("statement-cache-capacity", "0");
            }
            // Startup `options` are rejected by PgBouncer in transaction mode; there the timeout
            // belongs on the role (`ALTER ROLE … SET statement_timeout`), which `diagnose` says.
            if config.statement_timeout > 0.0 && config.pooler != Pooler::Transaction {
                let ms = (config.statement_timeout * 1000.0).round() as u64;
                q.append_pair("options[statement_timeout]", &ms.to_string());
            }
        }
        Backend::Sqlite => {
            if !parsed.query_pairs().any(|(k, _)| k == "mode") {
                parsed.query_pairs_mut().append_pair("mode", "rwc");
            }
        }
    }
    let options: AnyConnectOptions = parsed.as_str().parse()?;
    // Statements are not logged by the driver: they would flood the logs, and literal values in
    // them can be personal data.
    Ok(options.disable_statement_logging())
}

/// sqlx's pool options with reco's hooks for recycling, pre-ping and overflow closing.
pub(super) fn pool_options(
    settings: &PoolSettings,
    backend: Backend,
    metrics: &PoolMetrics,
    rebuilt_at: Arc<AtomicU64>,
    epoch: Instant,
) -> AnyPoolOptions {
    let recycle = settings.pool_recycle;
    let pre_ping = settings.pool_pre_ping;
    let (m_connect, m_acquire, m_release) = (metrics.clone(), metrics.clone(), metrics.clone());
    AnyPoolOptions::new()
        .max_connections(settings.ceiling())
        // No `min_connections`: sqlx would replace closed connections from a background task,
        // outside the gate. `warm_up` opens `pool_size` at start; recycling replaces within an
        // acquire.
        .min_connections(0)
        .acquire_timeout(settings.pool_timeout)
        // Age and idleness are handled by the hooks below, where the close reason is known.
        .max_lifetime(None)
        .idle_timeout(None)
        .test_before_acquire(false)
        .after_connect(
            move |conn, _meta| -> BoxFuture<'_, Result<(), sqlx::Error>> {
                let metrics = m_connect.clone();
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers proceed while the feedback writer commits; foreign keys make
                        // deleting a user or item remove its feedback.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                    }
                    metrics.opened.inc();
                    Ok(())
                })
            },
        )
        .before_acquire(
            move |conn, meta| -> BoxFuture<'_, Result<bool, sqlx::Error>> {
                let metrics = m_acquire.clone();
                let rebuilt = rebuilt_at.load(Ordering::Relaxed);
                Box::pin(async move {
                    if meta.age >= recycle {
                        metrics.record_close(CloseReason::Recycled);
                        return Ok(false);
                    }
                    // Opened before the last rebuild: replace it.
                    let opened_ms = (epoch.elapsed().saturating_sub(meta.age)).as_millis() as u64;
                    if rebuilt > 0 && opened_ms < rebuilt {
                        metrics.record_close(CloseReason::Rebuilt);
                        return Ok(false);
                    }
                    if pre_ping
                        && meta.idle_for >= PRE_PING_AFTER_IDLE
                        && let Err(e) = conn.ping().await
                    {
                        tracing::warn!(error = %e, "pre-ping failed; replacing the connection");
                        metrics.pre_ping_failures.inc();
                        metrics.record_close(CloseReason::PrePingFailed);
                        return Ok(false);
                    }
                    Ok(true)
                })
            },
        )
        .after_release(
            move |_conn, meta| -> BoxFuture<'_, Result<bool, sqlx::Error>> {
                let metrics = m_release.clone();
                Box::pin(async move {
                    if meta.age >= recycle {
                        metrics.record_close(CloseReason::Recycled);
                        return Ok(false);
                    }
                    Ok(true)
                })
            },
        )
}
