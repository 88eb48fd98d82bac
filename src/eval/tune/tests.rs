//! Unit tests of the settings search.

use super::sample::MIN_SAMPLE_USERS;
use super::*;
use crate::eval::data::{Positive, Split, split};
use crate::eval::score::evaluate;

/// 15 users of an early period like all of items 0-9, 30 users of a period 100 days later four
/// each of items 10-19 (the early items have more likes in all): what is popular lately predicts
/// the test.
fn shifting_taste() -> EvalData {
    let catalogue: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let mut positives = Vec::new();
    for (users, likes, first_item, day0) in [(0..15, 10, 0, 0), (15..45, 4, 10, 100)] {
        for u in users {
            for k in 0..likes {
                positives.push(Positive {
                    user: format!("u{u}"),
                    item: (first_item + (u + k) % 10).to_string(),
                    timestamp: (day0 + k as i64) * 86_400 + u as i64,
                });
            }
        }
    }
    split(&catalogue, positives, 0.8, Split::Temporal)
}

/// Every setting searched on a validation split of `data` with a budget no search here reaches.
fn converged(data: &EvalData) -> Tuned {
    let inner = data.inner_split(0.8);
    let budget = Budget(Duration::from_secs(600));
    tune(&inner, budget, None, &Steps::default())
}

/// The report of `model`'s search.
fn choice<'a>(tuned: &'a Tuned, model: &str) -> &'a Choice {
    tuned.choices.iter().find(|c| c.model == model).unwrap()
}

/// Popularity's half-life is chosen on the validation split: a decay wins when recent likes
/// predict the test, and it then beats all-time popularity on the test itself. The choice is
/// reported with its validation score.
#[test]
fn the_half_life_is_chosen_on_validation() {
    let data = shifting_taste();
    let tuned = converged(&data);
    let days = tuned.settings.half_life_days.expect("a decay wins here");
    assert!(days <= 90.0, "{days}");
    let recent = choice(&tuned, "recent");
    assert!(
        recent.validation_ndcg.is_some() && recent.tried >= 2,
        "{recent:?}"
    );
    assert_eq!(recent.stopped, None, "{recent:?}");

    let chosen = popularity_of(&data, Some(days));
    let all_time = popularity_of(&data, None);
    let (chosen, all_time) = (evaluate(&chosen, &data, 10), evaluate(&all_time, &data, 10));
    assert!(chosen.ndcg > all_time.ndcg, "{chosen:?} vs {all_time:?}");
}

/// Four groups of ten items; each user likes five items of one group, then ten of another (five
/// users for each ordered pair of groups): a user's next items are in the group of their newest.
fn drifting_taste() -> EvalData {
    let catalogue: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let mut positives = Vec::new();
    let pairs = (0..4).flat_map(|a| (0..4).filter(move |&b| b != a).map(move |b| (a, b)));
    for (p, (a, b)) in pairs.enumerate() {
        for u in p * 5..p * 5 + 5 {
            let picks = (0..5).map(|k| a * 10 + (u + k) % 10);
            let later = (0..10).map(|k| b * 10 + k);
            for (t, item) in picks.chain(later).enumerate() {
                positives.push(Positive {
                    user: format!("u{u}"),
                    item: item.to_string(),
                    timestamp: t as i64 * 3_600,
                });
            }
        }
    }
    split(&catalogue, positives, 0.8, Split::Temporal)
}

/// Recency inside histories is chosen on the validation split when a user's newest items predict
/// their next ones, and weighing histories by it then beats weighing them alike on the test.
#[test]
fn recency_inside_histories_is_chosen_on_validation() {
    let data = drifting_taste();
    let tuned = converged(&data);
    let half_life = tuned.settings.history_half_life.expect("recency wins here");
    let history = choice(&tuned, "history");
    assert!(
        history.tried >= 2 && history.stopped.is_none(),
        "{history:?}"
    );

    let knn = itemknn::fit(&data.train, tuned.settings.itemknn);
    let plain = evaluate(&knn, &data, 10);
    let mut weighted = data.clone();
    weighted.weigh_histories(half_life);
    let recent = evaluate(&knn, &weighted, 10);
    assert!(recent.ndcg > plain.ndcg, "{recent:?} vs {plain:?}");
}

/// With no budget every model keeps its default and says why; a configured half-life is used as
/// given, not searched.
#[test]
fn no_budget_keeps_every_default_and_says_so() {
    let inner = shifting_taste().inner_split(0.8);
    let tuned = tune(
        &inner,
        Budget(Duration::ZERO),
        Some(None),
        &Steps::default(),
    );
    let defaults = Settings::default();
    assert_eq!(
        tuned.settings.als.regularization,
        defaults.als.regularization
    );
    assert_eq!(tuned.settings.bpr.learning_rate, defaults.bpr.learning_rate);
    assert_eq!(tuned.settings.itemknn.k, defaults.itemknn.k);
    assert_eq!(tuned.settings.half_life_days, None, "configured: no decay");
    assert_eq!(tuned.settings.history_half_life, None);
    assert!(tuned.ease.is_none(), "EASE needs some budget");
    for model in ["als", "bpr", "itemknn", "history"] {
        let c = choice(&tuned, model);
        assert_eq!((c.tried, c.validation_ndcg), (0, None), "{c:?}");
        assert!(
            c.stopped.as_deref().unwrap().contains("kept the default"),
            "{c:?}"
        );
    }
    let ease = choice(&tuned, "ease");
    assert_eq!(ease.setting, "not used");
}

