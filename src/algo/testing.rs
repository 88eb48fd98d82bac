//! Fixtures shared by the algorithms' unit tests.

use super::{Csr, History, Scorer};

/// A scorer with fixed scores, to check ranking and metric arithmetic by hand.
pub struct Fixed(pub Vec<f32>);

impl Scorer for Fixed {
    fn score(&self, _: Option<usize>, _: History<'_>, scores: &mut [f32]) {
        scores.copy_from_slice(&self.0);
    }
}

/// 20 users × 10 items in two blocks with disjoint tastes: users 0–9 like items 0–4, users 10–19
/// items 5–9, and each user misses one item of their block (`u % 5`).
pub fn two_blocks() -> Csr {
    let mut t = Vec::new();
    for u in 0..20u32 {
        let block = if u < 10 { 0 } else { 5 };
        for i in (0..5u32).filter(|&i| i != u % 5) {
            t.push((u, block + i, 1.0));
        }
    }
    Csr::from_triplets(20, 10, t)
}

/// Asserts that the model ranks each sampled user's missing item of their own block above every
/// item of the other block.
pub fn assert_prefers_own_block(model: &dyn Scorer, ui: &Csr) {
    let mut scores = vec![0.0; 10];
    for u in [0usize, 3, 12, 19] {
        model.score(Some(u), History::of(ui, u), &mut scores);
        let missing = if u < 10 { u % 5 } else { 5 + u % 5 };
        let other = if u < 10 { 5..10 } else { 0..5 };
        assert!(
            other.clone().all(|j| scores[missing] > scores[j]),
            "user {u}: {scores:?}"
        );
    }
}
