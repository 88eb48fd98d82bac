//! `enhanced`, `smart` and the orchestrator behind `engine=auto`: routing, experiments, the
//! deadline, the per-user cache and click-through metrics.

use reqwest::Method;
use serde_json::{Value, json};

use crate::engines::{ids, reason_items, reasons};
use crate::helpers::{Backend, TestApp, sample, spawn_app_with};
use reco::config::ShortHistoryRoute;
use reco::config::VariantConfig;
use reco::engine::EngineKind;

/// A demo server, trained once, that trains again only when asked.
async fn trained(tweak: impl FnOnce(&mut reco::config::Config)) -> TestApp {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.demo.seed_if_empty = true;
        c.recommend.train_interval = 3600.0;
        tweak(c);
    })
    .await;
    app.train().await;
    app
}

async fn like(app: &TestApp, user: &str, item: &str) {
    let body = json!([{"user_id": user, "item_id": item, "type": "like"}]);
    let (s, b) = app.post("/api/feedback", body).await;
    assert_eq!(s, 200, "{b}");
}

async fn seen_by(app: &TestApp, user: &str) -> Vec<String> {
    let (_, seen) = app
        .get(&format!("/api/users/{user}/feedback?limit=1000"))
        .await;
    seen["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["item_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn enhanced_and_smart_are_their_own_engines() {
    // Short histories get their neighbours whatever validation would choose (the route under
    // test below).
    let app = trained(|c| c.recommend.short_history_route = ShortHistoryRoute::Neighbours).await;

    // enhanced: learned ranking over several candidate sources, explained by source.
    let (s, e) = app.get("/api/recommend/user-3?engine=enhanced").await;
    assert_eq!((s, e["engine"].as_str()), (200, Some("enhanced")), "{e}");
    assert_eq!(ids(&e).len(), 10);
    let seen = seen_by(&app, "user-3").await;
    assert!(ids(&e).iter().all(|i| !seen.contains(i)), "{e}");
    let allowed = [
        "because you liked ",
        "similar to ",
        "popular in ",
        "matches your taste",
        "trending",
    ];
    assert!(
        reasons(&e)
            .iter()
            .all(|r| allowed.iter().any(|a| r.starts_with(a))),
        "{e}"
    );
    let scores: Vec<f64> = e["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.iter().all(|s| (0.0..=1.0).contains(s)),
        "probabilities: {scores:?}"
    );
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    let (_, pop) = app.get("/api/recommend/user-3?engine=popularity").await;
    let (_, quality) = app.get("/api/recommend/user-3?engine=quality").await;
    assert_ne!(ids(&e), ids(&pop), "not popularity under another name");
    assert_ne!(ids(&e), ids(&quality), "not quality under another name");

    // smart, newcomer: trending, in the requested category.
    let (_, item) = app.get(&format!("/api/items/{}", ids(&pop)[0])).await;
    let category = item["categories"][0].as_str().unwrap().to_string();
    let (_, s1) = app
        .get(&format!(
            "/api/recommend/nobody?engine=smart&category={category}"
        ))
        .await;
    assert_eq!(
        (s1["engine"].as_str(), s1["route"].as_str()),
        (Some("smart"), Some("new_user")),
        "{s1}"
    );
    assert_eq!(ids(&s1).len(), 10, "{s1}");
    assert!(
        reasons(&s1)
            .iter()
            .all(|r| *r == format!("trending in {category}")),
        "{s1}"
    );

    // smart, short history: neighbours and content of it; an item nobody touched is reachable
    // through its content.
    let liked = ids(&pop)[3].clone();
    let (_, original) = app.get(&format!("/api/items/{liked}")).await;
    let twin = json!({"id": "cold-twin", "title": original["title"], "categories": original["categories"],
                      "description": original["description"], "labels": original["labels"]});
    assert_eq!(app.post("/api/items", twin).await.0, 200);
    app.train().await;
    like(&app, "short", &liked).await;
    let (_, s2) = app.get("/api/recommend/short?engine=smart&n=20").await;
    assert_eq!(s2["route"], "short_history", "{s2}");
    assert!(!ids(&s2).contains(&liked), "{s2}");
    let twin_at = ids(&s2).iter().position(|i| i == "cold-twin");
    let twin_at = twin_at.unwrap_or_else(|| panic!("the cold twin is recommended: {s2}"));
    let title = original["title"].as_str().unwrap();
    assert_eq!(reasons(&s2)[twin_at], format!("similar to {title}"), "{s2}");
    assert_eq!(reason_items(&s2)[twin_at].as_ref(), Some(&liked), "{s2}");
    assert!(
        reasons(&s2)
            .iter()
            .any(|r| *r == format!("because you liked {title}")),
        "neighbours too: {s2}"
    );

    // smart, established: quality.
    let (_, quality) = app.get("/api/recommend/user-3?engine=quality").await;
    let (_, s3) = app.get("/api/recommend/user-3?engine=smart").await;
    assert_eq!(s3["route"], "established", "{s3}");
    assert_eq!(ids(&s3), ids(&quality), "{s3}");
}

/// With `recommend.short_history_route = "blend"`, a short history gets `quality`'s blend (the
/// route training chooses when its validation split says so).
#[tokio::test]
async fn a_short_history_can_be_routed_to_the_blend() {
    let app = trained(|c| c.recommend.short_history_route = ShortHistoryRoute::Blend).await;
    let (_, pop) = app.get("/api/recommend/nobody?engine=popularity").await;
    like(&app, "short", &ids(&pop)[3]).await;
    let (_, smart) = app.get("/api/recommend/short?engine=smart").await;
    assert_eq!(smart["route"], "short_history", "{smart}");
    let (_, quality) = app.get("/api/recommend/short?engine=quality").await;
    assert_eq!(ids(&smart), ids(&quality), "{smart} vs {quality}");
    assert_eq!(reasons(&smart), reasons(&quality));
}

#[tokio::test]
async fn auto_caches_per_user_until_feedback_and_counts_clicks() {
    // No deadline: on a busy machine `smart` may miss 50 ms, and `fast` answering would change
    // which engine the counts below are under (the deadline has its own test).
    let app = trained(|c| c.orchestrator.deadline = 0.0).await;
    let (_, first) = app.get("/api/recommend/user-5").await;
    assert_eq!(
        (first["engine"].as_str(), first["variant"].as_str()),
        (Some("smart"), Some("default")),
        "{first}"
    );
    assert!(first.get("cached").is_none(), "{first}");
    let (_, again) = app.get("/api/recommend/user-5").await;
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(ids(&again), ids(&first));
    // Another query is not answered from the cache.
    let (_, other) = app.get("/api/recommend/user-5?n=3").await;
    assert!(other.get("cached").is_none(), "{other}");
    assert_eq!(ids(&other)[..], ids(&first)[..3]);

    // Liking a recommended item: a click for the variant, and the cache is stale at once.
    let (_, shown) = app.get("/api/recommend/user-5").await;
    let clicked = ids(&shown)[1].clone();
    like(&app, "user-5", &clicked).await;
    like(&app, "user-5", &clicked).await; // the same key again counts once
    // Feedback on an item that was not recommended is no click.
    let unrelated = seen_by(&app, "user-5")
        .await
        .into_iter()
        .find(|i| *i != clicked)
        .unwrap();
    like(&app, "user-5", &unrelated).await;
    let (_, after) = app.get("/api/recommend/user-5").await;
    assert!(after.get("cached").is_none(), "{after}");
    assert!(!ids(&after).contains(&clicked), "{after}");

    // A new snapshot also invalidates.
    let (_, cached) = app.get("/api/recommend/user-5").await;
    assert_eq!(cached["cached"], true);
    app.train().await;
    let (_, retrained) = app.get("/api/recommend/user-5").await;
    assert!(retrained.get("cached").is_none(), "{retrained}");

    let m = app.metrics().await;
    let label = "{variant=\"default\",engine=\"smart\"}";
    assert_eq!(
        sample(&m, &format!("reco_variant_clicks_total{label}")),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("reco_variant_requests_total{label}")),
        7.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "reco_variant_cache_hits_total{variant=\"default\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("reco_variant_impressions_total{label}")),
        63.0,
        "{m}"
    );
    assert!(
        m.contains("reco_variant_seconds_count{variant=\"default\"} 7"),
        "{m}"
    );
}

#[tokio::test]
async fn experiments_split_users_and_a_missed_deadline_falls_back_to_fast() {
    let variants = vec![
        VariantConfig {
            name: "control".into(),
            engine: EngineKind::Quality,
            share: 1,
        },
        VariantConfig {
            name: "treatment".into(),
            engine: EngineKind::Enhanced,
            share: 1,
        },
    ];
    let app = trained(|c| c.orchestrator.variants = variants).await;
    let mut by_variant = std::collections::HashMap::<String, usize>::new();
    for u in 0..40 {
        let (_, r) = app.get(&format!("/api/recommend/user-{u}")).await;
        let variant = r["variant"].as_str().unwrap().to_string();
        let expected = if variant == "control" {
            "quality"
        } else {
            "enhanced"
        };
        assert_eq!(r["engine"].as_str(), Some(expected), "{r}");
        let (_, again) = app.get(&format!("/api/recommend/user-{u}")).await;
        assert_eq!(
            again["variant"].as_str(),
            Some(variant.as_str()),
            "a user keeps their variant"
        );
        *by_variant.entry(variant).or_default() += 1;
    }
    assert_eq!(by_variant.len(), 2, "{by_variant:?}");
    assert!(by_variant.values().all(|&n| n >= 8), "{by_variant:?}");
    let m = app.metrics().await;
    for (variant, engine) in [("control", "quality"), ("treatment", "enhanced")] {
        let series =
            format!("reco_variant_requests_total{{variant=\"{variant}\",engine=\"{engine}\"}}");
        assert_eq!(sample(&m, &series), 2.0 * by_variant[variant] as f64, "{m}");
    }

    // A deadline no engine can meet: `fast` answers, and it is counted.
    let app = trained(|c| {
        c.orchestrator.deadline = 1e-9;
        c.orchestrator.variants = vec![VariantConfig {
            name: "slow".into(),
            engine: EngineKind::Quality,
            share: 1,
        }];
    })
    .await;
    let mut fallbacks = 0;
    for u in 0..20 {
        let (s, r) = app.get(&format!("/api/recommend/user-{u}")).await;
        assert_eq!(s, 200, "{r}");
        if r["fallback"] == Value::Bool(true) {
            assert_eq!(r["engine"], "fast", "{r}");
            assert_eq!(ids(&r).len(), 10, "{r}");
            fallbacks += 1;
        }
    }
    assert!(fallbacks > 0, "some request missed a 1 ns deadline");
    let m = app.metrics().await;
    let series = "reco_deadline_fallbacks_total{variant=\"slow\",engine=\"quality\"}";
    assert_eq!(sample(&m, series), fallbacks as f64, "{m}");
}

/// Item writes go through the catalogue, which tells the orchestrator: an item hidden or deleted
/// while a user's answer is cached is not served from the cache again.
#[tokio::test]
async fn an_item_hidden_or_deleted_while_cached_is_not_served_again() {
    let app = trained(|c| c.orchestrator.deadline = 0.0).await;
    let (_, first) = app.get("/api/recommend/user-7").await;
    let (_, again) = app.get("/api/recommend/user-7").await;
    assert_eq!(again["cached"], true, "{again}");
    let hidden = ids(&first)[0].clone();
    let path = format!("/api/items/{hidden}");
    let patch = Some(json!({"hidden": true}));
    assert_eq!(app.send(Method::PATCH, &path, patch).await.0, 200);
    let (_, after) = app.get("/api/recommend/user-7").await;
    assert!(after.get("cached").is_none(), "{after}");
    assert!(!ids(&after).contains(&hidden), "{after}");

    let deleted = ids(&after)[0].clone();
    let (_, cached) = app.get("/api/recommend/user-7").await;
    assert_eq!(cached["cached"], true, "{cached}");
    let path = format!("/api/items/{deleted}");
    assert_eq!(app.send(Method::DELETE, &path, None).await.0, 204);
    let (_, after) = app.get("/api/recommend/user-7").await;
    assert!(!ids(&after).contains(&deleted), "{after}");
}

/// `engine=quality` answers of 40 demo users.
async fn quality_answers(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for u in 1..=40 {
        let (s, r) = app
            .get(&format!("/api/recommend/user-{u}?engine=quality"))
            .await;
        assert_eq!((s, r["engine"].as_str()), (200, Some("quality")), "{r}");
        out.push(r["items"].clone());
    }
    out
}

/// A job predicted to cost less than `orchestrator.inline_below` runs on the request's async
/// worker (handing it to an engine thread and back costs more than the job); a long list still
/// goes to the engine threads; a budget of 0 sends every job there. The answers are the same.
#[tokio::test]
async fn cheap_jobs_run_inline_and_long_lists_on_the_engine_threads() {
    // The budget must fall between a ten-item list's predicted time and a thousand-item list's,
    // about 14 times that on the demo (`engine::work`). At 2 ms a quiet machine predicted the long
    // list under the budget and ran it inline; 0.7 ms sits nearer the middle of that ratio.
    let app = trained(|c| {
        c.orchestrator.deadline = 0.0;
        c.orchestrator.inline_below = 0.0007;
    })
    .await;
    let inline = |m: &str| sample(m, "reco_engine_jobs_inline_total{engine=\"quality\"}");
    // The first job measures the engine on its threads; the short lists after it run inline.
    let first = quality_answers(&app).await;
    let before = inline(&app.metrics().await);
    assert!(before >= 30.0, "{before} of 40 short lists inline");
    for _ in 0..3 {
        let (s, r) = app.get("/api/recommend/user-1?engine=quality&n=1000").await;
        assert_eq!((s, r["engine"].as_str()), (200, Some("quality")), "{r}");
    }
    assert_eq!(
        inline(&app.metrics().await),
        before,
        "long lists run on the engine threads"
    );

    let queued = trained(|c| {
        c.orchestrator.deadline = 0.0;
        c.orchestrator.inline_below = 0.0;
    })
    .await;
    assert_eq!(
        quality_answers(&queued).await,
        first,
        "the same answers on the threads"
    );
    assert_eq!(inline(&queued.metrics().await), 0.0);
}
