//! The database layer: the one place that talks to the database driver.
//!
//! [`Pool`] is the process's only connection pool. It is built once at start-up (by
//! [`crate::app::App::build`] for the server, or by a CLI command for its own run) and handed to
//! every component as a clone of the same handle. Nothing else in the crate opens a connection: the
//! driver's connect functions are only called from this module.
//!
//! What the pool adds on top of sqlx's pool, and why it is our own code: sqlx has no notion of
//! `max_overflow`, no waiting count, no hold-time or acquire-wait histograms, no close reasons and no
//! leak detection with the code location that took a connection. Those are the things operators of a
//! 20-connection managed PostgreSQL need, so [`Pool`] wraps sqlx's pool with:
//! - a semaphore gate holding exactly `pool_size + max_overflow` permits: the hard ceiling, and the
//!   queue whose length is the waiting count. The ceiling can be lowered and raised while running
//!   ([`Pool::set_ceiling`]): the cluster budget ([`crate::cluster`]) shares one database's
//!   connections between replicas that way;
//! - sqlx hooks that recycle connections by age and pre-ping connections that sat idle;
//! - a checkout registry: every [`Conn`] remembers when and where it was taken;
//! - a maintenance task that reports checkouts held longer than `leak_threshold` and closes idle
//!   connections beyond `pool_size` (overflow is closed again once the burst is over).
//!
//! Errors of this layer are [`Error`]; the API maps [`Error::Busy`] to 503 with `Retry-After`.

mod checkout;
mod conn;
mod connect;
mod error;
mod pool;
mod shared;

pub use checkout::LeakSuspect;
pub use conn::{Conn, Slot};
pub use connect::connect_direct;
pub use error::Error;
pub use pool::{Pool, PoolStatus, Rebuilt};
pub use shared::PoolSettings;

pub use crate::kinds::Backend;
pub use crate::metrics::{CloseReason, PoolMetrics};
