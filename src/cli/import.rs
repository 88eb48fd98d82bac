//! `reco import movielens DIR`: load a public data set into the database.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::db::Pool;
use crate::metrics::Metrics;
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
}

pub async fn run(opts: Opts, config: Config) -> anyhow::Result<()> {
    let Source::Movielens { dir } = opts.source;
    let data = crate::data::movielens::load(&dir)?;
    let pool = Pool::open(&config.db, Metrics::new().pool).await?;
    let store = Store::new(pool.clone());
    store.migrate(&config.db).await?;
    let bar = ProgressBar::new(data.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} rows {per_sec} eta {eta}",
    )?);
    data.write_with_progress(&store, &bar).await?;
    bar.finish();
    println!(
        "imported {} items, {} users, {} ratings from {}",
        data.items.len(),
        data.users.len(),
        data.feedback.len(),
        dir.display()
    );
    pool.close().await;
    Ok(())
}
