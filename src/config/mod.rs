//! Configuration: typed settings, their defaults, the layering and validation.
//!
//! Layers, later ones win: built-in defaults < `reco.toml` (path from `--config` or `RECO_CONFIG`)
//! < environment (`DATABASE_URL`, `RECO_DB__POOL_SIZE`, `RECO_HTTP__API_KEY`, ...) < command-line
//! flags. [`Config::validate`] rejects out-of-range values with one line naming the key, the value and
//! the allowed range. Secrets (the database URL, which may hold a password, and the API key) are kept
//! in `SecretString` so that they cannot be printed by accident; [`Config::redacted`] is the only
//! way they leave this module, with the password and key replaced by `***`.
//!
//! One file per section holds its fields, defaults and bounds; [`Config::validate`] asks each.
//! This module owns no I/O beyond reading the config file.

mod cluster;
mod db;
mod demo;
mod feedback;
mod http;
mod log;
mod monitor;
mod orchestrator;
mod recommend;
mod redact;
mod rules;

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use cluster::ClusterConfig;
pub use db::{DEFAULT_DATABASE_URL, DbConfig, Pooler};
pub use demo::DemoConfig;
pub use feedback::FeedbackConfig;
pub use http::HttpConfig;
pub use log::{LogConfig, LogFormat};
pub use monitor::MonitorConfig;
pub use orchestrator::{OrchestratorConfig, VariantConfig};
pub use recommend::RecommendConfig;
pub use redact::{display_url, redact_url};
pub use rules::ConfigError;

use crate::kinds::Backend;

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

    /// Rejects values outside their allowed range, naming the key, the value and the range. Each
    /// section checks its own keys; the cluster also needs to know the backend.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.db.validate()?;
        self.http.validate()?;
        self.feedback.validate()?;
        self.recommend.validate()?;
        self.monitor.validate()?;
        self.cluster
            .validate(self.db.backend() == Some(Backend::Postgres))?;
        self.orchestrator.validate()
    }

    /// The effective configuration as TOML with every secret replaced by `***`.
    pub fn redacted(&self) -> String {
        let value = serde_json::json!({
            "db": self.db.redacted(),
            "http": self.http.redacted(),
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

#[cfg(test)]
mod tests {
    use secrecy::{ExposeSecret, SecretString};

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
