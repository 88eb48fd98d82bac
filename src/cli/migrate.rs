//! `reco migrate`: apply pending migrations and exit.

use crate::config::Config;
use crate::db::Pool;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Opts {}

pub async fn run(_opts: Opts, config: Config) -> anyhow::Result<()> {
    let pool = Pool::open(&config.db, Metrics::new().pool).await?;
    let store = Store::new(pool.clone());
    store.migrate(&config.db).await?;
    println!("migrations applied ({:?})", pool.backend());
    pool.close().await;
    Ok(())
}
