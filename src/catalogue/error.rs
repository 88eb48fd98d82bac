//! Errors of the write service.

use crate::store;

/// Why a write was not done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    /// With `feedback.auto_create = false`: a feedback row names a user or item that does not
    /// exist. `field` locates it in the batch (`[3].item_id`).
    #[error("{what} {id:?} not found")]
    Unknown {
        what: &'static str,
        id: String,
        field: String,
    },
    /// The feedback writer has shut down (the server is stopping).
    #[error("feedback writer is shut down")]
    ShutDown,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
