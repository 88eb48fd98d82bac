//! `reco import`: MovieLens, CSV and JSON Lines files (one kind of row per file, or a folder
//! `reco export all` wrote), or the rows of a query on another PostgreSQL database.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::data::transfer::{
    self, Batcher, DEFAULT_BATCH, Format, Kind, Mapping, Source as RowSource, Summary,
};
use crate::db::Pool;
use crate::metrics::Metrics;
use crate::rules::latest_feedback_time;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub source: Source,
}

#[derive(Debug, clap::Subcommand)]
pub enum Source {
    /// MovieLens 100K (u.data, u.item, u.user, u.genre).
    Movielens {
        /// Folder holding the MovieLens files.
        dir: PathBuf,
    },
    /// Items from a CSV or JSON Lines file, or from a query (--from-database).
    Items(Rows),
    /// Users from a CSV or JSON Lines file, or from a query.
    Users(Rows),
    /// Feedback from a CSV or JSON Lines file, or from a query; unknown users and items are
    /// created.
    Feedback(Rows),
    /// A folder `reco export all` wrote: items, users, then feedback (each file that exists).
    All {
        dir: PathBuf,
        /// Skip bad rows (counted, the first ten reported) instead of stopping at the first.
        #[arg(long)]
        skip_bad: bool,
    },
}

/// Where rows come from and how they map onto reco's fields.
#[derive(Debug, clap::Args)]
pub struct Rows {
    /// The file to read (`-`: standard input).
    #[arg(required_unless_present = "query")]
    file: Option<PathBuf>,
    /// The file's format (default: from its extension: .csv, .jsonl/.ndjson/.json).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Source columns of reco's fields: `user_id=uid,item_id=post_id,type=kind`.
    #[arg(long)]
    columns: Vec<String>,
    /// Values of fields the source lacks (or leaves empty): `type=like,value=1`.
    #[arg(long = "default")]
    defaults: Vec<String>,
    /// Skip bad rows (counted, the first ten reported) instead of stopping at the first.
    #[arg(long)]
    skip_bad: bool,
    /// Rows per transaction.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch_size: usize,
    /// Read from this PostgreSQL database instead of a file (one read-only connection, named
    /// `reco-import`); may hold a password, so it may come from the environment instead.
    #[arg(long, env = "RECO_IMPORT_FROM_DATABASE", hide_env_values = true)]
    from_database: Option<String>,
    /// The query whose rows are imported (from --from-database): `SELECT uid, post_id, ...`.
    #[arg(long, conflicts_with = "file")]
    query: Option<String>,
}

pub async fn run(opts: Opts, config: Config) -> anyhow::Result<()> {
    let pool = Pool::open(&config.db, Metrics::new().pool).await?;
    let store = Store::new(pool.clone());
    store.migrate(&config.db).await?;
    let result = match opts.source {
        Source::Movielens { dir } => movielens(&store, &dir).await,
        Source::Items(rows) => import_rows(&store, &config, Kind::Items, rows).await,
        Source::Users(rows) => import_rows(&store, &config, Kind::Users, rows).await,
        Source::Feedback(rows) => import_rows(&store, &config, Kind::Feedback, rows).await,
        Source::All { dir, skip_bad } => import_all(&store, &config, &dir, skip_bad).await,
    };
    // Replicas following the change feed (PostgreSQL) load what the import wrote around it; also
    // after a failed import, whose committed batches stay.
    if let Err(e) = store.record_reload("import").await {
        tracing::warn!(error = %e, "could not tell running replicas to reload");
    }
    pool.close().await;
    result
}

async fn movielens(store: &Store, dir: &Path) -> anyhow::Result<()> {
    let data = crate::data::movielens::load(dir)?;
    let bar = ProgressBar::new(data.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} rows {per_sec} eta {eta}",
    )?);
    data.write_with_progress(store, &bar).await?;
    bar.finish();
    println!(
        "imported {} items, {} users, {} ratings from {}",
        data.items.len(),
        data.users.len(),
        data.feedback.len(),
        dir.display()
    );
    Ok(())
}

