//! Configuration: typed settings, their defaults, the layering and validation.
//!
//! Layers, later ones win: built-in defaults < `reco.toml` (path from `--config` or `RECO_CONFIG`)
//! < environment (`DATABASE_URL`, `RECO_DB__POOL_SIZE`, `RECO_HTTP__API_KEY`, ...) < command-line
//! flags. [`Config::validate`] rejects out-of-range values with one line naming the key, the value and
//! the allowed range. Secrets (the database URL, which may hold a password, and the API key) are kept
//! in [`SecretString`] so that they cannot be printed by accident; [`Config::redacted`] is the only
//! way they leave this module, with the password and key replaced by `***`.
//!
//! This module owns no I/O beyond reading the config file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The embedded default: a SQLite file next to where `reco` runs.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://reco.db";

/// Everything reco can be configured with.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The database and its one connection pool.
    pub db: DbConfig,
    /// The HTTP server.
    pub http: HttpConfig,
    /// Feedback ingestion.
    pub feedback: FeedbackConfig,
    /// The in-memory recommender.
    pub recommend: RecommendConfig,
    /// How `engine=auto` picks an engine: experiments, deadline, cache, click-through window.
    pub orchestrator: OrchestratorConfig,
    /// `reco monitor`: which replicas to watch and when to warn.
    pub monitor: MonitorConfig,
    /// Several replicas sharing one database's connections (PostgreSQL only).
    pub cluster: ClusterConfig,
    /// Demo catalogue seeded into an empty database.
    pub demo: DemoConfig,
    /// Logging.
    pub log: LogConfig,
}

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

/// Replicas sharing one connection budget. Without `connection_budget` a replica sizes its pool
/// from `db` alone, as a single server does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Most connections all replicas together may hold (e.g. 15 on a 20-connection database).
    pub connection_budget: Option<u32>,
    /// Seconds between heartbeats (and share recalculations).
    pub heartbeat: f64,
    /// A replica whose heartbeat is older than this many seconds is dead; its share is handed out.
    pub dead_after: f64,
    /// Connections of the budget kept free for a replica that is starting: it needs one to
    /// register before anyone can shrink for it.
    pub join_reserve: u32,
    /// This replica's base URL as others (and `reco monitor`) reach it; default from `http.bind`.
    pub advertise_url: Option<String>,
    /// Snapshots kept in the database for replicas to load (older ones are deleted).
    pub keep_snapshots: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            connection_budget: None,
            heartbeat: 1.0,
            dead_after: 5.0,
            join_reserve: 1,
            advertise_url: None,
            keep_snapshots: 2,
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    /// Seconds a request may take before it is answered 503.
    pub request_timeout: f64,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// When set, write and admin routes require it (`Authorization: Bearer …` or `X-API-Key`).
    pub api_key: Option<SecretString>,
    /// With an API key set: whether read routes require it too.
    pub protect_reads: bool,
}

/// Feedback ingestion settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// Create unknown users and items on the fly (true) or reject the feedback with 404 (false).
    pub auto_create: bool,
    /// Most rows one group commit writes in a transaction.
    pub max_group_rows: usize,
}

/// In-memory recommender settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendConfig {
    /// Seconds between re-rankings of the popularity list from the in-memory counts.
    pub rerank_interval: f64,
    /// Feedback types that count against an item (excluded, never counted as popularity).
    pub negative_types: Vec<String>,
    /// Default number of items returned when `n` is not given.
    pub default_n: usize,
    /// Training weight of each positive feedback type; types not listed do not train models (but
    /// still count as "seen"). `rating` counts only at or above `rating_threshold`.
    pub positive_weights: std::collections::BTreeMap<String, f32>,
    /// Lowest `rating` value that counts as positive.
    pub rating_threshold: f64,
    /// Seconds between background trainings.
    pub train_interval: f64,
    /// Train early once this many feedback events arrived since the last training.
    pub retrain_after_events: u64,
    /// Half-life of popularity, in days: an interaction this old counts half.
    pub popularity_half_life_days: f64,
    /// MMR strength of the `quality` engine across categories: 0 = relevance order, 1 = maximal
    /// spread. 0.1 costs 0.002 NDCG@10 on ML-100K (docs/BENCHMARKS.md).
    pub diversity: f32,
    /// Items older than this many days (by their timestamp) are never recommended; 0 = no limit.
    pub item_ttl_days: f64,
}

