//! Errors of the database layer: [`Error`], and which of them mean "busy, retry soon".

use std::time::Duration;

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection became free within `pool_timeout`: the caller should retry later.
    #[error("database busy: no connection free after {waited:?}")]
    Busy { waited: Duration },
    /// The pool was closed (shutdown or rebuild in progress).
    #[error("database pool is closed")]
    Closed,
    /// Anything the driver reported. Internal detail: never shown to HTTP clients.
    #[error(transparent)]
    Driver(#[from] sqlx::Error),
}

impl Error {
    /// Whether this error means "try again soon" rather than "something is broken".
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Busy { .. } => true,
            Error::Driver(sqlx::Error::PoolTimedOut) => true,
            Error::Driver(sqlx::Error::Database(e)) => {
                // 57014: statement timeout / query canceled; 53300: too many connections;
                // 55P03: lock not available; SQLite 5/6: database busy/locked.
                matches!(
                    e.code().as_deref(),
                    Some("57014" | "53300" | "55P03" | "5" | "6" | "517")
                )
            }
            _ => false,
        }
    }
}
