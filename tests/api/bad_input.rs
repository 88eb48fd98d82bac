//! Every class of bad input gets a 4xx with `{ error, message, field }`, and nothing is half-written.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{BOTH, TestApp, spawn_app, spawn_app_with};

fn assert_error(status: u16, body: &Value, want_status: u16, want_field: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
    if let Some(f) = want_field {
        assert_eq!(body["field"].as_str(), Some(f), "{body}");
    }
}

async fn bad_bodies(app: &TestApp) {
    let (s, b) = app.post_raw("/api/items", "{\"id\": ").await;
    assert_error(s, &b, 400, None);
    assert_eq!(b["error"], "invalid_json");
    let (s, b) = app.post_raw("/api/items", "{\"id\": \"a\"} trailing").await;
    assert_error(s, &b, 400, None);
    let (s, b) = app.post("/api/items", json!({"id": 5})).await;
    assert_error(s, &b, 400, Some("id"));
    let (s, b) = app.post("/api/items", json!({"title": "no id"})).await;
    assert_error(s, &b, 400, None);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("missing field `id`"),
        "{b}"
    );
    let (s, b) = app
        .post("/api/items", json!({"id": "a", "colour": "red"}))
        .await;
    assert_error(s, &b, 400, None);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{b}"
    );
    let (s, b) = app.post("/api/items", json!({"id": ""})).await;
    assert_error(s, &b, 400, Some("id"));
    let (s, b) = app.post("/api/items", json!({"id": "x".repeat(257)})).await;
    assert_error(s, &b, 400, Some("id"));
    let (s, b) = app.post("/api/items", json!({"id": "a\u{0007}b"})).await;
    assert_error(s, &b, 400, Some("id"));
    let (s, b) = app
        .post("/api/items", json!({"id": "a", "labels": [1]}))
        .await;
    assert_error(s, &b, 400, Some("labels"));
    let (s, b) = app
        .post("/api/items", json!({"id": "a", "timestamp": "yesterday"}))
        .await;
    assert_error(s, &b, 400, Some("timestamp"));
    let (s, b) = app
        .post(
            "/api/feedback",
            json!([{"user_id": "u", "item_id": "i", "type": "like", "value": "high"}]),
        )
        .await;
    assert_error(s, &b, 400, Some("[0].value"));
    let (s, b) = app
        .post(
            "/api/feedback",
            json!({"user_id": "u", "item_id": "i", "type": "like"}),
        )
        .await;
    assert_error(s, &b, 400, None);
    let r = app
        .client
        .post(app.url("/api/items"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let (s, b) = app
        .send(
            Method::PATCH,
            "/api/items/a",
            Some(json!({"hidden": "yes"})),
        )
        .await;
    assert_error(s, &b, 400, Some("hidden"));
}

async fn batches_are_all_or_nothing(app: &TestApp) {
    let mut rows: Vec<Value> = (0..50).map(|i| json!({"id": format!("ok-{i}")})).collect();
    rows[37] = json!({"id": "bad\nid"});
    let (s, b) = app.post("/api/items/batch", Value::Array(rows)).await;
    assert_error(s, &b, 400, Some("[37].id"));
    assert_eq!(
        app.count("items").await,
        0,
        "nothing of a rejected batch is written"
    );

    let (s, b) = app
        .post("/api/items/batch", json!([{"id": "d"}, {"id": "d"}]))
        .await;
    assert_error(s, &b, 400, Some("[1].id"));

    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"user_id": "u", "item_id": format!("i{i}"), "type": "view"}))
        .collect();
    let (s, b) = app.post("/api/feedback", Value::Array(too_many)).await;
    assert_error(s, &b, 400, None);
    assert_eq!(b["error"], "batch_too_large");
    let (s, b) = app.post("/api/users/batch", json!([])).await;
    assert_error(s, &b, 400, None);

    let mut fb: Vec<Value> = (0..20)
        .map(|i| json!({"user_id": "u", "item_id": format!("i{i}"), "type": "view"}))
        .collect();
    fb[5]["type"] = json!("");
    let (s, b) = app.post("/api/feedback", Value::Array(fb)).await;
    assert_error(s, &b, 400, Some("[5].type"));
    assert_eq!(app.count("feedback").await, 0);
    assert_eq!(app.count("users").await, 0);
}

async fn bad_queries_and_paths(app: &TestApp) {
    let (s, b) = app.get("/api/recommend/u1?n=lots").await;
    assert_error(s, &b, 400, Some("n"));
    let (s, b) = app.get("/api/recommend/u1?n=0").await;
    assert_error(s, &b, 400, Some("n"));
    let (s, b) = app.get("/api/popular?n=5000").await;
    assert_error(s, &b, 400, Some("n"));
    let (s, b) = app.get("/api/popular?colour=red").await;
    assert_error(s, &b, 400, Some("colour"));
    let (s, b) = app.get("/api/items?limit=-1").await;
    assert_error(s, &b, 400, Some("limit"));
    let (s, b) = app.get("/api/items?limit=0").await;
    assert_error(s, &b, 400, Some("limit"));
    let long = "x".repeat(300);
    let (s, b) = app.get(&format!("/api/recommend/{long}")).await;
    assert_error(s, &b, 400, Some("user_id"));
    let (s, b) = app.get("/api/items/a%01b").await;
    assert_error(s, &b, 400, Some("id"));
    let (s, b) = app.get(&format!("/api/popular?exclude={long}")).await;
    assert_error(s, &b, 400, Some("exclude"));
}

