//! The `enhanced` recommender: candidate generation from several sources, then a learned scoring
//! model over per-candidate features.
//!
//! Sources: the factorisation's (ALS) best items, item-to-item neighbours of the history, content
//! neighbours of the history, and the most popular items of the user's favourite categories (plus
//! a few popular items overall, so a newcomer still gets candidates). Every candidate gets the same
//! [`FEATURES`] whatever source found it, and a logistic regression [`Ranker`] fitted on a temporal
//! validation split (each user's later interactions are the positives among their candidates)
//! turns the features into a score.
//!
//! Logistic regression over nine features is written here (Newton's method with a 9×9 solve in
//! nalgebra) rather than pulled from linfa: that crate would bring ndarray and an optimiser stack
//! for twenty lines of arithmetic.

use nalgebra::{SMatrix, SVector};
use rayon::prelude::*;

use super::als::Als;
use super::bpr::Bpr;
use super::content::Content;
use super::itemknn::ItemKnn;
use super::{Accumulator, Csr, History, Scorer, dot, top_n};

/// Candidate items per source.
pub const FROM_FACTORS: usize = 100;
pub const FROM_NEIGHBOURS: usize = 100;
pub const FROM_CONTENT: usize = 50;
pub const FROM_CATEGORIES: usize = 50;
pub const FROM_POPULAR: usize = 20;
/// Categories of the user's history whose popular items are candidates.
const TOP_CATEGORIES: usize = 3;
/// History items whose neighbours are gathered, at most.
pub const MAX_SOURCES: usize = 200;

/// Feature count, the intercept included.
pub const N_FEATURES: usize = 9;
/// Names of the features, in order (for logs and the fitted weights' report).
pub const FEATURES: [&str; N_FEATURES] = [
    "als",
    "bpr",
    "neighbours",
    "content",
    "popularity",
    "category_affinity",
    "als_rank",
    "neighbours_rank",
    "intercept",
];

/// Which source proposed a candidate first (for the reason shown to users).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Item-to-item neighbour of this history item.
    Neighbours(u32),
    /// Content neighbour of this history item.
    Content(u32),
    /// Popular in this category id.
    Category(u32),
    Factors,
    Popular,
}

/// One candidate with its features and its score (0 until ranked).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub item: u32,
    pub features: [f32; N_FEATURES],
    pub source: Source,
    pub score: f32,
}

/// The trained models the candidate generator reads, borrowed from a snapshot or an evaluation fit.
#[derive(Clone, Copy)]
pub struct Models<'a> {
    pub als: &'a Als,
    pub bpr: &'a Bpr,
    pub itemknn: &'a ItemKnn,
    pub content: &'a Content,
    /// Time-decayed popularity per item.
    pub popularity: &'a [f32],
    /// Items by descending popularity (a prefix is enough).
    pub popular_order: &'a [u32],
    /// Category ids of each item.
    pub categories: &'a [Box<[u32]>],
}

/// Per-thread buffers of candidate generation, sized to the catalogue once.
#[derive(Default)]
pub struct Scratch {
    factors: Vec<f32>,
    neighbours: Accumulator,
    content: Accumulator,
}

/// Interns category names to ids, per item.
pub fn category_ids<'a>(
    items: impl IntoIterator<Item = &'a [String]>,
) -> (Vec<Box<[u32]>>, Vec<String>) {
    let mut names: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::<&str, u32>::new();
    let items: Vec<&'a [String]> = items.into_iter().collect();
    let ids = items
        .iter()
        .map(|cats| {
            cats.iter()
                .map(|c| {
                    *index.entry(c.as_str()).or_insert_with(|| {
                        names.push(c.clone());
                        names.len() as u32 - 1
                    })
                })
                .collect()
        })
        .collect();
    (ids, names)
}

