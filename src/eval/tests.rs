//! Unit tests of offline evaluation.

use super::*;
use crate::algo::Csr;

use crate::algo::testing::Fixed;

#[test]
fn metrics_by_hand() {
    // Two users, five items. User 0 trained on item 0, tests {1, 4}; user 1 tests {2}.
    let train = Csr::from_triplets(2, 5, vec![(0, 0, 1.0), (1, 3, 1.0)]);
    let data = EvalData::for_tests(train, vec![vec![1, 4], vec![2]]);
    // Ranking: 0 (excluded for user 0), 1, 2, 3, 4.
    let m = evaluate(&Fixed(vec![5.0, 4.0, 3.0, 2.0, 1.0]), &data, 2);
    // User 0 gets [1, 2]: one hit at rank 1. User 1 gets [0, 1]: no hit.
    let ndcg_u0 = 1.0 / (1.0 + 1.0 / 3f64.log2());
    assert!((m.ndcg - ndcg_u0 / 2.0).abs() < 1e-9, "{m:?}");
    assert!((m.precision - 0.25).abs() < 1e-9);
    assert!((m.recall - 0.25).abs() < 1e-9);
    assert!((m.hit_rate - 0.5).abs() < 1e-9);
    assert!(
        (m.coverage - 3.0 / 5.0).abs() < 1e-9,
        "items 0, 1, 2 recommended"
    );
    assert_eq!(m.users, 2);
}

/// `recent` picks a short half-life when the test follows what is popular lately, and beats
/// all-time popularity then: 15 users of an early period like all of items 0-9, 30 users of a
/// period 100 days later four each of items 10-19 (the early items have more likes in all).
#[test]
fn recent_popularity_chooses_its_half_life_on_validation() {
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
    let data = split(&catalogue, positives, 0.8, Split::Temporal);
    let (recent, half_life) = fit_recent(&data);
    // Any half-life that halves a 100-day-old like at least once ranks the same: the longest.
    assert_eq!(half_life, Some(90.0));
    let all_time = fit("popularity", &data).unwrap();
    let (recent, all_time) = (
        evaluate(&recent, &data, 10),
        evaluate(all_time.as_ref(), &data, 10),
    );
    assert!(recent.ndcg > all_time.ndcg, "{recent:?} vs {all_time:?}");
}
