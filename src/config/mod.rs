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
pub use orchestrator::{OrchestratorConfig, VariantConfig, WorkerPriority};
pub use recommend::{RecommendConfig, ShortHistoryRoute};
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
            .map_err(|e| ConfigError::Parse(describe(e)))?;
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
        // A replica bound to every interface cannot tell others where it is: it would register
        // 127.0.0.1, and `reco monitor`/`reset` would talk to the operator's own machine.
        rules::check(
            self.cluster.connection_budget.is_none()
                || self.cluster.advertise_url.is_some()
                || self
                    .http
                    .bind_addr()
                    .is_some_and(|a| !a.ip().is_unspecified()),
            "cluster.advertise_url",
            "unset",
            "set when http.bind listens on every interface (0.0.0.0 or [::]) in a cluster",
        )?;
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

/// The value for display: unset (`null`) entries left out (TOML has no null), and every URL that
/// carries credentials (a replica's, a database's) redacted.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect(),
        serde_json::Value::Array(items) => items.into_iter().map(without_nulls).collect(),
        serde_json::Value::String(s) if s.contains("://") => {
            serde_json::Value::String(redact::display_url(&s))
        }
        other => other,
    }
}

/// Whether a key's value may be a secret: keys, passwords and URLs (which can carry either).
fn may_be_secret(path: &[String]) -> bool {
    path.last().is_some_and(|k| {
        let k = k.to_ascii_lowercase();
        k.contains("key") || k.contains("password") || k.contains("url") || k.contains("secret")
    })
}

/// A figment error as shown to the user: the key, where it came from and what was expected. The
/// value given is shown only for keys that cannot hold a secret (`RECO_HTTP__API_KEY=12345678`
/// reads as a number, and the message must not print it back).
fn describe(errors: figment::Error) -> String {
    use figment::error::Kind;
    errors
        .into_iter()
        .map(|e| {
            let key = match e.path.is_empty() {
                true => "the configuration".to_string(),
                false => format!("`{}`", e.path.join(".")),
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            let what = match &e.kind {
                _ if !may_be_secret(&e.path) => e.kind.to_string(),
                Kind::InvalidType(_, expected) => format!("invalid type: expected {expected}"),
                Kind::InvalidValue(_, expected) => format!("invalid value: expected {expected}"),
                Kind::Message(_) | Kind::Unsupported(_) | Kind::UnsupportedKey(..) => {
                    "invalid value".to_string()
                }
                other => other.to_string(),
            };
            format!("{key}{source}: {what}")
        })
        .collect::<Vec<_>>()
        .join("; ")
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

    #[test]
    fn an_exposed_bind_needs_a_key_and_a_cluster_needs_an_address() {
        let mut c = Config::default();
        c.http.bind = "0.0.0.0:8080".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("http.bind = 0.0.0.0:8080"), "{err}");
        c.http.api_key = Some(SecretString::from("a-long-key"));
        c.validate().unwrap();
        c.http.api_key = None;
        c.http.allow_unauthenticated = true;
        c.validate().unwrap();
        c.http.bind = "[::1]:8080".into();
        c.http.allow_unauthenticated = false;
        c.validate().unwrap();

        c.db.url = SecretString::from("postgres://h/d");
        c.cluster.connection_budget = Some(15);
        c.http.bind = "0.0.0.0:8080".into();
        c.http.api_key = Some(SecretString::from("a-long-key"));
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("cluster.advertise_url"), "{err}");
        c.cluster.advertise_url = Some("http://10.0.0.5:8080".into());
        c.validate().unwrap();
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail error type, test only
    fn a_value_that_fails_to_parse_is_not_echoed_when_it_may_be_secret() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("RECO_HTTP__API_KEY", "12345678");
            let err = Config::load(&Overrides::default()).unwrap_err().to_string();
            assert!(!err.contains("12345678"), "{err}");
            assert!(err.contains("http.api_key"), "{err}");
            jail.set_env("RECO_HTTP__API_KEY", "a-long-key");
            jail.set_env("RECO_DB__POOL_SIZE", "lots");
            let err = Config::load(&Overrides::default()).unwrap_err().to_string();
            assert!(
                err.contains("db.pool_size") && err.contains("lots"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn every_url_with_credentials_is_redacted() {
        let mut c = Config::default();
        c.monitor.replicas = vec!["http://ops:hunter2@10.0.0.5:8080".into()];
        c.cluster.advertise_url = Some("http://me:hunter3@10.0.0.6:8080".into());
        let shown = c.redacted();
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("10.0.0.5:8080"), "{shown}");
    }
}
