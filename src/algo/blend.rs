//! Weighted blends of scorers, and fitting the weights on a validation split.
//!
//! Each member's scores are scaled per user by their largest absolute value before weighting, so
//! models with different score ranges (cosine sums, factor dot products, decayed counts) mix on equal
//! terms. [`fit_weights`] searches the weight simplex on a grid for the best NDCG@10 on validation
//! data; the engines use it at training time with a temporal split of the training data.

use rayon::prelude::*;

use super::diversity::{jaccard, mmr};
use super::{Csr, History, Scorer, ndcg_at, top_n};

/// A weighted sum of normalised scorer outputs, optionally re-ranked for category diversity.
pub struct Blend<'a> {
    pub members: Vec<(Box<dyn Scorer + 'a>, f32)>,
    pub diversity: Option<Diversity>,
}

/// MMR re-ranking of a blend's top candidates across item categories.
pub struct Diversity {
    /// Categories of each item.
    pub categories: Vec<Vec<String>>,
    /// 0 = relevance order, 1 = maximal spread.
    pub strength: f32,
}

/// Candidates per returned item that MMR chooses from.
pub const MMR_POOL: usize = 5;
/// The most candidates MMR re-ranks, whatever `n`: its cost is `n` × pool.
pub const MAX_MMR_POOL: usize = 2000;

/// How many candidates MMR chooses `n` from: `MMR_POOL` per wanted item, at most
/// [`MAX_MMR_POOL`] (and never fewer than `n`).
pub fn mmr_pool(n: usize) -> usize {
    (n * MMR_POOL).min(MAX_MMR_POOL).max(n)
}

/// Scales `scores` so the largest absolute value is 1 (all-zero stays zero).
pub fn normalise(scores: &mut [f32]) {
    let max = scores.iter().fold(0f32, |m, s| m.max(s.abs()));
    if max > 0.0 {
        scores.iter_mut().for_each(|s| *s /= max);
    }
}

/// `into += w × scores / max|scores|`: [`normalise`] then a weighted sum, in one pass over the
/// catalogue instead of two, with the same arithmetic per item (divide, multiply, add).
pub fn add_normalised(into: &mut [f32], scores: &[f32], w: f32) {
    let max = scores.iter().fold(0f32, |m, s| m.max(s.abs()));
    if max > 0.0 {
        into.iter_mut()
            .zip(scores)
            .for_each(|(b, x)| *b += w * (x / max));
    } else {
        into.iter_mut().zip(scores).for_each(|(b, x)| *b += w * x);
    }
}

impl Scorer for Blend<'_> {
    fn score(&self, user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        scores.fill(0.0);
        let mut buf = vec![0f32; scores.len()];
        for (scorer, w) in &self.members {
            if *w == 0.0 {
                continue;
            }
            scorer.score(user, history, &mut buf);
            normalise(&mut buf);
            scores.iter_mut().zip(&buf).for_each(|(s, b)| *s += w * b);
        }
    }

    fn rank(&self, scores: &[f32], exclude: &[u32], n: usize) -> Vec<u32> {
        let Some(d) = &self.diversity else {
            return top_n(scores, exclude, n);
        };
        let pool: Vec<(u32, f32)> = top_n(scores, exclude, mmr_pool(n))
            .into_iter()
            .map(|i| (i, scores[i as usize]))
            .collect();
        let similarity =
            |a: u32, b: u32| jaccard(&d.categories[a as usize], &d.categories[b as usize]);
        mmr(&pool, similarity, n, d.strength)
    }
}

/// Weights in steps of `1 / units`, as whole units summing to `units`, for `n` members: every
/// point of the simplex's grid.
fn simplex(n: usize, units: usize) -> Vec<Vec<usize>> {
    fn rec(i: usize, left: usize, current: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if i + 1 == current.len() {
            current[i] = left;
            out.push(current.clone());
            return;
        }
        for u in 0..=left {
            current[i] = u;
            rec(i + 1, left - u, current, out);
        }
    }
    let mut out = Vec::new();
    if n > 0 {
        rec(0, units, &mut vec![0; n], &mut out);
    }
    out
}

/// Weights are multiples of 1/4: 126 points for six members. On MovieLens 100K, finer weights
/// (a hill climb in steps of 0.1 and 0.05 from the best of this grid) scored better on the
/// validation split and worse on the test of every split (by 0.008 NDCG@10 on a random one): with
/// about ten validation items per user, a finer choice fits the validation split's noise.
const UNITS: usize = 4;

/// Candidates per member per user that weight fitting looks at: an item outside every member's
/// top 200 practically never reaches a blend's top 10, and this bounds memory on large catalogues.
const FIT_CANDIDATES: usize = 200;
/// Validation users weight fitting looks at, at most (spread evenly over the user rows).
const FIT_MAX_USERS: usize = 1000;

