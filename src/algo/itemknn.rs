//! Item-to-item collaborative filtering: cosine similarity of items' user sets with shrinkage,
//! keeping the top-K neighbours per item. A user's score for an item is the sum of its similarities
//! to the items in the user's history, weighted by the history's weights.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::{
    Csr, History, Scorer, co_occurrences, compact, score_by_nearest, score_by_neighbours,
    top_k_similar,
};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Neighbours kept per item.
    pub k: usize,
    /// Added to the cosine denominator: damps similarities backed by few common users.
    pub shrinkage: f32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            k: 100,
            shrinkage: 10.0,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ItemKnn {
    /// For item i: (neighbour, similarity), best first (ties by index). Symmetric: `j` holds `i`
    /// with the same similarity as `i` holds `j`, whenever both hold each other.
    pub neighbours: Vec<Vec<(u32, f32)>>,
    /// The length of the longest list (derived on first use, not stored).
    #[serde(skip)]
    longest: OnceLock<usize>,
    /// The lists as catalogue-long rows, when they are long for their catalogue (derived on
    /// first use, not stored).
    #[serde(skip)]
    dense: OnceLock<Option<Dense>>,
    /// The same rows of each list's first [`FAST_NEIGHBOURS`] (`fast`'s sums), when they pay.
    #[serde(skip)]
    nearest: OnceLock<Option<Dense>>,
}

/// Every neighbour list as one catalogue-long row of similarities (zero where an item is not a
/// neighbour) in bytes, each row with its own step (its largest similarity over 255; every
/// neighbour keeps at least one step, so none is lost), for catalogues of at most
/// [`MAX_DENSE_ITEMS`] whose lists hold at least a sixteenth of the catalogue on average.
/// Scoring then adds rows eight items per instruction ([`compact::add_byte_rows`]) instead of
/// one neighbour at a time: on MovieLens 100K (400 neighbours of 1,682 items) the
/// neighbour-by-neighbour sum was the largest part of a `quality` request, and a row is half the
/// list's bytes (1.7 KB against 3.2 KB). NDCG@10 of item-to-item moved by at most 0.0007 on
/// MovieLens' three splits. `fast`'s sums (each list's first [`FAST_NEIGHBOURS`]) have rows of
/// their own, read when a request touches most of the catalogue anyway, with one step for all
/// rows (the largest similarity over 255): `fast` adds its rows unweighted, so a shared step
/// lets it count them in integers ([`compact::count_byte_rows`]).
#[derive(Debug, Clone)]
struct Dense {
    n: usize,
    /// What one unit of each row is worth: its largest similarity over 255, or (`shared`) the
    /// largest of all.
    steps: Vec<f32>,
    shared: Option<f32>,
    rows: Vec<u8>,
}

/// The largest catalogue with dense rows: 32 MiB of them.
pub const MAX_DENSE_ITEMS: usize = 4096;

impl Dense {
    /// The rows of each list's first `cap` neighbours, when they pay; `shared`: with one step.
    fn of(lists: &[Vec<(u32, f32)>], cap: usize, shared: bool) -> Option<Self> {
        let n = lists.len();
        let lists: Vec<&[(u32, f32)]> = lists.iter().map(|l| &l[..l.len().min(cap)]).collect();
        let entries: usize = lists.iter().map(|l| l.len()).sum();
        if n == 0 || n > MAX_DENSE_ITEMS || entries * 16 < n * n {
            return None;
        }
        let largest = |list: &[(u32, f32)]| list.iter().fold(0f32, |m, &(_, s)| m.max(s));
        let shared = shared.then(|| lists.iter().fold(0f32, |m, l| m.max(largest(l))) / 255.0);
        let mut rows = vec![0u8; n * n];
        let mut steps = vec![0f32; n];
        for ((row, &list), step) in rows.chunks_exact_mut(n).zip(&lists).zip(&mut steps) {
            *step = shared.unwrap_or(largest(list) / 255.0);
            for &(i, sim) in list {
                row[i as usize] = (sim / *step).round().clamp(1.0, 255.0) as u8;
            }
        }
        Some(Self {
            n,
            steps,
            shared,
            rows,
        })
    }

    fn row(&self, i: u32) -> &[u8] {
        &self.rows[i as usize * self.n..][..self.n]
    }
}

