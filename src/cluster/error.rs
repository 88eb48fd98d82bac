//! Errors of cluster coordination.

use crate::db;

/// Errors of cluster coordination.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("snapshot {version} is incomplete or does not decode: {reason}")]
    Snapshot { version: u64, reason: String },
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Db(db::Error::Driver(e))
    }
}
