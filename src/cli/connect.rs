//! How the operator commands (`monitor`, `diagnose`, `reset`) reach the database and the replicas.

use crate::cluster::Cluster;
use crate::config::{Config, Pooler};
use crate::db::{Pool, PoolMetrics};
use crate::store::Store;

/// A store over one connection of its own, named `<application_name>-<purpose>` so that operators
/// (and reco's own checks) can tell it from the server's pool.
pub(super) async fn inspector(config: &Config, purpose: &str) -> anyhow::Result<Store> {
    let mut db = config.db.clone();
    db.pool_size = 1;
    db.max_overflow = 0;
    db.application_name = format!("{}-{purpose}", db.application_name);
    // Unnamed statements in one transaction per checkout work through any pooler, also one the
    // configuration does not mention: these commands must work to diagnose exactly that.
    db.pooler = Pooler::Transaction;
    let pool = Pool::open(&db, PoolMetrics::default())
        .await
        .map_err(|e| anyhow::anyhow!("opening a database connection: {e}"))?;
    Ok(Store::new(pool))
}

/// The replicas to talk to: configured (`monitor.replicas`), given on the command line, and the
/// ones the cluster registry lists (when a store is at hand and the registry has rows).
pub(super) async fn replica_urls(
    config: &Config,
    given: &[String],
    store: Option<&Store>,
) -> Vec<String> {
    let mut out: Vec<String> = config.monitor.replicas.clone();
    out.extend(given.iter().cloned());
    if let Some(store) = store
        && let Ok(registered) = Cluster::replicas(store.pool(), &config.db.application_name).await
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
