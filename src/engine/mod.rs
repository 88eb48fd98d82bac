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

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::RwLock;
use serde::Serialize;

use crate::algo::blend::{MMR_POOL, normalise};
use crate::algo::diversity::{jaccard, mmr};
use crate::algo::{History, Scorer, top_n};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// The orchestrator's choice: for now `fast` once models are trained, else `popularity`.
    Auto,
    /// Item-to-item neighbours of the user's items blended with time-decayed popularity.
    Fast,
    /// ALS, BPR, item-to-item and content blended with weights fitted at training time.
    Quality,
    /// Most interacted-with items.
    Popularity,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Fast => "fast",
            EngineKind::Quality => "quality",
            EngineKind::Popularity => "popularity",
        }
    }
}

/// Weight of normalised, time-decayed popularity in the `fast` blend (neighbours weigh 1).
const FAST_POPULARITY_WEIGHT: f32 = 0.1;
/// History items whose neighbours `fast` gathers (the rest only filter).
const FAST_MAX_SOURCES: usize = 200;

/// Per-thread scratch of the `fast` engine: dense accumulators indexed by item, reset through the
/// list of touched entries, so a request neither allocates per catalogue item nor hashes.
#[derive(Default)]
struct FastScratch {
    /// Summed similarity per item.
    sum: Vec<f32>,
    /// Strongest (source item, similarity) per item; `u32::MAX` = untouched.
    source: Vec<(u32, f32)>,
    touched: Vec<u32>,
}

impl FastScratch {
    fn prepare(&mut self, n_items: usize) {
        if self.sum.len() < n_items {
            self.sum.resize(n_items, 0.0);
            self.source.resize(n_items, (u32::MAX, 0.0));
        }
    }

    fn add(&mut self, item: u32, source: u32, sim: f32) {
        let i = item as usize;
        if self.source[i].0 == u32::MAX {
            self.touched.push(item);
            self.source[i] = (source, sim);
        } else if sim > self.source[i].1 {
            self.source[i] = (source, sim);
        }
        self.sum[i] += sim;
    }

    fn reset(&mut self) {
        for &i in &self.touched {
            self.sum[i as usize] = 0.0;
            self.source[i as usize] = (u32::MAX, 0.0);
        }
        self.touched.clear();
    }
}

thread_local! {
    static FAST_SCRATCH: std::cell::RefCell<FastScratch> = std::cell::RefCell::new(FastScratch::default());
}

