//! The change feed against a real PostgreSQL in the ways `converge.rs` does not reach: a
//! transaction that drew its position first and commits last, replicas behind PgBouncer in
//! transaction mode, `reco diagnose` on a replica that lags, a replica behind the pruned horizon
//! and after `reco import`, the pruning rule, and a database restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::cluster::clustered;
use crate::converge::{Expect, converged, database_state, holds, memory_state, pair, written};
use crate::helpers::{Backend, TestApp, pg_connect, spawn_app_with};

/// Whether `user`'s history on `app` holds `item`.
fn has(app: &TestApp, user: &str, item: &str) -> bool {
    app.state
        .engine
        .recent_history(user, 1000)
        .unwrap_or_default()
        .iter()
        .any(|e| &*e.item_id == item)
}

/// Polls `done` every 10 ms until it holds; how long that took (panics after `within`).
async fn within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

fn feed_position(app: &TestApp) -> i64 {
    app.state.catalogue.feed_status().map_or(0, |(p, _)| p)
}

/// The race the frontier exists for, on a real server: a transaction draws position p and stays
/// open while a later write takes p + 1 and commits. The follower applies p + 1 but does not
/// advance past p; when p commits, it is applied too, not skipped.
#[tokio::test]
async fn a_change_that_commits_after_a_later_one_is_not_missed() {
    let (_, a, b, _) = pair(|_| {}).await;
    let url = a.db_url.clone();
    written(
        b.post("/api/items/batch", json!([{"id": "early"}, {"id": "late"}]))
            .await,
    );
    written(b.post("/api/users", json!({"id": "u1"})).await);
    within(Duration::from_secs(20), "A has the catalogue", || {
        a.state.engine.has_item("late") && a.state.engine.has_user("u1")
    })
    .await;

    // A writer of the feed's own kind (as another replica would), left open after drawing.
    let mut slow = pg_connect(&url).await;
    let mut tx = slow.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO feedback (user_id, item_id, feedback_type, value, timestamp_ms) \
         VALUES ('u1', 'early', 'like', 1, 0)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let held: i64 = sqlx::query_scalar(
        "INSERT INTO reco_changes (replica, kind, payload) VALUES ('elsewhere', 'feedback', \
         '[{\"user_id\":\"u1\",\"item_id\":\"early\",\"feedback_type\":\"like\",\"value\":1,\
         \"timestamp_ms\":0}]') RETURNING pos",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();

    // A later write commits, and A applies it.
    written(
        b.post(
            "/api/feedback",
            json!([{"user_id": "u1", "item_id": "late", "type": "like"}]),
        )
        .await,
    );
    within(Duration::from_secs(5), "A applies the later write", || {
        has(&a, "u1", "late")
    })
    .await;
    // Several reads later A still waits below the open transaction's position.
    let reads = |app: &TestApp| app.state.metrics.feed.reads.get();
    let before = reads(&a);
    within(Duration::from_secs(10), "A reads again", || {
        reads(&a) >= before + 3
    })
    .await;
    assert!(
        feed_position(&a) < held,
        "A advanced to {} past {held}, which may still commit",
        feed_position(&a)
    );
    assert!(!has(&a, "u1", "early"));

    tx.commit().await.unwrap();
    let took = within(Duration::from_secs(5), "A applies the late commit", || {
        has(&a, "u1", "early")
    })
    .await;
    within(Duration::from_secs(5), "A advances past it", || {
        feed_position(&a) > held
    })
    .await;
    println!("the late commit reached A {took:?} after it committed");
}

/// Two replicas whose every connection goes through PgBouncer in transaction mode: the feed
/// needs nothing a pooler does not carry (no LISTEN/NOTIFY, no session state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_pgbouncer_in_transaction_mode_converge() {
    let Some(pg) = crate::servers::PrivatePg::start(40) else {
        return;
    };
    let Some(bouncer) = crate::servers::Bouncer::start(pg.port, "transaction", 10) else {
        return;
    };
    let direct = pg.url("postgres");
    let pooled = format!("postgres://postgres@127.0.0.1:{}/postgres", bouncer.port);
    let name = format!(
        "reco_fd_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let replica = || {
        let (pooled, direct, name) = (pooled.clone(), direct.clone(), name.clone());
        spawn_app_with(Backend::Sqlite, move |c| {
            clustered(c, &pooled, &name);
            c.cluster.connection_budget = Some(8);
            c.db.pooler = reco::config::Pooler::Transaction;
            c.db.direct_url = Some(direct.into());
        })
    };
    let a = replica().await;
    let b = replica().await;
    written(
        a.post("/api/items/batch", json!([{"id": "i1"}, {"id": "i2"}]))
            .await,
    );
    within(Duration::from_secs(10), "B has A's items", || {
        b.state.engine.has_item("i2")
    })
    .await;
    written(
        b.post(
            "/api/feedback",
            json!([{"user_id": "u1", "item_id": "i1", "type": "like"}]),
        )
        .await,
    );
    let took = within(Duration::from_secs(1), "A has B's like", || {
        has(&a, "u1", "i1")
    })
    .await;
    written(a.send(reqwest::Method::DELETE, "/api/items/i2", None).await);
    within(Duration::from_secs(1), "B deleted i2", || {
        !b.state.engine.has_item("i2")
    })
    .await;
    let errors = |app: &TestApp| app.state.metrics.feed.read_errors.get();
    assert_eq!((errors(&a), errors(&b)), (0, 0), "no feed read failed");
    println!("through PgBouncer (transaction mode) a like reached the other replica in {took:?}");
}