async fn import_rows(store: &Store, config: &Config, kind: Kind, rows: Rows) -> anyhow::Result<()> {
    let mapping = Mapping::new(kind, &rows.columns, &rows.defaults).map_err(anyhow::Error::msg)?;
    let source = match (rows.from_database, rows.query) {
        (Some(url), Some(query)) => RowSource::Query { url, query },
        (None, Some(_)) => {
            bail!("--query reads from --from-database URL (or $RECO_IMPORT_FROM_DATABASE)")
        }
        _ => {
            let file = rows.file.context("a file to read, or --from-database")?;
            let format = match rows.format {
                Some(f) => f,
                None if file == Path::new("-") => bail!("reading standard input needs --format"),
                None => Format::of_path(&file)
                    .with_context(|| format!("{}: say --format csv or jsonl", file.display()))?,
            };
            let path = (file != Path::new("-")).then_some(file);
            RowSource::File(path, format)
        }
    };
    let batcher = Batcher::new(
        mapping,
        rows.skip_bad,
        rows.batch_size,
        latest_feedback_time(config.feedback.max_future_skew),
    );
    let what = match &source {
        RowSource::File(Some(p), _) => p.display().to_string(),
        RowSource::File(None, _) => "standard input".into(),
        RowSource::Query { .. } => format!("the query (as {})", transfer::APPLICATION_NAME),
    };
    let summary = run_import(store, source, batcher).await?;
    report(kind, &what, &summary);
    Ok(())
}

async fn import_all(
    store: &Store,
    config: &Config,
    dir: &Path,
    skip_bad: bool,
) -> anyhow::Result<()> {
    let mut found = false;
    for kind in [Kind::Items, Kind::Users, Kind::Feedback] {
        for format in [Format::Jsonl, Format::Csv] {
            let path = dir.join(format!("{}.{}", kind.name(), format.extension()));
            if !path.exists() {
                continue;
            }
            found = true;
            let batcher = Batcher::new(
                Mapping::new(kind, &[], &[]).map_err(anyhow::Error::msg)?,
                skip_bad,
                DEFAULT_BATCH,
                latest_feedback_time(config.feedback.max_future_skew),
            );
            let summary =
                run_import(store, RowSource::File(Some(path.clone()), format), batcher).await?;
            report(kind, &path.display().to_string(), &summary);
        }
    }
    if !found {
        bail!(
            "{} holds no items, users or feedback file (.jsonl or .csv)",
            dir.display()
        );
    }
    Ok(())
}

/// Runs an import with a progress bar on a terminal, a log line every ten seconds otherwise.
async fn run_import(store: &Store, source: RowSource, batcher: Batcher) -> anyhow::Result<Summary> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} rows {per_sec} {elapsed} {msg}")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut last_log = Instant::now();
    let progress = |s: &Summary| match &bar {
        Some(bar) => {
            bar.set_position(s.rows);
            if s.skipped > 0 {
                bar.set_message(format!("({} bad rows skipped)", s.skipped));
            }
        }
        None if last_log.elapsed() >= Duration::from_secs(10) => {
            last_log = Instant::now();
            tracing::info!(
                rows = s.rows,
                skipped = s.skipped,
                rows_per_second = (s.rows as f64 / s.seconds.max(1e-9)).round(),
                "importing"
            );
        }
        None => {}
    };
    let result = transfer::import(store, source, batcher, progress).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(result?)
}

fn report(kind: Kind, what: &str, s: &Summary) {
    println!(
        "imported {} {} from {what} in {:.1} s ({:.0} rows/s){}",
        s.rows,
        kind.name(),
        s.seconds,
        s.rows as f64 / s.seconds.max(1e-9),
        if s.skipped > 0 {
            format!("; skipped {} bad rows", s.skipped)
        } else {
            String::new()
        }
    );
    for p in &s.problems {
        println!("  skipped {p}");
    }
    if s.skipped as usize > s.problems.len() {
        println!("  ... and {} more", s.skipped as usize - s.problems.len());
    }
}
