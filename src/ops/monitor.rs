//! `reco monitor`: one view of every connection reco is responsible for.
//!
//! A [`View`] combines what each running replica reports about its pool (`/api/admin/pool`) with
//! what the database server reports (`max_connections`, reserved slots, every client backend by
//! application and state), and the warnings operators care about, at the thresholds of
//! `[monitor]`. It renders as plain text (`--once`), JSON (`--json`) or a live terminal view.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{MonitorConfig, display_url};
use crate::store::{BackendGroup, ServerStats, Store};

/// What a replica reports about its pool (the fields of `/api/admin/pool` the monitor shows).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicaPool {
    pub ceiling: u32,
    pub size: u32,
    pub idle: u32,
    pub in_use: u32,
    pub overflow_in_use: u32,
    pub waiting: u32,
    pub timeouts_total: u64,
    #[serde(default)]
    pub leak_suspects: Vec<serde_json::Value>,
    pub acquire_wait: AcquireWait,
    /// The change feed's follower; absent on a replica that follows none (no budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<Feed>,
}

/// Where a replica's change-feed follower stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Feed {
    pub position: i64,
    /// Every change committed longer ago than this is in the replica's memory.
    pub lag_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AcquireWait {
    pub p99_seconds: f64,
}

/// The columns of the replica table (name, width), shown by `--once` and the live view alike; the
/// first is the replica's URL, the others are [`ReplicaPool::cells`].
pub const REPLICA_COLUMNS: [(&str, usize); 11] = [
    ("replica", 32),
    ("size", 5),
    ("idle", 5),
    ("in use", 7),
    ("overflow", 8),
    ("waiting", 7),
    ("timeouts", 8),
    ("leaks", 5),
    ("acq p99 ms", 10),
    ("feed pos", 9),
    ("lag s", 6),
];

impl ReplicaPool {
    /// The pool's cells of the replica table, in [`REPLICA_COLUMNS`] order after the URL.
    pub fn cells(&self) -> [String; 10] {
        let (position, lag) = match &self.feed {
            Some(f) => (f.position.to_string(), format!("{:.2}", f.lag_seconds)),
            None => ("-".into(), "-".into()),
        };
        [
            self.size.to_string(),
            self.idle.to_string(),
            format!("{}/{}", self.in_use, self.ceiling),
            self.overflow_in_use.to_string(),
            self.waiting.to_string(),
            self.timeouts_total.to_string(),
            self.leak_suspects.len().to_string(),
            format!("{:.1}", self.acquire_wait.p99_seconds * 1000.0),
            position,
            lag,
        ]
    }
}

/// One replica: its pool, or why it could not be read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Replica {
    /// The replica's URL, any credentials in it redacted.
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<ReplicaPool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The database server's side.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Server {
    pub max_connections: i64,
    pub reserved_connections: i64,
    /// Client backends in all (the monitor's own excluded).
    pub total: i64,
    /// `total` as a percentage of the connections ordinary clients may open.
    pub utilisation_percent: f64,
    pub backends: Vec<BackendGroup>,
}

/// How bad a warning is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Warning {
    pub level: Level,
    pub message: String,
}

/// One observation of everything.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct View {
    pub taken_at: chrono::DateTime<chrono::Utc>,
    pub replicas: Vec<Replica>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_error: Option<String>,
    pub warnings: Vec<Warning>,
}

/// Calls replicas' admin routes, with the API key when one is configured.
pub struct ReplicaClient {
    client: reqwest::Client,
    api_key: Option<String>,
}

impl ReplicaClient {
    pub fn new(api_key: Option<String>, timeout: Duration) -> Self {
        // Never follow a redirect: it would carry the API key to wherever it points.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client without TLS builds");
        Self { client, api_key }
    }

    /// `method` on `path` of the replica at base URL `url`.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        // `X-Requested-With` marks a deliberate call (admin actions refuse plain form posts).
        let request = self
            .client
            .request(method, format!("{}{path}", url.trim_end_matches('/')))
            .header("X-Requested-With", "reco");
        match &self.api_key {
            Some(key) => request.header("X-API-Key", key),
            None => request,
        }
    }
}

/// Reads replicas and the server.
pub struct Monitor {
    client: ReplicaClient,
    replicas: Vec<String>,
    store: Option<Store>,
    config: MonitorConfig,
}

impl Monitor {
    /// `store` is the database to inspect (`None`: replicas only).
    pub fn new(
        config: MonitorConfig,
        replicas: Vec<String>,
        api_key: Option<String>,
        store: Option<Store>,
    ) -> Self {
        Self {
            client: ReplicaClient::new(api_key, Duration::from_secs(2)),
            replicas,
            store,
            config,
        }
    }

    async fn replica(&self, url: &str) -> Replica {
        let request = self
            .client
            .request(reqwest::Method::GET, url, "/api/admin/pool");
        let result = async {
            let response = request.send().await.map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    "unreachable".to_string()
                }
            })?;
            if !response.status().is_success() {
                return Err(format!("answered HTTP {}", response.status().as_u16()));
            }
            response
                .json::<ReplicaPool>()
                .await
                .map_err(|_| "answered something that is not a reco pool status".to_string())
        }
        .await;
        let (pool, error) = match result {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        };
        Replica {
            url: display_url(url),
            pool,
            error,
        }
    }

    /// One observation.
    pub async fn observe(&self) -> View {
        let replicas =
            futures::future::join_all(self.replicas.iter().map(|u| self.replica(u))).await;
        let (server, server_error) = match &self.store {
            None => (None, None),
            Some(store) => match store.server_stats().await {
                Ok(Some(stats)) => (Some(server_view(stats)), None),
                Ok(None) => (None, Some("not PostgreSQL: no server statistics".into())),
                Err(e) if e.is_busy() => (None, Some("database busy".into())),
                Err(_) => (None, Some("database unreachable".into())),
            },
        };
        let mut view = View {
            taken_at: chrono::Utc::now(),
            replicas,
            server,
            server_error,
            warnings: Vec::new(),
        };
        view.warnings = warnings(&self.config, &view);
        view
    }
}

