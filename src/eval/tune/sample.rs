//! Searching settings on a sample of users when the validation split is too large for the
//! budget: a large data set still gets a search instead of every default.

use std::time::Duration;

use super::super::data::EvalData;
use super::cost::{MAX_USERS, Shape};
use super::grids::{ALS_AXES, Axis, BPR_AXES, als_params, bpr_params};
use crate::algo;

/// Settings of ALS and of BPR the search should afford within its half of the budget before it
/// samples users.
pub(super) const SETTINGS_TO_AFFORD: f64 = 4.0;
/// Fewest users a sample keeps: fewer, and the choices would follow noise more than the data.
pub(super) const MIN_SAMPLE_USERS: usize = 2000;

/// The sample of users to search settings on, when the whole validation split is too large for
/// the budget: every `k`-th user, `k` the smallest power of two with which ALS and BPR can each
/// try [`SETTINGS_TO_AFFORD`] settings (by the predicted costs, so the same data gives the same
/// sample), keeping at least [`MIN_SAMPLE_USERS`]. `None`: the whole split fits, there is no
/// budget, or too few users to sample. The budget is then the configured one, not
/// `Budget::scaled`'s: the sample is what keeps the search's cost in proportion.
pub fn sample(inner: &EvalData, budget: Duration) -> Option<(usize, String)> {
    let have = budget.as_secs_f64() / 2.0;
    if have <= 0.0 {
        return None;
    }
    let users = algo::validation_users(&inner.train, &inner.test, MAX_USERS);
    let shape = Shape::of(inner, &users);
    let start = |axes: &[Axis]| -> Vec<f64> { axes.iter().map(|a| a.values[a.start]).collect() };
    let one = |s: &Shape| {
        s.als(&als_params(&start(&ALS_AXES)))
            .max(s.bpr(&bpr_params(&start(&BPR_AXES))))
    };
    let full = one(&shape);
    if full * SETTINGS_TO_AFFORD <= have {
        return None;
    }
    let rows = inner.train.n_rows;
    let mut every = 1;
    while rows / (every * 2) >= MIN_SAMPLE_USERS
        && one(&shape.sampled(every)) * SETTINGS_TO_AFFORD > have
    {
        every *= 2;
    }
    (every > 1).then(|| {
        let note = format!(
            "1 in {every} users ({} of {rows}): one ALS or BPR fit on all of them is predicted to \
             take {full:.1} s, {have:.1} s of the tuning budget is theirs",
            rows.div_ceil(every)
        );
        tracing::info!(
            every,
            users = rows.div_ceil(every),
            of = rows,
            "settings chosen on a sample of users"
        );
        (every, note)
    })
}
