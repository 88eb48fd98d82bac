//! What one fit and its scoring on the validation users are predicted to cost, from the data's
//! size alone, in seconds of one core of this project's reference machine (2-core x86-64 with
//! AVX2, on which the constants were measured).
//!
//! The tuning budget counts these predictions, not the clock: the same data, configuration and
//! seed then choose the same settings on an idle machine and on a busy one (a budget of wall-clock
//! seconds dropped EASE on a loaded machine and gave another `reco evaluate` table). Only the
//! proportions between models and the order of magnitude need to be right; a faster machine simply
//! finishes the same search sooner.

use crate::algo::{als, bpr, itemknn};

use super::super::data::EvalData;

/// Operations per second of one core in the fits' inner loops (the reference machine). The
/// constants here were set from every fit of one search on MovieLens-100K's validation split,
/// timed on that machine, and BPR's slowdown from fits at a million interactions.
const OPS_PER_SECOND: f64 = 1.0e9;
/// ALS's rate: its sweeps run on every core, in vector registers.
const ALS_OPS_PER_SECOND: f64 = 4.0e9;
/// Operations per factor of one BPR step (three vectors read, two updated, in vector registers)
/// while the factor tables stay in the core's cache.
const BPR_OPS_PER_FACTOR: f64 = 2.4;
/// Factor tables larger than this no longer stay in cache: each step's three random rows come
/// from memory.
const BPR_CACHED_BYTES: f64 = 2.0 * 1048576.0;
/// How much slower a step is then (550 ns against 160 ns per 64-factor step, at 110,000 rows
/// against 2,600).
const BPR_UNCACHED_SLOWDOWN: f64 = 3.5;
/// Scoring's rate: vectorised sums and selections over the catalogue, on every core.
const SCORING_OPS_PER_SECOND: f64 = 2.5e9;
/// Floating-point operations per second of EASE's dense Cholesky inverse (nalgebra, one thread).
const EASE_FLOPS: f64 = 2.8e9;

/// Most validation users a setting is scored on (spread evenly over the rows): enough to rank
/// settings, and the scoring cost stays bounded on a million users.
pub const MAX_USERS: usize = 2000;

/// The sizes the predictions read: the validation split's training part and the users scored.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Users (rows) of the training part.
    pub rows: usize,
    /// Items (columns).
    pub items: usize,
    /// Training interactions.
    pub nnz: usize,
    /// Σ over users of their history's length squared: item-to-item's co-occurrence count.
    pub pairs: f64,
    /// Validation users a setting is scored on.
    pub scored: usize,
    /// Mean history length of a scored user.
    pub history: f64,
}

impl Shape {
    pub fn of(inner: &EvalData, users: &[usize]) -> Self {
        let train = &inner.train;
        let pairs = (0..train.n_rows)
            .map(|u| (train.row_len(u) as f64).powi(2))
            .sum();
        let history =
            users.iter().map(|&u| train.row_len(u) as f64).sum::<f64>() / users.len().max(1) as f64;
        Shape {
            rows: train.n_rows,
            items: train.n_cols,
            nnz: train.nnz(),
            pairs,
            scored: users.len(),
            history,
        }
    }

    /// The shape of every `every`-th user of this one (the catalogue whole).
    pub fn sampled(&self, every: usize) -> Shape {
        let k = every.max(1);
        Shape {
            rows: self.rows.div_ceil(k),
            items: self.items,
            nnz: self.nnz / k,
            pairs: self.pairs / k as f64,
            scored: self.scored.min(self.rows.div_ceil(k)),
            history: self.history,
        }
    }

    /// Scoring every validation user: `per_item` operations per catalogue item, `per_history`
    /// per history item, and the top-10 selection over the catalogue.
    fn scoring(&self, per_item: f64, per_history: f64) -> f64 {
        self.scored as f64 * (self.items as f64 * (per_item + 2.0) + self.history * per_history)
            / SCORING_OPS_PER_SECOND
    }

    /// ALS (conjugate gradient): per sweep and CG step, every user's and item's `f x f` product
    /// with the Gram matrix and its interactions' `f`-long updates; scored by dot products.
    pub fn als(&self, p: &als::Params) -> f64 {
        let f = p.factors as f64;
        let sweep = (self.rows + self.items) as f64 * f * f + 2.0 * self.nnz as f64 * f;
        (p.iterations * p.cg_steps) as f64 * sweep / ALS_OPS_PER_SECOND + self.scoring(f, 0.0)
    }

    /// BPR: each SGD step updates three `f`-long vectors (one thread), slower once the factor
    /// tables outgrow the cache; scored by dot products.
    pub fn bpr(&self, p: &bpr::Params) -> f64 {
        let epochs = p.iterations.min(p.max_samples / self.nnz.max(1)) as f64;
        let f = p.factors as f64;
        let tables = (self.rows + self.items) as f64 * f * 4.0;
        let slowdown = if tables > BPR_CACHED_BYTES {
            BPR_UNCACHED_SLOWDOWN
        } else {
            1.0
        };
        let steps = epochs * self.nnz as f64;
        steps * BPR_OPS_PER_FACTOR * f * slowdown / OPS_PER_SECOND + self.scoring(f, 0.0)
    }

    /// Item-to-item: co-occurrence counts, then each item's neighbours kept; scored by summing
    /// `k` neighbours per history item.
    pub fn itemknn(&self, p: &itemknn::Params) -> f64 {
        let fit = 4.0 * self.pairs + self.items as f64 * self.items.min(p.k * 8) as f64;
        fit / OPS_PER_SECOND + self.itemknn_scoring(p.k)
    }

    /// EASE: the Gram matrix and its dense inverse; scored by summing one catalogue-long row per
    /// history item.
    pub fn ease(&self) -> f64 {
        ease_inverse_seconds(self.items) + self.pairs / OPS_PER_SECOND + self.ease_scoring()
    }

    /// Popularity at one half-life: one pass over the interactions, scored by the catalogue.
    pub fn popularity(&self) -> f64 {
        self.nnz as f64 * 8.0 / OPS_PER_SECOND + self.scoring(1.0, 0.0)
    }

    /// Scoring the validation users with item-to-item of `k` neighbours (no fit).
    pub fn itemknn_scoring(&self, k: usize) -> f64 {
        self.scoring(0.0, k as f64)
    }

    /// Scoring the validation users with EASE (no fit).
    pub fn ease_scoring(&self) -> f64 {
        self.scoring(0.0, self.items as f64)
    }
}

/// The predicted seconds of EASE's inverse on `n` items (a Cholesky factorisation and an inverse).
fn ease_inverse_seconds(n: usize) -> f64 {
    (n as f64).powi(3) / EASE_FLOPS
}
