//! Trained engines: background training, the `fast` engine, and freshness of feedback.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app_with};

pub fn reasons(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap().to_string())
        .collect()
}

/// The item each reason names, by id (`None`: it names none).
pub fn reason_items(v: &Value) -> Vec<Option<String>> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason_item"].as_str().map(str::to_string))
        .collect()
}

/// An item's title, as reasons name it.
pub async fn title_of(app: &TestApp, id: &str) -> String {
    let (_, item) = app.get(&format!("/api/items/{id}")).await;
    item["title"].as_str().unwrap().to_string()
}

pub fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// A training run reports what each model's search chose on its validation split and how the
/// search went (values tried and scored, or why it stopped), and the blend built on top.
#[tokio::test]
async fn training_reports_the_settings_it_chose() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.demo.seed_if_empty = true;
        c.recommend.train_interval = 3600.0;
        c.recommend.tuning_budget = 30.0;
    })
    .await;
    let trained = app.train().await;
    let settings = trained["settings"].as_array().unwrap();
    for model in ["als", "bpr", "itemknn", "recent", "ease", "history"] {
        let chosen = settings.iter().find(|c| c["model"] == model);
        let chosen = chosen.unwrap_or_else(|| panic!("{model} in {trained}"));
        assert!(chosen["setting"].as_str().unwrap().len() > 3, "{chosen}");
        // How far a search gets depends on how busy the machine is: it either scored some
        // settings or says why it did not.
        let scored = chosen["tried"].as_u64().unwrap() >= 1 && chosen["validation_ndcg"].is_f64();
        assert!(scored || chosen["stopped"].is_string(), "{chosen}");
    }
    let searched = |m: &str| {
        settings
            .iter()
            .any(|c| c["model"] == m && c["tried"].as_u64() > Some(1))
    };
    assert!(
        searched("itemknn") && searched("recent"),
        "the cheap searches ran: {trained}"
    );
    let weights = trained["quality_weights"].as_object().unwrap();
    let total: f64 = weights.values().map(|w| w.as_f64().unwrap()).sum();
    assert_eq!(weights.len(), 6, "{trained}");
    assert!((total - 1.0).abs() < 1e-6, "{trained}");
    let short = trained["short_histories"].as_str().unwrap();
    assert!(["neighbours", "blend"].contains(&short), "{trained}");
}

#[tokio::test]
async fn fast_engine_serves_after_training_and_reflects_a_like_at_once() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.demo.seed_if_empty = true;
        c.recommend.train_interval = 3600.0;
    })
    .await;
    let trained = app.train().await;
    assert!(trained["version"].as_u64().unwrap() >= 1);
    assert!(trained["interactions"].as_u64().unwrap() > 1000);

    // An established demo user: neighbours of their items, explained.
    let (s, rec) = app.get("/api/recommend/user-3?engine=fast").await;
    assert_eq!((s, rec["engine"].as_str()), (200, Some("fast")), "{rec}");
    assert_eq!(ids(&rec).len(), 10);
    assert!(
        reasons(&rec)
            .iter()
            .zip(reason_items(&rec))
            .any(|(r, i)| r.starts_with("because you liked ")
                && i.is_some_and(|i| i.starts_with("item-"))),
        "{rec}"
    );
    let (_, auto) = app.get("/api/recommend/user-3").await;
    assert_eq!(
        auto["engine"], "smart",
        "auto follows smart's rules: {auto}"
    );
    assert_eq!(auto["route"], "established", "{auto}");
    let (_, pop) = app.get("/api/recommend/user-3?engine=popularity").await;
    assert_eq!(pop["engine"], "popularity");
    assert_ne!(
        ids(&pop),
        ids(&rec),
        "a different algorithm, not popularity under another name"
    );

    // Quality blends every model with weights fitted at training time.
    let (s, q) = app.get("/api/recommend/user-3?engine=quality").await;
    assert_eq!((s, q["engine"].as_str()), (200, Some("quality")), "{q}");
    assert_eq!(ids(&q).len(), 10);
    let (_, seen) = app.get("/api/users/user-3/feedback?limit=1000").await;
    let seen: Vec<&str> = seen["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["item_id"].as_str().unwrap())
        .collect();
    assert!(
        ids(&q).iter().all(|i| !seen.contains(&i.as_str())),
        "never an item the user interacted with"
    );
    assert!(ids(&rec).iter().all(|i| !seen.contains(&i.as_str())));

    // A newcomer gets trending items; after one like, its neighbours, excluding the liked item.
    let (_, cold) = app.get("/api/recommend/newcomer?engine=fast").await;
    assert!(reasons(&cold).iter().all(|r| r == "trending"), "{cold}");
    let liked = ids(&cold)[0].clone();
    let (s, _) = app
        .post(
            "/api/feedback",
            json!([{"user_id": "newcomer", "item_id": liked, "type": "like"}]),
        )
        .await;
    assert_eq!(s, 200);
    let (_, warm) = app.get("/api/recommend/newcomer?engine=fast").await;
    assert!(
        !ids(&warm).contains(&liked),
        "the liked item is excluded at once: {warm}"
    );
    // The reason names the liked item by its title, and links it by its id.
    let title = title_of(&app, &liked).await;
    assert_eq!(
        reasons(&warm)[0],
        format!("because you liked {title}"),
        "{warm}"
    );
    assert_eq!(reason_items(&warm)[0].as_ref(), Some(&liked), "{warm}");
    assert_ne!(title, liked, "demo items have titles");

    similar_items_and_sessions(&app, liked.clone()).await;
    bad_engines_are_rejected_and_every_engine_is_counted(&app).await;
}

