//! The command line: one clap enum of subcommands, one module per subcommand with its options and
//! `run`. Options shared by every subcommand (config file, database URL, logging) live in
//! [`GlobalOpts`] and become the top configuration layer.

mod config_cmd;
mod connect;
mod diagnose;
mod evaluate;
mod export;
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
    /// Import rows into the database: MovieLens, CSV or JSON Lines files, or a SQL query.
    Import(import::Opts),
    /// Export items, users or feedback as JSON Lines or CSV (all, or since a time).
    Export(export::Opts),
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
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if config.orchestrator.pin_async_workers {
        builder.on_thread_park(crate::orchestrator::pin_async_worker);
    }
    let runtime = builder.build()?;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(opts) => serve::run(opts, config).await,
            Command::Migrate(opts) => migrate::run(opts, config).await,
            Command::Import(opts) => import::run(opts, config).await,
            Command::Export(opts) => export::run(opts, config).await,
            Command::Evaluate(opts) => evaluate::run(opts, config).await,
            Command::Monitor(opts) => monitor::run(opts, config).await,
            Command::Diagnose(opts) => diagnose::run(opts, config).await,
            Command::Reset(opts) => reset::run(opts, config).await,
            Command::Config(_) => unreachable!("handled above"),
        }
    });
    // Blocking work still running (a recommendation whose client is gone, a training fit) does
    // not hold the exit: dropping the runtime would wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
