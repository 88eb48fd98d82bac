//! Faults injected into real components: a background task that dies, the database going away.

use std::time::{Duration, Instant};

use crate::helpers::{Backend, spawn_app};

/// A background task that stops before shutdown never dies silently: readiness turns red (503)
/// naming the task and why, while liveness stays up.
#[tokio::test]
async fn a_stopped_background_task_turns_readiness_red() {
    let app = spawn_app(Backend::Sqlite).await;
    let (s, ready) = app.get("/health/ready").await;
    assert_eq!(s, 200, "{ready}");
    app.state.abort_task("re-ranker");
    let started = Instant::now();
    let ready = loop {
        let (s, ready) = app.get("/health/ready").await;
        if s == 503 {
            break ready;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "still ready: {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["stopped_tasks"][0]["task"], "re-ranker", "{ready}");
    assert_eq!(ready["stopped_tasks"][0]["reason"], "cancelled", "{ready}");
    assert_eq!(app.get("/health/live").await.0, 200);
}
