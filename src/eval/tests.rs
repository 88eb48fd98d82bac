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
