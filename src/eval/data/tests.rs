//! Unit tests of the evaluation splits and data.

use super::*;

fn p(user: &str, item: &str, timestamp: i64) -> Positive {
    Positive {
        user: user.into(),
        item: item.into(),
        timestamp,
    }
}

#[test]
fn temporal_split_breaks_ties_by_item_id() {
    let catalogue: Vec<String> = ["1", "2", "3", "10", "99"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Five positives: 80% = 4 train. Items 10 and 3 tie at t=5: 3 comes first (numerically).
    let data = split(
        &catalogue,
        vec![
            p("a", "10", 5),
            p("a", "1", 1),
            p("a", "3", 5),
            p("a", "2", 2),
            p("a", "99", 9),
            p("b", "1", 1),
        ],
        0.8,
        Split::Temporal,
    );
    let train: Vec<&str> = data
        .train
        .row(0)
        .0
        .iter()
        .map(|&i| data.item_ids[i as usize].as_str())
        .collect();
    let mut expect = vec!["1", "2", "3", "10"];
    expect.sort_by_key(|id| catalogue.iter().position(|c| c == id));
    assert_eq!(train, expect);
    assert_eq!(
        data.test[0]
            .iter()
            .map(|&i| data.item_ids[i as usize].as_str())
            .collect::<Vec<_>>(),
        ["99"]
    );
    // One positive: floor(0.8) = 0 train, it tests (a cold user).
    assert_eq!(data.train.row_len(1), 0);
    assert_eq!(data.test[1].len(), 1);
    assert_eq!(data.now, 5);
    assert_eq!(data.train.n_cols, 5, "the whole catalogue is ranked");
}

/// Items of a user's row as ids.
fn ids(data: &EvalData, items: &[u32]) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .map(|&i| data.item_ids[i as usize].clone())
        .collect();
    ids.sort();
    ids
}

/// 20 users with 10 positives each at distinct times (user `u`'s at `100 u + k`), the items
/// numbered from the user up, so that users share items.
fn twenty_users() -> (Vec<String>, Vec<Positive>) {
    let catalogue: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let positives = (0..20)
        .flat_map(|u| (0..10).map(move |k| p(&format!("u{u}"), &(u + k).to_string(), 100 * u + k)))
        .collect();
    (catalogue, positives)
}

/// A random split keeps 80% of each user's positives for training, all of them in one part
/// or the other, the same parts for the same seed and others for another seed.
#[test]
fn random_split_is_per_user_and_seeded() {
    let (catalogue, positives) = twenty_users();
    let by = |seed| split(&catalogue, positives.clone(), 0.8, Split::Random { seed });
    let (a, again, other) = (by(1), by(1), by(2));
    let parts = |d: &EvalData, u: usize| (ids(d, d.train.row(u).0), ids(d, &d.test[u]));
    let mut differs = false;
    for u in 0..20 {
        let (train, test) = parts(&a, u);
        assert_eq!((train.len(), test.len()), (8, 2), "user {u}");
        let mut all: Vec<String> = train.iter().chain(&test).cloned().collect();
        all.sort();
        assert_eq!(all, ids(&a, &(u as u32..u as u32 + 10).collect::<Vec<_>>()));
        assert_eq!(parts(&again, u), (train.clone(), test.clone()));
        differs |= parts(&other, u) != (train, test);
    }
    assert!(differs, "another seed draws other test items");
    let temporal = split(&catalogue, positives, 0.8, Split::Temporal);
    assert!((0..20).any(|u| parts(&temporal, u) != parts(&a, u)));
}

/// A global time cut puts every positive before it in training and the rest in test, for
/// all users at once: the last users (all of whose positives come late) have no training
/// history and are still evaluated.
#[test]
fn global_time_split_cuts_everyone_at_one_time() {
    let (catalogue, positives) = twenty_users();
    let data = split(&catalogue, positives, 0.8, Split::GlobalTime);
    // 200 positives: the first 160 by time train, i.e. users 0-15.
    for u in 0..20 {
        let (train, test) = (data.train.row_len(u), data.test[u].len());
        if u < 16 {
            assert_eq!((train, test), (10, 0), "user {u}");
        } else {
            assert_eq!((train, test), (0, 10), "user {u}");
        }
    }
    assert_eq!(data.now, 100 * 15 + 9, "time decays from the cut");
}

