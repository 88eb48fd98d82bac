//! EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): an item-item weight
//! matrix in closed form. With `G = XᵀX + λI` over the binary users × items matrix `X` and
//! `P = G⁻¹`, the weights are `B_ij = -P_ij / P_jj` (a zero diagonal), and a user's score for item
//! `j` is `Σ_i x_i B_ij`: the sum of the rows of `B` of the user's items.
//!
//! The fit inverts a dense catalogue × catalogue matrix (Cholesky, in `f64` through nalgebra, the
//! crate ALS already uses), so it is for catalogues up to [`Params::max_items`]: its time grows
//! with the cube of the catalogue and its weights with the square (1,682 items: 11 MB).

use nalgebra::DMatrix;

use super::{Csr, History, Scorer};

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
/// item's score.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ease {
    n: usize,
    weights: Vec<f32>,
}

impl Ease {
    /// Whether the weights are those of an `n`-item catalogue (a decoded snapshot's check).
    pub fn fits(&self, n: usize) -> bool {
        self.n == n && self.weights.len() == n * n
    }

    /// The row of item `i`: what it adds to every item's score.
    pub fn row(&self, i: u32) -> &[f32] {
        &self.weights[i as usize * self.n..][..self.n]
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
    Some(Ease { n, weights })
}

/// Most history items a score sums rows of (the heaviest: under recency, the newest): a request's
/// work stays at most this many catalogue-long rows, however long the history.
pub const MAX_HISTORY: usize = 1000;

impl Scorer for Ease {
    fn score(&self, _user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        scores.fill(0.0);
        let mut rows: Vec<(u32, f32)> = history
            .items
            .iter()
            .copied()
            .zip(history.weights.iter().copied())
            .collect();
        if rows.len() > MAX_HISTORY {
            rows.select_nth_unstable_by(MAX_HISTORY, |a, b| b.1.total_cmp(&a.1));
            rows.truncate(MAX_HISTORY);
        }
        self.add_rows(&rows, scores);
    }
}

impl Ease {
    /// `scores += Σ x × row(i)` over `rows`, in their order. Four rows share each pass over
    /// `scores`, which is then loaded and stored once per four rows instead of once per row; each
    /// item's sum still adds row after row in the same order (no fused multiply-add), so the scores
    /// are bit-identical to adding one row at a time. With AVX2 (detected at run time, as in
    /// [`super::factors`]) the same loop is compiled eight items wide.
    fn add_rows(&self, rows: &[(u32, f32)], scores: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just found to support AVX2, the only requirement of the call.
            unsafe { self.add_rows_avx2(rows, scores) };
            return;
        }
        self.add_rows_portable(rows, scores);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn add_rows_avx2(&self, rows: &[(u32, f32)], scores: &mut [f32]) {
        self.add_rows_portable(rows, scores);
    }

    #[inline(always)]
    fn add_rows_portable(&self, rows: &[(u32, f32)], scores: &mut [f32]) {
        let n = scores.len().min(self.n);
        let scores = &mut scores[..n];
        let mut quads = rows.chunks_exact(4);
        for quad in &mut quads {
            let [(a, xa), (b, xb), (c, xc), (d, xd)] = [quad[0], quad[1], quad[2], quad[3]];
            let (a, b, c, d) = (
                &self.row(a)[..n],
                &self.row(b)[..n],
                &self.row(c)[..n],
                &self.row(d)[..n],
            );
            for j in 0..n {
                scores[j] = scores[j] + xa * a[j] + xb * b[j] + xc * c[j] + xd * d[j];
            }
        }
        for &(i, x) in quads.remainder() {
            for (s, &w) in scores.iter_mut().zip(self.row(i)) {
                *s += x * w;
            }
        }
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
            assert_eq!(model.weights[i * 10 + i], 0.0);
            for j in 0..10 {
                if (i < 5) != (j < 5) {
                    assert!(model.weights[i * 10 + j] <= 0.0, "{i} -> {j}");
                }
            }
        }
        let small = Params {
            max_items: 9,
            ..Params::default()
        };
        assert!(fit(&ui, small).is_none(), "over the catalogue limit");
    }

    /// Rows added four at a time give each item the bits of adding them one at a time, for
    /// histories that do and do not fill their last four and catalogues of any width.
    #[test]
    fn rows_in_fours_add_as_rows_one_by_one() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for n in [1, 7, 8, 9, 33, 1682] {
            let weights: Vec<f32> = (0..n * n).map(|_| rng.random::<f32>() - 0.5).collect();
            let model = Ease { n, weights };
            for len in [0, 1, 3, 4, 5, 9, 13] {
                let rows: Vec<(u32, f32)> = (0..len)
                    .map(|_| (rng.random_range(0..n as u32), rng.random::<f32>() * 2.0))
                    .collect();
                let mut want = vec![0f32; n];
                for &(i, x) in &rows {
                    for (s, &w) in want.iter_mut().zip(model.row(i)) {
                        *s += x * w;
                    }
                }
                let mut got = vec![0f32; n];
                model.add_rows(&rows, &mut got);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{n} items, {len} rows");
                let mut portable = vec![0f32; n];
                model.add_rows_portable(&rows, &mut portable);
                assert_eq!(bits(&portable), bits(&want), "{n} items, {len} rows");
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
        let model = Ease { n, weights };
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
