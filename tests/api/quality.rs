//! Offline quality floors on MovieLens-100K (protocol in `reco::eval`): fails when a model's
//! NDCG@10 drops below what it scored when the floor was recorded (docs/BENCHMARKS.md), less a small
//! margin for floating-point differences between machines.

use crate::helpers::ml100k;

/// (model, NDCG@10 floor). Recorded: popularity 0.0797, itemknn 0.1246, ease 0.1456 (λ 500,
/// chosen on validation; 0.1507 at λ 100), als 0.1327, bpr 0.1324,
/// content 0.0391 (titles and genres only: its job is items nobody has rated), fast 0.1201,
/// quality 0.1485 (0.1503 before its MMR diversity re-ranking at strength 0.1), enhanced 0.1422,
/// smart 0.1500.
const FLOORS: [(&str, f64); 10] = [
    ("popularity", 0.077),
    ("itemknn", 0.120),
    ("ease", 0.140),
    ("als", 0.128),
    ("bpr", 0.127),
    ("content", 0.035),
    ("fast", 0.115),
    ("quality", 0.145),
    ("enhanced", 0.137),
    ("smart", 0.145),
];

#[test]
fn every_model_stays_above_its_ndcg_floor() {
    let Some(dir) = ml100k() else { return };
    let ds = reco::data::movielens::load(&dir).unwrap();
    let data = reco::eval::from_dataset(
        &ds.items,
        &ds.feedback,
        |f| f.value >= 4.0,
        0.8,
        reco::eval::Split::Temporal,
    );
    assert_eq!(
        (data.train.n_rows, data.train.n_cols),
        (942, 1682),
        "users with positives; whole catalogue"
    );
    let models: Vec<&str> = FLOORS.iter().map(|f| f.0).collect();
    let reports = reco::eval::run(&data, &models, 10);
    eprintln!("{}", reco::eval::table(&reports));
    for ((name, floor), report) in FLOORS.iter().zip(&reports) {
        assert_eq!(report.model, *name);
        let ndcg = report.metrics.ndcg;
        assert!(
            ndcg >= *floor,
            "{name}: NDCG@10 {ndcg:.4} below its floor {floor}"
        );
    }
    let ndcg = |name: &str| {
        reports
            .iter()
            .find(|r| r.model == name)
            .unwrap()
            .metrics
            .ndcg
    };
    for name in [
        "itemknn", "als", "bpr", "fast", "quality", "enhanced", "smart",
    ] {
        assert!(
            ndcg(name) > ndcg("popularity") * 1.4,
            "{name} should beat popularity clearly"
        );
    }
    let best_single = ["itemknn", "als", "bpr", "content"]
        .map(ndcg)
        .into_iter()
        .fold(0.0, f64::max);
    for engine in ["quality", "enhanced", "smart"] {
        assert!(
            ndcg(engine) > best_single + 0.005,
            "{engine} {} vs best single model {best_single}",
            ndcg(engine)
        );
    }
}

/// `reco evaluate --split random` and `--split global-time` on MovieLens-100K: each user's
/// positives divide 80/20 at random (another seed, other test items), or one time cut divides
/// everyone's, and then users with no positive before it are evaluated too (the cold-start
/// case), where popularity is a strong baseline that the personal models do not reach.
#[test]
fn other_splits_divide_as_named() {
    let Some(dir) = ml100k() else { return };
    let ds = reco::data::movielens::load(&dir).unwrap();
    let split =
        |how| reco::eval::from_dataset(&ds.items, &ds.feedback, |f| f.value >= 4.0, 0.8, how);
    let temporal = split(reco::eval::Split::Temporal);
    let (random, other) = (
        split(reco::eval::Split::Random { seed: 1 }),
        split(reco::eval::Split::Random { seed: 2 }),
    );
    assert_eq!(
        random.train.nnz(),
        temporal.train.nnz(),
        "80% of each user's positives"
    );
    assert_ne!(random.test, temporal.test);
    assert_ne!(random.test, other.test);

    let global = split(reco::eval::Split::GlobalTime);
    let cold = (0..global.train.n_rows)
        .filter(|&u| global.train.row_len(u) == 0 && !global.test[u].is_empty())
        .count();
    assert!(cold > 50, "{cold} users have only test positives");
    let reports = reco::eval::run(&global, &["popularity", "als"], 10);
    eprintln!("{}", reco::eval::table(&reports));
    assert!(reports.iter().all(|r| r.metrics.users > cold));
    assert!(reports[0].metrics.ndcg > reports[1].metrics.ndcg);
}
