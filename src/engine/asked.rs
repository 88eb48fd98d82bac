//! [`Asked`]: one request as every engine sees it (the query, the user's live history and trained
//! row, the catalogue, the snapshot and the live ranking: all immutable values, no lock), with the
//! steps every engine shares: what the user has seen, their liked items, and picking a list that
//! ends with live popularity.

use std::collections::HashSet;

use foldhash::fast::RandomState;

use super::history::History;
use super::items::{ItemMeta, Items};
use super::ranking::Ranking;
use super::request::{Query, Reason, Scored};
use super::snapshot::Snapshot;
use crate::algo;

/// One request as the engines see it.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    pub s: &'a Items,
    pub history: Option<&'a History>,
    /// The user's row in the snapshot's factor models, when they were trained.
    pub row: Option<usize>,
    pub q: &'a Query<'a>,
    pub snap: &'a Snapshot,
    pub ranking: &'a Ranking,
    /// MMR strength of `quality` across categories (an engine setting).
    pub diversity: f32,
}

impl<'a> Asked<'a> {
    /// Whether the user interacted with item `i` in any way (never recommended again).
    pub fn seen(&self, i: u32) -> bool {
        self.history.is_some_and(|h| h.contains(i))
    }

    /// The items the user liked (the policy's positive rule) below `n_items`, by ascending index.
    pub fn liked_below(&self, n_items: usize) -> impl Iterator<Item = u32> + 'a {
        self.history
            .into_iter()
            .flat_map(|h| h.liked())
            .take_while(move |&i| (i as usize) < n_items)
    }

    /// The liked items the snapshot's models know.
    pub fn liked_trained(&self) -> impl Iterator<Item = u32> + 'a {
        self.liked_below(self.snap.n_items)
    }

    /// The liked, trained items sorted, each with weight 1, or with the newest weighing most when
    /// training chose recency inside histories (`algo::recency`): a model-ready history.
    pub fn liked_history(&self) -> Liked {
        let n_items = self.snap.n_items;
        let (items, times): (Vec<u32>, Vec<u32>) = self
            .history
            .into_iter()
            .flat_map(|h| h.liked_times())
            .take_while(|&(i, _)| (i as usize) < n_items)
            .unzip();
        let mut weights = vec![1.0; items.len()];
        if let Some(half_life) = self.snap.history_half_life {
            algo::recency::weigh(&times, half_life, &mut weights);
        }
        Liked { items, weights }
    }

    /// The first `q.n` items of `parts`, then of the live popularity order (items new since
    /// training, the long tail), that pass the filters and that the user has not seen.
    pub fn pick(
        &self,
        parts: &[&[u32]],
        q: &Query<'_>,
        score: impl Fn(u32, &ItemMeta) -> (f64, Reason),
    ) -> Vec<Scored> {
        let order = parts.iter().flat_map(|p| p.iter().copied());
        self.pick_from(self.then_popular(order), q, score)
    }

    /// The entries of `order`, then of the live popularity order, each once, lazily: the
    /// popularity order is catalogue-sized, and a request stops after its first few entries.
    pub fn then_popular<'p>(
        &'p self,
        order: impl Iterator<Item = u32> + 'p,
    ) -> impl Iterator<Item = u32> + 'p {
        unique(order.chain(self.ranking.popular.iter().copied()))
    }

    /// The indices of the first `q.n` items of `order` that pass the filters and were not seen
    /// (looked up in `marked`, this user's marks).
    pub fn pick_marked(
        &self,
        order: impl IntoIterator<Item = u32>,
        q: &Query<'_>,
        marked: &Marked<'_>,
    ) -> Vec<u32> {
        self.s.pick_indices(order, q, |i| marked.seen(i))
    }

    /// The first `q.n` items of `order` alone that pass the filters and were not seen.
    pub fn pick_from(
        &self,
        order: impl IntoIterator<Item = u32>,
        q: &Query<'_>,
        score: impl Fn(u32, &ItemMeta) -> (f64, Reason),
    ) -> Vec<Scored> {
        self.s.pick(order, q, |i| self.seen(i), score)
    }
}

/// A mark per item the user has seen, set from the history for one request and cleared after it
/// ([`SeenMarks::mark`]): a look-up per item where [`Asked::seen`] is a binary search in the
/// history, for the walks that ask about hundreds of items. A thread keeps one and reuses it.
#[derive(Default)]
pub struct SeenMarks(Vec<bool>);

/// [`SeenMarks`] set for one history; cleared when dropped.
pub struct Marked<'m> {
    marks: &'m mut Vec<bool>,
    rows: &'m [super::history::Row],
}

impl SeenMarks {
    /// Marks the items of `history`, with room for the catalogue's first `n_items`.
    pub fn mark<'m>(&'m mut self, history: Option<&'m History>, n_items: usize) -> Marked<'m> {
        let rows = history.map_or(&[][..], |h| h.all());
        let marks = &mut self.0;
        let needed = rows
            .iter()
            .map(|r| r.item() as usize + 1)
            .max()
            .unwrap_or(0);
        if marks.len() < needed.max(n_items) {
            marks.resize(needed.max(n_items), false);
        }
        for r in rows {
            marks[r.item() as usize] = true;
        }
        Marked { marks, rows }
    }
}

impl Marked<'_> {
    /// Whether the user has seen item `i` (as [`Asked::seen`]).
    pub fn seen(&self, i: u32) -> bool {
        self.marks.get(i as usize).copied().unwrap_or(false)
    }

    /// The marks of the catalogue's first `n` items (at most `mark`'s `n_items`).
    pub fn first(&self, n: usize) -> &[bool] {
        &self.marks[..n]
    }
}

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        for r in self.rows {
            self.marks[r.item() as usize] = false;
        }
    }
}

/// A user's liked, trained items with their weights, owned; [`Liked::history`] lends them to the
/// models.
pub struct Liked {
    /// Sorted item indices.
    pub items: Vec<u32>,
    pub weights: Vec<f32>,
}

impl Liked {
    pub fn history(&self) -> algo::History<'_> {
        algo::History {
            items: &self.items,
            weights: &self.weights,
        }
    }
}

/// The entries of `items` in order, each once, lazily.
fn unique(items: impl Iterator<Item = u32>) -> impl Iterator<Item = u32> {
    // Item indices are ours, not a client's: a fast hasher, seeded per set. Sized for the
    // usual walk (a few hundred entries): growing from empty rehashed it four times.
    let mut seen: HashSet<u32, RandomState> =
        HashSet::with_capacity_and_hasher(256, RandomState::default());
    items.filter(move |i| seen.insert(*i))
}
