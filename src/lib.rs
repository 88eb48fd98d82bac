//! reco: a recommendation server that never runs out of database connections.
//!
//! The module map, the layers and the two data walks (a request, a write) are in
//! `docs/ARCHITECTURE.md`. In brief, from the bottom up (a module imports only from modules above
//! it in this list):
//! - [`util`], [`kinds`]: a stable hash; the names every layer speaks (engine kinds, backends).
//! - [`algo`]: the recommendation algorithms on compact ids (pure; no I/O, no async).
//! - [`config`]: typed, layered configuration and secret redaction, one file per section.
//! - [`telemetry`]: logging. [`metrics`]: the Prometheus registry and the shared histogram.
//! - [`policy`]: what a feedback row means (positive, negative, seen) and weighs.
//! - [`db`]: the one connection pool per process, its metrics and leak detection. The only module
//!   that talks to the database driver's connection machinery.
//! - [`store`]: typed queries for items, users and feedback; migrations for PostgreSQL and SQLite.
//! - [`eval`]: offline evaluation (splits, ranking metrics) and the fit shared with training.
//! - [`cluster`]: replicas sharing one database: budget shares, training lock, snapshots.
//! - [`rules`]: what a valid item, user and feedback row is (the API and `reco import` check by it).
//! - [`engine`]: recommendations served from memory (`fast`, `quality`, `enhanced`, `smart`).
//! - [`train`]: background training into immutable snapshots.
//! - [`orchestrator`]: `engine=auto`: experiments, the deadline, the per-user cache, clicks.
//! - [`catalogue`]: the one home for every write (store, then engine; clicks to the orchestrator), with
//!   group commit for feedback.
//! - [`data`]: data sets: the demo catalogue, the MovieLens importer, synthetic worlds.
//! - [`app`]: the application state built at start-up and its shutdown.
//! - [`api`]: HTTP routes, validation, auth, the one error type that maps to HTTP, and serving.
//! - [`ops`]: the operator's tools: `reco monitor`'s view and `reco diagnose`'s checks.
//! - [`cli`]: the `reco` command line.
//!
//! Errors: each layer has its own `thiserror` enum (`db::Error`, `store::Error`, `engine::Error`,
//! `catalogue::Error`, ...); `api::Error` is the only one that becomes an HTTP response; `anyhow`
//! is used only in the CLI and start-up glue.

pub mod algo;
pub mod api;
pub mod app;
pub mod catalogue;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod data;
pub mod db;
pub mod engine;
pub mod eval;
pub mod kinds;
pub mod metrics;
pub mod ops;
pub mod orchestrator;
pub mod policy;
pub mod rules;
pub mod store;
pub mod telemetry;
pub mod train;
pub mod util;
