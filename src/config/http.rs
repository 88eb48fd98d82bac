//! `[http]`: the HTTP server.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::rules::{ConfigError, check, secs};

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    /// Seconds a request may take before it is answered 503.
    pub request_timeout: f64,
    /// Seconds in-flight requests get after SIGTERM; then they are answered 503, queued feedback is
    /// committed and the process exits.
    pub shutdown_timeout: f64,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// When set, write and admin routes require it (`Authorization: Bearer …` or `X-API-Key`).
    pub api_key: Option<SecretString>,
    /// With an API key set: whether read routes require it too.
    pub protect_reads: bool,
    /// Serve on an address other hosts can reach without `api_key` (every write and admin route
    /// open to the network). Off by default: such a bind is refused.
    pub allow_unauthenticated: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            request_timeout: 30.0,
            shutdown_timeout: 30.0,
            max_body_bytes: 16 * 1024 * 1024,
            api_key: None,
            protect_reads: false,
            allow_unauthenticated: false,
        }
    }
}

impl HttpConfig {
    /// The section as shown by `reco config`: the key replaced by `***`.
    pub(super) fn redacted(&self) -> serde_json::Value {
        serde_json::json!({
            "bind": self.bind,
            "request_timeout": self.request_timeout,
            "shutdown_timeout": self.shutdown_timeout,
            "max_body_bytes": self.max_body_bytes,
            "api_key": if self.api_key.is_some() { "***" } else { "" },
            "protect_reads": self.protect_reads,
            "allow_unauthenticated": self.allow_unauthenticated,
        })
    }

    /// The address to listen on (valid after [`HttpConfig::validate`]).
    pub fn bind_addr(&self) -> Option<std::net::SocketAddr> {
        self.bind.parse().ok()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let addr = self.bind_addr();
        check(
            addr.is_some(),
            "http.bind",
            &self.bind,
            "an address such as 127.0.0.1:8080",
        )?;
        check(
            addr.is_some_and(|a| a.ip().is_loopback())
                || self.api_key.is_some()
                || self.allow_unauthenticated,
            "http.bind",
            &self.bind,
            "a loopback address unless http.api_key is set (or http.allow_unauthenticated = true)",
        )?;
        secs(
            self.request_timeout,
            "http.request_timeout",
            0.01,
            3600.0,
            "0.01..=3600 seconds",
        )?;
        secs(
            self.shutdown_timeout,
            "http.shutdown_timeout",
            0.0,
            3600.0,
            "0..=3600 seconds",
        )?;
        check(
            (1024..=1 << 30).contains(&self.max_body_bytes),
            "http.max_body_bytes",
            self.max_body_bytes,
            "1024..=1073741824",
        )?;
        if let Some(key) = &self.api_key {
            check(
                key.expose_secret().len() >= 8,
                "http.api_key",
                "***",
                "at least 8 characters",
            )?;
        }
        Ok(())
    }
}