/// Puts the best `prefix` entries of `order` first, sorted by descending score (ties by index), and
/// returns how many are sorted.
fn sorted_prefix(order: &mut [(f32, u32)], prefix: usize) -> usize {
    let by_score = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if order.len() > prefix {
        order.select_nth_unstable_by(prefix, by_score);
        order[..prefix].sort_unstable_by(by_score);
        prefix
    } else {
        order.sort_unstable_by(by_score);
        order.len()
    }
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
        self.events_since_training
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
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

    /// Recommendations for a user from the chosen engine, and the engine that actually served
    /// (`auto` resolves to a concrete one). Every engine skips items the user interacted with,
    /// hidden and excluded items, and items outside the requested categories.
    pub fn recommend(
        &self,
        who: Who<'_>,
        q: &Query<'_>,
        kind: EngineKind,
    ) -> (EngineKind, Vec<Scored>) {
        let s = self.state.read();
        let session;
        let (history, user_id) = match who {
            Who::User(id) => (s.user_history(id), Some(id)),
            Who::Session(items) => {
                session = s.session_history(items);
                (Some(&session), None)
            }
        };
        match (kind, self.snapshot.load_full()) {
            (EngineKind::Fast, Some(snap)) => (EngineKind::Fast, self.fast(&s, history, q, &snap)),
            (EngineKind::Quality, Some(snap)) => {
                let row = user_id
                    .and_then(|id| snap.user_rows.get(id))
                    .map(|&r| r as usize);
                (
                    EngineKind::Quality,
                    self.quality(&s, history, row, q, &snap),
                )
            }
            // Auto picks `fast` once it was trained on some interactions.
            (EngineKind::Auto, Some(snap)) if snap.train.nnz() > 0 => {
                (EngineKind::Fast, self.fast(&s, history, q, &snap))
            }
            _ => (EngineKind::Popularity, self.popular_for(&s, history, q)),
        }
    }

    /// The most popular items the user has not interacted with. An unknown user gets the plain
    /// popular list.
    fn popular_for(&self, s: &State, seen: Option<&UserHistory>, q: &Query<'_>) -> Vec<Scored> {
        let ranking = self.ranking.load();
        s.pick(
            &ranking.popular,
            q,
            |idx| seen.is_some_and(|h| h.contains_key(&idx)),
            |_, meta| (meta.popularity, "popular".to_string()),
        )
    }

    /// `quality`: every trained model scores the whole catalogue for the user (factor models from
    /// the user's trained row, or folded in from the live history for users new since training),
    /// scores are scaled per model and blended with the fitted weights.
    fn quality(
        &self,
        s: &State,
        history: Option<&UserHistory>,
        row: Option<usize>,
        q: &Query<'_>,
        snap: &Snapshot,
    ) -> Vec<Scored> {
        let mut items: Vec<u32> = history
            .map(|h| {
                h.iter()
                    .filter(|(i, types)| {
                        (**i as usize) < snap.n_items && !types.iter().any(|t| s.is_negative(t))
                    })
                    .map(|(i, _)| *i)
                    .collect()
            })
            .unwrap_or_default();
        items.sort_unstable();
        let weights = vec![1.0f32; items.len()];
        let hist = History {
            items: &items,
            weights: &weights,
        };
        let members: [&dyn Scorer; 4] = [&snap.als, &snap.bpr, &snap.itemknn, &snap.content];
        let mut blended = vec![0f32; snap.n_items];
        let mut buf = vec![0f32; snap.n_items];
        for (m, &w) in members.iter().zip(&snap.quality_weights) {
            if w > 0.0 {
                m.score(row, hist, &mut buf);
                normalise(&mut buf);
                blended.iter_mut().zip(&buf).for_each(|(b, x)| *b += w * x);
            }
        }
        let want = (q.n * MMR_POOL + q.exclude.len()) * 4 + 100;
        let mut order = top_n(&blended, &items, want);
        let ranking = self.ranking.load();
        let ranked: std::collections::HashSet<u32> = order.iter().copied().collect();
        order.extend(ranking.popular.iter().filter(|i| !ranked.contains(i)));
        let sources = &items[..items.len().min(FAST_MAX_SOURCES)];
        // Filter first, over-fetching, then let MMR choose `n` spread across categories.
        let pool_query = Query {
            n: q.n * MMR_POOL,
            ..*q
        };
        let pool = s.pick(
            &order,
            &pool_query,
            |i| history.is_some_and(|h| h.contains_key(&i)),
            |i, _| {
                let because = sources
                    .iter()
                    .filter_map(|&j| {
                        snap.itemknn.neighbours[j as usize]
                            .iter()
                            .find(|n| n.0 == i)
                            .map(|n| (j, n.1))
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let reason = match because {
                    Some((j, _)) => format!("because you liked {}", s.item_id(j)),
                    None if items.is_empty() => "popular".to_string(),
                    None => "matches your taste".to_string(),
                };
                (
                    blended.get(i as usize).copied().unwrap_or(0.0) as f64,
                    reason,
                )
            },
        );
        if self.diversity <= 0.0 {
            return pool.into_iter().take(q.n).collect();
        }
        let index = s.item_index();
        let scored: Vec<(u32, f32)> = pool
            .iter()
            .map(|p| (index[&p.id], p.score as f32))
            .collect();
        let similarity = |a: u32, b: u32| jaccard(s.item_categories(a), s.item_categories(b));
        let chosen = mmr(&scored, similarity, q.n, self.diversity);
        let mut by_idx: HashMap<u32, Scored> = scored.iter().map(|x| x.0).zip(pool).collect();
        chosen
            .into_iter()
            .filter_map(|i| by_idx.remove(&i))
            .collect()
    }

    /// `fast`: item-to-item neighbours of the user's positive items, each candidate scored by its
    /// summed similarity (normalised to the best candidate) plus a little time-decayed popularity.
    /// A user without history gets trending items.
    fn fast(
        &self,
        s: &State,
        history: Option<&UserHistory>,
        q: &Query<'_>,
        snap: &Snapshot,
    ) -> Vec<Scored> {
        FAST_SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let sc = &mut *guard;
            sc.prepare(snap.n_items);
            if let Some(h) = history {
                let sources = h
                    .iter()
                    .filter(|(_, types)| !types.iter().any(|t| s.is_negative(t)))
                    .map(|(i, _)| *i)
                    .filter(|&j| (j as usize) < snap.n_items);
                for j in sources.take(FAST_MAX_SOURCES) {
                    for &(i, sim) in &snap.itemknn.neighbours[j as usize] {
                        sc.add(i, j, sim);
                    }
                }
            }
            let best = sc
                .touched
                .iter()
                .map(|&i| sc.sum[i as usize])
                .fold(0.0f32, f32::max)
                .max(f32::MIN_POSITIVE);
            let pop_best = snap
                .popular_order
                .first()
                .map(|&i| snap.popularity.scores[i as usize])
                .unwrap_or(0.0);
            let pop_scale = FAST_POPULARITY_WEIGHT / pop_best.max(f32::MIN_POSITIVE);
            let score = |i: u32| {
                let pop = snap
                    .popularity
                    .scores
                    .get(i as usize)
                    .copied()
                    .unwrap_or(0.0)
                    * pop_scale;
                match sc.source.get(i as usize) {
                    Some(&(src, _)) if src != u32::MAX => sc.sum[i as usize] / best + pop,
                    _ => pop,
                }
            };
            let mut order: Vec<(f32, u32)> = sc.touched.iter().map(|&i| (score(i), i)).collect();
            order.extend(
                snap.popular_order
                    .iter()
                    .filter(|&&i| sc.source[i as usize].0 == u32::MAX)
                    .map(|&i| (score(i), i)),
            );
            let seen = |i: u32| history.is_some_and(|h| h.contains_key(&i));
            let explain = |i: u32, _: &ItemMeta| {
                let reason = match sc.source.get(i as usize) {
                    Some(&(src, _)) if src != u32::MAX => {
                        format!("because you liked {}", s.item_id(src))
                    }
                    _ => "trending".to_string(),
                };
                (score(i) as f64, reason)
            };
            // Sorting every candidate is the expensive part: sort a prefix deep enough for the
            // filters, and everything only when the filters ate through it.
            let ranking = self.ranking.load();
            let depth = 4 * (q.n + q.exclude.len()) + history.map_or(0, |h| h.len()) + 50;
            let mut picked = Vec::new();
            for prefix in [depth, usize::MAX] {
                let sorted = sorted_prefix(&mut order, prefix);
                let mut idx: Vec<u32> = order[..sorted].iter().map(|x| x.1).collect();
                let complete = sorted == order.len();
                if complete {
                    // Then everything else (items new since training, long tail), by live popularity.
                    let listed: std::collections::HashSet<u32> = idx.iter().copied().collect();
                    idx.extend(ranking.popular.iter().filter(|i| !listed.contains(i)));
                }
                picked = s.pick(&idx, q, seen, explain);
                if picked.len() >= q.n || complete {
                    break;
                }
            }
            sc.reset();
            picked
        })
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
        let mut idxs: Vec<u32> = order.iter().map(|x| x.0).collect();
        // Then popular items sharing a category with it.
        let categories: Vec<Arc<str>> = s.item_categories(idx).to_vec();
        let ranking = self.ranking.load();
        idxs.extend(ranking.popular.iter().filter(|i| {
            !by_index.contains_key(i)
                && s.item_categories(**i)
                    .iter()
                    .any(|c| categories.contains(c))
        }));
        let picked = s.pick(
            &idxs,
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
            &ranking.popular,
            q,
            |_| false,
            |_, meta| (meta.popularity, "popular".to_string()),
        )
    }

    /// The newest items, scored by their timestamp in seconds.
    pub fn latest(&self, q: &Query<'_>) -> Vec<Scored> {
        let ranking = self.ranking.load();
        self.state.read().pick(
            &ranking.latest,
            q,
            |_| false,
            |_, meta| (meta.timestamp_ms as f64 / 1000.0, "latest".to_string()),
        )
    }
}

#[cfg(test)]
mod tests;
