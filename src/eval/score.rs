//! Scoring a model on a split: the metrics of `reco evaluate` and the validation score tuning
//! and the blend weights choose by.

use rayon::prelude::*;
use serde::Serialize;

use super::data::EvalData;
use crate::algo::{History, Scorer, ndcg_at, recency};

/// Quality of one model on one split.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Metrics {
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub hit_rate: f64,
    pub coverage: f64,
    /// Users evaluated (those with test items).
    pub users: usize,
}

/// One user's scores and top list.
struct UserResult {
    precision: f64,
    recall: f64,
    ndcg: f64,
    hit: f64,
    top: Vec<u32>,
}

/// Ranks the catalogue for every test user and scores the top `k`.
pub fn evaluate(scorer: &dyn Scorer, data: &EvalData, k: usize) -> Metrics {
    let n_items = data.train.n_cols;
    let users: Vec<usize> = (0..data.train.n_rows)
        .filter(|&u| !data.test[u].is_empty())
        .collect();
    let per_user = results(scorer, data, k, &users, None);
    let evaluated = per_user.len().max(1) as f64;
    let mut recommended = vec![false; n_items];
    for r in &per_user {
        for &i in &r.top {
            recommended[i as usize] = true;
        }
    }
    let mean = |f: fn(&UserResult) -> f64| per_user.iter().map(f).sum::<f64>() / evaluated;
    Metrics {
        precision: mean(|r| r.precision),
        recall: mean(|r| r.recall),
        ndcg: mean(|r| r.ndcg),
        hit_rate: mean(|r| r.hit),
        coverage: recommended.iter().filter(|r| **r).count() as f64 / n_items.max(1) as f64,
        users: per_user.len(),
    }
}

/// Mean NDCG@10 over `users` (rows of `data` with test items): what tuning and the blend weights
/// choose by on a validation split.
pub fn validation_ndcg(scorer: &dyn Scorer, data: &EvalData, users: &[usize]) -> f64 {
    validation_ndcg_weighted(scorer, data, users, None)
}

/// [`validation_ndcg`] with each history weighted by recency at `history_half_life` (see
/// `algo::recency`; `None`: as the matrix weighs it), without changing `data`.
pub fn validation_ndcg_weighted(
    scorer: &dyn Scorer,
    data: &EvalData,
    users: &[usize],
    history_half_life: Option<f64>,
) -> f64 {
    let per_user = results(scorer, data, 10, users, history_half_life);
    per_user.iter().map(|r| r.ndcg).sum::<f64>() / per_user.len().max(1) as f64
}

/// Each of `users` ranked by `scorer` (the catalogue minus their training items) and scored, their
/// histories weighted by recency at `history_half_life` when given.
fn results(
    scorer: &dyn Scorer,
    data: &EvalData,
    k: usize,
    users: &[usize],
    history_half_life: Option<f64>,
) -> Vec<UserResult> {
    users
        .par_iter()
        .map_init(
            || (vec![0f32; data.train.n_cols], Vec::new()),
            |(scores, weights), &u| {
                let mut history = History::of(&data.train, u);
                if let Some(half_life) = history_half_life {
                    weights.clear();
                    weights.extend_from_slice(history.weights);
                    recency::weigh(data.user_times(u), half_life, weights);
                    history.weights = weights;
                }
                scorer.score(Some(u), history, scores);
                let top = scorer.rank(scores, history.items, k);
                let test = &data.test[u];
                let hits = top.iter().filter(|i| test.binary_search(i).is_ok()).count();
                UserResult {
                    precision: hits as f64 / k as f64,
                    recall: hits as f64 / test.len() as f64,
                    ndcg: ndcg_at(&top, test, k),
                    hit: (hits > 0) as u8 as f64,
                    top,
                }
            },
        )
        .collect()
}
