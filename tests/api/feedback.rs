//! Group-commit durability: every acknowledged feedback row is in the database, under concurrency
//! and across a graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::helpers::{BOTH, Backend, pg_connect, spawn_app};

#[tokio::test]
async fn concurrent_writers_lose_no_acknowledged_row() {
    for backend in BOTH {
        let app = Arc::new(spawn_app(backend).await);
        let acked = Arc::new(AtomicUsize::new(0));
        let requests = 40 * 25;
        let mut tasks = Vec::new();
        for w in 0..40 {
            let (app, acked) = (app.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                for r in 0..25 {
                    let rows: Vec<Value> = (0..4)
                        .map(|k| json!({"user_id": format!("w{w}"), "item_id": format!("r{r}-k{k}"), "type": "view"}))
                        .collect();
                    let (s, _) = app.post("/api/feedback", Value::Array(rows)).await;
                    assert_eq!(s, 200);
                    acked.fetch_add(4, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let acked = acked.load(Ordering::Relaxed) as i64;
        assert_eq!(acked, 4000);
        assert_eq!(app.count("feedback").await, acked, "{backend:?}");
        let commits = app.state.metrics.feedback_commits.get();
        assert!(
            commits < requests as u64,
            "{backend:?}: {commits} commits for {requests} requests: no coalescing"
        );
        eprintln!("{backend:?}: {requests} requests committed in {commits} transactions");
    }
}

#[tokio::test]
async fn graceful_shutdown_commits_what_it_acknowledged() {
    let mut app = spawn_app(Backend::Postgres).await;
    let client = app.client.clone();
    let url = app.url("/api/feedback");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!([{"user_id": format!("u{i}"), "item_id": "i", "type": "like"}]);
            match client.post(&url).json(&body).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0, // refused after shutdown began
            }
        }));
    }
    // Shut down while requests are still arriving, once some have been committed.
    while app.state.metrics.feedback_rows.get() < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    app.stop().await;
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            0 | 503 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    let mut conn = pg_connect(&app.db_url).await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM feedback")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(stored >= ok, "{ok} acknowledged but only {stored} stored");
    assert!(ok > 0, "some requests finished before shutdown");
}

/// A batch is stored exactly as sent, on both backends (PostgreSQL writes it as one JSON
/// parameter): ids with quotes, backslashes and non-ASCII text, exact values and millisecond
/// timestamps, the last row of a repeated key, and the users and items it names created.
#[tokio::test]
async fn a_batch_is_stored_exactly_as_sent() {
    let items = ["it\"em\\1", "élan ✓ 🎬", "a'b", "plain"];
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let rows = json!([
            {"user_id": "u-exact", "item_id": items[0], "type": "rating", "value": 0.1, "timestamp": "2024-01-02T03:04:05.678Z"},
            {"user_id": "u-exact", "item_id": items[1], "type": "vue ✓", "value": -3.25e-7},
            {"user_id": "u-exact", "item_id": items[2], "type": "like", "value": 1e300},
            {"user_id": "u-exact", "item_id": items[3], "type": "rating", "value": 2.0},
            {"user_id": "u-exact", "item_id": items[3], "type": "rating", "value": 4.5, "timestamp": "2020-05-06T07:08:09.010Z"},
        ]);
        let (s, body) = app.post("/api/feedback", rows).await;
        assert_eq!(s, 200, "{backend:?}: {body}");
        let (s, page) = app.get("/api/users/u-exact/feedback?limit=100").await;
        assert_eq!(s, 200, "{backend:?}: {page}");
        let mut got: Vec<(String, String, f64)> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let id = f["item_id"].as_str().unwrap().to_owned();
                (
                    id,
                    f["type"].as_str().unwrap().to_owned(),
                    f["value"].as_f64().unwrap(),
                )
            })
            .collect();
        let mut want = vec![
            (items[0].to_owned(), "rating".to_owned(), 0.1),
            (items[1].to_owned(), "vue ✓".to_owned(), -3.25e-7),
            (items[2].to_owned(), "like".to_owned(), 1e300),
            (items[3].to_owned(), "rating".to_owned(), 4.5),
        ];
        want.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want, "{backend:?}");
        let stamp = |item: &str| {
            let row = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["item_id"] == item);
            let t = row.unwrap()["timestamp"].as_str().unwrap().to_owned();
            chrono::DateTime::parse_from_rfc3339(&t)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(stamp(items[0]), 1_704_164_645_678, "{backend:?}");
        assert_eq!(
            stamp(items[3]),
            1_588_748_889_010,
            "{backend:?}: the last row of a key wins"
        );
        assert_eq!(app.count("users").await, 1, "{backend:?}");
        assert_eq!(app.count("items").await, 4, "{backend:?}");
        for item in items {
            let (s, _) = app.get(&format!("/api/items/{}", urlencode(item))).await;
            assert_eq!(s, 200, "{backend:?}: {item} was created");
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
