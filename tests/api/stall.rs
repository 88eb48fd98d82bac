//! Nothing a client sends stalls the server: expensive recommendation requests queue among
//! themselves on the engine workers while writes, health checks and `fast` keep answering, and
//! each of them finishes in bounded time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Backend, TestApp, spawn_app_with};

/// The value of one Prometheus sample, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Loops `path` until `stop`; returns (status, seconds) of every answer.
fn hammer(
    app: &TestApp,
    path: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u16, f64)>> {
    let (client, url) = (app.client.clone(), app.url(&path));
    tokio::spawn(async move {
        let mut answers = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let status = client
                .get(&url)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            answers.push((status, started.elapsed().as_secs_f64()));
        }
        answers
    })
}

/// Eight clients loop the most expensive request a client can send (`quality` with `n=1000`,
/// no deadline, so every one runs to the end). Meanwhile single feedback events, `fast` reads and
/// the readiness check are answered, and the feedback is applied; every slow request finishes.
/// Before the engine workers and lock-free scoring, one such request took over a minute and held
/// every write and every other read behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_and_fast_answer_while_slow_requests_run() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.demo.seed_if_empty = true;
        c.recommend.train_interval = 3600.0;
        c.orchestrator.deadline = 0.0;
    })
    .await;
    let (s, body) = app.post("/api/admin/train", json!(null)).await;
    assert_eq!(s, 200, "{body}");

    let stop = Arc::new(AtomicBool::new(false));
    let slow: Vec<_> = (0..8)
        .map(|u| {
            let path = format!("/api/recommend/user-{}?engine=quality&n=1000", u + 1);
            hammer(&app, path, stop.clone())
        })
        .collect();
    // Wait until the slow requests occupy the workers and queue behind them.
    let started = Instant::now();
    loop {
        let m = app.metrics().await;
        if sample(&m, "reco_engine_jobs_running") >= 1.0
            && sample(&m, "reco_engine_jobs_waiting") >= 1.0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the slow requests never queued"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut worst = 0.0f64;
    for i in 0..20 {
        let t = Instant::now();
        let event =
            json!([{"user_id": "probe", "item_id": format!("item-{}", i + 1), "type": "view"}]);
        let (s, b) = app.post("/api/feedback", event).await;
        assert_eq!(s, 200, "{b}");
        let (s, b) = app.get("/api/recommend/user-9?engine=fast").await;
        assert_eq!((s, b["engine"].as_str()), (200, Some("fast")), "{b}");
        let (s, b) = app.get("/health/ready").await;
        assert_eq!(s, 200, "{b}");
        worst = worst.max(t.elapsed().as_secs_f64());
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for h in slow {
        answers.extend(h.await.unwrap());
    }
    let longest = answers.iter().map(|a| a.1).fold(0.0, f64::max);
    eprintln!(
        "slow requests answered: {}, longest {longest:.2} s; worst write+read+health round {worst:.3} s",
        answers.len()
    );
    // Generous for a busy 2-core machine: this is about starvation, not speed (it was 40 s).
    assert!(
        worst < 10.0,
        "a write, a fast read and a health check took {worst:.1} s"
    );
    assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
    assert!(longest < 60.0, "a slow request took {longest:.1} s");
    let (s, seen) = app.get("/api/users/probe/feedback?limit=1000").await;
    assert_eq!(s, 200);
    let stored = seen["items"].as_array().unwrap().len();
    assert_eq!(stored, 20, "every acknowledged event is stored: {seen}");
}
