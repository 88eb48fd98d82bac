//! EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): an item-item weight
//! matrix in closed form. With `G = XᵀX + λI` over the binary users × items matrix `X` and
//! `P = G⁻¹`, the weights are `B_ij = -P_ij / P_jj` (a zero diagonal), and a user's score for item
//! `j` is `Σ_i x_i B_ij`: the sum of the rows of `B` of the user's items.
//!
//! The fit inverts a dense catalogue × catalogue matrix (Cholesky, in `f64` through nalgebra, the
//! crate ALS already uses), so it is for catalogues up to [`Params::max_items`]: its time grows
//! with the cube of the catalogue and its weights with the square. The weights are kept in half
//! precision ([`super::compact`]; 1,682 items: 5.7 MB): a request adds one catalogue-long row per
//! history item, and reading the rows is what it waits for.

use nalgebra::DMatrix;

use super::{Csr, History, Scorer, compact};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// The L2 penalty `λ` on the weights.
    pub lambda: f64,
    /// Largest catalogue fitted: above it [`fit`] returns `None`.
    pub max_items: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            lambda: 100.0,
            max_items: 20_000,
        }
    }
}

/// The fitted weights, row-major: row `i` holds `B_i·`, what item `i` in a history adds to every
/// item's score, times `scale`, in half precision.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ease {
    n: usize,
    /// Binary16 bits of each weight times `scale` ([`compact::scale_for`]).
    weights: Vec<u16>,
    scale: f32,
}

impl Ease {
    /// From row-major `f32` weights of an `n`-item catalogue.
    fn new(n: usize, weights: &[f32]) -> Self {
        let scale = compact::scale_for(weights);
        Self {
            n,
            weights: compact::to_bits(weights, scale),
            scale,
        }
    }

    /// Whether the weights are those of an `n`-item catalogue (a decoded snapshot's check).
    pub fn fits(&self, n: usize) -> bool {
        self.n == n && self.weights.len() == n * n && self.scale.is_normal()
    }

    /// The row of item `i` (scaled bits): what it adds to every item's score.
    fn row(&self, i: u32) -> &[u16] {
        &self.weights[i as usize * self.n..][..self.n]
    }

    /// The weight item `i` adds to item `j`'s score (as stored: rounded to half precision).
    pub fn weight(&self, i: u32, j: u32) -> f32 {
        compact::value(self.row(i)[j as usize]) / self.scale
    }

    /// Item `j`'s score from the unweighted history `items`: its column in their rows.
    pub fn column_sum(&self, items: &[u32], j: u32) -> f32 {
        let sum: f32 = items
            .iter()
            .map(|&i| compact::value(self.row(i)[j as usize]))
            .sum();
        sum / self.scale
    }
}

/// Fits on a users × items matrix (weights are treated as presence); `None` for a catalogue over
/// `params.max_items`.
pub fn fit(user_items: &Csr, params: Params) -> Option<Ease> {
    let n = user_items.n_cols;
    if n > params.max_items {
        tracing::info!(
            items = n,
            max_items = params.max_items,
            "EASE skipped: the catalogue is larger than its limit"
        );
        return None;
    }
    let mut gram = DMatrix::<f64>::zeros(n, n);
    for u in 0..user_items.n_rows {
        let items = user_items.row(u).0;
        for &a in items {
            for &b in items {
                gram[(a as usize, b as usize)] += 1.0;
            }
        }
    }
    for i in 0..n {
        gram[(i, i)] += params.lambda;
    }
    // Symmetric and positive definite for any λ > 0 (XᵀX is positive semi-definite).
    let p = gram
        .cholesky()
        .expect("XᵀX + λI is positive definite")
        .inverse();
    let mut weights = vec![0f32; n * n];
    for (i, row) in weights.chunks_exact_mut(n.max(1)).enumerate() {
        for (j, w) in row.iter_mut().enumerate() {
            if i != j {
                *w = (-p[(i, j)] / p[(j, j)]) as f32;
            }
        }
    }
    Some(Ease::new(n, &weights))
}

/// Most history items a score sums rows of (the heaviest: under recency, the newest): a request's
/// work stays at most this many catalogue-long rows, however long the history.
pub const MAX_HISTORY: usize = 1000;