/// Fits on a users × items matrix (weights are treated as presence).
pub fn fit(user_items: &Csr, params: Params) -> ItemKnn {
    let item_users = user_items.transpose();
    let n_items = user_items.n_cols;
    let counts: Vec<f32> = (0..n_items).map(|i| item_users.row_len(i) as f32).collect();
    let neighbours = (0..n_items)
        .into_par_iter()
        .map_init(
            || vec![0f32; n_items],
            |co, i| {
                let sims: Vec<(u32, f32)> = co_occurrences(user_items, &item_users, i, |_| 1.0, co)
                    .into_iter()
                    .map(|(j, c)| {
                        let norm = (counts[i] * counts[j as usize]).sqrt() + params.shrinkage;
                        (j, c / norm)
                    })
                    .collect();
                top_k_similar(sims, params.k)
            },
        )
        .collect();
    ItemKnn::new(neighbours)
}

/// Neighbours per history item that `fast` sums, at most: the lists are best first, and the
/// number kept per item is chosen on validation for `quality`'s blend (400 on MovieLens), which
/// would make the cheap engine's work grow with it (twice the sums at 400). On MovieLens' three
/// splits `fast`'s NDCG@10 moved by at most 0.001 (100 cost 0.009 on the random split).
pub const FAST_NEIGHBOURS: usize = 200;

impl ItemKnn {
    /// From each item's neighbour list, best first.
    pub fn new(neighbours: Vec<Vec<(u32, f32)>>) -> Self {
        Self {
            neighbours,
            longest: OnceLock::new(),
            dense: OnceLock::new(),
            nearest: OnceLock::new(),
        }
    }

    /// Builds the scoring layout (the dense rows, when they pay) now rather than on first use.
    pub fn prepare(&self) {
        self.dense();
        self.nearest_rows();
    }

    fn nearest_rows(&self) -> Option<&Dense> {
        self.nearest
            .get_or_init(|| Dense::of(&self.neighbours, FAST_NEIGHBOURS, true))
            .as_ref()
    }

    /// Adds `x` times the first [`FAST_NEIGHBOURS`] similarities of each `(source, x)` to
    /// `sums` (at most the catalogue long) as byte rows, when the lists are long for their
    /// catalogue (see [`Dense`]); `false`, and nothing added, otherwise. Unweighted sources
    /// (every `x` 1, as `fast`'s) are counted in integers.
    pub fn add_nearest_rows(&self, sources: &[(u32, f32)], sums: &mut [f32]) -> bool {
        let Some(rows) = self.nearest_rows() else {
            return false;
        };
        let n = sums.len().min(rows.n);
        if let Some(step) = rows.shared.filter(|_| sources.iter().all(|s| s.1 == 1.0)) {
            let counted: Vec<&[u8]> = sources.iter().map(|&(j, _)| rows.row(j)).collect();
            compact::count_byte_rows(&counted, step, &mut sums[..n]);
            return true;
        }
        let rows_of = sources
            .iter()
            .map(|&(j, x)| (rows.row(j), x * rows.steps[j as usize]));
        compact::add_byte_rows(rows_of, &mut sums[..n]);
        true
    }

    /// Whether scoring adds catalogue-long rows (see [`Dense`]) rather than neighbour lists.
    pub fn dense_rows(&self) -> bool {
        self.dense().is_some()
    }

    fn dense(&self) -> Option<&Dense> {
        self.dense
            .get_or_init(|| Dense::of(&self.neighbours, usize::MAX, false))
            .as_ref()
    }

    /// Item `i`'s `cap` most similar neighbours (all of them when it has fewer).
    pub fn nearest(&self, i: u32, cap: usize) -> &[(u32, f32)] {
        let list = &self.neighbours[i as usize];
        &list[..list.len().min(cap)]
    }

    /// The length of the longest neighbour list: shorter lists hold every co-occurring item.
    pub fn longest(&self) -> usize {
        *self
            .longest
            .get_or_init(|| self.neighbours.iter().map(Vec::len).max().unwrap_or(0))
    }
}

impl Scorer for ItemKnn {
    fn score(&self, _user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        let Some(dense) = self.dense() else {
            score_by_neighbours(&self.neighbours, history, scores);
            return;
        };
        scores.fill(0.0);
        let n = scores.len().min(dense.n);
        let rows = (history.items.iter().zip(history.weights))
            .map(|(&j, &w)| (dense.row(j), w * dense.steps[j as usize]));
        compact::add_byte_rows(rows, &mut scores[..n]);
    }
}

/// Item-to-item scoring from each history item's `cap` nearest neighbours only (`fast`'s sums).
pub struct Nearest<'a> {
    pub knn: &'a ItemKnn,
    pub cap: usize,
}

