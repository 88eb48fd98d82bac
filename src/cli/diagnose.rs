//! `reco diagnose`: runs the checks of [`crate::ops::diagnose`] and exits 0 (all ok), 1 (warnings) or
//! 2 (failures).

use secrecy::ExposeSecret;

use super::connect;
use crate::config::Config;
use crate::ops::diagnose::{Inputs, checks, exit_status, render_text};
use crate::ops::monitor::Monitor;

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
    /// A replica's base URL (repeatable); adds to `monitor.replicas`. Its pool is asked for leaks.
    #[arg(long = "replica")]
    replicas: Vec<String>,
    /// How many replicas share the database, when not every one is listed (default: the number
    /// of replicas given, at least 1).
    #[arg(long)]
    replica_count: Option<usize>,
}

pub async fn run(opts: Opts, config: Config) -> anyhow::Result<()> {
    let store = connect::inspector(&config, "diagnose").await;
    let replicas = connect::replica_urls(&config, &opts.replicas, store.as_ref().ok()).await;
    let api_key = config
        .http
        .api_key
        .as_ref()
        .map(|k| k.expose_secret().to_string());
    let monitor = Monitor::new(config.monitor.clone(), replicas.clone(), api_key, None);
    let view = monitor.observe().await;
    let (ping, server, facts) = match store {
        Err(_) => (
            Err("no connection within db.connect_timeout (unreachable, refused or wrong credentials)".to_string()),
            None,
            None,
        ),
        Ok(store) => {
            let ping = store.pool().ping().await.map_err(|e| {
                if e.is_busy() {
                    "no answer within db.connect_timeout".to_string()
                } else {
                    "unreachable or refused the connection".to_string()
                }
            });
            let (server, facts) = if ping.is_ok() {
                (
                    store.server_stats().await.ok().flatten(),
                    store.connection_facts().await.ok().flatten(),
                )
            } else {
                (None, None)
            };
            store.pool().close().await;
            (ping, server, facts)
        }
    };
    let results = checks(&Inputs {
        config: &config,
        ping,
        server,
        facts,
        view: &view,
        replicas: opts.replica_count.unwrap_or(replicas.len()).max(1),
    });
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", render_text(&results));
    }
    std::process::exit(exit_status(&results));
}
