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
    /// Whether this error means "try again soon" rather than "something is broken": the
    /// database is busy, restarting or unreachable, or the statement lost a race it can win on a
    /// retry. HTTP answers these 503 with `Retry-After`, never 500.
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Busy { .. } => true,
            Error::Driver(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Error::Driver(sqlx::Error::Database(e)) => e.code().is_some_and(|c| transient(&c)),
            _ => false,
        }
    }
}

/// Whether a database error code is transient. PostgreSQL: 57014 statement timeout or cancel,
/// 53300 too many connections, 55P03 lock not available, 57P01/57P02/57P03 the server is shutting
/// down, crashed or not accepting connections yet, class 08 connection exceptions, 40P01 deadlock,
/// 40001 serialization failure. SQLite: 5/6/517 busy or locked.
fn transient(code: &str) -> bool {
    matches!(
        code,
        "57014" | "53300" | "55P03" | "57P01" | "57P02" | "57P03" | "40P01" | "40001"
    ) || code.starts_with("08")
        || matches!(code, "5" | "6" | "517")
}
