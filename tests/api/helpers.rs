//! The one helper every integration test starts the real server through: [`spawn_app`] gives each
//! test its own database (a fresh PostgreSQL database, or a fresh SQLite file) and its own port.

use std::net::SocketAddr;
use std::path::PathBuf;

use reco::app::{App, AppState};
use reco::config::Config;
use secrecy::SecretString;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// The PostgreSQL server tests create their databases on (scripts/test.sh sets it).
pub fn pg_admin_url() -> String {
    std::env::var("RECO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("valid URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// A direct connection for test assertions (pg_stat_activity, row counts, locks). Not the product's
/// pool: the product never connects outside `db::Pool`.
pub async fn pg_connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("cannot reach PostgreSQL at {url}: {e}. Run the suite with ./scripts/test.sh, which starts one.")
    })
}

/// Backends of `application_name` in pg_stat_activity.
pub async fn count_backends(conn: &mut PgConnection, application_name: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(application_name)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Counts `application_name`'s backends on the server at `url` every `every` (over a connection
/// of its own) until `stop` is set; the task returns every sample.
pub fn sample_backends(
    url: &str,
    application_name: &str,
    every: std::time::Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> JoinHandle<Vec<i64>> {
    let (url, name) = (url.to_string(), application_name.to_string());
    tokio::spawn(async move {
        let mut conn = pg_connect(&url).await;
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(every);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            tick.tick().await;
            samples.push(count_backends(&mut conn, &name).await);
        }
        samples
    })
}

/// The value of one Prometheus sample in `/metrics` text, 0 when absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    /// The database URL the app uses.
    pub db_url: String,
    /// Unique per test: counts this app's backends in pg_stat_activity.
    pub application_name: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    pg_database: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// Starts reco on a fresh database with the default test configuration changed by `tweak`.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let application_name = format!(
        "reco_t_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut config = Config::default();
    config.http.bind = "127.0.0.1:0".into();
    config.demo.seed_if_empty = false;
    config.db.application_name = application_name.clone();
    // Generous waits: a test's deadlines come from what it waits for, not from how fast this
    // machine happens to be (tests of the timeouts themselves set their own).
    config.db.pool_timeout = 30.0;
    config.http.request_timeout = 600.0;
    // A named engine answers as itself even on a busy machine (the deadline has its own tests).
    config.orchestrator.deadline = 30.0;
    // Tests keep both cores busy with each other: idle-class engine threads could wait for most
    // of a run. The idle class's effect is measured by scripts/bench-stall.sh.
    config.orchestrator.worker_priority = reco::config::WorkerPriority::Nice;
    config.recommend.rerank_interval = 0.05;
    // Every model at its defaults: how far the settings search gets depends on how busy this
    // machine is, and the engines' tests check their mechanics on fixed models. The search has
    // tests of its own (`engines::training_reports_the_settings_it_chose`, `quality`).
    config.recommend.tuning_budget = 0.0;
    let (db_url, pg_database, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("reco.db").display());
            (url, None, Some(dir))
        }
        Backend::Postgres => {
            let name = format!("reco_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = pg_connect(&pg_admin_url()).await;
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create database");
            (with_database(&pg_admin_url(), &name), Some(name), None)
        }
    };
    config.db.url = SecretString::from(db_url.clone());
    tweak(&mut config);
    config.validate().expect("test configuration is valid");
    let state = App::build(config).await.expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(reco::api::serve(state.clone(), listener, async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(100)
            .build()
            .unwrap(),
        state,
        db_url,
        application_name,
        shutdown: Some(tx),
        server: Some(server),
        pg_database,
        _dir: dir,
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.send_with_key(method, path, body, None).await
    }

    /// [`TestApp::send`] with an API key (`X-API-Key`).
    pub async fn send_with_key(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(key) = key {
            req = req.header("X-API-Key", key);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Trains through the admin route: starts a job (202), waits until it ends, and returns its
    /// snapshot (version, users, items, interactions, fit time); panics when it fails.
    pub async fn train(&self) -> Value {
        let (s, job) = self.post("/api/admin/train", Value::Null).await;
        assert_eq!(s, 202, "{job}");
        let job = self
            .job_outcome(&format!("/api/admin/train/{}", job["id"]))
            .await;
        assert_eq!(job["status"], "succeeded", "training failed: {job}");
        job["snapshot"].clone()
    }

    /// Polls the training job at `path` until it is no longer running; returns it.
    pub async fn job_outcome(&self, path: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let (s, job) = self.get(path).await;
            assert_eq!(s, 200, "{job}");
            if job["status"] != "running" {
                return job;
            }
            assert!(started.elapsed().as_secs() < 600, "training never ended");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Sends raw bytes with a JSON content type.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Counts rows with a direct query on the app's database.
    pub async fn count(&self, table: &str) -> i64 {
        let (i, u, f) = self.state.store.counts().await.expect("counts");
        match table {
            "items" => i,
            "users" => u,
            "feedback" => f,
            other => panic!("unknown table {other}"),
        }
    }

    /// This app's backends in pg_stat_activity.
    pub async fn pg_backends(&self, conn: &mut PgConnection) -> i64 {
        count_backends(conn, &self.application_name).await
    }

    /// Graceful shutdown, as on SIGTERM; waits until the server has stopped.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(name) = self.pg_database.take() {
            // Drop the test database from a thread with its own runtime: Drop cannot await.
            let admin = pg_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) = PgConnection::connect(&admin).await {
                        let _ = c
                            .execute(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Where the shared data sets are: `$RECO_DATASETS_DIR`, else `../shared/datasets` beside the repo.
pub fn datasets_dir() -> PathBuf {
    std::env::var_os("RECO_DATASETS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"))
}

/// The ML-100K folder, or `None` (with a printed notice) when it is absent and not required.
pub fn ml100k() -> Option<PathBuf> {
    let dir = datasets_dir().join("ml-100k");
    if dir.join("u.data").exists() {
        return Some(dir);
    }
    if std::env::var("RECO_REQUIRE_DATASETS").as_deref() == Ok("1") {
        panic!("RECO_REQUIRE_DATASETS=1 but {} is missing", dir.display());
    }
    eprintln!(
        "SKIPPED: MovieLens-100K not found at {} (set RECO_DATASETS_DIR)",
        dir.display()
    );
    None
}
