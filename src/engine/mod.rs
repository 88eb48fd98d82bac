//! Recommendations served from memory.
//!
//! [`Engine`] holds what a recommend request needs: the item catalogue's filterable fields, every
//! user's interaction set, and a popularity ranking. It is loaded from the store once at start-up
//! (one connection, streamed) and then kept current by the catalogue (`crate::catalogue`), which
//! applies each write after its transaction commits (and, with a cluster budget, the other
//! replicas' writes as its change-feed follower reads them), so "already seen" filtering is exact
//! the moment a write is acknowledged. A request never touches the database.
//!
//! Files: the live state (`state`: items, histories classified by the feedback policy,
//! popularity) and a change to it (`journal`), the catalogue a request reads and its filter walk
//! (`items`), the trained models (`snapshot`), the live order (`ranking`), what a request asks and
//! gets (`request`), one request's context and the steps every engine shares (`asked`), and the
//! engines as free functions over it (`fast`, `models` for `quality` and `enhanced`, `smart`,
//! `similar`), the item fields an answer carries (`fields`) and a user's history as the dashboard
//! shows it (`look`).
//! This file composes them; they never import it.
//!
//! Concurrency: the catalogue and histories sit behind one `RwLock` that writers hold only to apply
//! a committed change and readers only to clone two `Arc`s (the catalogue, `items`, and the
//! user's history, both copy-on-write): scoring runs on those immutable values after the lock is
//! released, so a long request never stalls the writer and a waiting writer never stalls reads.
//! The ranking is an immutable [`Ranking`] swapped in with `ArcSwap` by a background re-ranker,
//! so sorting never blocks a request. Errors of this layer are [`Error`].

mod asked;
mod fast;
mod fields;
mod history;
mod items;
mod journal;
mod look;
mod models;
mod ranking;
mod request;
mod similar;
mod smart;
mod snapshot;
mod state;
mod work;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::RwLock;

use crate::policy::FeedbackPolicy;
use crate::store::{self, Feedback, Item, Store};
use asked::Asked;
use history::History;
use items::Items;
use journal::Change;
use state::State;

pub use crate::algo::smart::Route;
pub use crate::kinds::EngineKind;
pub use fields::Fields;
pub use items::ItemMeta;
pub use look::HistoryEntry;
pub use ranking::Ranking;
pub use request::{ItemFields, Query, Recommendation, Request, Scored, Who};
pub use snapshot::Snapshot;

/// Errors of the engine layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading from the store failed.
    #[error("loading the recommender state failed: {0}")]
    Load(#[from] store::Error),
}

/// The in-memory recommender.
pub struct Engine {
    state: RwLock<State>,
    ranking: ArcSwap<Ranking>,
    /// The latest trained models; `None` until the first training finishes.
    snapshot: ArcSwapOption<Snapshot>,
    /// Feedback rows applied since the snapshot's training began.
    events_since_training: AtomicU64,
    /// Bumped by every item change (upsert, hide, delete): an answer computed before it may show
    /// an item that is now hidden, deleted or in other categories.
    catalogue_generation: AtomicU64,
    /// MMR strength of `quality` across categories.
    diversity: f32,
    /// While a reload reads the store: the changes applied meanwhile, replayed onto the fresh state
    /// so that none is lost when it replaces the current one.
    journal: parking_lot::Mutex<Option<Vec<Change>>>,
    /// Held by a reload from start to end: two at once would share the one journal.
    reloading: tokio::sync::Mutex<()>,
}

