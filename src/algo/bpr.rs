//! Bayesian personalised ranking (Rendle et al. 2009): matrix factorisation trained by stochastic
//! gradient ascent on `ln σ(x_ui − x_uj)` for an observed item `i` and a sampled unobserved item `j`,
//! with an item bias. Samples are drawn uniformly over observed interactions; a sampled negative that
//! the user did interact with is redrawn. Deterministic for a seed (single-threaded: the whole fit of
//! ML-100K takes well under a second).

use std::sync::OnceLock;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::factors::ItemBlocks;
use super::{Csr, History, Scorer, dot};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub factors: usize,
    pub iterations: usize,
    pub learning_rate: f32,
    pub regularization: f32,
    pub seed: u64,
    /// Most SGD steps in all (epochs are cut to fit): BPR runs on one thread, and 100 epochs of a
    /// ten-million-interaction matrix would take far longer than every other model together.
    pub max_samples: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            factors: 64,
            iterations: 100,
            learning_rate: 0.05,
            regularization: 0.01,
            seed: 42,
            max_samples: 40_000_000,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Bpr {
    pub factors: usize,
    pub user_factors: Vec<f32>,
    pub item_factors: Vec<f32>,
    pub item_bias: Vec<f32>,
    /// The item factors laid out for scoring every item (derived on first use, not stored).
    #[serde(skip)]
    blocks: OnceLock<ItemBlocks>,
}

pub fn fit(user_items: &Csr, p: Params) -> Bpr {
    let k = p.factors;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let scale = 1.0 / (k as f32).sqrt();
    let mut users: Vec<f32> = (0..user_items.n_rows * k)
        .map(|_| (rng.random::<f32>() - 0.5) * scale)
        .collect();
    let mut items: Vec<f32> = (0..user_items.n_cols * k)
        .map(|_| (rng.random::<f32>() - 0.5) * scale)
        .collect();
    let mut bias = vec![0f32; user_items.n_cols];
    // Row of every stored interaction, to sample (user, item) pairs uniformly.
    let row_of: Vec<u32> = (0..user_items.n_rows)
        .flat_map(|u| std::iter::repeat_n(u as u32, user_items.row_len(u)))
        .collect();
    let n_items = user_items.n_cols as u32;
    let mut du = vec![0f32; k];
    let epochs = p
        .iterations
        .min(p.max_samples / user_items.nnz().max(1))
        .max(1);
    for _ in 0..epochs {
        for _ in 0..user_items.nnz() {
            let s = rng.random_range(0..row_of.len());
            let u = row_of[s] as usize;
            let i = user_items.indices[s] as usize;
            if user_items.row_len(u) as u32 >= n_items {
                continue; // nothing to contrast with
            }
            let j = loop {
                let j = rng.random_range(0..n_items);
                if !user_items.contains(u, j) {
                    break j as usize;
                }
            };
            let (uf, vi, vj) = (u * k, i * k, j * k);
            let x = bias[i] - bias[j]
                + (0..k)
                    .map(|d| users[uf + d] * (items[vi + d] - items[vj + d]))
                    .sum::<f32>();
            let z = 1.0 / (1.0 + x.exp()); // σ(−x): the gradient's weight
            let (lr, reg) = (p.learning_rate, p.regularization);
            bias[i] += lr * (z - reg * bias[i]);
            bias[j] += lr * (-z - reg * bias[j]);
            for d in 0..k {
                du[d] = z * (items[vi + d] - items[vj + d]) - reg * users[uf + d];
            }
            for d in 0..k {
                let ud = users[uf + d];
                items[vi + d] += lr * (z * ud - reg * items[vi + d]);
                items[vj + d] += lr * (-z * ud - reg * items[vj + d]);
                users[uf + d] += lr * du[d];
            }
        }
    }
    Bpr {
        factors: k,
        user_factors: users,
        item_factors: items,
        item_bias: bias,
        blocks: OnceLock::new(),
    }
}

impl Bpr {
    /// A newcomer's factors: the mean of their items' factors (BPR has no closed-form fold-in).
    fn fold_in(&self, history: History<'_>) -> Vec<f32> {
        let k = self.factors;
        let mut x = vec![0f32; k];
        let total: f32 = history.weights.iter().sum::<f32>().max(f32::MIN_POSITIVE);
        for (&i, &w) in history.items.iter().zip(history.weights) {
            let v = &self.item_factors[i as usize * k..(i as usize + 1) * k];
            x.iter_mut().zip(v).for_each(|(a, b)| *a += w * b / total);
        }
        x
    }
}

impl Bpr {
    /// The item factors laid out for scoring every item at once.
    pub fn blocks(&self) -> &ItemBlocks {
        self.blocks
            .get_or_init(|| ItemBlocks::from_rows(&self.item_factors, self.factors))
    }

    /// The user's factors: their trained row, or folded in from the history.
    pub fn user_vector(&self, user: Option<usize>, history: History<'_>) -> Vec<f32> {
        let k = self.factors;
        match user {
            Some(u) if (u + 1) * k <= self.user_factors.len() => {
                self.user_factors[u * k..(u + 1) * k].to_vec()
            }
            _ => self.fold_in(history),
        }
    }

    /// One item's score for a user vector.
    pub fn score_one(&self, x: &[f32], i: u32) -> f32 {
        let (i, k) = (i as usize, self.factors);
        self.item_bias[i] + dot(x, &self.item_factors[i * k..(i + 1) * k])
    }
}

impl Scorer for Bpr {
    fn score(&self, user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        let x = self.user_vector(user, history);
        // The same sum as `score_one`, item for item: bias + dot (addition commutes exactly).
        self.blocks().scores(&x, scores);
        for (s, &b) in scores.iter_mut().zip(&self.item_bias) {
            *s += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::testing::{assert_prefers_own_block, two_blocks};

    #[test]
    fn ranks_own_block_above_the_other() {
        let ui = two_blocks();
        let m = fit(
            &ui,
            Params {
                factors: 8,
                iterations: 200,
                ..Default::default()
            },
        );
        assert_prefers_own_block(&m, &ui);
        assert_eq!(
            fit(
                &ui,
                Params {
                    factors: 8,
                    iterations: 5,
                    ..Default::default()
                }
            )
            .user_factors,
            fit(
                &ui,
                Params {
                    factors: 8,
                    iterations: 5,
                    ..Default::default()
                }
            )
            .user_factors,
            "deterministic for a seed"
        );
    }
}
