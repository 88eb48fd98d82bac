//! Recommendations served from memory.
//!
//! [`Engine`] holds what a recommend request needs: the item catalogue's filterable fields, every
//! user's interaction set, and a popularity ranking. It is loaded from the store once at start-up
//! (one connection, streamed) and then kept current by the write paths, which call it after their
//! transaction commits, so "already seen" filtering is exact the moment a write is acknowledged. A
//! request never touches the database.
//!
//! Concurrency: the catalogue and histories sit behind one `RwLock` that writers hold only to apply
//! a committed change; the ranking is an immutable [`Ranking`] swapped in with `ArcSwap` by a
//! background re-ranker, so sorting never blocks a request. Errors of this layer are [`Error`].

mod state;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use serde::Serialize;

use crate::store::{self, Feedback, Item, Store};
pub use state::ItemMeta;
use state::State;

/// Errors of the engine layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading from the store failed.
    #[error("loading the recommender state failed: {0}")]
    Load(#[from] store::Error),
}

/// What a recommendation request asks for, already validated.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub n: usize,
    /// Only items in at least one of these categories (empty: any).
    pub categories: &'a [String],
    /// Never these item ids.
    pub exclude: &'a [String],
}

/// One recommended item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scored {
    pub id: Arc<str>,
    pub score: f64,
    pub reason: String,
}

/// The popularity and recency order, rebuilt in the background.
#[derive(Debug, Default)]
pub struct Ranking {
    /// Item indices by descending popularity (ties: newer first, then id).
    popular: Vec<u32>,
    /// Item indices by descending timestamp.
    latest: Vec<u32>,
}

/// The in-memory recommender.
pub struct Engine {
    state: RwLock<State>,
    ranking: ArcSwap<Ranking>,
}

impl Engine {
    /// An empty engine; `negative_types` never count as popularity and exclude the item for the user.
    pub fn new(negative_types: Vec<String>) -> Self {
        Self {
            state: RwLock::new(State::new(negative_types)),
            ranking: ArcSwap::default(),
        }
    }

    /// Loads every item, user and feedback row from the store, replacing what was held.
    pub async fn load(&self, store: &Store) -> Result<(), Error> {
        let mut fresh = State::new(self.state.read().negative_types().to_vec());
        store.for_each_item(|item| fresh.upsert_item(&item)).await?;
        store.for_each_user_id(|id| fresh.ensure_user(&id)).await?;
        store.for_each_feedback(|f| fresh.add_feedback(&f)).await?;
        *self.state.write() = fresh;
        self.rerank();
        Ok(())
    }

    /// Rebuilds the popularity and recency order from the current counts.
    pub fn rerank(&self) {
        let snapshot = self.state.read().ranking_inputs();
        self.ranking.store(Arc::new(state::rank(snapshot)));
    }

    /// Re-ranks every `period` until the returned task is aborted.
    pub fn spawn_reranker(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                if engine.state.read().dirty() {
                    // Sorting is CPU work: keep it off the async workers.
                    let e = engine.clone();
                    let _ = tokio::task::spawn_blocking(move || e.rerank()).await;
                }
            }
        })
    }

    pub fn upsert_items(&self, items: &[Item]) {
        let mut s = self.state.write();
        for item in items {
            s.upsert_item(item);
        }
    }

    pub fn delete_item(&self, id: &str) {
        self.state.write().delete_item(id);
    }

    pub fn ensure_users<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut s = self.state.write();
        for id in ids {
            s.ensure_user(id);
        }
    }

    pub fn delete_user(&self, id: &str) {
        self.state.write().delete_user(id);
    }

    /// Applies committed feedback (creating users and items it names that are not known yet).
    pub fn add_feedback(&self, rows: &[Feedback]) {
        let mut s = self.state.write();
        for f in rows {
            s.add_feedback(f);
        }
    }

    /// Applies deleted feedback rows.
    pub fn remove_feedback(&self, rows: &[Feedback]) {
        let mut s = self.state.write();
        for f in rows {
            s.remove_feedback(f);
        }
    }

    pub fn has_user(&self, id: &str) -> bool {
        self.state.read().has_user(id)
    }

    pub fn has_item(&self, id: &str) -> bool {
        self.state.read().has_item(id)
    }

    /// The most popular items the user has not interacted with, that are not hidden, excluded, or
    /// outside the requested categories. An unknown user gets the plain popular list.
    pub fn recommend(&self, user_id: &str, q: &Query<'_>) -> Vec<Scored> {
        let ranking = self.ranking.load();
        let s = self.state.read();
        let seen = s.user_history(user_id);
        s.pick(
            &ranking.popular,
            q,
            |idx| seen.is_some_and(|h| h.contains_key(&idx)),
            |meta| (meta.popularity, "popular".to_string()),
        )
    }

    /// The most popular items overall (filtered like [`Engine::recommend`], without a user).
    pub fn popular(&self, q: &Query<'_>) -> Vec<Scored> {
        let ranking = self.ranking.load();
        self.state.read().pick(
            &ranking.popular,
            q,
            |_| false,
            |meta| (meta.popularity, "popular".to_string()),
        )
    }

    /// The newest items, scored by their timestamp in seconds.
    pub fn latest(&self, q: &Query<'_>) -> Vec<Scored> {
        let ranking = self.ranking.load();
        self.state.read().pick(
            &ranking.latest,
            q,
            |_| false,
            |meta| (meta.timestamp_ms as f64 / 1000.0, "latest".to_string()),
        )
    }
}

#[cfg(test)]
mod tests;
