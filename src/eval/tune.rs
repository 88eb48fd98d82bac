//! Choosing each model's settings on the validation split, within a budget of predicted work.
//!
//! A server pointed at its users' own data cannot know in advance which regularisation, neighbour
//! count or popularity half-life suits it, so every training run searches them on the validation
//! split (never on test data): for each model a coordinate search over a small grid of values per
//! setting, starting from the default. For one setting it tries every other value of its grid
//! (the other settings held) and moves to the best, if that beats the current point; then the
//! next setting; and a second round if anything moved. A strictly better score is needed to move,
//! so ties keep the default. (Stepping only while each step improves stopped short: ALS's
//! regularisation falls from 0.05 to 0.5 on MovieLens before it rises at 10.)
//!
//! Besides each model's own settings it chooses recency inside histories (`algo::recency`): how
//! much more a user's newest items weigh, scored on the better of item-to-item and EASE.
//!
//! The budget is seconds of predicted work, not of the clock: each fit and its scoring is
//! priced from the data's size before it runs ([`cost`]), so the same data and configuration
//! make the same choices on an idle machine and a busy one. The cheap models (popularity's
//! half-life, item-to-item, EASE, then recency inside histories) search first within half of it,
//! each from what the ones before left; then ALS and BPR side by side, each within the rest. A
//! further setting is tried only while its predicted cost still fits. A validation split too large
//! for the budget is searched on a sample of its users ([`sample`]), so that a large data set still
//! gets a search instead of every default. The default setting's fit is needed anyway (the blend
//! weights are learned on it); it is scored only when a second setting can follow.

use std::time::Duration;

mod cost;
mod grids;
mod peers;
mod sample;
mod search;

use cost::{MAX_USERS, Shape};
pub use grids::rp3beta_params;
pub use peers::{Validation, ease as ease_peer, rp3beta as rp3beta_search, validation};
pub use sample::sample;
pub use search::{Choice, Searched};
use search::{ndcg, search, show};

use grids::{
    ALS_AXES, BPR_AXES, EASE_AXES, HALF_LIFE_AXES, HISTORY_AXES, ITEMKNN_AXES, als_params,
    bpr_params, itemknn_params,
};

use super::data::EvalData;
use super::score::validation_ndcg_weighted;
use super::steps::Steps;
use crate::algo::{self, Scorer, als, bpr, ease, itemknn, popularity};

/// Every model's settings for one training run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub als: als::Params,
    pub bpr: bpr::Params,
    pub itemknn: itemknn::Params,
    /// EASE's `λ`; `None`: no EASE (its catalogue limit, or a fit longer than the budget allows).
    pub ease_lambda: Option<f64>,
    /// Popularity's half-life in days; `None`: no decay.
    pub half_life_days: Option<f64>,
    /// Recency inside a history: its half-life as a share of the history's length
    /// (`algo::recency`); `None`: none.
    pub history_half_life: Option<f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            als: Default::default(),
            bpr: Default::default(),
            itemknn: Default::default(),
            ease_lambda: Some(ease::Params::default().lambda),
            half_life_days: Some(DEFAULT_HALF_LIFE_DAYS),
            history_half_life: None,
        }
    }
}

/// Popularity's half-life when nothing else is known (the server's default before tuning).
pub const DEFAULT_HALF_LIFE_DAYS: f64 = 14.0;

/// One line for the training log: `als: factors 64, ...; bpr: ...`.
pub fn describe(choices: &[Choice]) -> String {
    choices
        .iter()
        .map(|c| format!("{}: {}", c.model, c.setting))
        .collect::<Vec<_>>()
        .join("; ")
}

/// How long tuning may take, from when it starts; zero: keep every default.
#[derive(Debug, Clone, Copy)]
pub struct Budget(pub Duration);

/// Training interactions up to which the whole budget is spent when the search runs on every
/// user; above, it shrinks in proportion. A split too large for the budget is searched on a
/// sample of users instead ([`sample`]), at the whole budget; this applies when it cannot be
/// sampled (too few users for a sample), where each fit grows with the data while the search's
/// gain does not.
pub const FULL_BUDGET_UP_TO: usize = 1_000_000;

