//! The fit-and-learn step training and `reco evaluate` share: every setting chosen on a validation
//! split of the training data (`tune`), the `quality` blend's weights and `enhanced`'s ranker
//! learned there, then every model fitted on all of the training data with the chosen settings.

use super::data::EvalData;
use super::score::validation_ndcg;
use super::steps::Steps;
use super::tune::{self, Budget, Choice, Settings};
use crate::algo::blend::Blend;
use crate::algo::smart::{Route, ShortRoute, Smart};
use crate::algo::{self, Scorer};

/// Items kept in the popularity order that `enhanced` draws candidates from.
pub const POPULAR_ORDER_LEN: usize = 1000;

/// The members of `quality`'s blend, in the order of [`Learned::quality_weights`].
pub const QUALITY_MEMBERS: [&str; 6] = ["als", "bpr", "itemknn", "content", "ease", "recent"];

/// The models fitted on one training set: `quality`'s members (and `enhanced`'s sources).
#[derive(Clone)]
pub struct Members {
    pub als: algo::als::Als,
    pub bpr: algo::bpr::Bpr,
    pub itemknn: algo::itemknn::ItemKnn,
    pub content: algo::content::Content,
    /// `None` above EASE's catalogue limit or beyond the tuning budget.
    pub ease: Option<algo::ease::Ease>,
    /// Popularity with the chosen half-life: the trending list, and a blend member.
    pub recent: algo::popularity::Popularity,
}

impl Members {
    /// Fits every model on `data` with `settings`, the interaction models in parallel; content
    /// depends only on the items' text, so a fit on the same catalogue is reused (on 100,000
    /// items it is the slowest model). ALS starts from `warm_als`, item factors of a fit with the
    /// same settings, when given (`als::fit_from`). `steps` times each fit.
    pub fn fit(
        data: &EvalData,
        content: algo::content::Content,
        settings: &Settings,
        warm_als: Option<&[f32]>,
        steps: &Steps,
    ) -> Members {
        let ((als, bpr), (itemknn, ease)) = rayon::join(
            || {
                rayon::join(
                    || {
                        steps.time("als", || {
                            algo::als::fit_from(&data.train, settings.als, warm_als)
                        })
                    },
                    || steps.time("bpr", || algo::bpr::fit(&data.train, settings.bpr)),
                )
            },
            || {
                let itemknn = steps.time("item-to-item", || {
                    algo::itemknn::fit(&data.train, settings.itemknn)
                });
                let ease = settings.ease_lambda.and_then(|lambda| {
                    let params = algo::ease::Params {
                        lambda,
                        ..Default::default()
                    };
                    steps.time("ease", || algo::ease::fit(&data.train, params))
                });
                (itemknn, ease)
            },
        );
        let recent = steps.time("popularity", || {
            tune::popularity_of(data, settings.half_life_days)
        });
        Members {
            als,
            bpr,
            itemknn,
            content,
            ease,
            recent,
        }
    }

    /// The blend's members in the order of [`QUALITY_MEMBERS`] (`None`: EASE not fitted).
    pub fn scorers(&self) -> [Option<&dyn Scorer>; 6] {
        [
            Some(&self.als),
            Some(&self.bpr),
            Some(&self.itemknn),
            Some(&self.content),
            self.ease.as_ref().map(|e| e as &dyn Scorer),
            Some(&self.recent),
        ]
    }
}

/// The inputs of `enhanced` besides the members: popularity's order and category ids (and the
/// ids' names, for the snapshot).
pub struct Extras {
    pub popular_order: Vec<u32>,
    pub categories: Vec<Box<[u32]>>,
    pub category_names: Vec<String>,
}

impl Extras {
    pub fn of(data: &EvalData, members: &Members) -> Extras {
        let popular_order = algo::top_n(&members.recent.scores, &[], POPULAR_ORDER_LEN);
        let (mut categories, category_names) =
            algo::enhanced::category_ids(data.item_texts.iter().map(|t| &t.categories[..]));
        categories.resize(data.train.n_cols, Box::new([]));
        Extras {
            popular_order,
            categories,
            category_names,
        }
    }

    pub fn models<'a>(&'a self, m: &'a Members) -> algo::enhanced::Models<'a> {
        algo::enhanced::Models {
            als: &m.als,
            bpr: &m.bpr,
            itemknn: &m.itemknn,
            content: &m.content,
            ease: m.ease.as_ref(),
            popularity: &m.recent.scores,
            popular_order: &self.popular_order,
            categories: &self.categories,
        }
    }
}

