//! Replicas converge (issue 14): a write acknowledged by any replica reaches every replica's
//! memory through the change feed within a second, under load, and after a burst of concurrent
//! writes to the same rows through different replicas every replica holds what the database
//! holds.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng as StdRng;
use serde_json::{Value, json};

use crate::cluster::{clustered, first_replica};
use crate::helpers::{Backend, TestApp, count_backends, pg_connect, spawn_app_with};

const ITEMS: usize = 30;
const USERS: usize = 12;

/// What a write should make every replica show.
#[derive(Debug)]
pub(crate) enum Expect {
    /// The user's history holds (item, type), or does not.
    Row(String, String, &'static str, bool),
    /// The item is out of the popular list (hidden or deleted).
    Gone(String),
}

pub(crate) fn holds(app: &TestApp, expect: &Expect) -> bool {
    match expect {
        Expect::Row(user, item, ty, present) => {
            let found = app
                .state
                .engine
                .recent_history(user, 100_000)
                .unwrap_or_default()
                .iter()
                .any(|e| &*e.item_id == item && &*e.feedback_type == *ty);
            found == *present
        }
        Expect::Gone(item) => !popular(app).contains(item),
    }
}

/// Every item the replica's popular list would show.
fn popular(app: &TestApp) -> BTreeSet<String> {
    let q = reco::engine::Query {
        n: 1000,
        categories: &[],
        exclude: &[],
        not_before_ms: None,
    };
    app.state
        .engine
        .popular(&q)
        .iter()
        .map(|s| s.id.to_string())
        .collect()
}

/// Sends one write to `app`; what every replica should then show.
async fn write(app: &TestApp, rng: &mut StdRng, live: &mut Vec<String>) -> Expect {
    let user = format!("u{}", rng.random_range(0..USERS));
    let item = live[rng.random_range(0..live.len())].clone();
    let op = rng.random_range(0..10);
    let (status, body, expect) = match op {
        0..=5 => {
            let ty = ["like", "dislike", "hide"][op % 3];
            let (s, b) = app
                .post(
                    "/api/feedback",
                    json!([{"user_id": user, "item_id": item, "type": ty}]),
                )
                .await;
            (s, b, Expect::Row(user, item, ty, true))
        }
        6 | 7 => {
            let path = format!("/api/feedback/{user}/{item}?type=like");
            let (s, b) = app.send(reqwest::Method::DELETE, &path, None).await;
            let s = if s == 404 { 200 } else { s };
            (s, b, Expect::Row(user, item, "like", false))
        }
        8 => {
            let path = format!("/api/items/{item}");
            let (s, b) = app
                .send(reqwest::Method::PATCH, &path, Some(json!({"hidden": true})))
                .await;
            live.retain(|i| *i != item);
            (s, b, Expect::Gone(item))
        }
        _ => {
            let path = format!("/api/items/{item}");
            let (s, b) = app.send(reqwest::Method::DELETE, &path, None).await;
            live.retain(|i| *i != item);
            (s, b, Expect::Gone(item))
        }
    };
    assert!(status < 300, "write answered {status}: {body}");
    expect
}

/// Polls every replica until each shows `expect`; how long that took after the write's answer.
async fn honoured(replicas: &[&TestApp], expect: &Expect, within: Duration) -> Duration {
    let acked = Instant::now();
    loop {
        if replicas.iter().all(|r| holds(r, expect)) {
            return acked.elapsed();
        }
        if acked.elapsed() > within {
            return acked.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Views sent to random replicas until `stop`: the load the writes are made under.
fn background_load(replicas: Vec<Arc<TestApp>>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    for worker in 0..3u64 {
        let (replicas, stop, sent) = (replicas.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker);
            while !stop.load(Ordering::Relaxed) {
                let app = &replicas[rng.random_range(0..replicas.len())];
                let user = format!("load{}", rng.random_range(0..50));
                // Items of their own: a view of a deleted item would create it again.
                let item = format!("l{}", rng.random_range(0..20));
                let (s, _) = app
                    .post(
                        "/api/feedback",
                        json!([{"user_id": user, "item_id": item, "type": "view"}]),
                    )
                    .await;
                if s == 200 || s == 201 {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// Replicas A (its settings changed by `tweak`) and B of a new cluster on a fresh database: the
/// cluster's name, A, B and a connection of the test's own to the database.
pub(crate) async fn pair(
    tweak: impl FnOnce(&mut reco::config::Config),
) -> (String, TestApp, TestApp, sqlx::PgConnection) {
    let name = format!(
        "reco_cv_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let a = spawn_app_with(Backend::Postgres, |c| {
        let url = secrecy::ExposeSecret::expose_secret(&c.db.url).to_string();
        clustered(c, &url, &name);
        tweak(c);
    })
    .await;
    let url = a.db_url.clone();
    let b = spawn_app_with(Backend::Postgres, |c| clustered(c, &url, &name)).await;
    let db = pg_connect(&url).await;
    (name, a, b, db)
}

/// A write's answer, asserted to be a success.
pub(crate) fn written((status, body): (u16, Value)) {
    assert!(status < 300, "a write answered {status}: {body}");
}

/// Every user's (item, type) rows and the visible items, as the database holds them.
pub(crate) type Held = (Vec<(String, String, String)>, BTreeSet<String>);

pub(crate) async fn database_state(db: &mut sqlx::PgConnection) -> (BTreeSet<String>, Held) {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT user_id, item_id, feedback_type FROM feedback ORDER BY 1, 2, 3")
            .fetch_all(&mut *db)
            .await
            .unwrap();
    let visible: Vec<(String,)> = sqlx::query_as("SELECT id FROM items WHERE hidden = 0")
        .fetch_all(&mut *db)
        .await
        .unwrap();
    let users: Vec<(String,)> = sqlx::query_as("SELECT id FROM users")
        .fetch_all(&mut *db)
        .await
        .unwrap();
    let users = users.into_iter().map(|(u,)| u).collect();
    (users, (rows, visible.into_iter().map(|(i,)| i).collect()))
}

/// The same, as a replica's memory holds it, for the users in `users`.
pub(crate) fn memory_state(app: &TestApp, users: &BTreeSet<String>) -> Held {
    let mut rows: Vec<(String, String, String)> = users
        .iter()
        .flat_map(|u| {
            let history = app
                .state
                .engine
                .recent_history(u, 100_000)
                .unwrap_or_default();
            history.into_iter().map(move |e| {
                (
                    u.clone(),
                    e.item_id.to_string(),
                    e.feedback_type.to_string(),
                )
            })
        })
        .collect();
    rows.sort();
    (rows, popular(app))
}

#[tokio::test]
async fn a_write_on_any_replica_is_honoured_by_every_replica_within_a_second() {
    let name = format!(
        "reco_cv_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let a = Arc::new(first_replica(&name).await);
    let url = a.db_url.clone();
    let b = Arc::new(spawn_app_with(Backend::Postgres, |c| clustered(c, &url, &name)).await);
    let c = Arc::new(spawn_app_with(Backend::Postgres, |c| clustered(c, &url, &name)).await);
    let replicas = [&*a, &*b, &*c];
    let mut db = pg_connect(&url).await;

    // The catalogue, written through A, reaches B and C through the feed.
    let items: Vec<Value> = (0..ITEMS)
        .map(|i| json!({"id": format!("i{i}"), "title": format!("Item {i}"), "categories": ["x"]}))
        .collect();
    written(a.post("/api/items/batch", Value::Array(items)).await);
    let users: Vec<Value> = (0..USERS).map(|u| json!({"id": format!("u{u}")})).collect();
    written(b.post("/api/users/batch", Value::Array(users)).await);
    let started = Instant::now();
    while !replicas.iter().all(|r| {
        r.state.engine.has_item(&format!("i{}", ITEMS - 1))
            && r.state.engine.has_user(&format!("u{}", USERS - 1))
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the catalogue never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Writes to random replicas under load: each is honoured everywhere within a second.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    background_load(
        vec![a.clone(), b.clone(), c.clone()],
        stop.clone(),
        sent.clone(),
    );
    let mut rng = StdRng::seed_from_u64(14);
    let mut live: Vec<String> = (0..ITEMS).map(|i| format!("i{i}")).collect();
    let mut took = Vec::new();
    let mut peak = 0;
    for _ in 0..60 {
        // At a random moment, not just after a follower's read (when the last poll ended).
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..250))).await;
        let app = replicas[rng.random_range(0..3)];
        let expect = write(app, &mut rng, &mut live).await;
        let t = honoured(&replicas, &expect, Duration::from_secs(5)).await;
        if t > Duration::from_secs(1) {
            let shown: Vec<bool> = replicas.iter().map(|r| holds(r, &expect)).collect();
            println!("not honoured: {expect:?} by {shown:?}");
        }
        took.push(t);
        peak = peak.max(count_backends(&mut db, &name).await);
    }
    took.sort();
    let (median, worst) = (took[took.len() / 2], took[took.len() - 1]);
    println!(
        "60 writes honoured by all three replicas: median {median:?}, worst {worst:?}, \
         under {} background views; peak backends {peak}",
        sent.load(Ordering::Relaxed)
    );
    assert!(
        worst <= Duration::from_secs(1),
        "a write took {worst:?} to reach every replica (all: {took:?})"
    );
    assert!(sent.load(Ordering::Relaxed) > 0, "the load ran");
    assert!(peak <= 15, "peak {peak} backends, budget 15");

    // Bursts of concurrent writes to few rows through all three replicas: afterwards every
    // replica holds what the database holds (the feed's order wins over arrival order).
    // (The background load stops first: memory trails a moving database by design.)
    stop.store(true, Ordering::Relaxed);
    let mut last = 0;
    for round in 0..3u64 {
        burst(&[&a, &b, &c], round).await;
        last = converged(&replicas, &mut db).await;
    }
    println!("after each burst, all three replicas held the database's rows ({last} at the end)");
}

/// 120 likes and unlikes of 6 rows at once, spread over the replicas.
async fn burst(replicas: &[&Arc<TestApp>], round: u64) {
    let mut tasks = Vec::new();
    for k in 0..120u64 {
        let app = Arc::clone(replicas[(k % 3) as usize]);
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(1000 * (round + 1) + k);
            let user = format!("u{}", rng.random_range(0..2));
            let item = format!("i{}", rng.random_range(0..3));
            if rng.random_bool(0.5) {
                app.post(
                    "/api/feedback",
                    json!([{"user_id": user, "item_id": item, "type": "like"}]),
                )
                .await
            } else {
                let path = format!("/api/feedback/{user}/{item}?type=like");
                app.send(reqwest::Method::DELETE, &path, None).await
            }
        }));
    }
    for task in tasks {
        let (s, body) = task.await.unwrap();
        assert!(s < 300 || s == 404, "burst write answered {s}: {body}");
    }
}

/// Waits until every replica's memory holds the database's rows and visible items (they may
/// still be changing under the load); the number of rows.
pub(crate) async fn converged(replicas: &[&TestApp], db: &mut sqlx::PgConnection) -> usize {
    let started = Instant::now();
    let mut rows = 0;
    for app in replicas {
        loop {
            let (users, stored) = database_state(db).await;
            let memory = memory_state(app, &users);
            if memory == stored {
                rows = stored.0.len();
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "a replica's memory never matched the database: {} rows in memory, {} stored; \
                 visible {:?} vs {:?}",
                memory.0.len(),
                stored.0.len(),
                memory.1,
                stored.1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    rows
}

/// The case the ledger exists for (`catalogue::ledger`): replica B likes an item, and replica A,
/// which has not read that yet, deletes the like. A applied its delete at once; when its follower
/// then applies B's older like, A must apply its own newer delete again, or it keeps a like the
/// database no longer has. A reads the feed every 2 s, so both writes fall between two reads.
#[tokio::test]
async fn an_own_write_newer_than_a_remote_one_not_yet_read_still_wins() {
    let (_, a, b, mut db) = pair(|c| {
        c.cluster.sync_interval = 2.0;
    })
    .await;
    let url = a.db_url.clone();
    written(
        b.post("/api/items/batch", json!([{"id": "i1"}, {"id": "i2"}]))
            .await,
    );
    written(b.post("/api/users", json!({"id": "u1"})).await);
    let position = |app: &TestApp| app.state.catalogue.feed_status().map_or(0, |(p, _)| p);
    let top = || async {
        let (top,): (i64,) = sqlx::query_as("SELECT max(pos) FROM reco_changes")
            .fetch_one(&mut pg_connect(&url).await)
            .await
            .unwrap();
        top
    };
    let caught_up = |app: &TestApp, pos: i64| position(app) >= pos;
    // Wait for A's follower to have just read (its position reaches the catalogue's changes).
    let catalogue = top().await;
    let started = Instant::now();
    while !caught_up(&a, catalogue) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "A never read the catalogue"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Both writes now, well inside A's next two seconds.
    written(
        b.post(
            "/api/feedback",
            json!([{"user_id": "u1", "item_id": "i1", "type": "like"}]),
        )
        .await,
    );
    let (s, body) = a
        .send(
            reqwest::Method::DELETE,
            "/api/feedback/u1/i1?type=like",
            None,
        )
        .await;
    assert_eq!(s, 200, "A deletes the like B wrote: {body}");
    let deleted = top().await;
    let started = Instant::now();
    while !caught_up(&a, deleted) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "A never read the writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (users, stored) = database_state(&mut db).await;
    assert!(stored.0.is_empty(), "the like is deleted: {:?}", stored.0);
    for app in [&a, &b] {
        assert_eq!(
            memory_state(app, &users),
            stored,
            "memory holds the deleted like"
        );
    }
}
