use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;

fn item(id: &str, cats: &[&str], day: u32, hidden: bool) -> Item {
    Item {
        id: id.into(),
        categories: cats.iter().map(|c| c.to_string()).collect(),
        labels: json!({}),
        title: String::new(),
        description: String::new(),
        timestamp: Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap(),
        hidden,
    }
}

fn fb(user: &str, item: &str, ty: &str) -> Feedback {
    Feedback {
        user_id: user.into(),
        item_id: item.into(),
        feedback_type: ty.into(),
        value: 1.0,
        timestamp: Utc::now(),
    }
}

fn ids(v: &[Scored]) -> Vec<&str> {
    v.iter().map(|s| &*s.id).collect()
}

/// The popularity engine's answer (no models are trained in these tests).
fn popular_rec(e: &Engine, user: &str, q: &Query<'_>) -> Vec<Scored> {
    let rec = e.recommend(Who::User(user), q, EngineKind::Auto);
    assert_eq!(
        rec.engine,
        EngineKind::Popularity,
        "untrained: auto falls back to popularity"
    );
    rec.items
}

fn engine() -> Engine {
    let e = Engine::new(FeedbackPolicy::default(), 0.1);
    e.upsert_items(&[
        item("a", &["x"], 1, false),
        item("b", &["y"], 2, false),
        item("c", &["x", "y"], 3, false),
        item("d", &["x"], 4, true),
    ]);
    // popularity: a=3, b=2, c=1, d=5 (hidden)
    e.add_feedback(&[
        fb("u1", "a", "like"),
        fb("u2", "a", "like"),
        fb("u3", "a", "view"),
    ]);
    e.add_feedback(&[
        fb("u1", "b", "like"),
        fb("u2", "b", "like"),
        fb("u3", "c", "like"),
    ]);
    e.add_feedback(
        &(0..5)
            .map(|i| fb(&format!("v{i}"), "d", "like"))
            .collect::<Vec<_>>(),
    );
    e.rerank();
    e
}

#[test]
fn popular_order_skips_hidden() {
    let e = engine();
    let q = Query {
        n: 10,
        ..Default::default()
    };
    assert_eq!(ids(&e.popular(&q)), ["a", "b", "c"]);
    assert_eq!(e.popular(&q)[0].score, 3.0);
}

#[test]
fn recommend_skips_seen_excluded_and_filters_categories() {
    let e = engine();
    let q = Query {
        n: 10,
        ..Default::default()
    };
    assert_eq!(ids(&popular_rec(&e, "u3", &q)), ["b"], "u3 saw a and c");
    assert_eq!(ids(&popular_rec(&e, "stranger", &q)), ["a", "b", "c"]);
    let exclude = vec!["a".to_string()];
    assert_eq!(
        ids(&popular_rec(
            &e,
            "stranger",
            &Query {
                n: 10,
                exclude: &exclude,
                ..Default::default()
            }
        )),
        ["b", "c"]
    );
    let cats = vec!["y".to_string()];
    let got = popular_rec(
        &e,
        "stranger",
        &Query {
            n: 10,
            categories: &cats,
            ..Default::default()
        },
    );
    assert_eq!(ids(&got), ["b", "c"]);
    assert_eq!(got[0].reason, "popular in y");
    assert_eq!(
        ids(&popular_rec(
            &e,
            "stranger",
            &Query {
                n: 1,
                ..Default::default()
            }
        )),
        ["a"]
    );
}

#[test]
fn feedback_is_seen_at_once_and_negative_does_not_count() {
    let e = engine();
    let q = Query {
        n: 10,
        ..Default::default()
    };
    e.add_feedback(&[fb("u9", "b", "dislike")]);
    assert_eq!(
        ids(&popular_rec(&e, "u9", &q)),
        ["a", "c"],
        "disliked item excluded without a rerank"
    );
    e.rerank();
    assert_eq!(
        e.popular(&q)[1].score,
        2.0,
        "dislike does not add popularity"
    );
    // The same key again is an update, not a new interaction.
    e.add_feedback(&[fb("u1", "a", "like")]);
    e.rerank();
    assert_eq!(e.popular(&q)[0].score, 3.0);
    e.remove_feedback(&[fb("u1", "a", "like"), fb("u2", "a", "like")]);
    e.rerank();
    assert_eq!(
        ids(&e.popular(&q)),
        ["b", "c", "a"],
        "a and c tie at 1: newer first"
    );
}

#[test]
fn deleting_items_and_users_updates_everything() {
    let e = engine();
    let q = Query {
        n: 10,
        ..Default::default()
    };
    e.delete_item("a");
    e.rerank();
    assert_eq!(ids(&e.popular(&q)), ["b", "c"]);
    assert!(!e.has_item("a"));
    e.delete_user("u1");
    e.rerank();
    assert!(!e.has_user("u1"));
    assert_eq!(e.popular(&q)[0].score, 1.0, "b lost u1's like");
    e.upsert_items(&[item("a", &[], 1, false)]);
    e.rerank();
    assert_eq!(
        ids(&popular_rec(&e, "u2", &q)),
        ["c", "a"],
        "re-created item is new to its old users"
    );
}

