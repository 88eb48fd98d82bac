//! Offline evaluation, shared by `reco evaluate`, the quality tests and the benchmarks.
//!
//! Protocol: positives are ratings >= 4 (for data from the store, the rows `crate::policy` calls
//! positive; the caller decides); each user's positives are ordered by time, ties broken by item id, and the first 80% (by
//! `floor(0.8 n)`) train while the rest test; every model ranks the full catalogue minus the user's
//! training items; Precision, Recall, NDCG and hit rate at 10 are averaged over users with at least
//! one test item, and catalogue coverage is the share of items recommended to anyone.

mod data;
mod steps;

use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::algo::blend::{Blend, Diversity};
use crate::algo::{self, History, Scorer, ndcg_at};
pub use data::{EvalData, Positive, Split, from_dataset, from_files, now_of, split};
pub use steps::{Steps, describe as describe_steps};

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

/// One row of `reco evaluate`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub k: usize,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub fit_seconds: f64,
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
    let per_user: Vec<UserResult> = (0..data.train.n_rows)
        .into_par_iter()
        .filter(|&u| !data.test[u].is_empty())
        .map_init(
            || vec![0f32; n_items],
            |scores, u| {
                let history = History::of(&data.train, u);
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
        .collect();
    let users = per_user.len().max(1) as f64;
    let mut recommended = vec![false; n_items];
    for r in &per_user {
        for &i in &r.top {
            recommended[i as usize] = true;
        }
    }
    let mean = |f: fn(&UserResult) -> f64| per_user.iter().map(f).sum::<f64>() / users;
    Metrics {
        precision: mean(|r| r.precision),
        recall: mean(|r| r.recall),
        ndcg: mean(|r| r.ndcg),
        hit_rate: mean(|r| r.hit),
        coverage: recommended.iter().filter(|r| **r).count() as f64 / n_items.max(1) as f64,
        users: per_user.len(),
    }
}

/// The models `reco evaluate` knows, in report order.
pub const MODELS: [&str; 11] = [
    "popularity",
    "recent",
    "itemknn",
    "ease",
    "als",
    "bpr",
    "content",
    "fast",
    "quality",
    "enhanced",
    "smart",
];

/// MMR strength of `quality` (the server's `recommend.diversity` default).
pub const QUALITY_DIVERSITY: f32 = 0.1;

/// Half-life of popularity in the `fast` blend, as the server's default (14 days).
const HALF_LIFE_SECS: f64 = 14.0 * 86_400.0;

/// Items kept in the popularity order that `enhanced` draws candidates from.
pub const POPULAR_ORDER_LEN: usize = 1000;

/// The members of `quality` (and sources of `enhanced`), fitted on one training set.
pub struct Members {
    pub als: algo::als::Als,
    pub bpr: algo::bpr::Bpr,
    pub itemknn: algo::itemknn::ItemKnn,
    pub content: algo::content::Content,
}

impl Members {
    /// Fits the interaction models in parallel; content depends only on the items' text, so a fit
    /// on the same catalogue is reused (on 100,000 items it is the slowest model).
    /// `steps` times each fit under `label` (`"als"`, or `"validation als"` with the label
    /// `"validation "`).
    pub fn fit_with_content(
        data: &EvalData,
        content: algo::content::Content,
        steps: &Steps,
        label: &str,
    ) -> Members {
        let ((als, bpr), itemknn) = rayon::join(
            || {
                rayon::join(
                    || {
                        steps.time(&format!("{label}als"), || {
                            algo::als::fit(&data.train, Default::default())
                        })
                    },
                    || {
                        steps.time(&format!("{label}bpr"), || {
                            algo::bpr::fit(&data.train, Default::default())
                        })
                    },
                )
            },
            || {
                steps.time(&format!("{label}item-to-item"), || {
                    algo::itemknn::fit(&data.train, Default::default())
                })
            },
        );
        Members {
            als,
            bpr,
            itemknn,
            content,
        }
    }

    /// In the order of [`Learned::quality_weights`]: ALS, BPR, item-to-item, content.
    pub fn scorers(&self) -> [&dyn Scorer; 4] {
        [&self.als, &self.bpr, &self.itemknn, &self.content]
    }
}

/// The inputs of `enhanced` besides the members: decayed popularity, its order, category ids.
pub struct Extras {
    pub popularity: algo::popularity::Popularity,
    pub popular_order: Vec<u32>,
    pub categories: Vec<Box<[u32]>>,
}

impl Extras {
    pub fn of(data: &EvalData) -> Extras {
        let popularity = algo::popularity::fit(
            data.train.n_cols,
            data.train_events(),
            data.now,
            Some(HALF_LIFE_SECS),
        );
        let popular_order = algo::top_n(&popularity.scores, &[], POPULAR_ORDER_LEN);
        let (mut categories, _) =
            algo::enhanced::category_ids(data.item_texts.iter().map(|t| &t.categories[..]));
        categories.resize(data.train.n_cols, Box::new([]));
        Extras {
            popularity,
            popular_order,
            categories,
        }
    }

    pub fn models<'a>(&'a self, m: &'a Members) -> algo::enhanced::Models<'a> {
        algo::enhanced::Models {
            als: &m.als,
            bpr: &m.bpr,
            itemknn: &m.itemknn,
            content: &m.content,
            popularity: &self.popularity.scores,
            popular_order: &self.popular_order,
            categories: &self.categories,
        }
    }
}

/// What is learned on a validation split of the training data: the members are fitted on the
/// first 80% (in time) of each user's training interactions and judged on the rest.
pub struct Learned {
    /// `quality`'s blend weights: the grid point (step 0.1) with the best NDCG@10.
    pub quality_weights: Vec<f32>,
    /// `enhanced`'s scoring model.
    pub ranker: algo::enhanced::Ranker,
}

/// Learns on a validation split of `data`'s training part `quality`'s weights and (with `ranker`)
/// `enhanced`'s scoring model, then fits the members on all of it. Content depends only on the
/// catalogue's text, so it is fitted once for both. `steps` times each step.
///
/// One after the other, each with rayon inside: the validation models are dropped before the final
/// ones exist. At a million users each factor model holds a quarter of a gigabyte, and the two sets
/// side by side were most of training's peak memory; in turn, they take the same time on two cores.
pub fn fit_and_learn(data: &EvalData, ranker: bool, steps: &Steps) -> (Members, Learned) {
    let content = steps.time("content", || {
        algo::content::fit(&data.item_texts, Default::default())
    });
    let learned = learn_with_content(data, ranker, content.clone(), steps);
    let members = Members::fit_with_content(data, content, steps, "");
    (members, learned)
}

/// Learns on the validation split with the content model already fitted on `data`'s catalogue.
fn learn_with_content(
    data: &EvalData,
    ranker: bool,
    content: algo::content::Content,
    steps: &Steps,
) -> Learned {
    let inner = steps.time("validation split", || data.inner_split(0.8));
    let members = Members::fit_with_content(&inner, content, steps, "validation ");
    let quality_weights = steps.time("blend weights", || {
        algo::blend::fit_weights(&members.scorers(), &inner.train, &inner.test, 10, 0.1)
    });
    let ranker = if ranker {
        steps.time("ranker", || {
            let extras = Extras::of(&inner);
            algo::enhanced::Ranker::fit(&extras.models(&members), &inner.train, &inner.test)
        })
    } else {
        Default::default()
    };
    tracing::info!(?quality_weights, ranker = ?ranker.weights, "learned on the validation split");
    Learned {
        quality_weights,
        ranker,
    }
}

/// `quality` as an offline blend (with MMR diversity when `diversity` > 0).
fn quality_blend(members: Members, weights: Vec<f32>, data: &EvalData, diversity: f32) -> Blend {
    let Members {
        als,
        bpr,
        itemknn,
        content,
    } = members;
    let boxed: [Box<dyn Scorer>; 4] = [
        Box::new(als),
        Box::new(bpr),
        Box::new(itemknn),
        Box::new(content),
    ];
    Blend {
        members: boxed.into_iter().zip(weights).collect(),
        diversity: (diversity > 0.0).then(|| Diversity {
            categories: data
                .item_texts
                .iter()
                .map(|t| t.categories.clone())
                .collect(),
            strength: diversity,
        }),
    }
}

/// The engines as offline models. `fast`: item-to-item plus 0.1 decayed popularity, the formula
/// the server's `fast` engine uses. `quality`: ALS, BPR, item-to-item and content with learned
/// weights, then MMR. `enhanced`: candidates from every source scored by the learned ranker.
/// `smart`: routed by history length ([`algo::smart::route`]).
fn fit_engine(model: &str, data: &EvalData) -> Option<Box<dyn Scorer>> {
    Some(match model {
        "fast" => {
            let extras = Extras::of(data);
            let members: Vec<(Box<dyn Scorer>, f32)> = vec![
                (
                    Box::new(algo::itemknn::fit(&data.train, Default::default())),
                    1.0,
                ),
                (Box::new(extras.popularity), 0.1),
            ];
            Box::new(Blend {
                members,
                diversity: None,
            })
        }
        "quality" => {
            let (members, learned) = fit_and_learn(data, false, &Steps::default());
            Box::new(quality_blend(
                members,
                learned.quality_weights,
                data,
                QUALITY_DIVERSITY,
            ))
        }
        "enhanced" => {
            let (
                Members {
                    als,
                    bpr,
                    itemknn,
                    content,
                },
                learned,
            ) = fit_and_learn(data, true, &Steps::default());
            let extras = Extras::of(data);
            Box::new(algo::enhanced::Enhanced {
                als,
                bpr,
                itemknn,
                content,
                popularity: extras.popularity.scores,
                popular_order: extras.popular_order,
                categories: extras.categories,
                ranker: learned.ranker,
            })
        }
        "smart" => {
            let (members, learned) = fit_and_learn(data, false, &Steps::default());
            let neighbours = Box::new(members.itemknn.clone());
            let content = Box::new(members.content.clone());
            Box::new(algo::smart::Smart {
                trending: Box::new(Extras::of(data).popularity),
                neighbours,
                content,
                // MMR needs the whole list, which a routed scorer does not own: relevance order.
                established: Box::new(quality_blend(members, learned.quality_weights, data, 0.0)),
            })
        }
        _ => return None,
    })
}

/// Half-lives of `recent`'s time decay, in days, to choose from (`None`: no decay).
pub const HALF_LIVES_DAYS: [Option<f64>; 8] = [
    None,
    Some(365.0),
    Some(90.0),
    Some(30.0),
    Some(10.0),
    Some(3.0),
    Some(1.0),
    Some(0.25),
];

/// EASE's `λ`s to choose from.
pub const EASE_LAMBDAS: [f64; 5] = [25.0, 50.0, 100.0, 250.0, 500.0];

/// The setting of `candidates` whose model scores the best NDCG@10 on the validation split of the
/// training part (each user's last 20%, the split `quality`'s weights are learned on; the earlier
/// candidate wins a tie), logged with its score under `model`; `None` when `fit` fits none.
fn choose_on_validation<C: Copy + std::fmt::Debug, S: Scorer>(
    data: &EvalData,
    model: &str,
    candidates: &[C],
    fit: impl Fn(&EvalData, C) -> Option<S>,
) -> Option<C> {
    let inner = data.inner_split(0.8);
    let mut best: Option<(f64, C)> = None;
    for &c in candidates {
        let ndcg = evaluate(&fit(&inner, c)?, &inner, 10).ndcg;
        if best.is_none_or(|(b, _)| ndcg > b) {
            best = Some((ndcg, c));
        }
    }
    let (validation_ndcg, chosen) = best?;
    tracing::info!(
        model,
        setting = ?chosen,
        validation_ndcg,
        "chosen on the validation split"
    );
    Some(chosen)
}

/// Popularity decayed by time, with the half-life (in days, `None`: no decay) chosen on the
/// validation split from [`HALF_LIVES_DAYS`], and that half-life.
pub fn fit_recent(data: &EvalData) -> (algo::popularity::Popularity, Option<f64>) {
    let popularity = |d: &EvalData, days: Option<f64>| {
        let half_life = days.map(|days| days * 86_400.0);
        algo::popularity::fit(d.train.n_cols, d.train_events(), d.now, half_life)
    };
    let fit = |d: &EvalData, days| Some(popularity(d, days));
    let days = choose_on_validation(data, "recent", &HALF_LIVES_DAYS, fit).flatten();
    (popularity(data, days), days)
}

/// EASE with the `λ` chosen on the validation split from [`EASE_LAMBDAS`]; `None` above its
/// catalogue limit.
pub fn fit_ease(data: &EvalData) -> Option<algo::ease::Ease> {
    let ease = |d: &EvalData, lambda| {
        let params = algo::ease::Params {
            lambda,
            ..Default::default()
        };
        algo::ease::fit(&d.train, params)
    };
    let lambda = choose_on_validation(data, "ease", &EASE_LAMBDAS, ease)?;
    ease(data, lambda)
}

/// Fits the named model on the training part of `data`.
pub fn fit(model: &str, data: &EvalData) -> Option<Box<dyn Scorer>> {
    Some(match model {
        "popularity" => Box::new(algo::popularity::fit(
            data.train.n_cols,
            data.train_events(),
            data.now,
            None,
        )),
        "recent" => Box::new(fit_recent(data).0),
        "itemknn" => Box::new(algo::itemknn::fit(&data.train, Default::default())),
        "ease" => Box::new(fit_ease(data)?),
        "als" => Box::new(algo::als::fit(&data.train, Default::default())),
        "bpr" => Box::new(algo::bpr::fit(&data.train, Default::default())),
        "content" => Box::new(algo::content::fit(&data.item_texts, Default::default())),
        other => fit_engine(other, data)?,
    })
}

/// Fits and evaluates each model in turn.
pub fn run(data: &EvalData, models: &[&str], k: usize) -> Vec<Report> {
    models
        .iter()
        .filter_map(|&name| {
            let started = Instant::now();
            let scorer = fit(name, data)?;
            let fit_seconds = started.elapsed().as_secs_f64();
            let metrics = evaluate(scorer.as_ref(), data, k);
            Some(Report {
                model: name.to_string(),
                k,
                metrics,
                fit_seconds,
            })
        })
        .collect()
}

/// The reports as an aligned text table.
pub fn table(reports: &[Report]) -> String {
    let mut out = format!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}\n",
        "model", "P@10", "R@10", "NDCG@10", "HR@10", "coverage", "fit (s)"
    );
    for r in reports {
        let m = &r.metrics;
        out.push_str(&format!(
            "{:<12} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9.4} {:>9.3}\n",
            r.model, m.precision, m.recall, m.ndcg, m.hit_rate, m.coverage, r.fit_seconds
        ));
    }
    out
}

#[cfg(test)]
mod tests;
