//! Cluster membership under pressure: the heartbeat of a replica whose pool is saturated, a budget
//! with more replicas than connections, and a replica that was counted out coming back.

use std::time::{Duration, Instant};

use crate::cluster::{ceiling, clustered, first_replica, two_replicas, until};
use crate::helpers::{Backend, TestApp, pg_connect, sample_backends, spawn_app_with};

fn cluster_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..10])
}

/// This replica's heartbeat time in the registry, by the server's clock.
async fn heartbeat_ms(conn: &mut sqlx::PgConnection, app: &TestApp) -> i64 {
    let id = app.state.cluster.as_ref().unwrap().id().to_string();
    sqlx::query_scalar("SELECT heartbeat_ms FROM reco_replicas WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
        .unwrap()
        .unwrap_or(0)
}

async fn server_ms(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Every request connection held and 20 more checkouts queued: the heartbeat's connection is
/// terminated, and the next one is opened under the permit it held instead of queueing behind the
/// 20 (which would wait up to `pool_timeout`, 60 s here, far past `dead_after`).
#[tokio::test]
async fn a_heartbeat_whose_connection_breaks_does_not_queue_behind_requests() {
    let name = cluster_name("reco_h");
    let a = first_replica(&name).await;
    let mut watch = pg_connect(&a.db_url).await;
    until(
        &mut watch,
        &name,
        Duration::from_secs(120),
        "A at 14",
        || async { ceiling(&a).await == 14 && a.state.engine.snapshot().is_some() },
    )
    .await;
    let pool = a.state.pool.clone();
    let mut held = Vec::new();
    for _ in 0..13 {
        held.push(pool.acquire().await.expect("13 besides the heartbeat's"));
    }
    let queued: Vec<_> = (0..20).map(|_| tokio::spawn(pool.acquire())).collect();
    until(
        &mut watch,
        &name,
        Duration::from_secs(30),
        "20 queued",
        // (The change feed's follower may be queued too.)
        || async { pool.status().waiting >= 20 },
    )
    .await;
    let killed_at = server_ms(&mut watch).await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1) t",
    )
    .bind(&name)
    .fetch_one(&mut watch)
    .await
    .unwrap();
    assert!(killed >= 14, "terminated {killed}");
    let started = Instant::now();
    // Two heartbeats after the kill: the first may fail on the dead connection, a later one runs
    // on a new connection (0.2 s apart; `dead_after` is 5 s).
    until(
        &mut watch,
        &name,
        Duration::from_secs(5),
        "a heartbeat after the kill",
        || async {
            let mut c = pg_connect(&a.db_url).await;
            heartbeat_ms(&mut c, &a).await > killed_at + 300
        },
    )
    .await;
    println!(
        "heartbeat back {:?} after its connection was terminated",
        started.elapsed()
    );
    assert!(
        pool.status().waiting >= 20,
        "the queued checkouts were still waiting"
    );
    assert!(
        pool.status()
            .leak_suspects
            .iter()
            .all(|s| !s.location.contains("membership"))
    );
    drop(held);
    for q in queued {
        drop(q.await.unwrap().expect("served once the holders let go"));
    }
}

/// Budget 3 with one connection kept for joiners leaves 2: two replicas take one each and a third
/// is parked (ceiling 0, red readiness, reads still answered from memory) instead of rounding
/// everyone up to one and passing the budget. When the oldest leaves, the parked one takes its
/// place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_past_the_budget_is_parked_until_room_frees_up() {
    let name = cluster_name("reco_k");
    let small = |c: &mut reco::config::Config, url: &str| {
        clustered(c, url, &name);
        c.cluster.connection_budget = Some(3);
    };
    let mut a = spawn_app_with(Backend::Postgres, |c| {
        let url = secrecy::ExposeSecret::expose_secret(&c.db.url).to_string();
        small(c, &url);
    })
    .await;
    let url = a.db_url.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_backends(&url, &name, Duration::from_millis(50), stop.clone());
    let b = spawn_app_with(Backend::Postgres, |c| small(c, &url)).await;
    let c = spawn_app_with(Backend::Postgres, |c| small(c, &url)).await;
    let mut watch = pg_connect(&url).await;
    let recorded = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT CAST(sum(ceiling) AS BIGINT) FROM reco_replicas WHERE application_name = $1",
        )
        .bind(&name)
    };
    // Each records what its pool reached once its connections closed.
    until(
        &mut watch,
        &name,
        Duration::from_secs(120),
        "1, 1, parked",
        || async {
            let mut conn = pg_connect(&url).await;
            (ceiling(&a).await, ceiling(&b).await, ceiling(&c).await) == (1, 1, 0)
                && recorded().fetch_one(&mut conn).await.unwrap() <= 2
        },
    )
    .await;
    let (status, body) = c.get("/health/ready").await;
    assert_eq!(
        (status, &body["parked"]),
        (503, &serde_json::json!(true)),
        "{body}"
    );
    let (status, body) = c.get("/api/recommend/u1?engine=fast").await;
    assert_eq!(status, 200, "a parked replica answers reads: {body}");

    a.stop().await;
    until(
        &mut watch,
        &name,
        Duration::from_secs(120),
        "C unparked",
        || async { ceiling(&c).await == 1 && c.get("/health/ready").await.0 == 200 },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    // Joiners and parked heartbeats share `join_reserve`: two at once can overlap there for a
    // round trip (as in `cluster::replicas_starting_together_...`), never for two samples.
    let over: Vec<usize> = (0..samples.len()).filter(|&i| samples[i] > 3).collect();
    assert!(
        samples.iter().all(|&n| n <= 4) && over.windows(2).all(|w| w[1] != w[0] + 1),
        "backends over the budget of 3 for more than a moment: {samples:?}"
    );
}

/// A replica counted out (its row deleted, as after missed heartbeats) while another took its
/// share registers again only within the room left, then both settle at their shares; the
/// recorded ceilings never pass the budget meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_counted_out_registers_again_within_the_room_left() {
    let (name, a, b, mut watch) = two_replicas("reco_r").await;
    // Under the budget's lock, as a heartbeat would: B is counted out and A records 12.
    let b_id = b.state.cluster.as_ref().unwrap().id().to_string();
    let a_id = a.state.cluster.as_ref().unwrap().id().to_string();
    let mut tx = sqlx::Connection::begin(&mut watch).await.unwrap();
    let key = reco::util::stable_hash(&format!("reco:budget:{name}")) as i64;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM reco_replicas WHERE id = $1")
        .bind(&b_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE reco_replicas SET ceiling = 12 WHERE id = $1")
        .bind(&a_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut sums = Vec::new();
    let started = Instant::now();
    loop {
        let rows: Vec<(String, i32)> =
            sqlx::query_as("SELECT id, ceiling FROM reco_replicas WHERE application_name = $1")
                .bind(&name)
                .fetch_all(&mut watch)
                .await
                .unwrap();
        sums.push(rows.iter().map(|r| r.1).sum::<i32>());
        let settled = rows.len() == 2
            && rows.iter().all(|r| r.1 == 7)
            && (ceiling(&a).await, ceiling(&b).await) == (7, 7);
        if settled {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not settled: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        sums.iter().all(|&s| s <= 14),
        "recorded ceilings passed budget less reserve (14): {sums:?}"
    );
}
