//! A given train/test pair of files (`reco evaluate files`): reading them, and the shape of
//! their split read off the timestamps, so that validation is carved the same way.

use std::path::Path;

use anyhow::{Context, bail};

use super::data::{EvalData, Ids, Split, with_ids};

/// A given train/test pair of tab-separated `user item rating timestamp` files (like ML-100K's
/// `ua.base`/`ua.test`); ratings >= `min_rating` are positives. The catalogue is every item in
/// either file. The validation split is carved in the shape the pair's timestamps show
/// ([`infer_shape`], returned beside the data).
pub fn from_files(train: &Path, test: &Path, min_rating: f64) -> anyhow::Result<(EvalData, Shape)> {
    let read = |path: &Path| -> anyhow::Result<Vec<(String, String, f64, i64)>> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text: String = text.iter().map(|&b| b as char).collect();
        let mut rows = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 4 {
                bail!(
                    "{} line {}: expected user, item, rating, timestamp separated by tabs",
                    path.display(),
                    n + 1
                );
            }
            let rating: f64 = f[2]
                .trim()
                .parse()
                .with_context(|| format!("{} line {}: rating", path.display(), n + 1))?;
            let ts: i64 = f[3]
                .trim()
                .parse()
                .with_context(|| format!("{} line {}: timestamp", path.display(), n + 1))?;
            rows.push((f[0].to_string(), f[1].to_string(), rating, ts));
        }
        Ok(rows)
    };
    let (train_rows, test_rows) = (read(train)?, read(test)?);
    let mut users = Ids::default();
    let mut items = Ids::default();
    for (u, i, _, _) in train_rows.iter().chain(&test_rows) {
        users.get(u);
        items.get(i);
    }
    let times = |rows: &[(String, String, f64, i64)]| -> Vec<(u32, i64)> {
        rows.iter()
            .map(|(u, _, _, t)| (users.index[u], *t))
            .collect()
    };
    let shape = infer_shape(&times(&train_rows), &times(&test_rows), users.ids.len());
    let train: Vec<(u32, u32, i64)> = train_rows
        .iter()
        .filter(|r| r.2 >= min_rating)
        .map(|(u, i, _, t)| (users.index[u], items.index[i], *t))
        .collect();
    let mut test = vec![Vec::new(); users.ids.len()];
    for (u, i, r, _) in &test_rows {
        if *r >= min_rating {
            test[users.index[u] as usize].push(items.index[i]);
        }
    }
    let mut data = with_ids(users, items, train, test);
    data.validation = shape.split;
    Ok((data, shape))
}

/// Most share of the rows (or users) allowed to break a shape's rule, for clocks that disagree
/// by a little or a handful of late rows: above it the split is not that shape.
const SHAPE_TOLERANCE: f64 = 0.01;

/// The shape of a given train/test split, read off its rows' `(user, timestamp)`, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub split: Split,
    pub why: String,
}

/// Which [`Split`] a given train/test pair looks like: one time cut for everyone when (nearly)
/// every test row is at or after the newest training row; per user by time when (nearly) every
/// user's test rows are at or after that user's newest training row; otherwise random (seed 1
/// for the validation split carved from it).
pub fn infer_shape(train: &[(u32, i64)], test: &[(u32, i64)], n_users: usize) -> Shape {
    let newest = train.iter().map(|r| r.1).max().unwrap_or(i64::MIN);
    let early = test.iter().filter(|r| r.1 < newest).count();
    let share = early as f64 / test.len().max(1) as f64;
    if share <= SHAPE_TOLERANCE {
        return Shape {
            split: Split::GlobalTime,
            why: format!(
                "{:.1}% of the test rows are older than the newest training row",
                share * 100.0
            ),
        };
    }
    let mut newest_of = vec![i64::MIN; n_users];
    for &(u, t) in train {
        newest_of[u as usize] = newest_of[u as usize].max(t);
    }
    let mut in_both = vec![false; n_users];
    let mut broken = vec![false; n_users];
    for &(u, t) in test {
        let u = u as usize;
        if newest_of[u] > i64::MIN {
            in_both[u] = true;
            broken[u] |= t < newest_of[u];
        }
    }
    let users = in_both.iter().filter(|&&b| b).count();
    let broken = broken.iter().filter(|&&b| b).count();
    let user_share = broken as f64 / users.max(1) as f64;
    if users > 0 && user_share <= SHAPE_TOLERANCE {
        return Shape {
            split: Split::Temporal,
            why: format!(
                "{:.1}% of the test rows are older than the newest training row, but {:.1}% of \
                 the users have a test row older than their own newest training row",
                share * 100.0,
                user_share * 100.0
            ),
        };
    }
    Shape {
        split: Split::Random { seed: 1 },
        why: format!(
            "{:.1}% of the users have a test row older than their own newest training row",
            user_share * 100.0
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A given split's shape is read off its timestamps: one cut for everyone, per user by time, or
    /// neither; each says why.
    #[test]
    fn the_shape_of_a_given_split_is_inferred_from_its_times() {
        // 20 users with 10 events each, interleaved in time: user u's k-th at 20 k + u.
        let rows: Vec<(u32, usize, i64)> = (0..20u32)
            .flat_map(|u| (0..10).map(move |k| (u, k, 20 * k as i64 + i64::from(u))))
            .collect();
        let shape = |is_test: &dyn Fn(u32, usize, i64) -> bool| {
            let (test, train): (Vec<_>, Vec<_>) =
                rows.iter().partition(|&&(u, k, t)| is_test(u, k, t));
            let times = |part: Vec<&(u32, usize, i64)>| -> Vec<(u32, i64)> {
                part.into_iter().map(|&(u, _, t)| (u, t)).collect()
            };
            infer_shape(&times(train), &times(test), 20)
        };
        let global = shape(&|_, _, t| t >= 160);
        assert_eq!(global.split, Split::GlobalTime, "{global:?}");
        assert!(
            global.why.starts_with("0.0% of the test rows"),
            "{global:?}"
        );
        // Odd users' last three events test, even users' last two: user 1's 7th (at 141) is older
        // than user 2's (at 142, training), so the cut is not global; per user it is.
        let temporal = shape(&|u, k, _| k + (u as usize % 2) >= 8);
        assert_eq!(temporal.split, Split::Temporal, "{temporal:?}");
        assert!(temporal.why.contains("0.0% of the users"), "{temporal:?}");
        let random = shape(&|u, k, _| (k + u as usize).is_multiple_of(5));
        assert_eq!(random.split, Split::Random { seed: 1 }, "{random:?}");
        assert!(random.why.starts_with("100.0% of the users"), "{random:?}");
    }
}
