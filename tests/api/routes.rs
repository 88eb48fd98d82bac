//! Every route, on both backends.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{BOTH, Backend, TestApp, spawn_app};

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the background re-ranker has picked up recent writes.
async fn reranked(app: &TestApp) {
    app.state.engine.rerank();
}

async fn items_crud(app: &TestApp) {
    let (s, item) = app
        .post(
            "/api/items",
            json!({"id": "i1", "categories": ["film"], "labels": {"year": 1999}, "title": "Matrix",
                   "description": "d", "timestamp": "2024-01-02T03:04:05Z"}),
        )
        .await;
    assert_eq!(s, 200, "{item}");
    assert_eq!(item["timestamp"], "2024-01-02T03:04:05Z");
    let (s, got) = app.get("/api/items/i1").await;
    assert_eq!((s, &got), (200, &item));

    let batch: Vec<Value> = (2..=5)
        .map(|i| json!({"id": format!("i{i}"), "categories": ["film"]}))
        .collect();
    let (s, body) = app.post("/api/items/batch", Value::Array(batch)).await;
    assert_eq!((s, body["upserted"].as_u64()), (200, Some(4)));

    let (s, patched) = app
        .send(
            Method::PATCH,
            "/api/items/i2",
            Some(json!({"hidden": true, "title": "T2"})),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(
        (patched["hidden"].as_bool(), patched["title"].as_str()),
        (Some(true), Some("T2"))
    );
    assert_eq!(
        patched["categories"],
        json!(["film"]),
        "unpatched fields keep their value"
    );
    let (s, _) = app
        .send(
            Method::PATCH,
            "/api/items/nope",
            Some(json!({"hidden": true})),
        )
        .await;
    assert_eq!(s, 404);

    // Cursor pagination visits every item once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/items?limit=2&cursor={}", urlencode(c)),
            None => "/api/items?limit=2".to_string(),
        };
        let (s, page) = app.get(&path).await;
        assert_eq!(s, 200);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["i1", "i2", "i3", "i4", "i5"]);

    let (s, _) = app.send(Method::DELETE, "/api/items/i5", None).await;
    assert_eq!(s, 204);
    let (s, body) = app.get("/api/items/i5").await;
    assert_eq!((s, body["error"].as_str()), (404, Some("not_found")));
    let (s, _) = app.send(Method::DELETE, "/api/items/i5", None).await;
    assert_eq!(s, 404);
}