/// One validation user: candidate items and each member's normalised scores on them.
struct Candidates {
    user: usize,
    items: Vec<u32>,
    member_scores: Vec<Vec<f32>>,
}

/// The member weights (summing to 1, multiples of 1/4) with the best mean NDCG@`k` when ranking
/// for the users of `train` against `validation` (per-user sorted item lists), and that NDCG; the
/// earlier grid point wins a tie. The grid's corners are the members alone, so the weights never
/// validate worse than the best member.
pub fn fit_weights(
    members: &[&dyn Scorer],
    train: &Csr,
    validation: &[Vec<u32>],
    k: usize,
) -> (Vec<f32>, f64) {
    let users = super::validation_users(train, validation, FIT_MAX_USERS);
    let n_items = train.n_cols;
    let per_user: Vec<Candidates> = users
        .par_iter()
        .map(|&u| {
            let history = History::of(train, u);
            let full: Vec<Vec<f32>> = members
                .iter()
                .map(|m| {
                    let mut s = vec![0f32; n_items];
                    m.score(Some(u), history, &mut s);
                    normalise(&mut s);
                    s
                })
                .collect();
            let mut items: Vec<u32> = full
                .iter()
                .flat_map(|s| top_n(s, history.items, FIT_CANDIDATES))
                .collect();
            items.sort_unstable();
            items.dedup();
            let member_scores = full
                .iter()
                .map(|s| items.iter().map(|&i| s[i as usize]).collect())
                .collect();
            Candidates {
                user: u,
                items,
                member_scores,
            }
        })
        .collect();
    let ndcg_of = |units: &[usize]| -> f64 {
        let w: Vec<f32> = units.iter().map(|&u| u as f32 / UNITS as f32).collect();
        per_user
            .par_iter()
            .map(|c| {
                let mut blended: Vec<f32> = vec![0.0; c.items.len()];
                for (s, &wi) in c.member_scores.iter().zip(&w) {
                    if wi != 0.0 {
                        blended.iter_mut().zip(s).for_each(|(b, x)| *b += wi * x);
                    }
                }
                let top = top_n(&blended, &[], k);
                let items: Vec<u32> = top.iter().map(|&pos| c.items[pos as usize]).collect();
                ndcg_at(&items, &validation[c.user], k)
            })
            // Collected, then added in user order: the same sum however the threads split.
            .collect::<Vec<f64>>()
            .into_iter()
            .sum::<f64>()
    };
    let mut best: Option<(Vec<usize>, f64)> = None;
    for point in simplex(members.len(), UNITS) {
        let score = ndcg_of(&point);
        if best.as_ref().is_none_or(|(_, b)| score > *b) {
            best = Some((point, score));
        }
    }
    let users = per_user.len().max(1) as f64;
    best.map_or_else(
        || (Vec::new(), 0.0),
        |(units, score)| {
            let weights = units.into_iter().map(|u| u as f32 / UNITS as f32).collect();
            (weights, score / users)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::algo::testing::Fixed;

    #[test]
    fn simplex_covers_the_grid() {
        let g = simplex(3, 2);
        assert_eq!(g.len(), 6);
        assert!(g.iter().all(|w| w.iter().sum::<usize>() == 2));
    }

    #[test]
    fn blend_normalises_and_weights_finds_the_useful_member() {
        let good = Fixed(vec![0.0, 0.0, 10.0]); // ranks item 2 first
        let bad = Fixed(vec![0.0, 0.5, 0.0]); // ranks item 1 first
        let blend = Blend {
            diversity: None,
            members: vec![
                (Box::new(Fixed(good.0.clone())), 0.5),
                (Box::new(Fixed(bad.0.clone())), 0.5),
            ],
        };
        let mut s = vec![0.0; 3];
        blend.score(
            None,
            History {
                items: &[],
                weights: &[],
            },
            &mut s,
        );
        assert_eq!(
            s,
            [0.0, 0.5, 0.5],
            "each member scaled to 1 before weighting"
        );
        // Validation wants item 2, which only `good` ranks first; at equal weights the tie goes
        // to item 1 (the lower index). Every grid point with more weight on `good` scores the
        // same: the first one found (all on `good`) stays.
        let train = Csr::from_triplets(2, 3, vec![(0, 0, 1.0), (1, 0, 1.0)]);
        let (w, ndcg) = fit_weights(&[&bad, &good], &train, &[vec![2], vec![2]], 1);
        assert_eq!((w, ndcg), (vec![0.0, 1.0], 1.0));
    }
}