#[test]
fn item_time_to_live_drops_old_items() {
    let e = engine();
    let day3 = Utc
        .with_ymd_and_hms(2026, 1, 3, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let q = Query {
        n: 10,
        not_before_ms: Some(day3),
        ..Default::default()
    };
    assert_eq!(
        ids(&e.popular(&q)),
        ["c"],
        "a (day 1) and b (day 2) expired; d hidden"
    );
}

#[test]
fn latest_orders_by_timestamp() {
    let e = engine();
    let q = Query {
        n: 2,
        ..Default::default()
    };
    assert_eq!(ids(&e.latest(&q)), ["c", "b"], "d is hidden");
}

#[test]
fn only_positive_feedback_is_popularity_and_a_like() {
    let e = engine();
    let q = Query {
        n: 10,
        ..Default::default()
    };
    let popularity = |e: &Engine, id: &str| {
        e.rerank();
        e.popular(&q).iter().find(|s| &*s.id == id).unwrap().score
    };
    let liked = |e: &Engine, user: &str| -> Vec<u32> {
        let s = e.state.read();
        let history = s.user_history(user).unwrap_or_default();
        history.liked().collect()
    };
    // A 2-star rating: seen (never recommended again), but no popularity and no like.
    let mut rating = fb("u8", "b", "rating");
    rating.value = 2.0;
    e.add_feedback(std::slice::from_ref(&rating));
    assert_eq!(popularity(&e, "b"), 2.0);
    assert!(liked(&e, "u8").is_empty(), "a 2-star rating is no like");
    assert!(!ids(&popular_rec(&e, "u8", &q)).contains(&"b"));
    // The same key with 5 stars re-classifies the row, and back again.
    rating.value = 5.0;
    e.add_feedback(std::slice::from_ref(&rating));
    assert_eq!(popularity(&e, "b"), 3.0);
    assert_eq!(liked(&e, "u8").len(), 1);
    rating.value = 1.0;
    e.add_feedback(std::slice::from_ref(&rating));
    assert_eq!(popularity(&e, "b"), 2.0);
    // A type the configuration does not list is only seen.
    e.add_feedback(&[fb("u8", "c", "bookmark")]);
    assert_eq!(popularity(&e, "c"), 1.0);
    assert!(liked(&e, "u8").is_empty());
    assert_eq!(ids(&popular_rec(&e, "u8", &q)), ["a"]);
    // A like next to a dislike of the same item is not a like; removing the dislike restores it.
    e.add_feedback(&[fb("u8", "a", "like"), fb("u8", "a", "dislike")]);
    assert!(liked(&e, "u8").is_empty());
    e.remove_feedback(&[fb("u8", "a", "dislike")]);
    assert_eq!(liked(&e, "u8").len(), 1);
}

/// The re-ranker runs on its own timer: with the clock paused, nothing moves until its period has
/// passed, then the popularity order follows the counts.
#[tokio::test(start_paused = true)]
async fn the_reranker_follows_the_counts_once_per_period() {
    let e = Arc::new(engine());
    let q = Query {
        n: 10,
        ..Default::default()
    };
    let reranker = e.spawn_reranker(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let likes: Vec<Feedback> = (0..3).map(|i| fb(&format!("x{i}"), "c", "like")).collect();
    e.add_feedback(&likes);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        ids(&e.popular(&q)),
        ["a", "b", "c"],
        "not before the period"
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    // The sort itself runs on a blocking thread, in real time.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ids(&e.popular(&q))[0] != "c" {
        assert!(std::time::Instant::now() < deadline, "never re-ranked");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(ids(&e.popular(&q)), ["c", "a", "b"]);
    reranker.abort();
}

/// Items hold one shared `Arc` per category name, and their categories as bits of the
/// catalogue's numbering of names (what `quality`'s diversity compares), also after an update
/// changes them; a name listed twice or numbered past 64 leaves an item without bits.
#[test]
fn items_share_category_names_and_carry_their_bits() {
    let e = engine();
    e.upsert_items(&[
        item("b", &["x"], 2, false),
        item("twice", &["y", "y"], 5, false),
        item("e", &["y", "z"], 6, false),
    ]);
    let items = e.state.read().items();
    let cats = |i: u32| items.item_categories(i).to_vec();
    let (a, b, c) = (cats(0), cats(1), cats(2));
    assert!(Arc::ptr_eq(&a[0], &c[0]) && Arc::ptr_eq(&a[0], &b[0]));
    assert_eq!(&*c[1], "y");
    let bits = |i: u32| items.get(i).unwrap().category_bits;
    // x is 1, y 2, z 4 (in order of appearance).
    assert_eq!([bits(0), bits(1), bits(2)], [Some(1), Some(1), Some(3)]);
    assert_eq!([bits(4), bits(5)], [None, Some(6)]);
    let names: Vec<String> = (0..64).map(|n| format!("c{n}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    e.upsert_items(&[item("many", &names, 7, false)]);
    let items = e.state.read().items();
    assert_eq!(items.get(6).unwrap().category_bits, None, "z took number 2");
    e.upsert_items(&[item("many", &names[..61], 7, false)]);
    let items = e.state.read().items();
    assert_eq!(items.get(6).unwrap().category_bits, Some(u64::MAX << 3));
}
