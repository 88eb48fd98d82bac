//! `[cluster]`: several replicas sharing one database's connections (PostgreSQL only).

use serde::{Deserialize, Serialize};

use super::redact::redact_url;
use super::rules::{ConfigError, check, is_http_url, secs};

/// Replicas sharing one connection budget. Without `connection_budget` a replica sizes its pool
/// from `db` alone, as a single server does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Most connections all replicas together may hold (e.g. 15 on a 20-connection database).
    pub connection_budget: Option<u32>,
    /// Seconds between heartbeats (and share recalculations).
    pub heartbeat: f64,
    /// A replica whose heartbeat is older than this many seconds is dead; its share is handed out.
    pub dead_after: f64,
    /// Connections of the budget kept free for a replica that is starting: it needs one to
    /// register before anyone can shrink for it.
    pub join_reserve: u32,
    /// This replica's base URL as others (and `reco monitor`) reach it; default from `http.bind`.
    pub advertise_url: Option<String>,
    /// Snapshots kept in the database for replicas to load (older ones are deleted).
    pub keep_snapshots: u32,
    /// Seconds between reads of the change feed: a write on one replica reaches the others'
    /// memory within about this (one short checkout per read).
    pub sync_interval: f64,
    /// Seconds a change stays in the feed even if a live replica has not passed it; a replica
    /// further behind reloads from the tables.
    pub feed_retention: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            connection_budget: None,
            heartbeat: 1.0,
            dead_after: 5.0,
            join_reserve: 1,
            advertise_url: None,
            keep_snapshots: 2,
            sync_interval: 0.25,
            feed_retention: 600.0,
        }
    }
}

impl ClusterConfig {
    /// `postgres`: whether `db.url` points at PostgreSQL (a budget is shared through it).
    pub(super) fn validate(&self, postgres: bool) -> Result<(), ConfigError> {
        if let Some(budget) = self.connection_budget {
            check(
                postgres,
                "cluster.connection_budget",
                budget,
                "unset with SQLite (a budget is shared through PostgreSQL)",
            )?;
            check(
                budget > self.join_reserve && budget <= 10_000,
                "cluster.connection_budget",
                budget,
                "join_reserve + 1..=10000",
            )?;
        }
        secs(
            self.heartbeat,
            "cluster.heartbeat",
            0.05,
            60.0,
            "0.05..=60 seconds",
        )?;
        let dead = self.dead_after;
        check(
            dead.is_finite() && dead >= 2.0 * self.heartbeat && dead <= 600.0,
            "cluster.dead_after",
            dead,
            "2 x cluster.heartbeat..=600 seconds",
        )?;
        check(
            (1..=100).contains(&self.keep_snapshots),
            "cluster.keep_snapshots",
            self.keep_snapshots,
            "1..=100",
        )?;
        secs(
            self.sync_interval,
            "cluster.sync_interval",
            0.01,
            10.0,
            "0.01..=10 seconds",
        )?;
        secs(
            self.feed_retention,
            "cluster.feed_retention",
            120.0,
            86_400.0,
            "120..=86400 seconds",
        )?;
        if let Some(u) = &self.advertise_url {
            check(
                is_http_url(u),
                "cluster.advertise_url",
                redact_url(u),
                "an http:// or https:// URL",
            )?;
        }
        Ok(())
    }
}
