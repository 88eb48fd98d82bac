//! Replicas sharing one PostgreSQL: the registry with heartbeats and each replica's share of
//! `cluster.connection_budget` (`membership` and `registry`, with the arithmetic in [`budget`]), the training
//! lock (`lock`), and the trained snapshots one replica publishes for the others to load
//! (`snapshots`), and the safe position in the change feed a replica follows (`frontier`; the
//! follower itself is `catalogue::follow`, which applies what it reads). Only used with a
//! budget; a single server never touches these tables.

pub mod budget;
mod error;
mod frontier;
mod lock;
mod membership;
mod registry;
mod snapshots;
mod sql;

pub use budget::share;
pub use error::Error;
pub use frontier::{Frontier, MAX_GAPS};
pub use lock::TrainingLock;
pub use membership::{Cluster, Replica};
pub use snapshots::{
    ChunkReader, ChunkWriter, Published, SnapshotStore, chunk_channel, read_channel,
};