impl Budget {
    /// The budget for `interactions` training interactions (see [`FULL_BUDGET_UP_TO`]), logged
    /// when it is scaled down.
    pub fn scaled(self, interactions: usize) -> Duration {
        if interactions <= FULL_BUDGET_UP_TO {
            return self.0;
        }
        let scaled = self
            .0
            .mul_f64(FULL_BUDGET_UP_TO as f64 / interactions as f64);
        tracing::info!(
            interactions,
            budget_s = self.0.as_secs_f64(),
            scaled_s = scaled.as_secs_f64(),
            full_up_to = FULL_BUDGET_UP_TO,
            "tuning budget scaled down for the size of the data"
        );
        scaled
    }
}

/// A value of a grid as a setting: `None` for infinity (no decay).
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Popularity with a half-life in days (`None`: none), on `data`'s training part.
pub fn popularity_of(data: &EvalData, half_life_days: Option<f64>) -> popularity::Popularity {
    let half_life = half_life_days.map(|d| d * 86_400.0);
    popularity::fit(data.train.n_cols, data.train_events(), data.now, half_life)
}

/// Every model the search tunes, fitted on the validation split's training part at its chosen
/// setting, with the chosen settings and the report.
pub struct Tuned {
    pub settings: Settings,
    pub als: als::Als,
    pub bpr: bpr::Bpr,
    pub itemknn: itemknn::ItemKnn,
    pub ease: Option<ease::Ease>,
    pub recent: popularity::Popularity,
    pub choices: Vec<Choice>,
}

/// Searches every model's settings on `inner` (a validation split) within `budget` (see the
/// module docs; the caller scales it, [`Budget::scaled`], or samples users, [`sample`]).
/// `fixed_half_life`: the configured half-life, not searched.
pub fn tune(
    inner: &EvalData,
    budget: Budget,
    fixed_half_life: Option<Option<f64>>,
    steps: &Steps,
) -> Tuned {
    let budget = budget.0.as_secs_f64();
    let users = algo::validation_users(&inner.train, &inner.test, MAX_USERS);
    let users = &users[..];
    let shape = Shape::of(inner, users);
    // The cheap models search first, within half of the budget, each from what the ones before
    // left; ALS and BPR then search side by side, each within the rest.
    let cheap_allowance = budget / 2.0;
    // Cheapest and most telling for new users first: popularity's half-life, then item-to-item,
    // then EASE (whose single fit is the costliest of the three).
    let cheap = || {
        let recent = steps.time("validation popularity", || match fixed_half_life {
            Some(days) => fixed_recent(inner, days),
            None => search(
                "recent",
                &HALF_LIFE_AXES,
                cheap_allowance,
                |_| shape.popularity(),
                |v| Some(popularity_of(inner, finite(v[0]))),
                ndcg(inner, users),
            ),
        });
        let mut left = cheap_allowance - recent.as_ref().map_or(0.0, |r| r.spent);
        let knn = steps.time("validation item-to-item", || {
            search(
                "itemknn",
                &ITEMKNN_AXES,
                left,
                |v| shape.itemknn(&itemknn_params(v)),
                |v| Some(itemknn::fit(&inner.train, itemknn_params(v))),
                ndcg(inner, users),
            )
            .expect("item-to-item always fits")
        });
        left -= knn.spent;
        let ease = steps.time("validation ease", || {
            ease_search(inner, users, &shape, left)
        });
        left -= ease.as_ref().map_or(0.0, |e| e.spent);
        let history = steps.time("validation history recency", || {
            history_search(&knn, ease.as_ref().ok(), inner, users, &shape, left)
        });
        left -= history.spent;
        (knn, recent, ease, history, cheap_allowance - left)
    };
    let (knn, recent, ease, history, cheap_spent) = cheap();
    let rest = budget - cheap_spent;
    let als_search = || {
        steps.time("validation als", || {
            search(
                "als",
                &ALS_AXES,
                rest,
                |v| shape.als(&als_params(v)),
                |v| Some(als::fit(&inner.train, als_params(v))),
                ndcg(inner, users),
            )
        })
    };
    let bpr_search = || {
        steps.time("validation bpr", || {
            search(
                "bpr",
                &BPR_AXES,
                rest,
                |v| shape.bpr(&bpr_params(v)),
                |v| Some(bpr::fit(&inner.train, bpr_params(v))),
                ndcg(inner, users),
            )
        })
    };
    let (als, bpr) = rayon::join(als_search, bpr_search);
    let (als, bpr, recent) = (
        als.expect("ALS always fits"),
        bpr.expect("BPR always fits"),
        recent.expect("popularity always fits"),
    );
    let settings = Settings {
        als: als_params(&als.values),
        bpr: bpr_params(&bpr.values),
        itemknn: itemknn_params(&knn.values),
        ease_lambda: ease.as_ref().ok().map(|e| e.values[0]),
        half_life_days: finite(recent.values[0]),
        history_half_life: finite(history.values[0]),
    };
    let mut choices = vec![als.choice, bpr.choice, knn.choice, recent.choice];
    match &ease {
        Ok(e) => choices.push(e.choice.clone()),
        Err(why) => choices.push(Choice {
            model: "ease".to_string(),
            setting: "not used".to_string(),
            validation_ndcg: None,
            tried: 0,
            stopped: Some(why.clone()),
        }),
    }
    choices.push(history.choice);
    choices.iter().for_each(log_choice);
    Tuned {
        settings,
        als: als.model,
        bpr: bpr.model,
        itemknn: knn.model,
        ease: ease.ok().map(|e| e.model),
        recent: recent.model,
        choices,
    }
}

