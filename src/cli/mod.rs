//! The command line: one clap enum of subcommands, one module per subcommand with its options and
//! `run`. Options shared by every subcommand (config file, database URL, logging) live in
//! [`GlobalOpts`] and become the top configuration layer.

mod config_cmd;
mod diagnose;
mod evaluate;
mod import;
mod migrate;
mod monitor;
mod reset;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "reco",
    version,
    about = "A recommendation server that never runs out of database connections"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct GlobalOpts {
    /// Configuration file (TOML); default: ./reco.toml if present.
    #[arg(long, global = true, env = "RECO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: postgres://… or sqlite://path (overrides DATABASE_URL).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `reco=debug`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(serve::Opts),
    /// Apply database migrations and exit.
    Migrate(migrate::Opts),
    /// Import a data set into the database.
    Import(import::Opts),
    /// Print the effective configuration, secrets redacted.
    Config(config_cmd::Opts),
    /// Measure recommendation quality offline (Precision, Recall, NDCG, HR at 10; coverage).
    Evaluate(evaluate::Opts),
    /// Watch every replica's pool and the database's connections (live, --once or --json).
    Monitor(monitor::Opts),
    /// Check the connection setup; exit 0 when all is ok, 1 on warnings, 2 on failures.
    Diagnose(diagnose::Opts),
    /// Rebuild every replica's pool gracefully; optionally end reco's stale idle backends.
    Reset(reset::Opts),
}

impl GlobalOpts {
    fn overrides(&self) -> Overrides {
        let mut o = Overrides {
            config_file: self.config.clone(),
            ..Default::default()
        };
        o.set("db.url", self.database_url.clone());
        o.set("log.format", self.log_format);
        o.set("log.level", self.log_level.clone());
        o
    }
}

/// A store over one connection of its own, named `<application_name>-<purpose>` so that operators
/// (and reco's own checks) can tell it from the server's pool.
async fn inspector(config: &Config, purpose: &str) -> anyhow::Result<crate::store::Store> {
    let mut db = config.db.clone();
    db.pool_size = 1;
    db.max_overflow = 0;
    db.application_name = format!("{}-{purpose}", db.application_name);
    // Unnamed statements in one transaction per checkout work through any pooler, also one the
    // configuration does not mention: these commands must work to diagnose exactly that.
    db.pooler = crate::config::Pooler::Transaction;
    let pool = crate::db::Pool::open(&db, crate::db::PoolMetrics::default())
        .await
        .map_err(|e| anyhow::anyhow!("opening a database connection: {e}"))?;
    Ok(crate::store::Store::new(pool))
}

/// The replicas to talk to: configured (`monitor.replicas`), given on the command line, and the
/// ones the cluster registry lists (when a store is at hand and the registry has rows).
async fn replica_urls(
    config: &Config,
    given: &[String],
    store: Option<&crate::store::Store>,
) -> Vec<String> {
    let mut out: Vec<String> = config.monitor.replicas.clone();
    out.extend(given.iter().cloned());
    if let Some(store) = store
        && let Ok(registered) =
            crate::cluster::Cluster::replicas(store.pool(), &config.db.application_name).await
    {
        for url in registered.into_iter().filter_map(|r| r.url) {
            let same = |u: &String| u.trim_end_matches('/') == url.trim_end_matches('/');
            if !out.iter().any(same) {
                out.push(url);
            }
        }
    }
    out
}

/// Parses the command line and runs the subcommand.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut overrides = cli.global.overrides();
    if let Command::Serve(opts) = &cli.command {
        opts.add_overrides(&mut overrides);
    }
    let config = match Config::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Command::Config(opts) = &cli.command {
        return config_cmd::run(opts, &config);
    }
    crate::telemetry::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(opts) => serve::run(opts, config).await,
            Command::Migrate(opts) => migrate::run(opts, config).await,
            Command::Import(opts) => import::run(opts, config).await,
            Command::Evaluate(opts) => evaluate::run(opts, config).await,
            Command::Monitor(opts) => monitor::run(opts, config).await,
            Command::Diagnose(opts) => diagnose::run(opts, config).await,
            Command::Reset(opts) => reset::run(opts, config).await,
            Command::Config(_) => unreachable!("handled above"),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