async fn users_crud(app: &TestApp) {
    let (s, u) = app
        .post("/api/users", json!({"id": "u1", "labels": {"age": 30}}))
        .await;
    assert_eq!(s, 200, "{u}");
    let (s, u2) = app
        .post("/api/users", json!({"id": "u1", "labels": {"age": 31}}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        u2["created_at"], u["created_at"],
        "upsert keeps the creation time"
    );
    let (s, body) = app
        .post("/api/users/batch", json!([{"id": "u2"}, {"id": "u3"}]))
        .await;
    assert_eq!((s, body["upserted"].as_u64()), (200, Some(2)));
    let (s, got) = app.get("/api/users/u1").await;
    assert_eq!((s, &got["labels"]), (200, &json!({"age": 31})));
    let (s, p) = app
        .send(
            Method::PATCH,
            "/api/users/u2",
            Some(json!({"labels": {"vip": true}})),
        )
        .await;
    assert_eq!((s, &p["labels"]), (200, &json!({"vip": true})));
    let (s, page) = app.get("/api/users?limit=10").await;
    assert_eq!(
        (s, ids(&page)),
        (200, vec!["u1".to_string(), "u2".into(), "u3".into()])
    );
}

async fn feedback_and_recommend(app: &TestApp) {
    // i1 most popular, then i3, i4; i2 is hidden.
    let fb = json!([
        {"user_id": "u1", "item_id": "i1", "type": "like"},
        {"user_id": "u2", "item_id": "i1", "type": "like"},
        {"user_id": "u3", "item_id": "i1", "type": "view", "value": 2.5, "timestamp": "2024-05-05T00:00:00Z"},
        {"user_id": "u2", "item_id": "i3", "type": "like"},
        {"user_id": "u3", "item_id": "i3", "type": "like"},
        {"user_id": "u3", "item_id": "i2", "type": "like"},
        {"user_id": "u3", "item_id": "i2", "type": "view"},
    ]);
    let (s, body) = app.post("/api/feedback", fb).await;
    assert_eq!((s, body["inserted"].as_u64()), (200, Some(7)), "{body}");
    assert_eq!(app.count("feedback").await, 7);
    reranked(app).await;

    let (s, rec) = app.get("/api/recommend/u1?n=10&engine=popularity").await;
    assert_eq!(s, 200, "{rec}");
    assert_eq!(rec["engine"], "popularity");
    let got = ids(&rec);
    assert_eq!(got, ["i3", "i4"], "u1 saw i1; i2 hidden");
    assert!(
        rec["items"][0]["score"].as_f64().unwrap() >= rec["items"][1]["score"].as_f64().unwrap()
    );
    assert!(
        rec["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("popular")
    );

    let (_, rec) = app
        .get("/api/recommend/newcomer?n=2&engine=popularity")
        .await;
    assert_eq!(
        ids(&rec),
        ["i1", "i3"],
        "unknown users get the popular list"
    );
    let (_, rec) = app
        .get("/api/recommend/newcomer?exclude=i1,i3&engine=popularity")
        .await;
    assert_eq!(ids(&rec), ["i4"]);
    let (_, rec) = app
        .get("/api/recommend/newcomer?exclude=i1&exclude=i3&engine=popularity")
        .await;
    assert_eq!(ids(&rec), ["i4"], "repeated exclude works too");
    app.post("/api/items", json!({"id": "b1", "categories": ["book"]}))
        .await;
    reranked(app).await;
    let (_, rec) = app
        .get("/api/recommend/newcomer?category=book&engine=popularity")
        .await;
    assert_eq!(ids(&rec), ["b1"]);
    let (_, rec) = app
        .get("/api/recommend/newcomer?category=book&category=film&n=10&engine=popularity")
        .await;
    assert_eq!(
        ids(&rec).len(),
        4,
        "several categories: items in any of them"
    );

    let (s, pop) = app.get("/api/popular?n=2").await;
    assert_eq!((s, ids(&pop)), (200, vec!["i1".to_string(), "i3".into()]));
    let (s, latest) = app.get("/api/latest?n=1").await;
    assert_eq!((s, ids(&latest)), (200, vec!["b1".to_string()]));
    item_fields_in_answers(app).await;

    // Feedback is seen at once: no re-rank needed for exclusion.
    app.post(
        "/api/feedback",
        json!([{"user_id": "u1", "item_id": "i3", "type": "click"}]),
    )
    .await;
    let (_, rec) = app.get("/api/recommend/u1").await;
    assert!(!ids(&rec).contains(&"i3".to_string()), "{rec}");

    feedback_lists_and_deletes(app).await;
}

/// `fields=` returns each recommended item's fields as `GET /api/items/{id}` shows them, on every
/// list route, current after a change even when the answer itself is cached; an unknown field is
/// a 400 naming `fields`.
async fn item_fields_in_answers(app: &TestApp) {
    let all = "fields=title,categories,labels,timestamp";
    let (_, sim_to) = app.get("/api/popular?n=1").await;
    let first = &ids(&sim_to)[0];
    let routes = [
        format!("/api/popular?n=3&{all}"),
        format!("/api/latest?n=3&{all}"),
        format!("/api/recommend/u1?{all}"),
        format!("/api/recommend/newcomer?engine=popularity&fields=title&{all}"),
        format!("/api/items/{first}/similar?fields=title,categories&fields=labels,timestamp"),
    ];
    for route in routes {
        let (s, rec) = app.get(&route).await;
        assert_eq!(s, 200, "{route}: {rec}");
        let answers = rec["items"].as_array().unwrap();
        assert!(!answers.is_empty(), "{route}: {rec}");
        for answer in answers {
            let (_, item) = app
                .get(&format!("/api/items/{}", answer["id"].as_str().unwrap()))
                .await;
            for field in ["title", "categories", "labels", "timestamp"] {
                assert_eq!(answer[field], item[field], "{route}: {field} of {answer}");
            }
        }
    }
    let (s, sess) = app
        .post(
            "/api/recommend/session",
            json!({"items": [first], "fields": ["title", "labels"]}),
        )
        .await;
    assert_eq!(s, 200, "{sess}");
    let answer = &sess["items"][0];
    let (_, item) = app
        .get(&format!("/api/items/{}", answer["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (&answer["title"], &answer["labels"]),
        (&item["title"], &item["labels"])
    );
    assert!(answer.get("categories").is_none(), "not asked: {answer}");

    // An answer served twice from the cache shows the item's title as it is now.
    let (_, before) = app.get("/api/recommend/u2?fields=title").await;
    let id = ids(&before)[0].clone();
    let (s, _) = app
        .send(
            Method::PATCH,
            &format!("/api/items/{id}"),
            Some(json!({"title": "Renamed"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, after) = app.get("/api/recommend/u2?fields=title").await;
    let renamed = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str());
    assert_eq!(
        renamed.map(|a| &a["title"]),
        Some(&json!("Renamed")),
        "{after}"
    );

    let (s, err) = app.get("/api/popular?fields=title,description").await;
    assert_eq!((s, &err["field"]), (400, &json!("fields")), "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("description"),
        "{err}"
    );
}

/// Feedback listed by user and by item (cursor pagination), deleted by type or whole, created on
/// the fly, and removed with its user or item.
async fn feedback_lists_and_deletes(app: &TestApp) {
    let (s, page) = app.get("/api/users/u3/feedback").await;
    assert_eq!(s, 200);
    let types: Vec<(String, String)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["item_id"].as_str().unwrap().into(),
                f["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("i1".into(), "view".into()),
            ("i2".into(), "like".into()),
            ("i2".into(), "view".into()),
            ("i3".into(), "like".into())
        ]
    );
    assert_eq!(page["items"][0]["value"], 2.5);
    assert_eq!(page["items"][0]["timestamp"], "2024-05-05T00:00:00Z");
    let (_, page) = app.get("/api/users/u3/feedback?limit=3").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = app
        .get(&format!(
            "/api/users/u3/feedback?limit=3&cursor={}",
            urlencode(&cursor)
        ))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    let (_, page) = app.get("/api/items/i1/feedback").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);

    // Delete one type, then all types of a pair.
    let (s, d) = app
        .send(Method::DELETE, "/api/feedback/u3/i2?type=view", None)
        .await;
    assert_eq!((s, d["deleted"].as_u64()), (200, Some(1)));
    let (s, d) = app.send(Method::DELETE, "/api/feedback/u3/i1", None).await;
    assert_eq!((s, d["deleted"].as_u64()), (200, Some(1)));
    let (s, _) = app.send(Method::DELETE, "/api/feedback/u3/i1", None).await;
    assert_eq!(s, 404);

    // Unknown users and items in feedback are created on the fly.
    app.post(
        "/api/feedback",
        json!([{"user_id": "fresh", "item_id": "fresh-item", "type": "like"}]),
    )
    .await;
    assert_eq!(app.get("/api/users/fresh").await.0, 200);
    assert_eq!(app.get("/api/items/fresh-item").await.0, 200);

    // Deleting a user or an item removes its feedback.
    let before = app.count("feedback").await;
    assert_eq!(app.send(Method::DELETE, "/api/users/u2", None).await.0, 204);
    assert_eq!(app.count("feedback").await, before - 2, "u2 had two rows");
    assert_eq!(app.send(Method::DELETE, "/api/items/i1", None).await.0, 204);
    assert_eq!(
        app.count("feedback").await,
        before - 3,
        "i1 had u1's like left"
    );
    reranked(app).await;
    let (_, pop) = app.get("/api/popular?n=10").await;
    assert!(!ids(&pop).contains(&"i1".to_string()));
}

async fn ops_routes(app: &TestApp) {
    let r = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-request-id").is_some(),
        "every response carries a request id"
    );
    let (s, ready) = app.get("/health/ready").await;
    assert_eq!(
        (
            s,
            ready["status"].as_str(),
            ready["migrations_current"].as_bool()
        ),
        (200, Some("ready"), Some(true))
    );
    let (s, pool) = app.get("/api/admin/pool").await;
    assert_eq!(s, 200);
    assert_eq!(
        (pool["pool_size"].as_u64(), pool["ceiling"].as_u64()),
        (Some(5), Some(15))
    );
    assert!(pool["acquire_wait"]["count"].as_u64().unwrap() > 0);
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "reco_http_requests_total{method=\"GET\",route=\"/api/recommend/{user_id}\",status=\"200\"}",
        "reco_http_request_duration_seconds_count{method=\"GET\",route=\"/api/recommend/{user_id}\",status=\"200\"}",
        "reco_db_pool_connections ",
        "reco_db_pool_idle ",
        "reco_db_pool_in_use ",
        "reco_db_pool_overflow_in_use ",
        "reco_db_pool_waiting ",
        "reco_db_pool_acquire_wait_seconds_bucket",
        "reco_db_pool_hold_seconds_bucket",
        "reco_db_pool_timeouts_total ",
        "reco_db_pool_opened_total ",
        "reco_db_pool_closed_total{reason=",
        "reco_db_pool_pre_ping_failures_total ",
        "reco_db_pool_leaks_total ",
        "reco_feedback_rows_total ",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    let r = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    let r = app.client.put(app.url("/api/items")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

/// Every route of the OpenAPI document is served (none falls through to 404-no-route or 405).
async fn openapi_matches_router(app: &TestApp) {
    let (s, doc) = app.get("/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15);
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "zz")
                .replace("{user_id}", "zz")
                .replace("{item_id}", "zz");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app
                .client
                .request(m, app.url(&concrete))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                status != 405
                    && body["message"]
                        .as_str()
                        .is_none_or(|m| !m.starts_with("no route")),
                "{method} {path}: {status} {body}"
            );
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn every_route_works_on_both_backends() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        items_crud(&app).await;
        users_crud(&app).await;
        feedback_and_recommend(&app).await;
        ops_routes(&app).await;
        openapi_matches_router(&app).await;
        if backend == Backend::Postgres {
            assert_eq!(app.state.pool.backend(), reco::db::Backend::Postgres);
        }
    }
}