impl Scorer for Ease {
    fn score(&self, _user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        scores.fill(0.0);
        let all = (history.items.iter().copied()).zip(history.weights.iter().copied());
        if history.items.len() <= MAX_HISTORY {
            return self.add_rows(all, scores);
        }
        let mut rows: Vec<(u32, f32)> = all.collect();
        rows.select_nth_unstable_by(MAX_HISTORY, |a, b| b.1.total_cmp(&a.1));
        rows.truncate(MAX_HISTORY);
        self.add_rows(rows, scores);
    }
}

impl Ease {
    /// `scores += Σ x × row(i)` over `rows`, in their order ([`compact::add_rows`]; the scale is
    /// undone on each `x`, a power of two).
    fn add_rows(&self, rows: impl IntoIterator<Item = (u32, f32)>, scores: &mut [f32]) {
        let n = scores.len().min(self.n);
        let unscale = 1.0 / self.scale;
        let rows = rows.into_iter().map(|(i, x)| (self.row(i), x * unscale));
        compact::add_rows(rows, &mut scores[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::testing::{assert_prefers_own_block, two_blocks};

    /// Two blocks of disjoint tastes: each user's missing item of their own block beats the other
    /// block; the weights have a zero diagonal and none links the two blocks positively.
    #[test]
    fn prefers_the_own_block() {
        let ui = two_blocks();
        let model = fit(&ui, Params::default()).unwrap();
        assert_prefers_own_block(&model, &ui);
        for i in 0..10 {
            assert_eq!(model.weight(i, i), 0.0);
            for j in 0..10 {
                if (i < 5) != (j < 5) {
                    assert!(model.weight(i, j) <= 0.0, "{i} -> {j}");
                }
            }
        }
        let small = Params {
            max_items: 9,
            ..Params::default()
        };
        assert!(fit(&ui, small).is_none(), "over the catalogue limit");
    }

    /// A score is the sum of the history's rows as stored, for histories that do and do not
    /// fill their last four and catalogues of any width; the stored weights are the fitted ones
    /// to within half precision.
    #[test]
    fn scores_sum_the_stored_rows() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for n in [1, 7, 8, 9, 33, 1682] {
            let weights: Vec<f32> = (0..n * n).map(|_| rng.random::<f32>() - 0.5).collect();
            let model = Ease::new(n, &weights);
            for (k, &w) in weights.iter().enumerate().step_by(97) {
                let stored = model.weight((k / n) as u32, (k % n) as u32);
                assert!((stored - w).abs() <= 0.5 / 1024.0, "{w} -> {stored}");
            }
            for len in [0, 1, 3, 4, 5, 9, 13] {
                let rows: Vec<(u32, f32)> = (0..len)
                    .map(|_| (rng.random_range(0..n as u32), rng.random::<f32>() * 2.0))
                    .collect();
                let mut got = vec![0f32; n];
                model.add_rows(rows.iter().copied(), &mut got);
                for (j, &g) in got.iter().enumerate() {
                    let want: f64 = rows
                        .iter()
                        .map(|&(i, x)| f64::from(x) * f64::from(model.weight(i, j as u32)))
                        .sum();
                    assert!((f64::from(g) - want).abs() < 1e-5, "{n} items, {len} rows");
                }
            }
        }
    }

    /// Past [`MAX_HISTORY`] items, the heaviest rows are summed: the newest under recency.
    #[test]
    fn a_long_history_sums_its_heaviest_rows() {
        let n = MAX_HISTORY + 2;
        let mut weights = vec![0f32; n * n];
        // Item `i` adds 1 to item `i + 1`'s score.
        for i in 0..n - 1 {
            weights[i * n + i + 1] = 1.0;
        }
        let model = Ease::new(n, &weights);
        let items: Vec<u32> = (0..n as u32).collect();
        // The two lightest rows are items 0's and 1's: they are dropped, so items 1 and 2 get
        // nothing; the other 1,000 are summed (the last item adds to none).
        let mut w: Vec<f32> = vec![1.0; n];
        (w[0], w[1]) = (0.5, 0.6);
        let mut scores = vec![0f32; n];
        let history = History {
            items: &items,
            weights: &w,
        };
        model.score(None, history, &mut scores);
        assert_eq!(&scores[..4], [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(scores.iter().filter(|s| **s > 0.0).count(), MAX_HISTORY - 1);
    }
}
