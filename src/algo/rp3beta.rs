//! RP3beta (Paudel et al., "Updatable, accurate, diverse, and scalable recommendations for
//! interactive applications", 2017): a three-step random walk user → item → user → item on the
//! interaction graph, with each transition probability raised to `alpha` and the walk's arrival at
//! item `j` divided by `popularity(j)^beta`, so that popular items do not win every walk. The
//! similarity of `i` to `j` is
//!
//! `w(i, j) = |U_i|^-alpha · Σ_{u ∈ U_i ∩ U_j} |I_u|^-alpha / |U_j|^beta`
//!
//! (`U_i`: the users of item `i`, `I_u`: the items of user `u`), the top `k` per item kept. Unlike
//! item-to-item's cosine it is not symmetric, so it is a peer of `reco evaluate`, not a source of
//! "because you liked" (`super::reasons` relies on symmetry). A user's score for `j` is the sum of
//! `w(i, j)` over the history, weighted like item-to-item's.

use rayon::prelude::*;

use super::{Csr, History, Scorer, co_occurrences, score_by_neighbours, top_k_similar};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Neighbours kept per item.
    pub k: usize,
    /// The exponent on each transition probability (1: the plain random walk).
    pub alpha: f32,
    /// The popularity penalty on the walk's destination (0: none).
    pub beta: f32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            k: 100,
            alpha: 1.0,
            beta: 0.3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rp3Beta {
    /// For item i: (j, w(i, j)), best first (ties by index).
    pub neighbours: Vec<Vec<(u32, f32)>>,
}

/// Fits on a users × items matrix (weights are treated as presence).
pub fn fit(user_items: &Csr, params: Params) -> Rp3Beta {
    let item_users = user_items.transpose();
    let n_items = user_items.n_cols;
    let power = |n: usize, e: f32| if n == 0 { 0.0 } else { (n as f32).powf(-e) };
    // |I_u|^-alpha per user; |U_i|^-alpha and |U_j|^-beta per item.
    let user_step: Vec<f32> = (0..user_items.n_rows)
        .map(|u| power(user_items.row_len(u), params.alpha))
        .collect();
    let item_step: Vec<f32> = (0..n_items)
        .map(|i| power(item_users.row_len(i), params.alpha))
        .collect();
    let penalty: Vec<f32> = (0..n_items)
        .map(|j| power(item_users.row_len(j), params.beta))
        .collect();
    let neighbours = (0..n_items)
        .into_par_iter()
        .map_init(
            || vec![0f32; n_items],
            |walk, i| {
                let step = |u: u32| user_step[u as usize];
                let sims: Vec<(u32, f32)> = co_occurrences(user_items, &item_users, i, step, walk)
                    .into_iter()
                    .map(|(j, w)| (j, w * item_step[i] * penalty[j as usize]))
                    .collect();
                top_k_similar(sims, params.k)
            },
        )
        .collect();
    Rp3Beta { neighbours }
}

impl Scorer for Rp3Beta {
    fn score(&self, _user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        score_by_neighbours(&self.neighbours, history, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_and_its_penalty_by_hand() {
        // users: 0 = {0,1}, 1 = {0,1,2}, 2 = {0,2}
        let ui = Csr::from_triplets(
            3,
            3,
            vec![
                (0, 0, 1.0),
                (0, 1, 1.0),
                (1, 0, 1.0),
                (1, 1, 1.0),
                (1, 2, 1.0),
                (2, 0, 1.0),
                (2, 2, 1.0),
            ],
        );
        let params = Params {
            k: 10,
            alpha: 1.0,
            beta: 0.5,
        };
        let m = fit(&ui, params);
        // From item 0 (3 users): to 1 via users 0 (2 items) and 1 (3 items); 1 has 2 users.
        let w01 = (1.0 / 3.0) * (1.0 / 2.0 + 1.0 / 3.0) / 2f32.sqrt();
        // To 2 via users 1 and 2 (2 items); 2 has 2 users.
        let w02 = (1.0 / 3.0) * (1.0 / 3.0 + 1.0 / 2.0) / 2f32.sqrt();
        // From item 1 (2 users) to 0 (3 users) via users 0 and 1.
        let w10 = (1.0 / 2.0) * (1.0 / 2.0 + 1.0 / 3.0) / 3f32.sqrt();
        let find = |i: usize, j: u32| m.neighbours[i].iter().find(|x| x.0 == j).unwrap().1;
        assert!((find(0, 1) - w01).abs() < 1e-6);
        assert!((find(0, 2) - w02).abs() < 1e-6);
        assert!((find(1, 0) - w10).abs() < 1e-6);
        assert_ne!(find(0, 1), find(1, 0), "the walk is not symmetric");
        // A user who holds item 1 gets 0 ahead of 2 (one shared user each, 0 twice as close).
        let mut scores = vec![0.0; 3];
        m.score(
            None,
            History {
                items: &[1],
                weights: &[1.0],
            },
            &mut scores,
        );
        assert!((scores[0] - w10).abs() < 1e-6 && scores[0] > scores[2] && scores[2] > 0.0);
        // beta = 0 and alpha = 1: each row of the plain walk sums to 1 less the walk back to i.
        let walk = fit(
            &ui,
            Params {
                k: 10,
                alpha: 1.0,
                beta: 0.0,
            },
        );
        let back: f32 = (1.0 / 3.0) * (1.0 / 2.0 + 1.0 / 3.0 + 1.0 / 2.0);
        let row: f32 = walk.neighbours[0].iter().map(|x| x.1).sum();
        assert!((row + back - 1.0).abs() < 1e-6);
    }
}
