//! The learned scoring model: a logistic regression over the candidates' features.
//!
//! Written here (Newton's method with a 9×9 solve in nalgebra) rather than pulled from linfa: that
//! crate would bring ndarray and an optimiser stack for twenty lines of arithmetic.

use nalgebra::{SMatrix, SVector};
use rayon::prelude::*;

use super::candidates::{Candidate, Models, N_FEATURES, Scratch};
use crate::algo::{Csr, History, dot};

/// Logistic regression weights over [`FEATURES`](super::FEATURES).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ranker {
    pub weights: [f32; N_FEATURES],
}

impl Default for Ranker {
    /// Before any fit: the factorisation and neighbour scores, equally.
    fn default() -> Self {
        let mut weights = [0.0; N_FEATURES];
        weights[0] = 1.0;
        weights[2] = 1.0;
        Self { weights }
    }
}

/// Validation users the ranker learns from, at most (spread evenly over the rows).
const FIT_MAX_USERS: usize = 2000;
/// L2 penalty of the logistic regression.
const L2: f64 = 1e-2;
const NEWTON_STEPS: usize = 25;

impl Ranker {
    /// The log-odds of a candidate.
    pub fn score(&self, features: &[f32; N_FEATURES]) -> f32 {
        dot(&self.weights, features)
    }

    /// Scores and sorts candidates, best first (ties by item).
    pub fn rank(&self, candidates: &mut [Candidate]) {
        for c in candidates.iter_mut() {
            c.score = self.score(&c.features);
        }
        candidates.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
    }

    /// Fits on the candidates `models` (trained on `train`) generate for users of `train`, labelled
    /// by whether the item is among the user's `validation` items.
    pub fn fit(models: &Models<'_>, train: &Csr, validation: &[Vec<u32>]) -> Ranker {
        let users = crate::algo::validation_users(train, validation, FIT_MAX_USERS);
        let rows: Vec<([f32; N_FEATURES], bool)> = users
            .par_iter()
            .map_init(Scratch::default, |sc, &u| {
                models
                    .candidates(Some(u), History::of(train, u), sc)
                    .into_iter()
                    .map(|c| (c.features, validation[u].binary_search(&c.item).is_ok()))
                    .collect::<Vec<_>>()
            })
            .flatten()
            .collect();
        if !rows.iter().any(|r| r.1) {
            return Ranker::default();
        }
        fit_logistic(&rows)
    }
}

type Vector = SVector<f64, N_FEATURES>;
type Matrix = SMatrix<f64, N_FEATURES, N_FEATURES>;

/// L2-regularised logistic regression by Newton's method (the intercept is penalised too; with
/// hundreds of thousands of rows that does not matter).
fn fit_logistic(rows: &[([f32; N_FEATURES], bool)]) -> Ranker {
    let mut w = Vector::zeros();
    for _ in 0..NEWTON_STEPS {
        // Sums over fixed chunks, added in chunk order: the same bits however the threads
        // divide the work (a fold-and-reduce adds in the order the work was stolen).
        let (grad, hess) = rows
            .par_chunks(4096)
            .map(|chunk| {
                chunk.iter().fold(
                    (Vector::zeros(), Matrix::zeros()),
                    |(mut g, mut h), (x, y)| {
                        let x = Vector::from_iterator(x.iter().map(|&v| v as f64));
                        let p = 1.0 / (1.0 + (-w.dot(&x)).exp());
                        g += x * (p - f64::from(u8::from(*y)));
                        h += (x * x.transpose()) * (p * (1.0 - p)).max(1e-9);
                        (g, h)
                    },
                )
            })
            .collect::<Vec<_>>()
            .into_iter()
            .fold((Vector::zeros(), Matrix::zeros()), |a, b| {
                (a.0 + b.0, a.1 + b.1)
            });
        let grad = grad + w * L2;
        let hess = hess + Matrix::identity() * L2;
        let Some(step) = hess.cholesky().map(|c| c.solve(&grad)) else {
            break;
        };
        w -= step;
        if step.amax() < 1e-6 {
            break;
        }
    }
    let mut weights = [0f32; N_FEATURES];
    weights
        .iter_mut()
        .zip(w.iter())
        .for_each(|(o, &v)| *o = v as f32);
    Ranker { weights }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_regression_separates_by_the_informative_feature() {
        // Feature 0 decides the label; feature 1 is noise.
        let rows: Vec<([f32; N_FEATURES], bool)> = (0..400)
            .map(|n| {
                let informative = (n % 10) as f32 / 10.0;
                let noise = ((n * 7) % 13) as f32 / 13.0;
                let mut x = [0.0; N_FEATURES];
                x[0] = informative;
                x[1] = noise;
                x[N_FEATURES - 1] = 1.0;
                (x, informative > 0.55 || (informative > 0.35 && n % 3 == 0))
            })
            .collect();
        let r = fit_logistic(&rows);
        assert!(r.weights[0] > 5.0, "{:?}", r.weights);
        assert!(r.weights[1].abs() < r.weights[0] / 5.0, "{:?}", r.weights);
        assert!(r.weights[N_FEATURES - 1] < 0.0, "{:?}", r.weights);
    }
}
