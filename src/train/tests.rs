//! Unit tests of training: snapshots from a small but real run.

use super::*;

/// A small but real training run: 30 users over 12 items in two categories.
fn trained() -> Snapshot {
    let n_items = 12;
    let item_ids = (0..n_items).map(|i| Arc::from(format!("i{i}"))).collect();
    let user_rows = (0..30u32)
        .map(|u| (Arc::from(format!("u{u}")), u))
        .collect();
    let interactions = (0..30u32)
        .flat_map(|u| (0..4).map(move |k| (u, (u + k * 3) % n_items as u32, 1.0, 1_700_000_000)))
        .collect();
    let texts = (0..n_items)
        .map(|i| ItemText {
            title: format!("item {i}"),
            description: String::new(),
            categories: vec![if i % 2 == 0 { "even" } else { "odd" }.to_string()],
            labels: vec![],
        })
        .collect();
    let data = TrainingData {
        n_items,
        item_ids,
        user_rows,
        interactions,
        texts,
    };
    // A budget the tiny world's search never reaches: every model, EASE included.
    let tuning = eval::Tuning {
        budget: eval::Budget(Duration::from_secs(60)),
        half_life_days: None,
        short_route: None,
    };
    fit(data, 1, tuning)
}

/// A snapshot round-trips; one of another format, or whose models do not fit its item count
/// or hold a similarity that is not positive, is refused with a reason instead of being
/// installed (and panicking or answering wrongly in requests).
#[test]
fn snapshots_carry_their_format_and_are_shape_checked() {
    let snapshot = trained();
    let bytes = snapshot.encode();
    let back = Snapshot::decode(&bytes).expect("round trip");
    assert_eq!((back.version, back.n_items), (1, 12));
    assert!(back.ease.is_some(), "EASE is trained for a small catalogue");
    assert_eq!(back.tuning, snapshot.tuning);
    assert_eq!(back.quality_weights, snapshot.quality_weights);

    let mut other_format = bytes.clone();
    other_format[8] = other_format[8].wrapping_add(1);
    let err = Snapshot::decode(&other_format).err().unwrap();
    assert!(err.contains("format"), "{err}");
    assert!(Snapshot::decode(b"garbage").is_err());

    let mut misshapen = trained();
    misshapen.itemknn.neighbours[0].push((99, 1.0));
    let err = Snapshot::decode(&misshapen.encode()).err().unwrap();
    assert!(err.contains("item-to-item"), "{err}");
    let mut misshapen = trained();
    let other_catalogue = crate::algo::Csr::from_triplets(2, 5, vec![(0, 0, 1.0), (1, 1, 1.0)]);
    misshapen.ease = crate::algo::ease::fit(&other_catalogue, Default::default());
    let err = Snapshot::decode(&misshapen.encode()).err().unwrap();
    assert!(err.contains("EASE"), "{err}");
    let mut misshapen = trained();
    misshapen.als.item_factors.pop();
    assert!(Snapshot::decode(&misshapen.encode()).is_err());
    // Serving orders contributions by their bits and reads zero as "none" (`Accumulator`).
    for sim in [0.0, -0.5, f32::NAN] {
        let mut misshapen = trained();
        misshapen.content.neighbours[0].push((1, sim));
        let err = Snapshot::decode(&misshapen.encode()).err().unwrap();
        assert!(err.contains("content") && err.contains("positive"), "{err}");
    }
}
