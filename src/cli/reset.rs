//! `reco reset`: asks every replica to rebuild its pool gracefully (new checkouts go to a new pool,
//! busy connections finish on the old one, which then closes), and with `--terminate-idle` ends
//! the idle backends of reco's own `application_name` left from before, after confirmation.

use std::io::{BufRead, Write};

use secrecy::ExposeSecret;

use super::connect;
use crate::config::{Config, display_url};
use crate::ops::monitor::ReplicaClient;

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// A replica's base URL (repeatable); adds to `monitor.replicas`.
    #[arg(long = "replica")]
    replicas: Vec<String>,
    /// Also end idle backends of `db.application_name` that connected before the reset (never
    /// another application's), after showing them.
    #[arg(long)]
    terminate_idle: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

pub async fn run(opts: Opts, config: Config) -> anyhow::Result<()> {
    let store = if opts.terminate_idle {
        Some(connect::inspector(&config, "reset").await?)
    } else {
        // Only to read the cluster registry: optional.
        connect::inspector(&config, "reset").await.ok()
    };
    let replicas = connect::replica_urls(&config, &opts.replicas, store.as_ref()).await;
    if replicas.is_empty() && !opts.terminate_idle {
        anyhow::bail!(
            "no replicas to reset: give --replica URL, set monitor.replicas, or run them with a \
             cluster.connection_budget so they register"
        );
    }
    // Backends that connected before this moment belong to the pools being replaced.
    let cutoff = match &store {
        Some(s) if opts.terminate_idle => Some(s.server_now().await?),
        _ => None,
    };
    let key = config
        .http
        .api_key
        .as_ref()
        .map(|k| k.expose_secret().to_string());
    let client = ReplicaClient::new(key, std::time::Duration::from_secs(10));
    let mut failed = 0;
    for url in &replicas {
        let shown = display_url(url);
        let request = client.request(reqwest::Method::POST, url, "/api/admin/pool/reset");
        match request.send().await {
            Ok(r) if r.status().is_success() => {
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                println!(
                    "{shown}: pool rebuilt (generation {}); {} idle connections closed, {} busy ones close when their work is done",
                    body["generation"], body["idle_closed"], body["busy_on_old_pool"]
                );
            }
            Ok(r) => {
                failed += 1;
                println!("{shown}: answered HTTP {}", r.status().as_u16());
            }
            Err(_) => {
                failed += 1;
                println!("{shown}: unreachable");
            }
        }
    }
    if let (Some(store), Some(cutoff)) = (&store, cutoff) {
        let app = &config.db.application_name;
        // The old pools close their idle connections at once; give that a moment to land.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let idle = store.idle_backends(app, cutoff).await?;
        if idle.is_empty() {
            println!("no idle backends of {app} left from before the reset");
        } else {
            println!("idle backends of {app} that connected before the reset:");
            for b in &idle {
                println!(
                    "  pid {:>7}  {}  idle {:.0} s",
                    b.pid, b.application, b.idle_seconds
                );
            }
            if opts.yes || confirm(&format!("terminate these {} backends? [y/N] ", idle.len()))? {
                let mut ended = 0;
                for b in &idle {
                    if store.terminate_idle_backend(b.pid, app).await? {
                        ended += 1;
                    }
                }
                println!("terminated {ended} of {} backends", idle.len());
            } else {
                println!("nothing terminated");
            }
        }
        store.pool().close().await;
    }
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn confirm(prompt: &str) -> anyhow::Result<bool> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