async fn sql_looking_strings_are_verbatim(app: &TestApp) {
    let id = "x'); DROP TABLE items; --";
    let title = "Robert'); DROP TABLE students;-- \"quoted\" \\ % _ ü 🎬";
    let (s, b) = app
        .post(
            "/api/items",
            json!({"id": id, "title": title, "categories": ["a' OR '1'='1"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let path = format!(
        "/api/items/{}",
        url::form_urlencoded::byte_serialize(id.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    );
    let (s, got) = app.get(&path).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(
        (got["id"].as_str(), got["title"].as_str()),
        (Some(id), Some(title))
    );
    assert_eq!(got["categories"], json!(["a' OR '1'='1"]));
    assert_eq!(app.count("items").await, 1, "the table is still there");
}

/// NUL characters, which PostgreSQL refuses (22021) and which used to fail a whole batch with a
/// 500, are a 400 naming the field wherever text is accepted; a feedback timestamp past now plus
/// the allowed skew is a 400 too. Nothing of a rejected batch is written.
async fn nul_bytes_and_future_timestamps(app: &TestApp) {
    let mut rows: Vec<Value> = (0..10_000)
        .map(|i| json!({"id": format!("n{i}"), "title": "fine"}))
        .collect();
    rows[9_999]["title"] = json!("bad\u{0}title");
    let (s, b) = app.post("/api/items/batch", Value::Array(rows)).await;
    assert_error(s, &b, 400, Some("[9999].title"));
    for (body, field) in [
        (json!({"id": "n", "description": "a\u{0}b"}), "description"),
        (json!({"id": "n", "labels": {"k\u{0}": 1}}), "labels"),
        (
            json!({"id": "n", "labels": {"k": [{"deep": "x\u{0}"}]}}),
            "labels",
        ),
        (
            json!({"id": "n", "categories": ["c\u{0}"]}),
            "categories[0]",
        ),
        (json!({"id": "n\u{0}"}), "id"),
    ] {
        let (s, b) = app.post("/api/items", body).await;
        assert_error(s, &b, 400, Some(field));
    }
    let (s, b) = app
        .post("/api/users", json!({"id": "u", "labels": {"a": "\u{0}"}}))
        .await;
    assert_error(s, &b, 400, Some("labels"));
    let (s, b) = app.get("/api/items?cursor=a%00b").await;
    assert_error(s, &b, 400, Some("cursor"));
    let (s, b) = app.get("/api/users/u/feedback?cursor=a%00b").await;
    assert_error(s, &b, 400, Some("cursor"));
    assert_eq!((app.count("items").await, app.count("users").await), (1, 0));

    let future = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let rows = json!([
        {"user_id": "u", "item_id": "i", "type": "like", "timestamp": soon},
        {"user_id": "u", "item_id": "j", "type": "like", "timestamp": "9999-01-01T00:00:00Z"},
        {"user_id": "u", "item_id": "k", "type": "like", "timestamp": future},
    ]);
    let (s, b) = app.post("/api/feedback", rows).await;
    assert_error(s, &b, 400, Some("[1].timestamp"));
    assert_eq!(app.count("feedback").await, 0);
    let rows = json!([{"user_id": "u", "item_id": "i", "type": "like", "timestamp": soon}]);
    let (s, b) = app.post("/api/feedback", rows).await;
    assert_eq!(s, 200, "an hour of skew is allowed: {b}");
}

/// Made-up HTTP methods are counted under `method="other"`, not as a new series each.
async fn unknown_methods_are_one_label(app: &TestApp) {
    for m in ["FOO", "BAR", "BAZ"] {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let (s, _) = app.send(method, "/api/items", None).await;
        assert!((400..500).contains(&s), "{m}: {s}");
    }
    let metrics = app.metrics().await;
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(!metrics.contains("FOO") && !metrics.contains("BAZ"));
}

#[tokio::test]
async fn bad_input_gets_clear_4xx_on_both_backends() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        bad_bodies(&app).await;
        batches_are_all_or_nothing(&app).await;
        bad_queries_and_paths(&app).await;
        sql_looking_strings_are_verbatim(&app).await;
        nul_bytes_and_future_timestamps(&app).await;
        unknown_methods_are_one_label(&app).await;
    }
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let app = spawn_app_with(crate::helpers::Backend::Sqlite, |c| {
        c.http.max_body_bytes = 4096
    })
    .await;
    let big = json!([{"id": "a", "description": "x".repeat(10_000)}]);
    let (s, b) = app.post("/api/items/batch", big).await;
    assert_error(s, &b, 413, None);
    assert_eq!(b["error"], "payload_too_large");
}

#[tokio::test]
async fn unknown_references_are_rejected_when_auto_create_is_off() {
    let app = spawn_app_with(crate::helpers::Backend::Postgres, |c| {
        c.feedback.auto_create = false
    })
    .await;
    app.post("/api/users", json!({"id": "u"})).await;
    app.post("/api/items", json!({"id": "i"})).await;
    let (s, b) = app.post("/api/feedback", json!([{"user_id": "u", "item_id": "i", "type": "like"}, {"user_id": "u", "item_id": "ghost", "type": "like"}])).await;
    assert_error(s, &b, 404, Some("[1].item_id"));
    let (s, b) = app
        .post(
            "/api/feedback",
            json!([{"user_id": "nobody", "item_id": "i", "type": "like"}]),
        )
        .await;
    assert_error(s, &b, 404, Some("[0].user_id"));
    assert_eq!(app.count("feedback").await, 0);
    let (s, _) = app
        .post(
            "/api/feedback",
            json!([{"user_id": "u", "item_id": "i", "type": "like"}]),
        )
        .await;
    assert_eq!(s, 200);
}