/// The orchestrator behind `engine=auto`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestratorConfig {
    /// Seconds the chosen engine may take; past it the `fast` answer is returned (and counted).
    /// 0 = no deadline.
    pub deadline: f64,
    /// Users whose last answer is kept until their next feedback or the next training (0 = off).
    pub cache_size: u64,
    /// Seconds after a recommendation in which positive feedback on a recommended item counts as
    /// a click for the variant that served it.
    pub click_window: f64,
    /// An experiment: variants with traffic shares, chosen by a stable hash of the user id.
    /// Empty: every user gets `smart`.
    pub variants: Vec<VariantConfig>,
}

/// One arm of an experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    /// Shown in metrics and responses.
    pub name: String,
    /// `fast`, `quality`, `enhanced`, `smart` or `popularity`.
    pub engine: crate::engine::EngineKind,
    /// Relative traffic share (shares need not add up to 100).
    pub share: u32,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            deadline: 0.05,
            cache_size: 100_000,
            click_window: 1800.0,
            variants: Vec::new(),
        }
    }
}

/// `reco monitor` and its warning thresholds (the ones operators of a 20-connection database use).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Base URLs of the running replicas, e.g. `http://10.0.0.5:8080`.
    pub replicas: Vec<String>,
    /// Warn above this many client connections on the database server, all applications.
    pub warn_total_connections: i64,
    /// Warn when a replica's pool has more than this share of its ceiling in use (0..=1).
    pub warn_utilisation: f64,
    /// Warn when a replica has more than this many overflow connections in use.
    pub warn_overflow: u32,
    /// Seconds between refreshes of the live view.
    pub interval: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            replicas: Vec::new(),
            warn_total_connections: 12,
            warn_utilisation: 0.8,
            warn_overflow: 2,
            interval: 1.0,
        }
    }
}

/// Demo data settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Import a generated demo catalogue when the database has no items.
    pub seed_if_empty: bool,
    /// Seed of the demo generator, so every run produces the same catalogue.
    pub seed: u64,
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `reco=debug,tower_http=info`.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
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

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            request_timeout: 30.0,
            max_body_bytes: 16 * 1024 * 1024,
            api_key: None,
            protect_reads: false,
        }
    }
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            auto_create: true,
            max_group_rows: 5000,
        }
    }
}