/// Similar items and anonymous sessions after the demo trained, around an item the newcomer liked.
async fn similar_items_and_sessions(app: &TestApp, liked: String) {
    // Similar items: neighbours first, explained; the item itself never.
    let (s, sim) = app.get(&format!("/api/items/{liked}/similar?n=5")).await;
    assert_eq!(s, 200, "{sim}");
    assert_eq!(sim["item_id"].as_str(), Some(liked.as_str()));
    assert_eq!(ids(&sim).len(), 5);
    assert!(!ids(&sim).contains(&liked));
    assert_eq!(reasons(&sim)[0], "often liked together", "{sim}");
    assert_eq!(app.get("/api/items/nope/similar").await.0, 404);
    // An item nobody touched is still similar to something through its content.
    let (_, original) = app.get(&format!("/api/items/{liked}")).await;
    let twin = json!({"id": "cold-item", "title": original["title"], "categories": original["categories"],
                      "description": original["description"], "labels": original["labels"]});
    assert_eq!(app.post("/api/items", twin).await.0, 200);
    app.train().await;
    let (_, cold) = app.get("/api/items/cold-item/similar?n=3").await;
    assert_eq!(reasons(&cold)[0], "similar content", "{cold}");
    assert_eq!(ids(&cold)[0], liked, "its twin is the most similar: {cold}");

    // An anonymous session: the same neighbours, without a user.
    let (s, sess) = app
        .post(
            "/api/recommend/session",
            json!({"items": [liked], "n": 5, "engine": "fast"}),
        )
        .await;
    assert_eq!((s, sess["engine"].as_str()), (200, Some("fast")), "{sess}");
    assert!(!ids(&sess).contains(&liked));
    let title = title_of(app, &liked).await;
    assert_eq!(reasons(&sess)[0], format!("because you liked {title}"));
    assert_eq!(reason_items(&sess)[0].as_ref(), Some(&liked));
    let (s, sess) = app
        .post(
            "/api/recommend/session",
            json!({"items": [liked], "engine": "quality"}),
        )
        .await;
    assert_eq!(
        (s, sess["engine"].as_str(), ids(&sess).len()),
        (200, Some("quality"), 10),
        "{sess}"
    );
    let (s, b) = app
        .post("/api/recommend/session", json!({"items": ["ok", ""]}))
        .await;
    assert_eq!((s, b["field"].as_str()), (400, Some("items[1]")), "{b}");
}