/// How training chooses its settings.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub budget: Budget,
    /// Popularity's half-life in days when configured (`Some(None)`: no decay); `None`: chosen.
    pub half_life_days: Option<Option<f64>>,
    /// What `smart` gives a short history when configured; `None`: chosen.
    pub short_route: Option<ShortRoute>,
}

impl Tuning {
    /// No search: every default, popularity at [`tune::DEFAULT_HALF_LIFE_DAYS`] (tests and
    /// benchmarks that need a quick, fixed fit).
    pub fn none() -> Tuning {
        Tuning {
            budget: Budget(std::time::Duration::ZERO),
            half_life_days: Some(Some(tune::DEFAULT_HALF_LIFE_DAYS)),
            short_route: None,
        }
    }
}

/// What is learned on a validation split of the training data (each user's last 20% by time in
/// the server; the shape of the test split in `reco evaluate`).
pub struct Learned {
    /// Every model's settings, and the report of how each was chosen.
    pub settings: Settings,
    pub choices: Vec<Choice>,
    /// `quality`'s blend weights, in the order of [`QUALITY_MEMBERS`]: never a worse validation
    /// NDCG@10 than a member alone, or than the blend without recency inside histories.
    pub quality_weights: Vec<f32>,
    /// NDCG@10 of those weights on the validation users (before diversity).
    pub quality_validation_ndcg: f64,
    /// What `smart` gives a short history.
    pub short_route: ShortRoute,
    /// `enhanced`'s scoring model.
    pub ranker: algo::enhanced::Ranker,
}

/// Chooses the settings and learns `quality`'s weights and (with `ranker`) `enhanced`'s scoring
/// model on a validation split of `data`'s training part, then fits the members on all of it
/// (ALS from the validation fit's item factors). Content depends only on the catalogue's text,
/// so it is fitted once for both. `steps` times each step.
///
/// One after the other, each with rayon inside: the validation models are dropped before the final
/// ones exist (all but ALS's item factors, a few megabytes, which the final fit starts from). At a million users each factor model holds a quarter of a gigabyte, and the two sets
/// side by side were most of training's peak memory; in turn, they take the same time on two cores.
pub fn fit_and_learn(
    data: &EvalData,
    ranker: bool,
    tuning: Tuning,
    steps: &Steps,
) -> (Members, Learned) {
    let content = steps.time("content", || {
        algo::content::fit(&data.item_texts, Default::default())
    });
    let (learned, warm) = learn(data, ranker, tuning, content.clone(), steps);
    let members = Members::fit(data, content, &learned.settings, Some(&warm), steps);
    (members, learned)
}

/// Tunes and learns on the validation split, with the content model already fitted; returns
/// what is learned and the validation ALS fit's item factors.
fn learn(
    data: &EvalData,
    ranker: bool,
    tuning: Tuning,
    content: algo::content::Content,
    steps: &Steps,
) -> (Learned, Vec<f32>) {
    let mut inner = steps.time("validation split", || data.inner_split(0.8));
    // Too large for the budget: the settings, the blend and the ranker are learned on a sample.
    let sample = tune::sample(&inner, tuning.budget.0);
    let budget = match &sample {
        Some((every, _)) => {
            inner = steps.time("validation sample", || inner.sample_users(*every));
            tuning.budget
        }
        None => Budget(tuning.budget.scaled(inner.train.nnz())),
    };
    let mut tuned = tune::tune(&inner, budget, tuning.half_life_days, steps);
    if let Some((_, note)) = sample {
        tuned.choices.push(Choice {
            model: "sample".to_string(),
            setting: note,
            validation_ndcg: None,
            tried: 0,
            stopped: None,
        });
    }
    let members = Members {
        als: tuned.als,
        bpr: tuned.bpr,
        itemknn: tuned.itemknn,
        content,
        ease: tuned.ease,
        recent: tuned.recent,
    };
    // Every model is fitted: from here on the histories weigh as serving's will, recency
    // inside them included only when the blend validates better with it than without.
    let (quality_weights, quality_ndcg) = steps.time("blend weights", || {
        let plain = blend_weights(&members, &inner);
        let Some(half_life) = tuned.settings.history_half_life else {
            return plain;
        };
        let unweighted = inner.train.data.clone();
        inner.weigh_histories(half_life);
        let weighted = blend_weights(&members, &inner);
        if weighted.1 >= plain.1 {
            return weighted;
        }
        inner.train.data = unweighted;
        tuned.settings.history_half_life = None;
        if let Some(c) = tuned.choices.iter_mut().find(|c| c.model == "history") {
            c.setting = "half_life_share none".to_string();
            c.stopped = Some(format!(
                "the blend validated better without it: NDCG@10 {:.4} against {:.4}",
                plain.1, weighted.1
            ));
        }
        plain
    });
    let short_route = match tuning.short_route {
        Some(route) => route,
        None => steps.time("smart's routes", || {
            choose_short_route(&members, &quality_weights, &inner)
        }),
    };
    let ranker = if ranker {
        steps.time("ranker", || {
            let extras = Extras::of(&inner, &members);
            algo::enhanced::Ranker::fit(&extras.models(&members), &inner.train, &inner.test)
        })
    } else {
        Default::default()
    };
    tracing::info!(
        ?quality_weights,
        quality_validation_ndcg = quality_ndcg,
        ?short_route,
        ranker = ?ranker.weights,
        "learned on the validation split"
    );
    let learned = Learned {
        settings: tuned.settings,
        choices: tuned.choices,
        quality_weights,
        quality_validation_ndcg: quality_ndcg,
        short_route,
        ranker,
    };
    (learned, members.als.item_factors)
}

