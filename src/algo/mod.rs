//! Recommendation algorithms over compact integer ids, shared by the engines, training and offline
//! evaluation. Each algorithm is its own module with a `fit` that builds an immutable model and a
//! [`Scorer`] implementation that scores every item for a user from the user's history alone, so the
//! same fitted model serves known users, new users and anonymous sessions.
//!
//! Nothing here touches the database or async code: fitting is CPU work meant for blocking threads
//! (rayon inside).

pub mod als;
pub mod blend;
pub mod bpr;
pub mod content;
pub mod diversity;
pub mod itemknn;
pub mod matrix;
pub mod popularity;
#[cfg(test)]
pub(crate) mod testing;

pub use matrix::Csr;

/// A user's history: item indices (sorted, unique) and their weights.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub items: &'a [u32],
    pub weights: &'a [f32],
}

impl<'a> History<'a> {
    pub fn of(matrix: &'a Csr, user: usize) -> Self {
        let (items, weights) = matrix.row(user);
        Self { items, weights }
    }
}

/// Something that scores items for a user: higher is better.
pub trait Scorer: Send + Sync {
    /// Writes a score for every item into `scores` (its length is the item count). `user` is the
    /// user's row in the training matrix, when the user was known at training time.
    fn score(&self, user: Option<usize>, history: History<'_>, scores: &mut [f32]);

    /// The final `n` items from the scores, skipping `exclude` (sorted): by default the best
    /// scores; a diversifying scorer re-ranks.
    fn rank(&self, scores: &[f32], exclude: &[u32], n: usize) -> Vec<u32> {
        top_n(scores, exclude, n)
    }
}

/// The `n` best items by score, best first, skipping `exclude` (sorted) and non-finite scores.
pub fn top_n(scores: &[f32], exclude: &[u32], n: usize) -> Vec<u32> {
    let mut candidates: Vec<(f32, u32)> = scores
        .iter()
        .enumerate()
        .filter(|(i, s)| s.is_finite() && exclude.binary_search(&(*i as u32)).is_err())
        .map(|(i, &s)| (s, i as u32))
        .collect();
    let by_score = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if candidates.len() > n {
        candidates.select_nth_unstable_by(n, by_score);
        candidates.truncate(n);
    }
    candidates.sort_unstable_by(by_score);
    candidates.into_iter().map(|(_, i)| i).collect()
}

/// Keeps the `k` most similar entries, best first (ties by index).
pub(crate) fn top_k_similar(mut sims: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    let by_sim = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if sims.len() > k {
        sims.select_nth_unstable_by(k, by_sim);
        sims.truncate(k);
    }
    sims.sort_unstable_by(by_sim);
    sims
}

/// Scores items by their summed similarity to the history's items, weighted by the history.
pub(crate) fn score_by_neighbours(
    neighbours: &[Vec<(u32, f32)>],
    history: History<'_>,
    scores: &mut [f32],
) {
    scores.fill(0.0);
    for (&j, &w) in history.items.iter().zip(history.weights) {
        for &(i, sim) in &neighbours[j as usize] {
            scores[i as usize] += sim * w;
        }
    }
}

/// NDCG@`k` of a ranked list against sorted relevant items (binary relevance).
pub fn ndcg_at(top: &[u32], relevant: &[u32], k: usize) -> f64 {
    let dcg: f64 = top
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, i)| relevant.binary_search(i).is_ok())
        .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(k))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

/// Dot product of two factor vectors.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn top_n_orders_and_excludes() {
        let scores = [0.5, 3.0, f32::NEG_INFINITY, 2.0, 3.0];
        assert_eq!(super::top_n(&scores, &[], 3), [1, 4, 3]);
        assert_eq!(super::top_n(&scores, &[1], 2), [4, 3]);
        assert_eq!(super::top_n(&scores, &[], 10), [1, 4, 3, 0]);
    }
}
