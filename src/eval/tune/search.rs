//! The coordinate search every model's settings go through (see `super`'s docs), and what it
//! reports: [`Choice`]. Shared by the served models' search and the evaluation peers' (`peers`).

use serde::{Deserialize, Serialize};

use super::super::data::EvalData;
use super::super::score::validation_ndcg;
use super::grids::Axis;
use crate::algo::Scorer;

/// What the search chose for one model, as the training report and `reco evaluate` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub model: String,
    /// The chosen setting, as `name value` pairs.
    pub setting: String,
    /// NDCG@10 of the chosen setting on the validation split (`None`: not scored, because no
    /// second setting fitted the budget).
    pub validation_ndcg: Option<f64>,
    /// Settings fitted and scored.
    pub tried: usize,
    /// Why the search stopped before it converged, when it did.
    pub stopped: Option<String>,
}

impl Choice {
    /// The choice as a report shows it: the setting, its validation NDCG@10 and why the search
    /// stopped, when it stopped early.
    pub fn shown(&self) -> String {
        let mut text = self.setting.clone();
        if let Some(ndcg) = self.validation_ndcg {
            text.push_str(&format!(
                " (validation NDCG@10 {ndcg:.4}, {} tried)",
                self.tried
            ));
        }
        if let Some(why) = &self.stopped {
            text.push_str(&format!("; {why}"));
        }
        text
    }
}

/// Where one search ended: the chosen values (one per axis), its model fitted on the validation
/// split's training part, and the report.
pub struct Searched<M> {
    pub values: Vec<f64>,
    pub model: M,
    pub choice: Choice,
    /// Predicted seconds the search spent of its allowance (`super::cost`).
    pub spent: f64,
}

/// The coordinate search (see the module docs) over `axes` for `model`, fitting with `fit` and
/// scoring with `score` (NDCG@10 on the validation split); `None` when `fit` fits nothing at the
/// start (EASE over its limit).
pub(super) fn search<M>(
    model: &str,
    axes: &[Axis],
    allowance: f64,
    cost: impl Fn(&[f64]) -> f64,
    fit: impl Fn(&[f64]) -> Option<M>,
    score: impl Fn(&M) -> f64,
) -> Option<Searched<M>> {
    let value_of =
        |at: &[usize]| -> Vec<f64> { at.iter().zip(axes).map(|(&i, a)| a.values[i]).collect() };
    let mut at: Vec<usize> = axes.iter().map(|a| a.start).collect();
    let mut model_fit = fit(&value_of(&at))?;
    // Predicted seconds spent: the default's fit and score count whether or not it is scored.
    let first = cost(&value_of(&at));
    let mut spent = first;
    let mut stopped = None;
    let mut tried = vec![at.clone()];
    let mut best = None;
    if spent + first > allowance {
        let left = (allowance - spent).max(0.0);
        stopped = Some(format!(
            "kept the default: one fit takes about {first:.1} s, {left:.1} s of the tuning \
             budget left"
        ));
    } else {
        best = Some(score(&model_fit));
        'rounds: for _round in 0..2 {
            let mut moved = false;
            for d in 0..axes.len() {
                // Every other value of this setting, nearest to the current one first, so that a
                // budget that runs out has tried the likeliest; then the best of them, if better.
                let mut others: Vec<usize> =
                    (0..axes[d].values.len()).filter(|&i| i != at[d]).collect();
                others.sort_by_key(|&i| i.abs_diff(at[d]));
                let mut best_here: Option<(Vec<usize>, f64, M)> = None;
                for i in others {
                    let mut point = at.clone();
                    point[d] = i;
                    if tried.contains(&point) {
                        continue;
                    }
                    let next = cost(&value_of(&point));
                    if spent + next > allowance {
                        stopped = Some("stopped at the tuning budget".to_string());
                        break;
                    }
                    spent += next;
                    let candidate = fit(&value_of(&point));
                    tried.push(point.clone());
                    let Some(m) = candidate else { continue };
                    let ndcg = score(&m);
                    if best_here.as_ref().is_none_or(|(_, b, _)| ndcg > *b) {
                        best_here = Some((point, ndcg, m));
                    }
                }
                if let Some((point, ndcg, m)) = best_here
                    && best.is_none_or(|b| ndcg > b)
                {
                    (model_fit, at, best, moved) = (m, point, Some(ndcg), true);
                }
                if stopped.is_some() {
                    break 'rounds;
                }
            }
            if !moved {
                break;
            }
        }
    }
    let values = value_of(&at);
    let setting = axes
        .iter()
        .zip(&values)
        .map(|(a, v)| format!("{} {}", a.name, show(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    let choice = Choice {
        model: model.to_string(),
        setting,
        validation_ndcg: best,
        tried: if best.is_some() { tried.len() } else { 0 },
        stopped,
    };
    Some(Searched {
        values,
        model: model_fit,
        choice,
        spent,
    })
}

/// A model's score in a search: NDCG@10 on the validation users of `inner`.
pub(super) fn ndcg<'a, M: Scorer>(
    inner: &'a EvalData,
    users: &'a [usize],
) -> impl Fn(&M) -> f64 + 'a {
    move |m| validation_ndcg(m, inner, users)
}

/// A value as a setting prints it: whole numbers without a fraction, no decay as `none`.
pub(super) fn show(v: f64) -> String {
    if v.is_infinite() {
        "none".to_string()
    } else {
        format!("{v}")
    }
}
