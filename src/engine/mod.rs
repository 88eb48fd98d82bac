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

mod fast;
mod models;
mod smart;
mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::RwLock;
use serde::Serialize;

use crate::algo::smart::Route;
use crate::store::{self, Feedback, Item, Store};
use crate::train::Snapshot;
pub use state::ItemMeta;
use state::{State, UserHistory};

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
    /// Only items whose timestamp is at or after this (epoch ms): the item time-to-live.
    pub not_before_ms: Option<i64>,
}

/// An owned [`Query`], for work that moves to another thread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Request {
    pub n: usize,
    pub categories: Vec<String>,
    pub exclude: Vec<String>,
    pub not_before_ms: Option<i64>,
}

impl Request {
    pub fn query(&self) -> Query<'_> {
        Query {
            n: self.n,
            categories: &self.categories,
            exclude: &self.exclude,
            not_before_ms: self.not_before_ms,
        }
    }
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
    /// The latest trained models; `None` until the first training finishes.
    snapshot: ArcSwapOption<Snapshot>,
    /// Feedback rows applied since the snapshot's training began.
    events_since_training: AtomicU64,
    /// MMR strength of `quality` across categories.
    diversity: f32,
    /// While a reload reads the store: the changes applied meanwhile, replayed onto the fresh state
    /// so that none is lost when it replaces the current one.
    journal: parking_lot::Mutex<Option<Vec<Change>>>,
}

/// A change to the state, as recorded in the reload journal.
enum Change {
    Upsert(Item),
    DeleteItem(String),
    EnsureUser(String),
    DeleteUser(String),
    AddFeedback(Feedback),
    RemoveFeedback(Feedback),
}

impl Change {
    fn apply(&self, s: &mut State) {
        match self {
            Change::Upsert(item) => s.upsert_item(item),
            Change::DeleteItem(id) => s.delete_item(id),
            Change::EnsureUser(id) => s.ensure_user(id),
            Change::DeleteUser(id) => s.delete_user(id),
            Change::AddFeedback(f) => s.add_feedback(f),
            Change::RemoveFeedback(f) => s.remove_feedback(f),
        }
    }
}

/// One request as the engines see it: the query, the user's history (and trained row), and the
/// state and snapshot it is answered from.
#[derive(Clone, Copy)]
pub(super) struct Asked<'a> {
    s: &'a State,
    history: Option<&'a UserHistory>,
    /// The user's row in the snapshot's factor models, when they were trained.
    row: Option<usize>,
    q: &'a Query<'a>,
    snap: &'a Snapshot,
}

/// Whom a recommendation is for.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// A user, with their live history.
    User(&'a str),
    /// An anonymous visitor, by the item ids of their session so far.
    Session(&'a [String]),
}

/// Which recommender answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// The orchestrator's choice (an experiment's variant, or `smart`'s rules).
    Auto,
    /// Item-to-item neighbours of the user's items blended with time-decayed popularity.
    Fast,
    /// ALS, BPR, item-to-item and content blended with weights fitted at training time.
    Quality,
    /// Candidates from several sources scored by a learned ranker.
    Enhanced,
    /// Routes by what is known about the user.
    Smart,
    /// Most interacted-with items.
    Popularity,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Fast => "fast",
            EngineKind::Quality => "quality",
            EngineKind::Enhanced => "enhanced",
            EngineKind::Smart => "smart",
            EngineKind::Popularity => "popularity",
        }
    }
}

/// An engine's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The engine that served (`popularity` when the chosen one had no models yet).
    pub engine: EngineKind,
    /// `smart`'s route for this user.
    pub route: Option<Route>,
    pub items: Vec<Scored>,
}

/// The entries of `parts` in order, each item once, lazily: the live popularity order that ends
/// every engine's list is catalogue-sized, and a request stops after its first few entries.
fn unique_chain<'a>(parts: impl IntoIterator<Item = &'a [u32]>) -> impl Iterator<Item = u32> {
    let mut seen = std::collections::HashSet::new();
    parts
        .into_iter()
        .flatten()
        .copied()
        .filter(move |i| seen.insert(*i))
}

impl Engine {
    /// An empty engine; `negative_types` never count as popularity and exclude the item for the user.
    /// `diversity` is the MMR strength of `quality` (0 = off).
    pub fn new(negative_types: Vec<String>, diversity: f32) -> Self {
        Self {
            diversity,
            state: RwLock::new(State::new(negative_types)),
            ranking: ArcSwap::default(),
            snapshot: ArcSwapOption::empty(),
            events_since_training: AtomicU64::new(0),
            journal: parking_lot::Mutex::new(None),
        }
    }