/// `reco diagnose` warns about a replica further behind the feed than `monitor.warn_feed_lag`.
#[tokio::test]
async fn diagnose_warns_about_a_replica_behind_the_feed() {
    let name = format!(
        "reco_fd_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let a = spawn_app_with(Backend::Postgres, |c| {
        let url = secrecy::ExposeSecret::expose_secret(&c.db.url).to_string();
        clustered(c, &url, &name);
        // Reads every 10 s: between them the lag passes 3 s.
        c.cluster.sync_interval = 10.0;
    })
    .await;
    let replica = format!("http://{}", a.addr);
    let diagnose = |warn_after: &str| {
        let (url, replica, name) = (a.db_url.clone(), replica.clone(), name.clone());
        let warn_after = warn_after.to_string();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"))
                .env_remove("RECO_CONFIG")
                .env("DATABASE_URL", url)
                .env("RECO_DB__APPLICATION_NAME", name)
                .env("RECO_MONITOR__WARN_FEED_LAG", warn_after)
                .args(["diagnose", "--json", "--replica", &replica])
                .output()
                .await
                .unwrap();
            let checks: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
            checks
                .into_iter()
                .find(|c| c["name"] == "feed")
                .expect("a feed check")
        }
    };
    let lag = |app: &TestApp| app.state.catalogue.feed_status().map_or(0.0, |(_, l)| l);
    within(Duration::from_secs(30), "A is 3 s behind", || lag(&a) > 3.0).await;
    let feed = diagnose("3").await;
    assert_eq!(feed["verdict"], "warn", "{feed}");
    assert!(
        feed["evidence"].as_str().unwrap().contains("s behind"),
        "{feed}"
    );
    let feed = diagnose("600").await;
    assert_eq!(feed["verdict"], "ok", "{feed}");
}

