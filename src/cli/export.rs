//! `reco export`: items, users or feedback (or all three into a folder) as JSON Lines or CSV,
//! all of them or those since a time, streamed from the database.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::data::transfer::{self, Format, Kind, parse_time};
use crate::db::Pool;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// What to export.
    #[arg(value_enum)]
    what: What,
    /// Where to write: a file (default: standard output), or the folder `all` writes
    /// items, users and feedback into.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// The format (default: from the output's extension, else JSON Lines).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Only rows stamped at or after this time (items: their timestamp; users: created; feedback:
    /// its timestamp): RFC 3339, `YYYY-MM-DD[ HH:MM:SS]` (UTC) or Unix seconds.
    #[arg(long, value_parser = since)]
    since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum What {
    Items,
    Users,
    Feedback,
    /// Items, users and feedback, one file each, into the folder --output names.
    All,
}

fn since(text: &str) -> Result<DateTime<Utc>, String> {
    parse_time(text).ok_or_else(|| format!("not a time: {text:?}"))
}

pub async fn run(opts: Opts, config: Config) -> anyhow::Result<()> {
    let pool = Pool::open(&config.db, Metrics::new().pool).await?;
    let store = Store::new(pool.clone());
    let result = export(&store, opts).await;
    pool.close().await;
    result
}

async fn export(store: &Store, opts: Opts) -> anyhow::Result<()> {
    let kind = match opts.what {
        What::Items => Kind::Items,
        What::Users => Kind::Users,
        What::Feedback => Kind::Feedback,
        What::All => {
            let dir = opts.output.context("`export all` needs --output FOLDER")?;
            std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
            let format = opts.format.unwrap_or(Format::Jsonl);
            for kind in [Kind::Items, Kind::Users, Kind::Feedback] {
                let path = dir.join(format!("{}.{}", kind.name(), format.extension()));
                to_file(store, kind, format, opts.since, &path).await?;
            }
            return Ok(());
        }
    };
    let format = opts
        .format
        .or_else(|| opts.output.as_deref().and_then(Format::of_path))
        .unwrap_or(Format::Jsonl);
    match &opts.output {
        Some(path) => to_file(store, kind, format, opts.since, path).await,
        None => {
            // Buffered by the writer: standard output is locked once per buffer, not per row.
            let out = std::io::stdout();
            let rows = transfer::export(store, kind, format, opts.since, out).await?;
            eprintln!("exported {rows} {}", kind.name());
            Ok(())
        }
    }
}

async fn to_file(
    store: &Store,
    kind: Kind,
    format: Format,
    since: Option<DateTime<Utc>>,
    path: &Path,
) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!("{} is a folder; name a file", path.display());
    }
    let file = File::create(path).with_context(|| path.display().to_string())?;
    let rows = transfer::export(store, kind, format, since, file).await?;
    eprintln!("exported {rows} {} to {}", kind.name(), path.display());
    Ok(())
}