/// A tie never moves the search away from the default: on 20 items every neighbour count of the
/// grid (25 and up) keeps every neighbour, so all score the same; each is tried once.
#[test]
fn ties_keep_the_default() {
    let inner = shifting_taste().inner_split(0.8);
    let users = algo::validation_users(&inner.train, &inner.test, MAX_USERS);
    let fit = |v: &[f64]| {
        let params = itemknn::Params {
            k: v[0] as usize,
            shrinkage: 10.0,
        };
        Some(itemknn::fit(&inner.train, params))
    };
    let searched = search(
        "itemknn",
        &ITEMKNN_AXES[..1],
        600.0,
        |_| 0.01,
        fit,
        ndcg(&inner, &users),
    )
    .unwrap();
    assert_eq!(searched.values, vec![100.0]);
    assert_eq!(searched.choice.tried, 5, "every value once, one round");
}

/// The budget holds whole up to a million interactions and shrinks in proportion above.
#[test]
fn the_budget_shrinks_with_the_data() {
    let budget = Budget(Duration::from_secs(20));
    assert_eq!(budget.scaled(100_000), Duration::from_secs(20));
    assert_eq!(budget.scaled(FULL_BUDGET_UP_TO), Duration::from_secs(20));
    assert_eq!(
        budget.scaled(10 * FULL_BUDGET_UP_TO),
        Duration::from_secs(2)
    );
}

/// The budget counts predicted work, not time: with each setting priced at one second and three
/// and a half seconds allowed, the default and two more are fitted, whatever the clock says.
#[test]
fn the_budget_counts_predicted_work() {
    let inner = shifting_taste().inner_split(0.8);
    let users = algo::validation_users(&inner.train, &inner.test, MAX_USERS);
    let fit = |v: &[f64]| Some(popularity_of(&inner, finite(v[0])));
    let searched = search(
        "recent",
        &HALF_LIFE_AXES,
        3.5,
        |_| 1.0,
        fit,
        ndcg(&inner, &users),
    )
    .unwrap();
    assert_eq!(searched.choice.tried, 3, "{:?}", searched.choice);
    assert_eq!(searched.spent, 3.0);
    assert_eq!(
        searched.choice.stopped.as_deref(),
        Some("stopped at the tuning budget")
    );
    let searched = search(
        "recent",
        &HALF_LIFE_AXES,
        1.5,
        |_| 1.0,
        fit,
        ndcg(&inner, &users),
    )
    .unwrap();
    assert_eq!(searched.choice.tried, 0, "only the default's fit, unscored");
    assert!(
        searched
            .choice
            .stopped
            .as_deref()
            .unwrap()
            .starts_with("kept the default: one fit takes about 1.0 s"),
        "{:?}",
        searched.choice
    );
}

/// The same data and budget make the same choices, to the bit of every validation score, on one
/// thread and on several: nothing in the search depends on the clock or on how threads split work.
#[test]
fn tuning_is_deterministic() {
    let inner = drifting_taste().inner_split(0.8);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| {
            tune(
                &inner,
                Budget(Duration::from_millis(50)),
                None,
                &Steps::default(),
            )
            .choices
        })
    };
    let one = run(1);
    assert!(
        one.iter()
            .any(|c| c.stopped.as_deref() == Some("stopped at the tuning budget")),
        "a budget that binds: {one:?}"
    );
    assert_eq!(one, run(3));
    assert_eq!(one, run(1));
}

/// A validation split too large for the budget is searched on every `k`-th user, `k` a power of
/// two, keeping at least the minimum of users and saying so; one that fits, or no budget, is not
/// sampled. The sample keeps each chosen user's rows whole.
#[test]
fn a_split_too_large_for_the_budget_is_sampled() {
    // 8,000 users over 50 items, 20 positives each.
    let positives: Vec<Positive> = (0..8_000)
        .flat_map(|u| {
            (0..20).map(move |k| Positive {
                user: format!("u{u}"),
                item: ((u * 7 + k * 3) % 50).to_string(),
                timestamp: i64::from(k),
            })
        })
        .collect();
    let catalogue: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let inner = split(&catalogue, positives, 0.8, Split::Temporal).inner_split(0.8);
    assert_eq!(sample(&inner, Duration::from_secs(600)), None, "it fits");
    assert_eq!(sample(&inner, Duration::ZERO), None, "no budget, no search");
    let (every, note) = sample(&inner, Duration::from_millis(200)).expect("a sample");
    assert!(every.is_power_of_two() && every > 1, "{every}");
    assert!(inner.train.n_rows / every >= MIN_SAMPLE_USERS, "{every}");
    assert!(note.starts_with(&format!("1 in {every} users")), "{note}");
    let sampled = inner.sample_users(every);
    assert_eq!(sampled.train.n_rows, inner.train.n_rows.div_ceil(every));
    for (row, u) in (0..inner.train.n_rows).step_by(every).enumerate() {
        assert_eq!(sampled.train.row(row), inner.train.row(u));
        assert_eq!(sampled.user_times(row), inner.user_times(u));
        assert_eq!(sampled.test[row], inner.test[u]);
    }
}
