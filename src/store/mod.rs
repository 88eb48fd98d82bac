//! Storage: typed queries for users, items and feedback, the schema migrations, and (PostgreSQL,
//! clustered replicas) the change feed every write records in and followers read (`changes`).
//!
//! One interface over PostgreSQL (production) and SQLite (the embedded default): every query is
//! written once in the SQL both accept (`$n` placeholders, `ON CONFLICT … DO UPDATE`, JSON kept as
//! text, timestamps as epoch milliseconds) and runs through the one [`crate::db::Pool`], checked
//! out by [`Store`]'s one helper, which also ends every checkout (behind a transaction-mode pooler:
//! commits it). This module never opens a connection itself and never validates user input: that
//! is the API's job, done before anything reaches here. Errors are [`Error`]; the API maps them to
//! HTTP.

mod access;
mod changes;
mod error;
mod feedback;
mod items;
mod migrate;
mod model;
mod server;
mod users;

pub use access::{Page, Position, Store};
pub use changes::{Change, FeedEntry, FeedRead, FeedStart};
pub use error::{Error, Result};
pub use model::{Feedback, FeedbackKey, FeedbackOf, Item, ItemPatch, User, UserPatch};
pub use server::{BackendGroup, ConnectionFacts, IdleBackend, ServerStats};