impl Models<'_> {
    fn n_items(&self) -> usize {
        self.popularity.len()
    }

    /// Candidates for a user (their training row, when known) with features filled in, excluding
    /// the history (whose `items` are sorted).
    pub fn candidates(
        &self,
        user: Option<usize>,
        history: History<'_>,
        sc: &mut Scratch,
    ) -> Vec<Candidate> {
        let n = self.n_items();
        let seen = |i: u32| history.items.binary_search(&i).is_ok();
        // Factorisation: every item's score, kept for the feature.
        sc.factors.resize(n, 0.0);
        self.als.score(user, history, &mut sc.factors[..n]);
        // A newcomer's folded-in factors are zero: the factorisation has nothing to propose.
        let factor_top = if history.items.is_empty() && user.is_none() {
            Vec::new()
        } else {
            top_n(&sc.factors[..n], history.items, FROM_FACTORS)
        };
        // Neighbours and content of the history.
        sc.neighbours.prepare(n);
        sc.content.prepare(n);
        for &j in history.items.iter().take(MAX_SOURCES) {
            sc.neighbours
                .add_neighbours(j, &self.itemknn.neighbours[j as usize]);
            sc.content
                .add_neighbours(j, &self.content.neighbours[j as usize]);
        }
        let neighbour_top = sc.neighbours.top(FROM_NEIGHBOURS, seen);
        let content_top = sc.content.top(FROM_CONTENT, seen);
        // The user's favourite categories.
        let mut category_counts: Vec<(u32, f32)> = Vec::new();
        for &j in history.items {
            for &c in self
                .categories
                .get(j as usize)
                .map(|c| &c[..])
                .unwrap_or(&[])
            {
                match category_counts.iter_mut().find(|x| x.0 == c) {
                    Some(x) => x.1 += 1.0,
                    None => category_counts.push((c, 1.0)),
                }
            }
        }
        category_counts.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let history_len = history.items.len().max(1) as f32;

        let mut out: Vec<Candidate> = Vec::with_capacity(
            FROM_FACTORS + FROM_NEIGHBOURS + FROM_CONTENT + FROM_CATEGORIES + FROM_POPULAR,
        );
        let mut listed = std::collections::HashSet::with_capacity(out.capacity());
        let mut push = |item: u32, source: Source, out: &mut Vec<Candidate>| {
            if listed.insert(item) {
                out.push(Candidate {
                    item,
                    features: [0.0; N_FEATURES],
                    source,
                    score: 0.0,
                });
            }
        };
        for &(i, _) in &neighbour_top {
            push(i, Source::Neighbours(sc.neighbours.source(i)), &mut out);
        }
        for &i in &factor_top {
            push(i, Source::Factors, &mut out);
        }
        for &(i, _) in &content_top {
            push(i, Source::Content(sc.content.source(i)), &mut out);
        }
        for &(c, _) in category_counts.iter().take(TOP_CATEGORIES) {
            let in_category = self
                .popular_order
                .iter()
                .filter(|&&i| !seen(i) && self.categories[i as usize].contains(&c))
                .take(FROM_CATEGORIES / TOP_CATEGORIES);
            for &i in in_category {
                push(i, Source::Category(c), &mut out);
            }
        }
        for &i in self
            .popular_order
            .iter()
            .filter(|&&i| !seen(i))
            .take(FROM_POPULAR)
        {
            push(i, Source::Popular, &mut out);
        }

        // Features, each scaled per user so that users with long and short histories compare.
        let bpr_user = self.bpr.user_vector(user, history);
        let max_of = |f: &dyn Fn(u32) -> f32| {
            out.iter()
                .map(|c| f(c.item).abs())
                .fold(0f32, f32::max)
                .max(f32::MIN_POSITIVE)
        };
        let als_score = |i: u32| sc.factors[i as usize];
        let bpr_score = |i: u32| self.bpr.score_one(&bpr_user, i);
        let als_max = max_of(&als_score);
        let bpr_max = max_of(&bpr_score);
        let knn_max = sc.neighbours.max().max(f32::MIN_POSITIVE);
        let content_max = sc.content.max().max(f32::MIN_POSITIVE);
        let pop_max = self
            .popular_order
            .first()
            .map(|&i| self.popularity[i as usize])
            .unwrap_or(0.0)
            .max(f32::MIN_POSITIVE);
        let rank_in = |list: &[u32], i: u32| {
            list.iter()
                .position(|&x| x == i)
                .map_or(0.0, |r| 1.0 / (r as f32 + 2.0).ln())
        };
        let neighbour_items: Vec<u32> = neighbour_top.iter().map(|x| x.0).collect();
        for c in &mut out {
            let i = c.item;
            let affinity = self.categories[i as usize]
                .iter()
                .filter_map(|cat| category_counts.iter().find(|x| x.0 == *cat))
                .map(|x| x.1 / history_len)
                .fold(0f32, f32::max);
            c.features = [
                als_score(i) / als_max,
                bpr_score(i) / bpr_max,
                sc.neighbours.sum(i) / knn_max,
                sc.content.sum(i) / content_max,
                (1.0 + self.popularity[i as usize]).ln() / (1.0 + pop_max).ln(),
                affinity,
                rank_in(&factor_top, i),
                rank_in(&neighbour_items, i),
                1.0,
            ];
        }
        sc.neighbours.reset();
        sc.content.reset();
        out
    }
}

