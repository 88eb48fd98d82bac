//! `reco serve`: run the HTTP server.

use std::io::Write;

use crate::api;
use crate::app::{App, shutdown_signal};
use crate::config::{Config, Overrides};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Address to listen on (http.bind).
    #[arg(long)]
    pub bind: Option<String>,
    /// Connections kept open (db.pool_size).
    #[arg(long)]
    pub pool_size: Option<u32>,
    /// Extra connections under load (db.max_overflow).
    #[arg(long)]
    pub max_overflow: Option<u32>,
    /// Seconds to wait for a connection (db.pool_timeout).
    #[arg(long)]
    pub pool_timeout: Option<f64>,
    /// Do not seed the demo catalogue into an empty embedded database.
    #[arg(long)]
    pub no_demo: bool,
}

impl Opts {
    pub fn add_overrides(&self, o: &mut Overrides) {
        o.set("http.bind", self.bind.clone());
        o.set("db.pool_size", self.pool_size);
        o.set("db.max_overflow", self.max_overflow);
        o.set("db.pool_timeout", self.pool_timeout);
        o.set("demo.seed_if_empty", self.no_demo.then_some(false));
    }
}

pub async fn run(_opts: Opts, config: Config) -> anyhow::Result<()> {
    let bind = config.http.bind.clone();
    let state = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let addr = listener.local_addr()?;
    let example_user = state
        .store
        .list_users(None, 1)
        .await?
        .items
        .into_iter()
        .next()
        .map(|u| u.id);
    // Written, not `println!`ed: a closed stdout (`reco serve | head -1`, a supervisor that stopped
    // reading) must not panic a running server.
    let example = match example_user {
        Some(user) => format!("/api/recommend/{user}?n=10"),
        None => "/api/popular?n=10".to_string(),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "reco is listening on http://{addr}");
    let _ = writeln!(out, "try: curl 'http://{addr}{example}'");
    let _ = out.flush();
    drop(out);
    tracing::info!(%addr, backend = ?state.pool.backend(), "serving");
    api::serve(state, listener, shutdown_signal()).await
}