impl Default for RecommendConfig {
    fn default() -> Self {
        Self {
            rerank_interval: 1.0,
            negative_types: vec!["dislike".into(), "hide".into()],
            default_n: 10,
            positive_weights: [
                ("like", 1.0),
                ("purchase", 1.0),
                ("rating", 1.0),
                ("click", 0.5),
                ("view", 0.1),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            rating_threshold: 4.0,
            train_interval: 300.0,
            retrain_after_events: 10_000,
            popularity_half_life_days: 14.0,
            diversity: 0.1,
            item_ttl_days: 0.0,
        }
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            seed_if_empty: true,
            seed: 42,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// A configuration that could not be loaded or is out of range.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value outside its allowed range.
    #[error("invalid configuration: {key} = {value} (allowed: {allowed})")]
    Invalid {
        key: &'static str,
        value: String,
        allowed: &'static str,
    },
    /// The file or environment did not parse into the typed structure.
    #[error("invalid configuration: {0}")]
    Parse(String),
}

/// Command-line overrides: the last layer. `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub settings: Vec<(&'static str, figment::value::Value)>,
}

impl Overrides {
    /// Sets `key` (a dotted path such as `db.pool_size`) when `value` is given.
    pub fn set<T: Serialize>(&mut self, key: &'static str, value: Option<T>) {
        if let Some(value) = value {
            let value = figment::value::Value::serialize(value).expect("plain values serialize");
            self.settings.push((key, value));
        }
    }
}

impl Config {
    /// Loads defaults < file < environment < `overrides`, then validates.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = overrides
            .config_file
            .clone()
            .or_else(|| std::env::var_os("RECO_CONFIG").map(PathBuf::from));
        let mut figment = Figment::new();
        match &file {
            // An explicitly named file must exist; the default `reco.toml` is optional.
            Some(path) if !path.exists() => {
                return Err(ConfigError::Parse(format!(
                    "config file {} not found",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("reco.toml").exists() => {
                figment = figment.merge(Toml::file_exact("reco.toml"))
            }
            None => {}
        }
        figment = figment
            .merge(Env::raw().only(&["database_url"]).map(|_| "db.url".into()))
            // Only `RECO_SECTION__KEY` variables are settings; other `RECO_…` variables (RECO_CONFIG,
            // the test suite's) are not.
            .merge(
                Env::prefixed("RECO_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            );
        for (key, value) in &overrides.settings {
            figment = figment.merge(Serialized::default(key, value.clone()));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects values outside their allowed range, naming the key, the value and the range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn check(
            ok: bool,
            key: &'static str,
            value: impl ToString,
            allowed: &'static str,
        ) -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key,
                    value: value.to_string(),
                    allowed,
                })
            }
        }
        fn secs(
            v: f64,
            key: &'static str,
            min: f64,
            max: f64,
            allowed: &'static str,
        ) -> Result<(), ConfigError> {
            check(v.is_finite() && v >= min && v <= max, key, v, allowed)
        }
        let db = &self.db;
        check(
            (1..=1000).contains(&db.pool_size),
            "db.pool_size",
            db.pool_size,
            "1..=1000",
        )?;
        check(
            db.max_overflow <= 1000,
            "db.max_overflow",
            db.max_overflow,
            "0..=1000",
        )?;
        secs(
            db.pool_timeout,
            "db.pool_timeout",
            0.001,
            3600.0,
            "0.001..=3600 seconds",
        )?;
        secs(
            db.pool_recycle,
            "db.pool_recycle",
            1.0,
            604_800.0,
            "1..=604800 seconds",
        )?;
        secs(
            db.leak_threshold,
            "db.leak_threshold",
            0.001,
            86_400.0,
            "0.001..=86400 seconds",
        )?;
        secs(
            db.connect_timeout,
            "db.connect_timeout",
            0.1,
            600.0,
            "0.1..=600 seconds",
        )?;
        secs(
            db.statement_timeout,
            "db.statement_timeout",
            0.0,
            86_400.0,
            "0..=86400 seconds (0 = none)",
        )?;
        check(
            !db.application_name.is_empty()
                && db.application_name.len() <= 63
                && db.application_name.chars().all(|c| c.is_ascii_graphic()),
            "db.application_name",
            &db.application_name,
            "1 to 63 printable ASCII characters without spaces",
        )?;
        let url = db.url.expose_secret();
        check(
            crate::db::Backend::from_url(url).is_some(),
            "db.url",
            redact_url(url),
            "a postgres://, postgresql:// or sqlite:// URL",
        )?;
        check(
            self.http.bind.parse::<std::net::SocketAddr>().is_ok(),
            "http.bind",
            &self.http.bind,
            "an address such as 127.0.0.1:8080",
        )?;
        secs(
            self.http.request_timeout,
            "http.request_timeout",
            0.01,
            3600.0,
            "0.01..=3600 seconds",
        )?;
        check(
            (1024..=1 << 30).contains(&self.http.max_body_bytes),
            "http.max_body_bytes",
            self.http.max_body_bytes,
            "1024..=1073741824",
        )?;
        if let Some(key) = &self.http.api_key {
            check(
                key.expose_secret().len() >= 8,
                "http.api_key",
                "***",
                "at least 8 characters",
            )?;
        }
        check(
            (1..=100_000).contains(&self.feedback.max_group_rows),
            "feedback.max_group_rows",
            self.feedback.max_group_rows,
            "1..=100000",
        )?;
        secs(
            self.recommend.rerank_interval,
            "recommend.rerank_interval",
            0.01,
            3600.0,
            "0.01..=3600 seconds",
        )?;
        let r = &self.recommend;
        secs(
            r.train_interval,
            "recommend.train_interval",
            0.1,
            604_800.0,
            "0.1..=604800 seconds",
        )?;
        check(
            r.retrain_after_events >= 1,
            "recommend.retrain_after_events",
            r.retrain_after_events,
            "at least 1",
        )?;
        check(
            r.popularity_half_life_days.is_finite() && r.popularity_half_life_days > 0.0,
            "recommend.popularity_half_life_days",
            r.popularity_half_life_days,
            "a positive number of days",
        )?;
        check(
            (0.0..=1.0).contains(&r.diversity),
            "recommend.diversity",
            r.diversity,
            "0..=1",
        )?;
        check(
            r.item_ttl_days.is_finite() && r.item_ttl_days >= 0.0,
            "recommend.item_ttl_days",
            r.item_ttl_days,
            "0 (no limit) or a positive number of days",
        )?;
        for (t, w) in &r.positive_weights {
            check(
                w.is_finite() && *w > 0.0,
                "recommend.positive_weights",
                format!("{t} = {w}"),
                "weights above 0",
            )?;
        }
        check(
            (1..=1000).contains(&self.recommend.default_n),
            "recommend.default_n",
            self.recommend.default_n,
            "1..=1000",
        )?;
        let m = &self.monitor;
        check(
            (0.0..=1.0).contains(&m.warn_utilisation),
            "monitor.warn_utilisation",
            m.warn_utilisation,
            "0..=1",
        )?;
        secs(
            m.interval,
            "monitor.interval",
            0.1,
            3600.0,
            "0.1..=3600 seconds",
        )?;
        for r in &m.replicas {
            check(
                url::Url::parse(r).is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
                "monitor.replicas",
                redact_url(r),
                "http:// or https:// URLs",
            )?;
        }
        if let Some(direct) = &db.direct_url {
            check(
                crate::db::Backend::from_url(direct.expose_secret())
                    == Some(crate::db::Backend::Postgres),
                "db.direct_url",
                redact_url(direct.expose_secret()),
                "a postgres:// URL",
            )?;
        }
        let postgres = crate::db::Backend::from_url(url) == Some(crate::db::Backend::Postgres);
        check(
            db.pooler == Pooler::None || postgres,
            "db.pooler",
            format!("{:?}", db.pooler).to_lowercase(),
            "none with SQLite (poolers are for PostgreSQL)",
        )?;
        check(
            db.pooler != Pooler::Transaction || db.direct_url.is_some(),
            "db.direct_url",
            "(unset)",
            "a postgres:// URL bypassing the pooler when db.pooler = \"transaction\" (migrations \
             need a session)",
        )?;
        let c = &self.cluster;
        if let Some(budget) = c.connection_budget {
            check(
                postgres,
                "cluster.connection_budget",
                budget,
                "unset with SQLite (a budget is shared through PostgreSQL)",
            )?;
            check(
                budget > c.join_reserve && budget <= 10_000,
                "cluster.connection_budget",
                budget,
                "join_reserve + 1..=10000",
            )?;
        }
        secs(
            c.heartbeat,
            "cluster.heartbeat",
            0.05,
            60.0,
            "0.05..=60 seconds",
        )?;
        check(
            c.dead_after.is_finite() && c.dead_after >= 2.0 * c.heartbeat && c.dead_after <= 600.0,
            "cluster.dead_after",
            c.dead_after,
            "2 x cluster.heartbeat..=600 seconds",
        )?;
        check(
            (1..=100).contains(&c.keep_snapshots),
            "cluster.keep_snapshots",
            c.keep_snapshots,
            "1..=100",
        )?;
        if let Some(u) = &c.advertise_url {
            check(
                url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
                "cluster.advertise_url",
                redact_url(u),
                "an http:// or https:// URL",
            )?;
        }
        let o = &self.orchestrator;
        secs(
            o.deadline,
            "orchestrator.deadline",
            0.0,
            60.0,
            "0 (none)..=60 seconds",
        )?;
        secs(
            o.click_window,
            "orchestrator.click_window",
            1.0,
            604_800.0,
            "1..=604800 seconds",
        )?;
        for (n, v) in o.variants.iter().enumerate() {
            check(
                !v.name.is_empty()
                    && v.name.len() <= 64
                    && v.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && !o.variants[..n].iter().any(|w| w.name == v.name),
                "orchestrator.variants.name",
                &v.name,
                "unique names of 1 to 64 letters, digits, '-', '_' or '.'",
            )?;
            check(
                v.engine != crate::engine::EngineKind::Auto,
                "orchestrator.variants.engine",
                v.engine.name(),
                "fast, quality, enhanced, smart or popularity",
            )?;
            check(
                (1..=1_000_000).contains(&v.share),
                "orchestrator.variants.share",
                v.share,
                "1..=1000000",
            )?;
        }
        Ok(())
    }

    /// The effective configuration as TOML with every secret replaced by `***`.
    pub fn redacted(&self) -> String {
        let db = &self.db;
        let value = serde_json::json!({
            "db": {
                "url": redact_url(db.url.expose_secret()),
                "pool_size": db.pool_size,
                "max_overflow": db.max_overflow,
                "pool_timeout": db.pool_timeout,
                "pool_recycle": db.pool_recycle,
                "pool_pre_ping": db.pool_pre_ping,
                "leak_threshold": db.leak_threshold,
                "connect_timeout": db.connect_timeout,
                "statement_timeout": db.statement_timeout,
                "application_name": db.application_name,
                "pooler": db.pooler,
                "direct_url": db.direct_url.as_ref().map(|u| redact_url(u.expose_secret())),
            },
            "http": {
                "bind": self.http.bind,
                "request_timeout": self.http.request_timeout,
                "max_body_bytes": self.http.max_body_bytes,
                "api_key": if self.http.api_key.is_some() { "***" } else { "" },
                "protect_reads": self.http.protect_reads,
            },
            "feedback": self.feedback,
            "recommend": self.recommend,
            "orchestrator": self.orchestrator,
            "monitor": self.monitor,
            "cluster": self.cluster,
            "demo": self.demo,
            "log": self.log,
        });
        toml::to_string(&without_nulls(value))
            .unwrap_or_else(|e| format!("# could not render configuration: {e}\n"))
    }
}

/// The value with unset (`null`) entries left out: TOML has no null.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect(),
        other => other,
    }
}

/// Seconds from the config as a [`Duration`].
pub fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

/// A URL for display: as written, unless it carries credentials (then [`redact_url`]).
pub fn display_url(url: &str) -> String {
    if url.contains('@') {
        redact_url(url)
    } else {
        url.to_string()
    }
}

/// The URL with any password replaced by `***`; unparseable input is hidden whole.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            // A password can also hide in the query string (`?password=`).
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) if url.contains('@') => "***".into(),
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_sqlalchemy_ones_and_valid() {
        let c = Config::default();
        assert_eq!((c.db.pool_size, c.db.max_overflow), (5, 10));
        assert_eq!(
            (c.db.pool_timeout, c.db.pool_recycle, c.db.leak_threshold),
            (30.0, 1800.0, 10.0)
        );
        assert!(c.db.pool_pre_ping);
        assert_eq!(c.db.application_name, "reco");
        c.validate().unwrap();
    }

    #[test]
    fn invalid_value_names_key_value_and_range() {
        let mut c = Config::default();
        c.db.pool_size = 0;
        let msg = c.validate().unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid configuration: db.pool_size = 0 (allowed: 1..=1000)"
        );
        let mut c = Config::default();
        c.db.pool_timeout = -1.0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("db.pool_timeout = -1")
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:hunter2@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(
            redact_url("postgres://u@h/d?password=hunter2&x=1"),
            "postgres://u@h/d?password=***&x=1"
        );
        let mut c = Config::default();
        c.db.url = SecretString::from("postgres://u:hunter2@h/d");
        c.http.api_key = Some(SecretString::from("sekrit-key-123"));
        let shown = c.redacted();
        assert!(
            !shown.contains("hunter2") && !shown.contains("sekrit"),
            "{shown}"
        );
        assert!(shown.contains("pool_size = 5"), "{shown}");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail error type, test only
    fn flags_override_file_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("reco.toml", "[db]\npool_size = 7\nmax_overflow = 1\n")?;
            jail.set_env("RECO_DB__MAX_OVERFLOW", "4");
            jail.set_env("DATABASE_URL", "postgres://u:p@localhost/x");
            let mut o = Overrides::default();
            let c = Config::load(&o).unwrap();
            assert_eq!((c.db.pool_size, c.db.max_overflow), (7, 4));
            assert_eq!(c.db.url.expose_secret(), "postgres://u:p@localhost/x");
            o.set("db.pool_size", Some(2u32));
            let c = Config::load(&o).unwrap();
            assert_eq!(c.db.pool_size, 2);
            jail.set_env("RECO_DB__POOL_SIZE", "0");
            let err = Config::load(&Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("db.pool_size = 0"), "{err}");
            Ok(())
        });
    }
}
