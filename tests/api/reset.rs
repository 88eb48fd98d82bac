//! `reco reset` under load: the pool is rebuilt with zero failed requests and without passing the
//! ceiling; `--terminate-idle` ends only reco's own stale idle backends, after confirmation.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{ConnectOptions, Executor, Row};
use tokio::io::AsyncWriteExt;

use crate::helpers::{Backend, TestApp, pg_connect, spawn_app_with};

const KEY: &str = "reset-test-key";

async fn pids(app: &TestApp) -> HashSet<i32> {
    let mut c = pg_connect(&app.db_url).await;
    sqlx::query("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
        .bind(&app.application_name)
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<i32, _>("pid"))
        .collect()
}

async fn reset(app: &TestApp, args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"))
        .env_remove("RECO_CONFIG")
        .env("DATABASE_URL", &app.db_url)
        .env("RECO_HTTP__API_KEY", KEY)
        .env("RECO_DB__APPLICATION_NAME", &app.application_name)
        .args(["reset", "--replica", &format!("http://{}", app.addr)])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    let text = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
    (out.status.code().unwrap(), text)
}

#[tokio::test]
async fn reset_under_load_fails_no_request_and_terminates_only_our_idle_backends() {
    let app = Arc::new(
        spawn_app_with(Backend::Postgres, |c| {
            c.db.pool_size = 3;
            c.db.max_overflow = 2;
            c.http.api_key = Some(KEY.to_string().into());
        })
        .await,
    );
    let items = json!([{"id": "a"}, {"id": "b"}]);
    assert_eq!(
        app.send_with_key(
            reqwest::Method::POST,
            "/api/items/batch",
            Some(items),
            Some(KEY)
        )
        .await
        .0,
        200
    );
    let before = pids(&app).await;
    assert!(!before.is_empty());

    // Work that is running on the old pool when the reset comes.
    let in_flight = {
        let pool = app.state.pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("SELECT pg_sleep(1.5)")
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })
    };
    // Load: readers and writers until told to stop; the ceiling is sampled meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = crate::helpers::sample_backends(
        &app.db_url,
        &app.application_name,
        Duration::from_millis(20),
        stop.clone(),
    );
    let workers: Vec<_> = (0..24)
        .map(|w| {
            let (stop, app) = (stop.clone(), app.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let s = if w % 3 == 0 {
                        let fb = json!([{"user_id": format!("u{w}"), "item_id": "a", "type": "view", "value": n}]);
                        app.send_with_key(reqwest::Method::POST, "/api/feedback", Some(fb), Some(KEY)).await.0
                    } else {
                        app.get("/api/items/b").await.0
                    };
                    statuses.push(s);
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, out) = reset(&app, &[], "").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pool rebuilt (generation 1)"), "{out}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for w in workers {
        statuses.extend(w.await.unwrap());
    }
    let peak = sampler.await.unwrap().into_iter().max().unwrap_or(0);
    assert!(statuses.len() > 50, "{}", statuses.len());
    assert!(
        statuses.iter().all(|&s| s == 200),
        "every request succeeded: {:?}",
        statuses.iter().filter(|&&s| s != 200).collect::<Vec<_>>()
    );
    in_flight
        .await
        .unwrap()
        .expect("the running statement finished on the old pool");
    assert!(peak <= 5, "ceiling 5, peak {}", peak);
    let (_, status) = app
        .send_with_key(reqwest::Method::GET, "/api/admin/pool", None, Some(KEY))
        .await;
    assert_eq!(status["generation"], 1, "{status}");
    // The old pool's connections are all gone once their work is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = pids(&app).await;
        if now.is_disjoint(&before) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old backends linger: {before:?} {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    terminate_idle_ends_only_our_stale_backends(&app).await;
}

/// `reco reset --terminate-idle`: asks first, then ends a stale idle backend of reco's own name,
/// never another application's session.
async fn terminate_idle_ends_only_our_stale_backends(app: &TestApp) {
    // A stale idle backend of reco's own name, and another application's idle session.
    let connect = |name: &str| {
        app.db_url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .application_name(name)
    };
    let mut stale = connect(&app.application_name).connect().await.unwrap();
    let mut other = connect("psql").connect().await.unwrap();
    let stale_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut stale)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (code, out) = reset(app, &["--terminate-idle"], "n\n").await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("pid {stale_pid:>7}")),
        "shown first: {out}"
    );
    assert!(out.contains("nothing terminated"), "{out}");
    stale
        .execute("SELECT 1")
        .await
        .expect("declined: still alive");

    let (code, out) = reset(app, &["--terminate-idle", "--yes"], "").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("terminated 1 of 1 backends"), "{out}");
    assert!(
        stale.execute("SELECT 1").await.is_err(),
        "the stale backend was ended"
    );
    other
        .execute("SELECT 1")
        .await
        .expect("another application's session is never touched");
    let (s, _) = app.get("/api/items/a").await;
    assert_eq!(s, 200, "the server keeps serving after resets");
}