/// One event dated in the year 9999 does not make every real event old: decay runs from the
/// wall clock, and the future event counts as new.
#[test]
fn decay_runs_from_the_wall_clock_not_a_future_event() {
    let now = chrono::Utc::now().timestamp();
    let far = chrono::DateTime::parse_from_rfc3339("9999-01-01T00:00:00Z")
        .unwrap()
        .timestamp();
    let interactions = [(0, 0, 1.0, now - 3600), (1, 1, 1.0, far)];
    let data = EvalData::from_interactions(2, 2, interactions.to_vec(), vec![]);
    assert!(data.now <= chrono::Utc::now().timestamp() && data.now >= now);
    let pop = crate::algo::popularity::fit(2, data.train_events(), data.now, Some(86_400.0));
    assert!(
        pop.score(0) > 0.9,
        "an hour-old like keeps its weight: {:?}",
        pop.scores
    );
    assert_eq!(pop.score(1), 1.0, "the future event counts as new");
}

/// The validation split inside the training part has the shape of the split it came from: one
/// time cut for a global-time split (the latest training users validate with no history), a
/// seeded random draw per user for a random one, the last 20% by time per user otherwise.
#[test]
fn validation_is_carved_like_the_test_split() {
    let (catalogue, positives) = twenty_users();
    let global = split(&catalogue, positives.clone(), 0.8, Split::GlobalTime);
    let inner = global.inner_split(0.8);
    assert_eq!(inner.validation, Split::GlobalTime);
    // 160 training positives: the first 128 by time stay, users 0-11 and 8 of user 12's.
    for u in 0..16 {
        let (train, test) = (inner.train.row_len(u), inner.test[u].len());
        let expect = match u {
            0..12 => (10, 0),
            12 => (8, 2),
            _ => (0, 10),
        };
        assert_eq!((train, test), expect, "user {u}");
    }

    let temporal = split(&catalogue, positives.clone(), 0.8, Split::Temporal);
    let random = split(&catalogue, positives, 0.8, Split::Random { seed: 1 });
    let (t, r) = (temporal.inner_split(0.8), random.inner_split(0.8));
    let last = |d: &EvalData, u: usize| -> Vec<i64> {
        // The times of user `u`'s validation items in the training part of `d`.
        let row = d.train.indptr[u]..d.train.indptr[u + 1];
        let times: Vec<(u32, i64)> = d.train.indices[row.clone()]
            .iter()
            .copied()
            .zip(d.train_times[row].iter().copied())
            .collect();
        let inner = d.inner_split(0.8);
        let mut out: Vec<i64> = inner.test[u]
            .iter()
            .map(|i| times.iter().find(|x| x.0 == *i).unwrap().1)
            .collect();
        out.sort();
        out
    };
    for u in 0..20 {
        assert_eq!(t.test[u].len(), 2, "user {u}");
        let times = last(&temporal, u);
        let newest: Vec<i64> = {
            let row = temporal.train.indptr[u]..temporal.train.indptr[u + 1];
            let mut all = temporal.train_times[row].to_vec();
            all.sort();
            all[all.len() - 2..].to_vec()
        };
        assert_eq!(times, newest, "temporal: the newest two of user {u}");
        assert_eq!(r.test[u].len(), 2, "user {u}");
    }
    assert!(
        (0..20).any(|u| {
            let row = random.train.indptr[u]..random.train.indptr[u + 1];
            let mut all = random.train_times[row].to_vec();
            all.sort();
            last(&random, u) != all[all.len() - 2..]
        }),
        "random: not simply the newest"
    );
}

/// Training data keeps each pair's weight for popularity: the policy's weights of its rows added
/// up (a view counts a tenth of a like), at the pair's newest time.
#[test]
fn popularity_events_carry_the_feedback_weights() {
    let t = 1_700_000_000;
    let interactions = vec![
        (0, 0, 0.1, t),
        (1, 0, 0.1, t),
        (2, 1, 1.0, t),
        (0, 2, 0.1, t - 10),
        (0, 2, 1.0, t),
    ];
    let data = EvalData::from_interactions(3, 3, interactions, vec![]);
    let events: Vec<(u32, f32, i64)> = data
        .train_events()
        .map(|e| (e.item, e.weight, e.timestamp))
        .collect();
    assert_eq!(events, [(0, 0.1, t), (2, 1.1, t), (0, 0.1, t), (1, 1.0, t)]);
    let pop = crate::algo::popularity::fit(3, data.train_events(), data.now, None);
    assert!(
        pop.score(1) > pop.score(0),
        "one like beats two views: {:?}",
        pop.scores
    );
}
