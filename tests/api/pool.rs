//! The pool: hard ceiling under load, 503 + Retry-After instead of errors, leak reports, overflow
//! closing, recycling, pre-ping, and one pool per process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use reco::db::Pool;
use reco::metrics::Metrics;
use serde_json::{Value, json};
use sqlx::{Connection, Executor};

use crate::helpers::{Backend, TestApp, count_backends, pg_connect, spawn_app, spawn_app_with};

/// Samples this app's backend count every 10 ms until `stop`; returns the peak.
fn sample_backends(app: &TestApp, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<i64> {
    let sampler = crate::helpers::sample_backends(
        &app.db_url,
        &app.application_name,
        Duration::from_millis(10),
        stop,
    );
    tokio::spawn(async move { sampler.await.unwrap().into_iter().max().unwrap_or(0) })
}

#[tokio::test]
async fn ceiling_holds_under_300_concurrent_requests_with_a_slow_statement() {
    let app = Arc::new(
        spawn_app_with(Backend::Postgres, |c| {
            c.db.pool_size = 2;
            c.db.max_overflow = 3;
            c.db.pool_timeout = 0.5;
        })
        .await,
    );
    let items: Vec<Value> = (0..50).map(|i| json!({"id": format!("i{i}")})).collect();
    assert_eq!(
        app.post("/api/items/batch", Value::Array(items)).await.0,
        200
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_backends(&app, stop.clone());

    // The slow statement: every query touching feedback waits behind this lock for 1.5 s.
    let mut locker = pg_connect(&app.db_url).await;
    locker
        .execute("BEGIN; LOCK TABLE feedback IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        locker.execute("COMMIT").await.unwrap();
    });

    let acked = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (app, acked) = (app.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let user = format!("u{}", i % 60);
            let req = match i % 3 {
                0 => app.client.get(app.url(&format!("/api/recommend/{user}"))),
                1 => app.client.post(app.url("/api/feedback")).json(
                    &json!([{"user_id": user, "item_id": format!("i{}", i % 50), "type": "like"}]),
                ),
                _ => app
                    .client
                    .get(app.url(&format!("/api/users/{user}/feedback"))),
            };
            let r = req.send().await.expect("response");
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").is_some();
            if status == 200 && i % 3 == 1 {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            (status, retry_after)
        }));
    }
    let mut by_status = std::collections::BTreeMap::new();
    for t in tasks {
        let (status, retry_after) = t.await.unwrap();
        assert!(
            status == 200 || (status == 503 && retry_after),
            "status {status} (retry-after: {retry_after})"
        );
        *by_status.entry(status).or_insert(0) += 1;
    }
    release.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    eprintln!("statuses {by_status:?}, peak backends {peak}");
    assert!(
        peak <= 5,
        "peak {peak} backends exceeds pool_size + max_overflow = 5"
    );
    assert!(
        peak >= 3,
        "the load never needed overflow (peak {peak}); the test is not exercising the pool"
    );
    assert!(
        by_status.get(&503).copied().unwrap_or(0) > 0,
        "the slow statement should have caused timeouts"
    );
    assert!(app.state.pool.status().timeouts_total > 0);
    let stored = app.count("feedback").await;
    let acked = acked.load(Ordering::Relaxed);
    assert!(
        stored >= acked,
        "{acked} feedback acknowledged but {stored} stored"
    );
}

#[tokio::test]
async fn one_pool_serves_everything() {
    let app = spawn_app(Backend::Postgres).await;
    for i in 0..20 {
        app.post("/api/items", json!({"id": format!("i{i}")})).await;
        app.post(
            "/api/feedback",
            json!([{"user_id": "u", "item_id": format!("i{i}"), "type": "like"}]),
        )
        .await;
        app.get(&format!("/api/users/u/feedback?limit={}", i + 1))
            .await;
        app.get("/health/ready").await;
    }
    let mut conn = pg_connect(&crate::helpers::pg_admin_url()).await;
    let backends = app.pg_backends(&mut conn).await;
    let status = app.state.pool.status();
    // Every backend with this app's name is a connection of its one pool.
    assert_eq!(backends, status.size as i64, "{status:?}");
    assert!(backends >= 1 && backends <= status.ceiling as i64);
}

