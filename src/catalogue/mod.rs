//! The one home for every write: items, users and feedback.
//!
//! Each write commits to the store first, then applies the change to the in-memory engine (which
//! also makes cached answers that depend on it stale), then, for feedback, tells the orchestrator
//! for click attribution. Nothing is applied that was not committed, and a write is acknowledged only
//! once it is applied, so "already seen" is exact the moment a client hears back. HTTP handlers call
//! only this service for writes; feedback goes through the group-commit writer
//! (`group_commit`), whose commit step (`commit`) is the same three steps for a whole group.
//!
//! With `cluster.connection_budget` every write also records a change in the database's change
//! feed, and the feed's follower (`follow`) applies the other replicas' changes the same way; the
//! `ledger` keeps the two paths in the database's order.
//!
//! Input is validated before it gets here (the API's job); the rule that depends on what exists,
//! `feedback.auto_create = false`, is checked here. Errors are [`Error`].

mod commit;
mod error;
mod follow;
mod group_commit;
mod ledger;

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::cluster::{Cluster, Frontier};
use crate::config::{ClusterConfig, FeedbackConfig, seconds};
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;
use crate::store::{Feedback, Item, ItemPatch, Store, User, UserPatch};
use commit::FeedbackCommit;
use follow::Follower;
use group_commit::FeedbackWriter;
use ledger::Ledger;

pub use error::{Error, Result};
pub use follow::{FeedStatus, start_position};

/// The write service; one per process, in the application state.
pub struct Catalogue {
    store: Store,
    engine: Arc<Engine>,
    orchestrator: Arc<Orchestrator>,
    metrics: Arc<Metrics>,
    feedback: FeedbackWriter,
    /// Create unknown users and items named in feedback, or reject the batch.
    auto_create: bool,
    /// The order writes reach memory in, once a feed is followed (`ledger`).
    ledger: Arc<Ledger>,
    feed: Arc<FeedStatus>,
}

impl Catalogue {
    /// The service and its group-commit writer task (which ends after [`Catalogue::close`], once
    /// everything queued is committed). A `store` that records changes
    /// (`Store::recording_changes`) makes every write a change in the feed.
    pub fn start(
        store: Store,
        engine: Arc<Engine>,
        orchestrator: Arc<Orchestrator>,
        metrics: Arc<Metrics>,
        config: &FeedbackConfig,
    ) -> (Self, JoinHandle<()>) {
        let ledger = Arc::new(Ledger::default());
        let commit = FeedbackCommit {
            store: store.clone(),
            engine: engine.clone(),
            orchestrator: orchestrator.clone(),
            metrics: metrics.clone(),
            auto_create: config.auto_create,
            ledger: ledger.clone(),
        };
        let (feedback, task) = FeedbackWriter::spawn(commit, config.max_group_rows);
        let catalogue = Self {
            store,
            engine,
            orchestrator,
            metrics,
            feedback,
            auto_create: config.auto_create,
            ledger,
            feed: Arc::default(),
        };
        (catalogue, task)
    }

    /// Starts following the change feed from `frontier` ([`start_position`], read before the
    /// engine loaded): the other replicas' writes reach memory within `cluster.sync_interval`.
    pub fn follow(
        &self,
        cluster: Arc<Cluster>,
        frontier: Frontier,
        config: &ClusterConfig,
    ) -> JoinHandle<()> {
        Follower {
            store: self.store.clone(),
            engine: self.engine.clone(),
            orchestrator: self.orchestrator.clone(),
            metrics: self.metrics.clone(),
            ledger: self.ledger.clone(),
            cluster,
            status: self.feed.clone(),
            frontier,
            interval: seconds(config.sync_interval),
            retention: seconds(config.feed_retention),
        }
        .spawn()
    }

    /// Where the feed's follower stands: its position and lag in seconds (`None` when this
    /// replica follows no feed).
    pub fn feed_status(&self) -> Option<(i64, f64)> {
        self.feed.get()
    }

    /// Inserts or replaces items, all or none.
    pub async fn upsert_items(&self, items: &[Item]) -> Result<()> {
        let pos = self.store.upsert_items(items).await?;
        self.ledger.own(pos, || self.engine.upsert_items(items));
        Ok(())
    }

    /// Changes the given fields of an item; `None` when it does not exist.
    pub async fn patch_item(&self, id: &str, patch: &ItemPatch) -> Result<Option<Item>> {
        let Some((item, pos)) = self.store.patch_item(id, patch).await? else {
            return Ok(None);
        };
        self.ledger.own(pos, || {
            self.engine.upsert_items(std::slice::from_ref(&item))
        });
        Ok(Some(item))
    }

    /// Deletes an item and its feedback; false when it did not exist.
    pub async fn delete_item(&self, id: &str) -> Result<bool> {
        let (deleted, pos) = self.store.delete_item(id).await?;
        if deleted {
            self.ledger.own(pos, || self.engine.delete_item(id));
        }
        Ok(deleted)
    }

    /// Inserts or replaces users, all or none (an existing user keeps their creation time).
    pub async fn upsert_users(&self, users: &[User]) -> Result<()> {
        let pos = self.store.upsert_users(users).await?;
        self.ledger.own(pos, || {
            self.engine
                .ensure_users(users.iter().map(|u| u.id.as_str()))
        });
        Ok(())
    }

    /// Changes a user's labels; `None` when they do not exist. (The engine holds no labels.)
    pub async fn patch_user(&self, id: &str, patch: &UserPatch) -> Result<Option<User>> {
        Ok(self.store.patch_user(id, patch).await?)
    }

    /// Deletes a user and their feedback; false when they did not exist.
    pub async fn delete_user(&self, id: &str) -> Result<bool> {
        let (deleted, pos) = self.store.delete_user(id).await?;
        if deleted {
            self.ledger.own(pos, || self.engine.delete_user(id));
        }
        Ok(deleted)
    }

    /// Inserts feedback through group commit; returns once it is committed and applied. With
    /// `auto_create` off, a row naming an unknown user or item rejects the whole batch.
    pub async fn insert_feedback(&self, rows: Vec<Feedback>) -> Result<usize> {
        if !self.auto_create {
            self.check_references(&rows)?;
        }
        let n = rows.len();
        self.feedback.write(rows).await?;
        Ok(n)
    }

    /// The first row naming a user or item the engine does not hold, as an error.
    fn check_references(&self, rows: &[Feedback]) -> Result<()> {
        for (i, f) in rows.iter().enumerate() {
            let unknown = if !self.engine.has_user(&f.user_id) {
                Some(("user", &f.user_id, "user_id"))
            } else if !self.engine.has_item(&f.item_id) {
                Some(("item", &f.item_id, "item_id"))
            } else {
                None
            };
            if let Some((what, id, field)) = unknown {
                return Err(Error::Unknown {
                    what,
                    id: id.clone(),
                    field: format!("[{i}].{field}"),
                });
            }
        }
        Ok(())
    }

    /// Deletes a user's feedback on an item (one type, or every type); returns the deleted rows.
    pub async fn delete_feedback(
        &self,
        user_id: &str,
        item_id: &str,
        feedback_type: Option<&str>,
    ) -> Result<Vec<Feedback>> {
        let (deleted, pos) = self
            .store
            .delete_feedback(user_id, item_id, feedback_type)
            .await?;
        self.ledger
            .own(pos, || self.engine.remove_feedback(&deleted));
        Ok(deleted)
    }

    /// Commits everything already queued, then stops the writer task (graceful shutdown).
    pub async fn close(&self) {
        self.feedback.close().await;
    }
}
