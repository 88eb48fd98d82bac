//! Errors of the storage layer.

use crate::db;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    /// A referenced user or item does not exist (feedback with `auto_create` off).
    #[error("referenced user or item does not exist")]
    MissingReference,
    /// Stored data that does not decode (hand-edited rows, for instance).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if is_foreign_key_violation(&e) {
            return Error::MissingReference;
        }
        Error::Db(db::Error::Driver(e))
    }
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    match e {
        // 23503: PostgreSQL foreign_key_violation; 787: SQLITE_CONSTRAINT_FOREIGNKEY.
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("23503" | "787")),
        _ => false,
    }
}

impl Error {
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Db(e) if e.is_busy())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