    /// Applies `changes` to the state (under its write lock), recording them while a reload runs.
    fn apply(&self, changes: impl IntoIterator<Item = Change>) {
        let mut s = self.state.write();
        let mut journal = self.journal.lock();
        for change in changes {
            change.apply(&mut s);
            if let Some(j) = journal.as_mut() {
                j.push(change);
            }
        }
    }

    /// The live item index (id → compact index) for training.
    pub fn item_index(&self) -> HashMap<Arc<str>, u32> {
        self.state.read().item_index().clone()
    }

    /// Feedback rows applied since the current snapshot's training began.
    pub fn events_since_training(&self) -> u64 {
        self.events_since_training.load(Ordering::Relaxed)
    }

    /// Swaps in a trained snapshot; `events_before` were counted when its training began.
    pub fn install(&self, snapshot: Arc<Snapshot>, events_before: u64) {
        self.snapshot.store(Some(snapshot));
        let _ =
            self.events_since_training
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(events_before))
                });
    }

    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    /// Loads every item, user and feedback row from the store, replacing what was held.
    pub async fn load(&self, store: &Store) -> Result<(), Error> {
        self.reload(store, &[]).await
    }

    /// [`Engine::load`] with the item index laid out as `item_order` first (the index space of a
    /// snapshot trained by another replica), then any other items. Changes applied while the store
    /// is read are replayed onto the new state, so none is lost.
    pub async fn reload(&self, store: &Store, item_order: &[Arc<str>]) -> Result<(), Error> {
        *self.journal.lock() = Some(Vec::new());
        let mut fresh =
            State::with_item_order(self.state.read().negative_types().to_vec(), item_order);
        let read = async {
            store.for_each_item(|item| fresh.upsert_item(&item)).await?;
            store.for_each_user_id(|id| fresh.ensure_user(&id)).await?;
            store.for_each_feedback(|f| fresh.add_feedback(&f)).await
        }
        .await;
        {
            let mut s = self.state.write();
            let journal = self.journal.lock().take().unwrap_or_default();
            read?;
            for change in &journal {
                change.apply(&mut fresh);
            }
            *s = fresh;
        }
        self.rerank();
        Ok(())
    }

    /// Installs a snapshot trained elsewhere: the state is reloaded in the snapshot's item index
    /// space first, so its models and the histories agree on what each index means.
    pub async fn install_foreign(
        &self,
        store: &Store,
        snapshot: Arc<Snapshot>,
    ) -> Result<(), Error> {
        self.reload(store, &snapshot.item_ids).await?;
        self.snapshot.store(Some(snapshot));
        self.events_since_training.store(0, Ordering::Relaxed);
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
        self.apply(items.iter().cloned().map(Change::Upsert));
    }

    pub fn delete_item(&self, id: &str) {
        self.apply([Change::DeleteItem(id.to_string())]);
    }

    pub fn ensure_users<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.apply(ids.into_iter().map(|id| Change::EnsureUser(id.to_string())));
    }

    pub fn delete_user(&self, id: &str) {
        self.apply([Change::DeleteUser(id.to_string())]);
    }

    /// Applies committed feedback (creating users and items it names that are not known yet).
    pub fn add_feedback(&self, rows: &[Feedback]) {
        self.apply(rows.iter().cloned().map(Change::AddFeedback));
        self.events_since_training
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
    }

    /// Applies deleted feedback rows.
    pub fn remove_feedback(&self, rows: &[Feedback]) {
        self.apply(rows.iter().cloned().map(Change::RemoveFeedback));
    }

    /// What a cached answer for `user` depends on: the snapshot version (0 before training) and
    /// the number of changes to the user's history.
    pub fn freshness(&self, user: &str) -> (u64, u64) {
        let version = self.snapshot.load().as_ref().map_or(0, |s| s.version);
        (version, self.state.read().user_generation(user))
    }

    pub fn has_user(&self, id: &str) -> bool {
        self.state.read().has_user(id)
    }

    pub fn has_item(&self, id: &str) -> bool {
        self.state.read().has_item(id)
    }

    /// Recommendations for a user from the chosen engine (`auto` means `smart`'s rules here; the
    /// orchestrator resolves experiments before it calls). Every engine skips items the user
    /// interacted with, hidden and excluded items, items past their time-to-live and items outside
    /// the requested categories; with no trained models every engine answers with popularity.
    pub fn recommend(&self, who: Who<'_>, q: &Query<'_>, kind: EngineKind) -> Recommendation {
        let s = self.state.read();
        let session;
        let (history, user_id) = match who {
            Who::User(id) => (s.user_history(id), Some(id)),
            Who::Session(items) => {
                session = s.session_history(items);
                (Some(&session), None)
            }
        };
        let Some(snap) = self.snapshot.load_full() else {
            return Recommendation {
                engine: EngineKind::Popularity,
                route: None,
                items: self.popular_for(&s, history, q),
            };
        };
        let row = user_id
            .and_then(|id| snap.user_rows.get(id))
            .map(|&r| r as usize);
        let asked = Asked {
            s: &s,
            history,
            row,
            q,
            snap: &snap,
        };
        let (engine, route, items) = match kind {
            EngineKind::Fast => (kind, None, self.fast(&asked)),
            EngineKind::Quality => (kind, None, self.quality(&asked)),
            EngineKind::Enhanced => (kind, None, self.enhanced(&asked)),
            EngineKind::Smart | EngineKind::Auto => {
                let (route, items) = self.smart(&asked);
                (EngineKind::Smart, Some(route), items)
            }
            EngineKind::Popularity => (kind, None, self.popular_for(&s, history, q)),
        };
        Recommendation {
            engine,
            route,
            items,
        }
    }

    /// The most popular items the user has not interacted with. An unknown user gets the plain
    /// popular list.
    fn popular_for(&self, s: &State, seen: Option<&UserHistory>, q: &Query<'_>) -> Vec<Scored> {
        let ranking = self.ranking.load();
        s.pick(
            ranking.popular.iter().copied(),
            q,
            |idx| seen.is_some_and(|h| h.contains_key(&idx)),
            |_, meta| (meta.popularity, "popular".to_string()),
        )
    }

    /// Items like `item_id`: its item-to-item neighbours ("often liked together"), then its
    /// content neighbours ("similar content", which also serve items nobody has touched), then
    /// popular items of its categories. `None` when the item does not exist.
    pub fn similar(&self, item_id: &str, q: &Query<'_>) -> Option<Vec<Scored>> {
        let s = self.state.read();
        if !s.has_item(item_id) {
            return None;
        }
        let idx = *s.item_index().get(item_id)?;
        let mut order: Vec<(u32, f32, &'static str)> = Vec::new();
        if let Some(snap) = self
            .snapshot
            .load_full()
            .filter(|snap| (idx as usize) < snap.n_items)
        {
            order.extend(
                snap.itemknn.neighbours[idx as usize]
                    .iter()
                    .map(|&(i, sim)| (i, sim, "often liked together")),
            );
            let listed: std::collections::HashSet<u32> = order.iter().map(|x| x.0).collect();
            order.extend(
                snap.content.neighbours[idx as usize]
                    .iter()
                    .filter(|(i, _)| !listed.contains(i))
                    .map(|&(i, sim)| (i, sim * 0.5, "similar content")),
            );
        }
        let by_index: HashMap<u32, (f32, &'static str)> =
            order.iter().map(|&(i, sc, r)| (i, (sc, r))).collect();
        // Then popular items sharing a category with it.
        let categories: Vec<Arc<str>> = s.item_categories(idx).to_vec();
        let ranking = self.ranking.load();
        let same_category = ranking.popular.iter().copied().filter(|i| {
            !by_index.contains_key(i)
                && s.item_categories(*i).iter().any(|c| categories.contains(c))
        });
        let picked = s.pick(
            order.iter().map(|x| x.0).chain(same_category),
            q,
            |i| i == idx,
            |i, meta| match by_index.get(&i) {
                Some(&(score, reason)) => (score as f64, reason.to_string()),
                None => {
                    let shared = meta
                        .categories
                        .iter()
                        .find(|c| categories.contains(c))
                        .map(|c| c.to_string())
                        .unwrap_or_default();
                    (0.0, format!("popular in {shared}"))
                }
            },
        );
        Some(picked)
    }

    /// The most popular items overall (filtered like [`Engine::recommend`], without a user).
    pub fn popular(&self, q: &Query<'_>) -> Vec<Scored> {
        let ranking = self.ranking.load();
        self.state.read().pick(
            ranking.popular.iter().copied(),
            q,
            |_| false,
            |_, meta| (meta.popularity, "popular".to_string()),
        )
    }

    /// The newest items, scored by their timestamp in seconds.
    pub fn latest(&self, q: &Query<'_>) -> Vec<Scored> {
        let ranking = self.ranking.load();
        self.state.read().pick(
            ranking.latest.iter().copied(),
            q,
            |_| false,
            |_, meta| (meta.timestamp_ms as f64 / 1000.0, "latest".to_string()),
        )
    }
}

#[cfg(test)]
mod tests;