fn server_view(stats: ServerStats) -> Server {
    let total = stats.total();
    Server {
        max_connections: stats.max_connections,
        reserved_connections: stats.reserved_connections,
        total,
        utilisation_percent: 100.0 * total as f64 / stats.available().max(1) as f64,
        backends: stats.backends,
    }
}

/// The warnings a view deserves at the configured thresholds.
pub fn warnings(config: &MonitorConfig, view: &View) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |level, message: String| out.push(Warning { level, message });
    for r in &view.replicas {
        let Some(p) = &r.pool else {
            let reason = r.error.as_deref().unwrap_or("no answer");
            warn(Level::Fail, format!("replica {}: {reason}", r.url));
            continue;
        };
        let utilisation = p.in_use as f64 / p.ceiling.max(1) as f64;
        if utilisation > config.warn_utilisation {
            warn(
                Level::Warn,
                format!(
                    "replica {}: pool {:.0}% in use ({} of {}), above {:.0}%",
                    r.url,
                    utilisation * 100.0,
                    p.in_use,
                    p.ceiling,
                    config.warn_utilisation * 100.0
                ),
            );
        }
        if p.overflow_in_use > config.warn_overflow {
            warn(
                Level::Warn,
                format!(
                    "replica {}: {} overflow connections in use, above {}",
                    r.url, p.overflow_in_use, config.warn_overflow
                ),
            );
        }
        if p.waiting > 0 {
            warn(
                Level::Warn,
                format!(
                    "replica {}: {} requests waiting for a connection",
                    r.url, p.waiting
                ),
            );
        }
        if let Some(f) = p
            .feed
            .as_ref()
            .filter(|f| f.lag_seconds > config.warn_feed_lag)
        {
            warn(
                Level::Warn,
                format!(
                    "replica {}: {:.1} s behind the change feed (above {} s): other replicas' \
                     writes are not in its memory yet; is its database reachable?",
                    r.url, f.lag_seconds, config.warn_feed_lag
                ),
            );
        }
        if !p.leak_suspects.is_empty() {
            warn(
                Level::Warn,
                format!(
                    "replica {}: {} connections held past the leak threshold",
                    r.url,
                    p.leak_suspects.len()
                ),
            );
        }
    }
    if let Some(s) = &view.server {
        if s.total > config.warn_total_connections {
            warn(
                Level::Warn,
                format!(
                    "{} connections on the database, above {}",
                    s.total, config.warn_total_connections
                ),
            );
        }
        if s.total >= s.max_connections - s.reserved_connections {
            warn(
                Level::Fail,
                format!(
                    "the database is full: {} of {} client connections",
                    s.total,
                    s.max_connections - s.reserved_connections
                ),
            );
        }
    }
    out
}

/// The view as plain text, for `--once`, scripts and cron.
pub fn render_text(view: &View) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "reco monitor  {}",
        view.taken_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(out);
    let _ = write!(out, "{:<32}", REPLICA_COLUMNS[0].0);
    for (name, width) in &REPLICA_COLUMNS[1..] {
        let _ = write!(out, " {name:>width$}");
    }
    let _ = writeln!(out);
    for r in &view.replicas {
        match &r.pool {
            Some(p) => {
                let _ = write!(out, "{:<32}", r.url);
                for ((_, width), cell) in REPLICA_COLUMNS[1..].iter().zip(p.cells()) {
                    let _ = write!(out, " {cell:>width$}");
                }
                let _ = writeln!(out);
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<32} {}",
                    r.url,
                    r.error.as_deref().unwrap_or("no answer")
                );
            }
        }
    }
    if view.replicas.is_empty() {
        let _ = writeln!(
            out,
            "(no replicas configured: monitor.replicas or --replica)"
        );
    }
    let _ = writeln!(out);
    match (&view.server, &view.server_error) {
        (Some(s), _) => {
            let _ = writeln!(
                out,
                "database: max_connections {}, reserved {}, client backends {} ({:.0}% of {})",
                s.max_connections,
                s.reserved_connections,
                s.total,
                s.utilisation_percent,
                s.max_connections - s.reserved_connections
            );
            let _ = writeln!(
                out,
                "{:<32} {:<28} {:>5} {:>12}",
                "application", "state", "count", "oldest (s)"
            );
            for b in &s.backends {
                let app = if b.application.is_empty() {
                    "(none)"
                } else {
                    &b.application
                };
                let state = if b.state.is_empty() {
                    "(none)"
                } else {
                    &b.state
                };
                let _ = writeln!(
                    out,
                    "{:<32} {:<28} {:>5} {:>12.0}",
                    app, state, b.count, b.oldest_state_seconds
                );
            }
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "database: {e}");
        }
        (None, None) => {}
    }
    let _ = writeln!(out);
    if view.warnings.is_empty() {
        let _ = writeln!(out, "no warnings");
    }
    for w in &view.warnings {
        let tag = match w.level {
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        let _ = writeln!(out, "{tag} {}", w.message);
    }
    out
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
