//! `[db]`: the database and its one connection pool.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::redact::redact_url;
use super::rules::{ConfigError, check, secs};
use crate::kinds::Backend;

/// The embedded default: a SQLite file next to where `reco` runs.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://reco.db";

/// Database connection and pool settings. Names and defaults follow SQLAlchemy's `QueuePool`, which
/// the people migrating to reco already know.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbConfig {
    /// `postgres://user:password@host/db` or `sqlite://path`. Secret because of the password.
    pub url: SecretString,
    /// Connections kept open and reused.
    pub pool_size: u32,
    /// Extra connections allowed under load, closed again when they fall idle.
    pub max_overflow: u32,
    /// Seconds to wait for a connection before answering "database busy" (HTTP 503).
    pub pool_timeout: f64,
    /// Seconds after which a connection is replaced when next handed out or returned.
    pub pool_recycle: f64,
    /// Check a connection that sat idle before handing it out.
    pub pool_pre_ping: bool,
    /// Seconds a checkout may last before it is reported as a suspected leak.
    pub leak_threshold: f64,
    /// Seconds allowed for opening the first connection at start-up and for health checks.
    pub connect_timeout: f64,
    /// Seconds a single statement may run on PostgreSQL (0 = no limit). Not applied to SQLite.
    pub statement_timeout: f64,
    /// Shown in `pg_stat_activity`, so operators can tell reco's backends from others.
    pub application_name: String,
    /// What sits between reco and PostgreSQL: `none` (direct), `session` (a pooler in session
    /// mode: behaves like direct) or `transaction` (PgBouncer/Supavisor transaction mode: every
    /// statement is sent unnamed, because a prepared statement would land on another server
    /// connection; no startup `options`; migrations go through `direct_url`).
    pub pooler: Pooler,
    /// A URL straight to PostgreSQL, bypassing the pooler, for migrations (which take a session
    /// lock). Needed with `pooler = "transaction"`; optional otherwise.
    pub direct_url: Option<SecretString>,
}

/// The connection pooler in front of PostgreSQL, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooler {
    /// reco talks to PostgreSQL itself.
    #[default]
    None,
    /// A pooler in session mode: one server connection per client connection.
    Session,
    /// A pooler in transaction mode: server connections change between transactions.
    Transaction,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from(DEFAULT_DATABASE_URL),
            pool_size: 5,
            max_overflow: 10,
            pool_timeout: 30.0,
            pool_recycle: 1800.0,
            pool_pre_ping: true,
            leak_threshold: 10.0,
            connect_timeout: 10.0,
            statement_timeout: 0.0,
            application_name: "reco".into(),
            pooler: Pooler::None,
            direct_url: None,
        }
    }
}

impl DbConfig {
    /// Which database `url` points at (validation guarantees it is one reco supports).
    pub fn backend(&self) -> Option<Backend> {
        Backend::from_url(self.url.expose_secret())
    }

    /// The section as shown by `reco config`: URLs redacted.
    pub(super) fn redacted(&self) -> serde_json::Value {
        serde_json::json!({
            "url": redact_url(self.url.expose_secret()),
            "pool_size": self.pool_size,
            "max_overflow": self.max_overflow,
            "pool_timeout": self.pool_timeout,
            "pool_recycle": self.pool_recycle,
            "pool_pre_ping": self.pool_pre_ping,
            "leak_threshold": self.leak_threshold,
            "connect_timeout": self.connect_timeout,
            "statement_timeout": self.statement_timeout,
            "application_name": self.application_name,
            "pooler": self.pooler,
            "direct_url": self.direct_url.as_ref().map(|u| redact_url(u.expose_secret())),
        })
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.validate_pool()?;
        check(
            !self.application_name.is_empty()
                && self.application_name.len() <= 63
                && self.application_name.chars().all(|c| c.is_ascii_graphic()),
            "db.application_name",
            &self.application_name,
            "1 to 63 printable ASCII characters without spaces",
        )?;
        let url = self.url.expose_secret();
        check(
            self.backend().is_some(),
            "db.url",
            redact_url(url),
            "a postgres://, postgresql:// or sqlite:// URL",
        )?;
        if let Some(direct) = &self.direct_url {
            check(
                Backend::from_url(direct.expose_secret()) == Some(Backend::Postgres),
                "db.direct_url",
                redact_url(direct.expose_secret()),
                "a postgres:// URL",
            )?;
        }
        check(
            self.pooler == Pooler::None || self.backend() == Some(Backend::Postgres),
            "db.pooler",
            format!("{:?}", self.pooler).to_lowercase(),
            "none with SQLite (poolers are for PostgreSQL)",
        )?;
        check(
            self.pooler != Pooler::Transaction || self.direct_url.is_some(),
            "db.direct_url",
            "(unset)",
            "a postgres:// URL bypassing the pooler when db.pooler = \"transaction\" (migrations \
             need a session)",
        )
    }

    fn validate_pool(&self) -> Result<(), ConfigError> {
        check(
            (1..=1000).contains(&self.pool_size),
            "db.pool_size",
            self.pool_size,
            "1..=1000",
        )?;
        check(
            self.max_overflow <= 1000,
            "db.max_overflow",
            self.max_overflow,
            "0..=1000",
        )?;
        let (t, r) = (self.pool_timeout, self.pool_recycle);
        secs(t, "db.pool_timeout", 0.001, 3600.0, "0.001..=3600 seconds")?;
        secs(r, "db.pool_recycle", 1.0, 604_800.0, "1..=604800 seconds")?;
        secs(
            self.leak_threshold,
            "db.leak_threshold",
            0.001,
            86_400.0,
            "0.001..=86400 seconds",
        )?;
        secs(
            self.connect_timeout,
            "db.connect_timeout",
            0.1,
            600.0,
            "0.1..=600 seconds",
        )?;
        secs(
            self.statement_timeout,
            "db.statement_timeout",
            0.0,
            86_400.0,
            "0..=86400 seconds (0 = none)",
        )
    }
}