async fn bad_engines_are_rejected_and_every_engine_is_counted(app: &TestApp) {
    // Bad engine names are rejected, and item lists take no engine.
    let (s, b) = app.get("/api/recommend/u?engine=magic").await;
    assert_eq!((s, b["field"].as_str()), (400, Some("engine")), "{b}");
    let (s, b) = app.get("/api/popular?engine=fast").await;
    assert_eq!((s, b["field"].as_str()), (400, Some("engine")), "{b}");

    let text = app.metrics().await;
    assert!(
        text.contains("reco_train_runs_total{result=\"ok\"}"),
        "{text}"
    );
    for engine in ["fast", "quality", "popularity"] {
        let requests = format!("reco_engine_requests_total{{engine=\"{engine}\"}}");
        assert!(text.contains(&requests), "{engine}: {text}");
        assert!(
            text.contains(&format!("reco_engine_seconds_count{{engine=\"{engine}\"}}")),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn items_past_their_time_to_live_are_not_recommended() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.recommend.item_ttl_days = 30.0).await;
    let now = chrono::Utc::now();
    let old = (now - chrono::Duration::days(90)).to_rfc3339();
    let fresh = (now - chrono::Duration::days(2)).to_rfc3339();
    let items = json!([{"id": "old", "timestamp": old}, {"id": "fresh", "timestamp": fresh}]);
    assert_eq!(app.post("/api/items/batch", items).await.0, 200);
    let fb = json!([{"user_id": "a", "item_id": "old", "type": "like"}, {"user_id": "b", "item_id": "old", "type": "like"}]);
    assert_eq!(app.post("/api/feedback", fb).await.0, 200);
    app.state.engine.rerank();
    let (_, pop) = app.get("/api/popular").await;
    assert_eq!(
        ids(&pop),
        ["fresh"],
        "the popular but expired item is left out: {pop}"
    );
    let (_, rec) = app.get("/api/recommend/c").await;
    assert_eq!(ids(&rec), ["fresh"]);
    assert_eq!(
        app.get("/api/items/old").await.0,
        200,
        "expired items are still stored"
    );
}

/// Four groups of 20 items; each of 60 users likes ten items of one group, then five of another
/// (five users for each ordered pair of groups), an hour apart: a user's next items are in the
/// group of their newest. Training chooses recency inside histories on its validation split, and
/// serving weighs a history's newest items most: the same session in two orders gets two lists,
/// each led by the group it touched last, though ten of its fifteen items are of the first group.
#[tokio::test]
async fn the_newest_items_of_a_history_weigh_most_when_training_chose_recency() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.recommend.train_interval = 3600.0;
        c.recommend.tuning_budget = 30.0;
    })
    .await;
    let item = |g: usize, k: usize| format!("g{g}-{k}");
    let items: Vec<Value> = (0..4)
        .flat_map(|g| (0..20).map(move |k| json!({"id": item(g, k)})))
        .collect();
    assert_eq!(app.post("/api/items/batch", json!(items)).await.0, 200);
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let pairs = (0..4).flat_map(|a| (0..4).filter(move |&b| b != a).map(move |b| (a, b)));
    let mut feedback = Vec::new();
    for (p, (a, b)) in pairs.enumerate() {
        for u in p * 5..p * 5 + 5 {
            let first = (0..10).map(|k| item(a, (u + k) % 20));
            let then = (0..5).map(|k| item(b, (u + k) % 20));
            for (t, i) in first.chain(then).enumerate() {
                let at = start + chrono::Duration::hours(t as i64);
                feedback.push(json!({"user_id": format!("u{u}"), "item_id": i,
                    "type": "like", "timestamp": at.to_rfc3339()}));
            }
        }
    }
    assert_eq!(app.post("/api/feedback", json!(feedback)).await.0, 200);
    let trained = app.train().await;
    let history = trained["settings"].as_array().unwrap().iter();
    let history = history.clone().find(|c| c["model"] == "history");
    let history = history.unwrap_or_else(|| panic!("{trained}"));
    assert_ne!(history["setting"], "half_life_share none", "{trained}");

    let older: Vec<String> = (0..10).map(|k| item(0, k)).collect();
    let newer: Vec<String> = (0..5).map(|k| item(1, k)).collect();
    let leading_group = |order: Vec<String>| {
        let app = &app;
        async move {
            let body = json!({"items": order, "n": 5, "engine": "quality"});
            let (s, rec) = app.post("/api/recommend/session", body).await;
            assert_eq!(s, 200, "{rec}");
            let groups: Vec<String> = ids(&rec).iter().map(|i| i[..2].to_string()).collect();
            let count = |g: &str| groups.iter().filter(|x| *x == g).count();
            (count("g0"), count("g1"), rec)
        }
    };
    let (g0, g1, rec) = leading_group([older.clone(), newer.clone()].concat()).await;
    assert!(g1 > g0, "group 1 touched last leads: {rec}");
    let (g0, g1, rec) = leading_group([newer, older].concat()).await;
    assert!(g0 > g1, "group 0 touched last leads: {rec}");
}