/// Logistic regression weights over [`FEATURES`].
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
        let users = super::validation_users(train, validation, FIT_MAX_USERS);
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
        let (grad, hess) = rows
            .par_iter()
            .fold(
                || (Vector::zeros(), Matrix::zeros()),
                |(mut g, mut h), (x, y)| {
                    let x = Vector::from_iterator(x.iter().map(|&v| v as f64));
                    let p = 1.0 / (1.0 + (-w.dot(&x)).exp());
                    g += x * (p - f64::from(u8::from(*y)));
                    h += (x * x.transpose()) * (p * (1.0 - p)).max(1e-9);
                    (g, h)
                },
            )
            .reduce(
                || (Vector::zeros(), Matrix::zeros()),
                |a, b| (a.0 + b.0, a.1 + b.1),
            );
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

/// `enhanced` as an offline model: owns its models (fitted on one training set) and a ranker.
pub struct Enhanced {
    pub als: Als,
    pub bpr: Bpr,
    pub itemknn: ItemKnn,
    pub content: Content,
    pub popularity: Vec<f32>,
    pub popular_order: Vec<u32>,
    pub categories: Vec<Box<[u32]>>,
    pub ranker: Ranker,
}

impl Enhanced {
    pub fn models(&self) -> Models<'_> {
        Models {
            als: &self.als,
            bpr: &self.bpr,
            itemknn: &self.itemknn,
            content: &self.content,
            popularity: &self.popularity,
            popular_order: &self.popular_order,
            categories: &self.categories,
        }
    }
}

impl Scorer for Enhanced {
    /// Ranked candidates get their log-odds; items no source proposed get no score.
    fn score(&self, user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        scores.fill(f32::NEG_INFINITY);
        let mut sc = Scratch::default();
        let mut candidates = self.models().candidates(user, history, &mut sc);
        self.ranker.rank(&mut candidates);
        for c in candidates {
            scores[c.item as usize] = c.score;
        }
    }
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

    #[test]
    fn candidates_come_from_every_source_with_features() {
        use crate::algo::testing::two_blocks;
        use crate::algo::{als, bpr, content, itemknn};
        let ui = two_blocks();
        let texts: Vec<content::ItemText> = (0..10)
            .map(|i| content::ItemText {
                title: if i < 5 { "space saga" } else { "cooking show" }.into(),
                categories: vec![if i < 5 { "scifi" } else { "food" }.into()],
                ..Default::default()
            })
            .collect();
        let (categories, names) = category_ids(texts.iter().map(|t| &t.categories[..]));
        assert_eq!(names, ["scifi", "food"]);
        let popularity: Vec<f32> = (0..10).map(|i| 10.0 - i as f32).collect();
        let popular_order: Vec<u32> = (0..10).collect();
        let (a, b, k, c) = (
            als::fit(
                &ui,
                als::Params {
                    factors: 4,
                    ..Default::default()
                },
            ),
            bpr::fit(&ui, Default::default()),
            itemknn::fit(&ui, Default::default()),
            content::fit(&texts, Default::default()),
        );
        let models = Models {
            als: &a,
            bpr: &b,
            itemknn: &k,
            content: &c,
            popularity: &popularity,
            popular_order: &popular_order,
            categories: &categories,
        };
        // User 12 (block 5..10) misses item 7.
        let mut sc = Scratch::default();
        let mut cands = models.candidates(Some(12), History::of(&ui, 12), &mut sc);
        assert!(
            cands.iter().all(|c| !ui.contains(12, c.item)),
            "history excluded"
        );
        let seven = cands.iter().find(|c| c.item == 7).expect("item 7 proposed");
        assert!(matches!(seven.source, Source::Neighbours(j) if (5..10).contains(&j)));
        assert_eq!(
            seven.features[5], 1.0,
            "all of the history is in its category"
        );
        assert!(seven.features[2] > 0.0 && seven.features[3] > 0.0);
        // A ranker preferring neighbours and category puts the missing item first.
        let mut w = [0.0; N_FEATURES];
        w[2] = 1.0;
        w[5] = 1.0;
        Ranker { weights: w }.rank(&mut cands);
        assert_eq!(cands[0].item, 7, "{cands:?}");
        // A newcomer still gets popular candidates.
        let empty = History {
            items: &[],
            weights: &[],
        };
        let cands = models.candidates(None, empty, &mut sc);
        assert!(
            cands
                .iter()
                .any(|c| c.source == Source::Popular && c.item == 0)
        );
    }
}