/// A replica whose position falls below what the feed keeps reloads from the tables instead of
/// missing changes; `reco import` (which writes around the feed) makes every replica reload.
#[tokio::test]
async fn a_replica_behind_the_pruned_feed_or_after_an_import_reloads() {
    let (name, a, b, mut db) = pair(|c| {
        c.cluster.sync_interval = 2.0;
    })
    .await;
    let url = a.db_url.clone();
    written(
        b.post("/api/items/batch", json!([{"id": "i1"}, {"id": "i2"}]))
            .await,
    );
    let top: i64 = sqlx::query_scalar("SELECT max(pos) FROM reco_changes")
        .fetch_one(&mut db)
        .await
        .unwrap();
    within(Duration::from_secs(20), "the replica catches up", || {
        a.state
            .catalogue
            .feed_status()
            .is_some_and(|(p, _)| p >= top)
    })
    .await;

    // B likes; before A reads it, the feed is pruned past it (as `feed_retention` would).
    written(
        b.post(
            "/api/feedback",
            json!([{"user_id": "u1", "item_id": "i1", "type": "like"}]),
        )
        .await,
    );
    sqlx::query(
        "WITH d AS (DELETE FROM reco_changes) \
         UPDATE reco_feed SET horizon = (SELECT last_value FROM reco_changes_pos)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let like = Expect::Row("u1".into(), "i1".into(), "like", true);
    within(Duration::from_secs(20), "the replica catches up", || {
        holds(&a, &like)
    })
    .await;
    let reloads = crate::helpers::sample(&a.metrics().await, "reco_feed_reloads_total");
    assert!(reloads >= 1.0, "A reloaded from the tables");

    // An import writes around the feed; both replicas load what it wrote.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("likes.csv");
    std::fs::write(&file, "user_id,item_id,type\nu2,i2,like\nu3,i1,dislike\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"))
        .env("DATABASE_URL", &url)
        .env("RECO_DB__APPLICATION_NAME", format!("{name}_import"))
        .args(["import", "feedback"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for app in [&a, &b] {
        within(Duration::from_secs(20), "the replica catches up", || {
            holds(app, &Expect::Row("u2".into(), "i2".into(), "like", true))
        })
        .await;
        within(Duration::from_secs(20), "the replica catches up", || {
            holds(app, &Expect::Row("u3".into(), "i1".into(), "dislike", true))
        })
        .await;
    }
    let (users, stored) = database_state(&mut db).await;
    for app in [&a, &b] {
        assert_eq!(memory_state(app, &users), stored);
    }
}

/// Pruning keeps what is younger than its minimum age and what a live replica has not passed
/// (the positions the heartbeats record), and moves the horizon to what it deleted.
#[tokio::test]
async fn pruning_keeps_what_a_live_replica_has_not_passed() {
    let (name, a, b, mut db) = pair(|_| {}).await;
    written(
        b.post("/api/items/batch", json!([{"id": "i1"}, {"id": "i2"}]))
            .await,
    );
    for item in ["i1", "i2"] {
        written(
            a.post(
                "/api/feedback",
                json!([{"user_id": "u1", "item_id": item, "type": "like"}]),
            )
            .await,
        );
    }
    // A read stops at its byte budget after the first change, and says more wait.
    let store = &a.state.store;
    let all = store.read_changes(0, &[], 5000, 1 << 30).await.unwrap();
    assert!(
        all.entries.len() >= 3 && !all.cut,
        "{} changes",
        all.entries.len()
    );
    let first = store.read_changes(0, &[], 5000, 1).await.unwrap();
    assert_eq!(first.entries.len(), 1);
    assert!(first.cut, "more changes wait");
    let counted = store.read_changes(0, &[], 2, 1 << 30).await.unwrap();
    assert_eq!((counted.entries.len(), counted.cut), (2, true));

    // Pruning keeps what is younger than its minimum age, and what a live replica has not
    // passed (the positions the heartbeats record).
    let (_, pruned) = store
        .prune_changes(i64::MAX, 3_600_000, 3_600_000)
        .await
        .unwrap();
    assert_eq!(pruned, 0, "nothing is an hour old");
    let (top,): (i64,) = sqlx::query_as("SELECT max(pos) FROM reco_changes")
        .fetch_one(&mut db)
        .await
        .unwrap();
    // Both replicas record having passed everything. (On a busy machine a replica can miss its
    // heartbeats, be counted dead and register again: both rows must hold the position.)
    let recorded = "SELECT count(*) FILTER (WHERE feed_pos >= $2) FROM reco_replicas \
                    WHERE application_name = $1";
    let started = Instant::now();
    loop {
        let passed: i64 = sqlx::query_scalar(recorded)
            .bind(&name)
            .bind(top)
            .fetch_one(&mut db)
            .await
            .unwrap();
        if passed == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "positions never recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A live replica (of another application, so neither replica counts it dead) that recorded
    // only the first position: pruning stops there and keeps every later change.
    sqlx::query(
        "INSERT INTO reco_replicas (id, application_name, started_ms, heartbeat_ms, ceiling, \
         feed_pos) VALUES ('behind', 'elsewhere', 0, 0, 0, $1)",
    )
    .bind(all.entries[0].pos)
    .execute(&mut db)
    .await
    .unwrap();
    let (horizon, pruned) = store.prune_changes(i64::MAX, 3_600_000, 0).await.unwrap();
    let (kept,): (i64,) = sqlx::query_as("SELECT count(*) FROM reco_changes")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(
        horizon, all.entries[0].pos,
        "up to what every replica has passed"
    );
    assert_eq!(pruned, 1);
    assert_eq!(
        kept as usize,
        all.entries.len() - 1,
        "the later changes are kept"
    );

    // Once it is gone, pruning goes up to the top.
    sqlx::query("DELETE FROM reco_replicas WHERE id = 'behind'")
        .execute(&mut db)
        .await
        .unwrap();
    let (horizon, pruned) = store.prune_changes(i64::MAX, 3_600_000, 0).await.unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM reco_changes WHERE pos <= $1")
        .bind(horizon)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(horizon, top, "up to what every replica has passed");
    assert!(
        pruned > 0 && left == 0,
        "pruned {pruned}, {left} left below {horizon}"
    );
}

/// A database restart under writes to both replicas: afterwards every acknowledged like is stored
/// and both replicas hold exactly what the database holds (the followers resume where they were).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_database_restart_every_replica_holds_what_was_acknowledged() {
    let Some(pg) = crate::servers::PrivatePg::start(100) else {
        return;
    };
    let url = pg.url("postgres");
    let name = format!(
        "reco_fd_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let replica = |url: String, name: String| {
        spawn_app_with(Backend::Sqlite, move |c| {
            clustered(c, &url, &name);
            c.db.pool_timeout = 5.0;
            c.db.connect_timeout = 5.0;
        })
    };
    let a = Arc::new(replica(url.clone(), name.clone()).await);
    let b = Arc::new(replica(url.clone(), name.clone()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let (app, stop) = ([&a, &b][(w % 2) as usize].clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let (user, item) = (format!("w{w}"), format!("item-{}", n % 40));
                    let ty = if n % 3 == 0 { "dislike" } else { "like" };
                    let body = json!([{"user_id": user, "item_id": item, "type": ty}]);
                    match app.post("/api/feedback", body).await.0 {
                        200 | 201 => acked.push((user, item, ty.to_string())),
                        503 => tokio::time::sleep(Duration::from_millis(20)).await,
                        s => panic!("a write answered {s}"),
                    }
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart_fast();
        pg
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let mut db = pg_connect(&url).await;
    let rows = converged(&[&a, &b], &mut db).await;
    let (_, (stored, _)) = database_state(&mut db).await;
    let stored: BTreeSet<_> = stored.into_iter().collect();
    assert!(
        acked.iter().all(|k| stored.contains(k)),
        "an acknowledged write is missing"
    );
    println!(
        "{} acknowledged writes over a database restart; both replicas hold the database's {rows} rows",
        acked.len()
    );
    drop(pg);
}
