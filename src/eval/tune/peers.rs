//! Peers that `reco evaluate` tunes for its table beside the served models: RP3beta
//! (`algo::rp3beta`, asymmetric, so it cannot explain a recommendation the way item-to-item does
//! and is not served), and EASE when training's budget declined it (a large catalogue), so that the
//! table still compares against it. Searched like the served models, on a validation split shaped
//! like the test split (sampled the same way when it is too large).

use std::time::Duration;

use super::super::data::EvalData;
use super::cost::{MAX_USERS, Shape};
use super::grids::{EASE_AXES, RP3BETA_AXES, rp3beta_params};
use super::sample::sample;
use super::search::{Searched, ndcg, search};
use crate::algo::{self, ease, itemknn, rp3beta};

/// Settings a declined EASE peer may always try, whatever the budget: a table without EASE would
/// compare `smart` against weaker peers only.
const EASE_PEER_SETTINGS: f64 = 4.0;

/// The validation split the peers are searched on, carved once for all of them.
pub struct Validation {
    inner: EvalData,
    users: Vec<usize>,
}

/// The validation split of `data`'s training part, carved as training's own is (a sample of its
/// users when it is too large for `budget`), and its validation users.
pub fn validation(data: &EvalData, budget: Duration) -> Validation {
    let mut inner = data.inner_split(0.8);
    if let Some((every, _)) = sample(&inner, budget) {
        inner = inner.sample_users(every);
    }
    let users = algo::validation_users(&inner.train, &inner.test, MAX_USERS);
    Validation { inner, users }
}

/// RP3beta's search, within half of `budget`.
pub fn rp3beta(v: &Validation, budget: Duration) -> Searched<rp3beta::Rp3Beta> {
    let (inner, users) = (&v.inner, &v.users);
    let shape = Shape::of(inner, users);
    // A walk costs what item-to-item's co-occurrence count does.
    let cost = |v: &[f64]| {
        shape.itemknn(&itemknn::Params {
            k: rp3beta_params(v).k,
            shrinkage: 0.0,
        })
    };
    search(
        "rp3beta",
        &RP3BETA_AXES,
        budget.as_secs_f64() / 2.0,
        cost,
        |v| Some(rp3beta::fit(&inner.train, rp3beta_params(v))),
        ndcg(inner, users),
    )
    .expect("RP3beta always fits")
}

/// EASE's search for the table, within half of `budget` or [`EASE_PEER_SETTINGS`] fits,
/// whichever is more; `None` above its catalogue limit.
pub fn ease(v: &Validation, budget: Duration) -> Option<Searched<ease::Ease>> {
    let (inner, users) = (&v.inner, &v.users);
    let shape = Shape::of(inner, users);
    let one = shape.ease();
    let allowance = (budget.as_secs_f64() / 2.0).max(EASE_PEER_SETTINGS * one);
    let fit = |v: &[f64]| {
        let params = ease::Params {
            lambda: v[0],
            ..Default::default()
        };
        ease::fit(&inner.train, params)
    };
    search(
        "ease",
        &EASE_AXES,
        allowance,
        |_| one,
        fit,
        ndcg(inner, users),
    )
}