/// One line of the training log per model searched.
fn log_choice(c: &Choice) {
    tracing::info!(
        model = c.model,
        setting = c.setting,
        validation_ndcg = c.validation_ndcg,
        tried = c.tried,
        stopped = c.stopped,
        "chosen on the validation split"
    );
}

/// Popularity at the configured half-life (not searched).
fn fixed_recent(inner: &EvalData, days: Option<f64>) -> Option<Searched<popularity::Popularity>> {
    Some(Searched {
        values: vec![days.unwrap_or(f64::INFINITY)],
        model: popularity_of(inner, days),
        choice: Choice {
            model: "recent".to_string(),
            setting: format!(
                "half_life_days {} (configured)",
                show(days.unwrap_or(f64::INFINITY))
            ),
            validation_ndcg: None,
            tried: 0,
            stopped: None,
        },
        spent: 0.0,
    })
}

/// EASE's search, when its catalogue is within the limit and a fit and its scoring are predicted
/// to take at most a quarter of what is left of the cheap models' allowance: the search's first
/// fit and the final fit on all the data then take at most half of it.
fn ease_search(
    inner: &EvalData,
    users: &[usize],
    shape: &Shape,
    left: f64,
) -> Result<Searched<ease::Ease>, String> {
    let n = inner.train.n_cols;
    let max_items = ease::Params::default().max_items;
    let one = shape.ease();
    let why = if n > max_items {
        format!("{n} items, above its limit of {max_items}")
    } else if one > left / 4.0 {
        let left = left.max(0.0);
        format!(
            "one fit on {n} items would take about {one:.1} s, more than a quarter of the \
             {left:.1} s of tuning budget left"
        )
    } else {
        let fit = |v: &[f64]| {
            let params = ease::Params {
                lambda: v[0],
                ..Default::default()
            };
            ease::fit(&inner.train, params)
        };
        let searched = search("ease", &EASE_AXES, left, |_| one, fit, ndcg(inner, users));
        return searched.ok_or_else(|| "the fit declined the catalogue".to_string());
    };
    tracing::info!(reason = why, "EASE not used");
    Err(why)
}

/// Recency inside histories (`algo::recency`): the half-life with the best NDCG@10 on validation
/// for the better history model of the two (EASE, when fitted and not behind item-to-item; else
/// item-to-item). Each value costs one scoring pass, no fit.
fn history_search(
    knn: &Searched<itemknn::ItemKnn>,
    ease: Option<&Searched<ease::Ease>>,
    inner: &EvalData,
    users: &[usize],
    shape: &Shape,
    left: f64,
) -> Searched<f64> {
    let ndcg = |c: &Choice| c.validation_ndcg.unwrap_or(0.0);
    let (model, cost): (&dyn Scorer, f64) = match ease {
        Some(e) if ndcg(&e.choice) >= ndcg(&knn.choice) => (&e.model, shape.ease_scoring()),
        _ => (
            &knn.model,
            shape.itemknn_scoring(itemknn_params(&knn.values).k),
        ),
    };
    let score = |h: &f64| validation_ndcg_weighted(model, inner, users, finite(*h));
    search(
        "history",
        &HISTORY_AXES,
        left,
        |_| cost,
        |v| Some(v[0]),
        score,
    )
    .expect("the half-life is its own fit")
}

#[cfg(test)]
mod tests;
