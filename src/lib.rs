//! reco: a recommendation server that never runs out of database connections.
//!
//! Module map (see `../shared/DESIGN.md` for the architecture):
//! - [`config`]: typed, layered configuration and secret redaction.
//! - [`db`]: the one connection pool per process, its metrics and leak detection. The only module
//!   that talks to the database driver's connection machinery.
//! - [`store`]: typed queries for items, users and feedback; migrations for PostgreSQL and SQLite.
//! - [`engine`]: recommendations served from memory (`fast`, `quality`, `enhanced`, `smart`).
//! - [`orchestrator`]: `engine=auto`: experiments, the deadline, the per-user cache, clicks.
//! - [`algo`]: the recommendation algorithms (popularity, item-to-item, ALS, BPR, content, blends,
//!   the `enhanced` ranker, `smart`'s rules) on compact ids.
//! - [`train`]: background training into immutable snapshots.
//! - [`eval`]: offline evaluation (temporal split, ranking metrics) behind `reco evaluate`.
//! - [`feedback_writer`]: group commit of feedback events.
//! - [`api`]: HTTP routes, validation, auth and the one error type that maps to HTTP.
//! - [`app`]: the application state built at start-up and the server's lifecycle.
//! - [`metrics`]: the Prometheus registry.
//! - [`monitor`]: `reco monitor`'s view of every replica's pool and the database's connections.
//! - [`diagnose`]: `reco diagnose`'s checks, verdicts and remedies.
//! - [`dataset`], [`demo`], [`import`], [`synthetic`]: data sets: the demo generator, the MovieLens
//!   importer and benchmark-scale synthetic data.
//! - [`cli`]: the `reco` command line; [`telemetry`]: logging.
//!
//! Errors: each layer has its own `thiserror` enum (`db::Error`, `store::Error`, `engine::Error`);
//! `api::Error` is the only one that becomes an HTTP response; `anyhow` is used only in the CLI and
//! start-up glue.

pub mod algo;
pub mod api;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dataset;
pub mod db;
pub mod demo;
pub mod diagnose;
pub mod engine;
pub mod eval;
pub mod feedback_writer;
pub mod import;
pub mod metrics;
pub mod monitor;
pub mod orchestrator;
pub mod store;
pub mod synthetic;
pub mod telemetry;
pub mod train;
