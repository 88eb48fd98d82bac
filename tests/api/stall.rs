//! Nothing a client sends stalls the server: expensive recommendation requests queue among
//! themselves on the engine workers while writes, health checks and `fast` keep answering, and
//! each of them finishes in bounded time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Backend, TestApp, sample, spawn_app_with};

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
    app.train().await;

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

/// Training over HTTP is a job: the request answers 202 at once with the job's id and
/// `Location`, a second request while it runs gets 409 naming it, and the job reports its
/// snapshot when it ends. A client giving up never cancels a fit halfway.
#[tokio::test]
async fn training_is_a_job_not_a_held_request() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.demo.seed_if_empty = true;
        c.recommend.train_interval = 3600.0;
    })
    .await;
    let first = app
        .client
        .post(app.url("/api/admin/train"))
        .json(&json!(null))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 202);
    let location = first.headers()["location"].to_str().unwrap().to_string();
    let job: serde_json::Value = first.json().await.unwrap();
    assert_eq!(location, format!("/api/admin/train/{}", job["id"]));
    assert_eq!(job["status"], "running", "{job}");
    let (s, second) = app.post("/api/admin/train", json!(null)).await;
    if s == 409 {
        assert_eq!(second["job"]["id"], job["id"], "{second}");
        assert_eq!(second["error"], "training_running");
    } else {
        // The first one was already over (a fast machine): then this one is a new job.
        assert_eq!(s, 202, "{second}");
        let (_, first_now) = app.get(&location).await;
        assert_ne!(first_now["status"], "running", "{first_now}");
    }
    let done = app.job_outcome(&location).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["snapshot"]["version"].as_u64().unwrap() >= 1, "{done}");
    let (s, b) = app.get("/api/admin/train/999999").await;
    assert_eq!((s, b["field"].as_str()), (404, Some("id")));
}