impl Engine {
    /// An empty engine; `policy` says what each feedback row means (what counts as popularity and
    /// as liked, what excludes an item). `diversity` is the MMR strength of `quality` (0 = off).
    pub fn new(policy: FeedbackPolicy, diversity: f32) -> Self {
        Self {
            diversity,
            state: RwLock::new(State::new(policy)),
            ranking: ArcSwap::default(),
            snapshot: ArcSwapOption::empty(),
            events_since_training: AtomicU64::new(0),
            catalogue_generation: AtomicU64::new(0),
            journal: parking_lot::Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Applies `changes` to the state (under its write lock), recording them while a reload runs.
    /// The changes are built before the lock is taken (a `Vec`, not a lazy iterator), so the
    /// writer holds it only to apply them: cloning rows and serialising labels happen outside.
    fn apply(&self, changes: Vec<Change>) {
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
        // The scoring layouts are built here, not by the first request after the swap.
        snapshot.als.blocks();
        snapshot.bpr.blocks();
        snapshot.itemknn.prepare();
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
        let _one_at_a_time = self.reloading.lock().await;
        self.reload_alone(store, item_order).await
    }

    /// [`Engine::reload`], the caller holding `reloading`.
    async fn reload_alone(&self, store: &Store, item_order: &[Arc<str>]) -> Result<(), Error> {
        *self.journal.lock() = Some(Vec::new());
        let mut fresh = State::with_item_order(self.state.read().policy().clone(), item_order);
        let read = async {
            store
                .for_each_item(|item| {
                    let labels = items::labels_in_memory(&item.labels);
                    fresh.upsert_item(&item, labels)
                })
                .await?;
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

    /// Reloads from the store keeping every item's index (the change feed's follower, when it
    /// fell behind what the feed keeps or after an import): the snapshot in use, and one being
    /// trained on the live index, keep meaning the same items.
    pub async fn refresh(&self, store: &Store) -> Result<(), Error> {
        let _one_at_a_time = self.reloading.lock().await;
        let order = {
            let state = self.state.read();
            let index = state.item_index();
            let mut order: Vec<Arc<str>> = vec![Arc::from(""); index.len()];
            for (id, &i) in index {
                order[i as usize] = id.clone();
            }
            order
        };
        self.reload_alone(store, &order).await
    }

    /// Installs a snapshot trained elsewhere: the state is reloaded in the snapshot's item index
    /// space first, so its models and the histories agree on what each index means.
    pub async fn install_foreign(
        &self,
        store: &Store,
        snapshot: Arc<Snapshot>,
    ) -> Result<(), Error> {
        let _one_at_a_time = self.reloading.lock().await;
        self.reload_alone(store, &snapshot.item_ids).await?;
        self.snapshot.store(Some(snapshot));
        self.events_since_training.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Rebuilds the popularity and recency order from the current counts.
    pub fn rerank(&self) {
        let snapshot = self.state.read().ranking_inputs();
        self.ranking.store(Arc::new(ranking::rank(snapshot)));
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
        let changes = items
            .iter()
            .map(|i| Change::Upsert(i.clone(), items::labels_in_memory(&i.labels)))
            .collect();
        self.apply(changes);
        self.catalogue_generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn delete_item(&self, id: &str) {
        self.apply(vec![Change::DeleteItem(id.to_string())]);
        self.catalogue_generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn ensure_users<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.apply(
            ids.into_iter()
                .map(|id| Change::EnsureUser(id.to_string()))
                .collect(),
        );
    }

    pub fn delete_user(&self, id: &str) {
        self.apply(vec![Change::DeleteUser(id.to_string())]);
    }

    /// Applies committed feedback (creating users and items it names that are not known yet).
    pub fn add_feedback(&self, rows: &[Feedback]) {
        self.apply(rows.iter().cloned().map(Change::AddFeedback).collect());
        self.events_since_training
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
    }

    /// Applies deleted feedback rows.
    pub fn remove_feedback(&self, rows: &[Feedback]) {
        self.apply(rows.iter().cloned().map(Change::RemoveFeedback).collect());
    }

    /// What a cached answer for `user` depends on: the snapshot version (0 before training), the
    /// number of changes to the user's history and to the items. `None` for a user the engine
    /// does not know (nothing is cached for them).
    pub fn freshness(&self, user: &str) -> Option<(u64, u64, u64)> {
        let version = self.snapshot.load().as_ref().map_or(0, |s| s.version);
        let catalogue = self.catalogue_generation.load(Ordering::Acquire);
        let s = self.state.read();
        s.has_user(user)
            .then(|| (version, s.user_generation(user), catalogue))
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
        self.inputs(who).recommend(q, kind)
    }

    /// What a recommendation for `who` reads, as immutable values: the state lock is held only
    /// to clone them. Taken on the caller's thread, so that an engine job (run at a lower CPU
    /// priority) never holds a lock a normal-priority thread can wait for: an idle-class thread
    /// preempted inside the read lock would stall the feedback writer, and every reader queued
    /// behind it, until the idle class ran again (priority inversion).
    pub fn inputs(&self, who: Who<'_>) -> Inputs {
        let (items, history, user) = {
            let state = self.state.read();
            match who {
                Who::User(id) => (state.items(), state.user_history(id), Some(id)),
                Who::Session(items) => (state.items(), Some(state.session_history(items)), None),
            }
        };
        let snapshot = self.snapshot.load_full();
        Inputs {
            row: user
                .zip(snapshot.as_deref())
                .and_then(|(id, snap)| snap.user_rows.get(id))
                .map(|&r| r as usize),
            items,
            history,
            snapshot,
            ranking: self.ranking.load_full(),
            diversity: self.diversity,
        }
    }

    /// Items like `item_id` (see `similar::similar`); `None` when the item does not exist.
    pub fn similar(&self, item_id: &str, q: &Query<'_>) -> Option<Vec<Scored>> {
        let (s, idx) = {
            let state = self.state.read();
            if !state.has_item(item_id) {
                return None;
            }
            (state.items(), *state.item_index().get(item_id)?)
        };
        let snap = self.snapshot.load_full();
        Some(similar::similar(
            &s,
            idx,
            snap.as_deref(),
            &self.ranking.load(),
            q,
        ))
    }

    /// The `limit` newest rows of a user's history with their items' titles and categories;
    /// `None` for a user the engine does not know. The lock is held to clone three values.
    pub fn recent_history(&self, user: &str, limit: usize) -> Option<Vec<HistoryEntry>> {
        let (items, history, names) = {
            let state = self.state.read();
            (state.items(), state.user_history(user)?, state.type_names())
        };
        Some(look::recent(&items, &history, &names, limit))
    }

    /// Adds the item fields `which` to each answer, from the catalogue in memory (the current
    /// one, so a cached answer shows an item's latest title). The state's lock is taken to clone
    /// the catalogue and again only for answers scored on an older numbering of the items.
    pub fn describe(&self, answers: &mut [Scored], which: Fields) {
        if !which.any() || answers.is_empty() {
            return;
        }
        let items = self.state.read().items();
        let stale = fields::describe(&items, answers, which);
        if stale.is_empty() {
            return;
        }
        let state = self.state.read();
        let current = state.items();
        for i in stale {
            let s = &mut answers[i];
            let idx = state.item_index().get(&*s.id).copied();
            fields::describe_one(s, idx.and_then(|idx| current.get(idx)), which);
        }
    }

    /// The most popular items overall (filtered like [`Engine::recommend`], without a user).
    pub fn popular(&self, q: &Query<'_>) -> Vec<Scored> {
        let items = self.state.read().items();
        popular_for(&items, None, &self.ranking.load(), q)
    }

    /// The newest items, scored by their timestamp in seconds.
    pub fn latest(&self, q: &Query<'_>) -> Vec<Scored> {
        let ranking = self.ranking.load();
        let items = self.state.read().items();
        items.pick(
            ranking.latest.iter().copied(),
            q,
            |_| false,
            |_, meta| (meta.timestamp_ms as f64 / 1000.0, "latest".into()),
        )
    }
}

/// One recommendation's inputs, taken by [`Engine::inputs`]: computing on them takes no lock.
pub struct Inputs {
    items: Arc<Items>,
    history: Option<History>,
    /// The user's row in the snapshot's factor models, when they were trained.
    row: Option<usize>,
    snapshot: Option<Arc<Snapshot>>,
    ranking: Arc<Ranking>,
    diversity: f32,
}

impl Inputs {
    /// The request as the engines see it; `None` before the first snapshot.
    fn asked<'a>(&'a self, q: &'a Query<'a>) -> Option<Asked<'a>> {
        Some(Asked {
            s: &self.items,
            history: self.history.as_ref(),
            row: self.row,
            q,
            snap: self.snapshot.as_deref()?,
            ranking: &self.ranking,
            diversity: self.diversity,
        })
    }

    /// The chosen engine's answer (see [`Engine::recommend`]).
    pub fn recommend(&self, q: &Query<'_>, kind: EngineKind) -> Recommendation {
        let Some(asked) = self.asked(q) else {
            let (s, history, ranking) = (&*self.items, self.history.as_ref(), &*self.ranking);
            return Recommendation {
                engine: EngineKind::Popularity,
                route: None,
                items: popular_for(s, history, ranking, q),
            };
        };
        let (engine, route, items) = match kind {
            EngineKind::Fast => (kind, None, fast::recommend(&asked)),
            EngineKind::Quality => (kind, None, models::quality(&asked)),
            EngineKind::Enhanced => (kind, None, models::enhanced(&asked)),
            EngineKind::Smart | EngineKind::Auto => {
                let (route, items) = smart::recommend(&asked);
                (EngineKind::Smart, Some(route), items)
            }
            EngineKind::Popularity => {
                let items = popular_for(asked.s, asked.history, asked.ranking, q);
                (kind, None, items)
            }
        };
        Recommendation {
            engine,
            route,
            items,
        }
    }

    /// The rough operation count of `kind` answering `q` (see `work`): what the orchestrator
    /// weighs to run a job inline. Before the first snapshot every engine is a popularity walk.
    pub fn work(&self, q: &Query<'_>, kind: EngineKind) -> u64 {
        self.asked(q)
            .map_or((q.n + q.exclude.len()) as u64, |a| work::estimate(&a, kind))
    }
}

/// The most popular items the user has not interacted with; an unknown user gets the plain
/// popular list.
fn popular_for(s: &Items, seen: Option<&History>, ranking: &Ranking, q: &Query<'_>) -> Vec<Scored> {
    s.pick(
        ranking.popular.iter().copied(),
        q,
        |i| seen.is_some_and(|h| h.contains(i)),
        |i, _| (ranking.popularity(i), "popular".into()),
    )
}

#[cfg(test)]
mod tests;