#[tokio::test]
async fn held_connection_is_reported_as_a_leak_with_its_location() {
    let app = spawn_app_with(Backend::Postgres, |c| c.db.leak_threshold = 0.1).await;
    // Start-up work (the first training) may itself hold a connection past 0.1 s on a busy
    // machine: let it end, and count from there.
    let deadline = Instant::now() + Duration::from_secs(120);
    while app.state.engine.snapshot().is_none() || app.state.pool.status().in_use > 0 {
        assert!(Instant::now() < deadline, "start-up work never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = app.state.pool.status().leaks_total;
    let conn = app.state.pool.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The maintenance task reports it within a few scans of 25 ms; a busy machine may delay them.
    while app.state.pool.status().leaks_total == before {
        assert!(Instant::now() < deadline, "never reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (s, pool) = app.get("/api/admin/pool").await;
    assert_eq!(s, 200);
    let suspects = pool["leak_suspects"].as_array().unwrap();
    assert_eq!(suspects.len(), 1, "{pool}");
    let location = suspects[0]["location"].as_str().unwrap();
    assert!(
        location.contains("tests/api/pool.rs"),
        "location {location}"
    );
    assert!(suspects[0]["held_seconds"].as_f64().unwrap() >= 0.3);
    assert_eq!(
        pool["leaks_total"],
        before + 1,
        "reported once, not on every scan"
    );
    drop(conn);
    let (_, pool) = app.get("/api/admin/pool").await;
    assert!(pool["leak_suspects"].as_array().unwrap().is_empty());
    assert_eq!(pool["leaks_total"], before + 1);
}

fn db_config(
    app: &TestApp,
    tweak: impl FnOnce(&mut reco::config::DbConfig),
) -> reco::config::DbConfig {
    let mut c = app.state.config.db.clone();
    c.url = app.db_url.clone().into();
    c.application_name = format!("{}_2", app.application_name);
    tweak(&mut c);
    c
}

#[tokio::test]
async fn overflow_closes_when_idle_and_old_connections_are_recycled() {
    let app = spawn_app(Backend::Postgres).await;
    let pool = Pool::open(
        &db_config(&app, |c| {
            c.pool_size = 1;
            c.max_overflow = 2;
            c.pool_timeout = 0.3;
        }),
        Metrics::new().pool,
    )
    .await
    .unwrap();
    let held: Vec<_> = futures::future::join_all((0..3).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let st = pool.status();
    assert_eq!((st.size, st.in_use, st.overflow_in_use), (3, 3, 2));
    // A fourth caller waits pool_timeout, then gets "busy".
    let err = pool.acquire().await.err().expect("ceiling reached");
    assert!(err.is_busy(), "{err}");
    assert_eq!(pool.status().timeouts_total, 1);
    // A caller that gives up while waiting (its future dropped) no longer counts as waiting.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), pool.acquire()).await;
    assert!(gave_up.is_err());
    assert_eq!(pool.status().waiting, 0, "a cancelled wait is uncounted");
    drop(held);
    let mut st = pool.status();
    for _ in 0..50 {
        if st.size == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        st = pool.status();
    }
    assert_eq!(st.size, 1, "overflow closed again when idle: {st:?}");
    assert_eq!(st.closed_total["overflow"], 2);

    let pool = Pool::open(
        &db_config(&app, |c| c.pool_recycle = 1.0),
        Metrics::new().pool,
    )
    .await
    .unwrap();
    let first_pid: i32 = {
        let mut c = pool.acquire().await.unwrap();
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut c = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *c)
        .await
        .unwrap();
    assert_ne!(
        pid, first_pid,
        "a connection older than pool_recycle is replaced"
    );
    assert!(pool.status().closed_total["recycled"] >= 1);
}

#[tokio::test]
async fn pre_ping_replaces_dead_connections() {
    let app = spawn_app(Backend::Postgres).await;
    let config = db_config(&app, |c| c.pool_size = 2);
    let pool = Pool::open(&config, Metrics::new().pool).await.unwrap();
    // Kill the pool's idle backends, as a server restart or a pooler's idle timeout would.
    let mut admin = pg_connect(&app.db_url).await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&config.application_name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty() && killed.iter().all(|k| *k));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut c = pool
        .acquire()
        .await
        .expect("a fresh connection replaces the dead ones");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut *c)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert!(
        pool.status().pre_ping_failures_total >= 1,
        "{:?}",
        pool.status()
    );
    admin.close().await.unwrap();
}

#[tokio::test]
async fn slow_requests_get_503_with_retry_after() {
    let app = spawn_app_with(Backend::Postgres, |c| c.http.request_timeout = 0.3).await;
    app.post("/api/items", json!({"id": "a"})).await;
    let mut locker = pg_connect(&app.db_url).await;
    locker
        .execute("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let r = app
        .client
        .get(app.url("/api/items/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "timeout");
    locker.execute("ROLLBACK").await.unwrap();
    assert_eq!(app.get("/api/items/a").await.0, 200);
}

#[tokio::test]
async fn statement_timeout_ends_slow_queries_with_503() {
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.db.statement_timeout = 0.2;
        c.http.request_timeout = 60.0;
    })
    .await;
    app.post("/api/items", json!({"id": "a"})).await;
    let mut locker = pg_connect(&app.db_url).await;
    locker
        .execute("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = app
        .client
        .get(app.url("/api/items/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "database_busy");
    // Cut by the statement timeout (`database_busy`), long before the request timeout would
    // have answered `timeout`.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cut at statement_timeout"
    );
    locker.execute("ROLLBACK").await.unwrap();
}

/// The ceiling moves while the pool runs (the cluster budget's lever): lowering waits for
/// checkouts to end and closes idle connections, raising takes effect at once, and under a
/// stream of checkouts the server never shows more backends than the ceiling, also when the
/// driver could open more (its own limit stays at pool_size + max_overflow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ceiling_can_be_lowered_and_raised_while_running() {
    let app = spawn_app(Backend::Postgres).await;
    let config = db_config(&app, |c| {
        c.pool_size = 5;
        c.max_overflow = 5;
        c.pool_timeout = 60.0;
    });
    let pool = Pool::open(&config, Metrics::new().pool).await.unwrap();
    let held: Vec<_> = futures::future::join_all((0..8).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(pool.status().size, 8);
    // Lowering to 3 waits for checkouts: release them one by one meanwhile.
    let releaser = tokio::spawn(async move {
        for c in held {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(c);
        }
    });
    let reached = pool.set_ceiling(3, Duration::from_secs(60)).await;
    releaser.await.unwrap();
    assert_eq!(reached, 3);
    let st = pool.status();
    assert_eq!(st.ceiling, 3);
    assert!(st.size <= 3, "{st:?}");
    let mut watch = pg_connect(&app.db_url).await;
    let name = config.application_name.clone();
    assert!(count_backends(&mut watch, &name).await <= 3);

    // A stream of short checkouts from 40 tasks: never more than 3 backends.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..40)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut c = pool.acquire().await.unwrap();
                    sqlx::query("SELECT 1").execute(&mut *c).await.unwrap();
                }
            })
        })
        .collect();
    let mut peak = 0;
    for _ in 0..40 {
        peak = peak.max(count_backends(&mut watch, &name).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(peak <= 3, "{peak} backends with ceiling 3");
    // Raised: more checkouts at once.
    assert_eq!(pool.set_ceiling(6, Duration::ZERO).await, 6);
    let mut peak_in_use = 0;
    for _ in 0..40 {
        peak_in_use = peak_in_use.max(pool.status().in_use);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(peak_in_use > 3, "raised ceiling unused: {peak_in_use}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    lowering_goes_ahead_of_queued_checkouts(&pool, &mut watch, &name).await;
    // Never above the configured pool_size + max_overflow; 0 (a parked replica) closes them all.
    assert_eq!(pool.set_ceiling(50, Duration::ZERO).await, 10);
    assert_eq!(pool.set_ceiling(0, Duration::from_secs(60)).await, 0);
    assert_eq!(pool.status().size, 0);
}

/// Lowered from 6 to 2 while 6 checkouts are out and 40 tasks queue for connections: returning
/// checkouts pay the lowering first, so it completes after four of them come back without a single
/// queued task being served (tokio's semaphore is FIFO: taking permits through it would queue
/// behind the 40). Counted in checkouts, not seconds, so a slow machine does not change it.
async fn lowering_goes_ahead_of_queued_checkouts(
    pool: &Pool,
    watch: &mut sqlx::PgConnection,
    name: &str,
) {
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(pool.acquire().await.unwrap());
    }
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let waiters: Vec<_> = (0..40)
        .map(|_| {
            let (pool, served) = (pool.clone(), served.clone());
            tokio::spawn(async move {
                let mut c = pool.acquire().await.unwrap();
                served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                sqlx::query("SELECT 1").execute(&mut *c).await.unwrap();
            })
        })
        .collect();
    while pool.status().waiting < 40 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lowering = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.set_ceiling(2, Duration::from_secs(60)).await })
    };
    while pool.status().ceiling != 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for c in held.drain(..4) {
        drop(c);
    }
    assert_eq!(lowering.await.unwrap(), 2);
    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a queued checkout was served before the lowering"
    );
    // The queued tasks then run two at a time.
    drop(held);
    let sampler = async {
        let mut peak = 0;
        while served.load(std::sync::atomic::Ordering::SeqCst) < 40 {
            peak = peak.max(count_backends(watch, name).await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peak
    };
    let peak = sampler.await;
    for w in waiters {
        w.await.unwrap();
    }
    assert!(peak <= 2, "{peak} backends with ceiling 2");
}
