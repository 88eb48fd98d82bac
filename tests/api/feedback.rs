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
