//! Offline quality floors on MovieLens-100K (protocol in `reco::eval`): fails when a model's
//! NDCG@10 drops below what it scored when the floor was recorded (docs/BENCHMARKS.md), less a small
//! margin for floating-point differences between machines.

use crate::helpers::ml100k;

/// (model, NDCG@10 floor). Recorded: popularity 0.0797, itemknn 0.1246, als 0.1327, bpr 0.1324.
const FLOORS: [(&str, f64); 4] = [
    ("popularity", 0.077),
    ("itemknn", 0.120),
    ("als", 0.128),
    ("bpr", 0.127),
];

#[test]
fn every_model_stays_above_its_ndcg_floor() {
    let Some(dir) = ml100k() else { return };
    let ds = reco::import::movielens::load(&dir).unwrap();
    let data = reco::eval::from_dataset(&ds, |f| f.value >= 4.0, 0.8);
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
        assert!(
            report.metrics.ndcg >= *floor,
            "{name}: NDCG@10 {:.4} below its floor {floor}",
            report.metrics.ndcg
        );
    }
    let pop = reports[0].metrics.ndcg;
    for r in &reports[1..4] {
        assert!(
            r.metrics.ndcg > pop * 1.4,
            "{} should beat popularity clearly",
            r.model
        );
    }
}