/// `quality`'s weights fitted on `inner` (in the order of [`QUALITY_MEMBERS`], 0 for a member
/// not fitted) and their validation NDCG@10.
fn blend_weights(members: &Members, inner: &EvalData) -> (Vec<f32>, f64) {
    let scorers = members.scorers();
    let present: Vec<&dyn Scorer> = scorers.iter().flatten().copied().collect();
    let (fitted, ndcg) = algo::blend::fit_weights(&present, &inner.train, &inner.test, 10);
    let mut fitted = fitted.into_iter();
    let weights = scorers
        .iter()
        .map(|s| match s {
            Some(_) => fitted.next().unwrap_or(0.0),
            None => 0.0,
        })
        .collect();
    (weights, ndcg)
}

/// `quality`'s blend (relevance order) over `members` with `weights`.
pub fn blend<'a>(members: &'a Members, weights: &[f32]) -> Blend<'a> {
    let members = members.scorers().into_iter().zip(weights);
    Blend {
        members: members
            .filter_map(|(m, &w)| Some((Box::new(m?) as Box<dyn Scorer + 'a>, w)))
            .collect(),
        diversity: None,
    }
}

/// `smart` over `members`, with `established` for established users.
pub fn smart<'a>(
    members: &'a Members,
    established: Box<dyn Scorer + 'a>,
    short: ShortRoute,
) -> Smart<'a> {
    Smart {
        trending: Box::new(&members.recent),
        neighbours: Box::new(&members.itemknn),
        content: Box::new(&members.content),
        established,
        short,
    }
}

/// Most validation users with a short history the route is chosen on.
const SHORT_USERS: usize = 2000;

/// Whether short histories (1 to [`algo::smart::SHORT_HISTORY`]` - 1` liked items) get their
/// neighbours or the blend: the one with the better NDCG@10 on those validation users (the
/// neighbours keep a tie, and the default when there are none).
fn choose_short_route(members: &Members, weights: &[f32], inner: &EvalData) -> ShortRoute {
    let short: Vec<usize> = algo::validation_users(&inner.train, &inner.test, usize::MAX)
        .into_iter()
        .filter(|&u| algo::smart::route(inner.train.row_len(u)) == Route::ShortHistory)
        .collect();
    // At most `SHORT_USERS`, spread evenly: a million users may have hundreds of thousands of
    // short histories, and each is scored over the whole catalogue by every member.
    let stride = short.len().div_ceil(SHORT_USERS).max(1);
    let short: Vec<usize> = short.into_iter().step_by(stride).collect();
    if short.is_empty() {
        return ShortRoute::Neighbours;
    }
    let established = blend(members, weights);
    let ndcg = |route| {
        let smart = smart(members, Box::new(&established), route);
        validation_ndcg(&smart, inner, &short)
    };
    let (neighbours, blended) = (ndcg(ShortRoute::Neighbours), ndcg(ShortRoute::Blend));
    tracing::info!(
        users = short.len(),
        neighbours,
        blend = blended,
        "short histories on the validation split"
    );
    if blended > neighbours {
        ShortRoute::Blend
    } else {
        ShortRoute::Neighbours
    }
}