impl Scorer for Nearest<'_> {
    fn score(&self, _user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        if self.cap == FAST_NEIGHBOURS {
            scores.fill(0.0);
            let sources: Vec<(u32, f32)> = (history.items.iter().copied())
                .zip(history.weights.iter().copied())
                .collect();
            if self.knn.add_nearest_rows(&sources, scores) {
                return;
            }
        }
        score_by_nearest(&self.knn.neighbours, self.cap, history, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_with_shrinkage_by_hand() {
        // users: 0 = {0,1}, 1 = {0,1}, 2 = {0,2}
        let ui = Csr::from_triplets(
            3,
            3,
            vec![
                (0, 0, 1.0),
                (0, 1, 1.0),
                (1, 0, 1.0),
                (1, 1, 1.0),
                (2, 0, 1.0),
                (2, 2, 1.0),
            ],
        );
        let m = fit(
            &ui,
            Params {
                k: 10,
                shrinkage: 1.0,
            },
        );
        // sim(0,1) = 2 / (sqrt(3*2) + 1); sim(0,2) = 1 / (sqrt(3*1) + 1)
        let s01 = 2.0 / (6f32.sqrt() + 1.0);
        let s02 = 1.0 / (3f32.sqrt() + 1.0);
        assert_eq!(
            m.neighbours[0].iter().map(|x| x.0).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(
            (m.neighbours[0][0].1 - s01).abs() < 1e-6 && (m.neighbours[0][1].1 - s02).abs() < 1e-6
        );
        assert!(
            m.neighbours[1].iter().all(|&(j, _)| j == 0),
            "1 and 2 never co-occur"
        );
        let mut scores = vec![0.0; 3];
        m.score(
            None,
            History {
                items: &[1],
                weights: &[1.0],
            },
            &mut scores,
        );
        assert!((scores[0] - s01).abs() < 1e-6 && scores[2] == 0.0);
        let m = fit(
            &ui,
            Params {
                k: 1,
                shrinkage: 1.0,
            },
        );
        assert_eq!(m.neighbours[0].len(), 1);
    }

    /// Lists long for their catalogue are scored as byte rows, to within a step of each
    /// similarity of the lists' own sums; short lists keep the lists.
    #[test]
    fn dense_rows_score_as_the_lists() {
        let ui = crate::algo::testing::two_blocks();
        let model = fit(
            &ui,
            Params {
                k: 10,
                shrinkage: 1.0,
            },
        );
        assert!(model.dense_rows(), "ten items, lists of up to ten");
        let items = [0u32, 2, 3];
        let weights = [1.0f32, 0.5, 0.25];
        let history = History {
            items: &items,
            weights: &weights,
        };
        let mut dense = vec![0f32; 10];
        model.score(None, history, &mut dense);
        let mut lists = vec![0f32; 10];
        score_by_neighbours(&model.neighbours, history, &mut lists);
        let step = model
            .neighbours
            .iter()
            .flatten()
            .fold(0f32, |m, x| m.max(x.1))
            / 255.0;
        for (d, l) in dense.iter().zip(&lists) {
            assert!((d - l).abs() <= step * 1.75 / 2.0 + 1e-6, "{d} vs {l}");
        }
        // `fast`'s sums: each list's first neighbours with one step for all rows, unweighted,
        // counted; each of the three rows within a step (a similarity under half a step keeps
        // one).
        let mut nearest = vec![0f32; 10];
        let sources: Vec<(u32, f32)> = items.iter().map(|&j| (j, 1.0)).collect();
        assert!(model.add_nearest_rows(&sources, &mut nearest));
        let ones = [1.0f32; 3];
        let unweighted = History {
            items: &items,
            weights: &ones,
        };
        score_by_nearest(&model.neighbours, FAST_NEIGHBOURS, unweighted, &mut lists);
        for (d, l) in nearest.iter().zip(&lists) {
            assert!((d - l).abs() <= step * 3.0 + 1e-6, "{d} vs {l}");
            assert_eq!(*d > 0.0, *l > 0.0, "the same items touched");
        }
        let sparse = ItemKnn::new((0..100).map(|i| vec![((i + 1) % 100, 0.5)]).collect());
        assert!(!sparse.dense_rows(), "one neighbour of 100 items");
        let mut untouched = vec![0f32; 100];
        assert!(!sparse.add_nearest_rows(&[(0, 1.0)], &mut untouched));
        assert!(untouched.iter().all(|&s| s == 0.0));
    }
}
