//! The popularity and recency order of the live catalogue, rebuilt in the background from the
//! state's counts and swapped in whole, so sorting never blocks a request.

use super::state::RankingInputs;

/// The popularity and recency order, rebuilt in the background.
#[derive(Debug, Default)]
pub struct Ranking {
    /// Item indices by descending popularity (ties: newer first, then id).
    pub popular: Vec<u32>,
    /// Item indices by descending timestamp.
    pub latest: Vec<u32>,
    /// Each item's count of positive rows when this order was taken, by index (the score the
    /// popular lists show, so that it agrees with their order).
    pub popularity: Vec<f64>,
}

impl Ranking {
    /// Item `i`'s popularity as of this ranking (0 for items new since).
    pub fn popularity(&self, i: u32) -> f64 {
        self.popularity.get(i as usize).copied().unwrap_or(0.0)
    }
}

/// Sorts the live items by popularity (ties: newer, then id) and by recency.
pub fn rank(mut inputs: RankingInputs) -> Ranking {
    let len = inputs.iter().map(|x| x.0 as usize + 1).max().unwrap_or(0);
    let mut popularity = vec![0.0; len];
    for x in &inputs {
        popularity[x.0 as usize] = x.1;
    }
    inputs.sort_unstable_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.2.cmp(&a.2))
            .then_with(|| a.3.cmp(&b.3))
    });
    let popular = inputs.iter().map(|x| x.0).collect();
    inputs.sort_unstable_by(|a, b| b.2.cmp(&a.2).then_with(|| a.3.cmp(&b.3)));
    let latest = inputs.iter().map(|x| x.0).collect();
    Ranking {
        popular,
        latest,
        popularity,
    }
}
