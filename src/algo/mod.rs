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
pub mod itemknn;
pub mod matrix;
pub mod popularity;

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
