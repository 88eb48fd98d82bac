//! The cluster budget: replicas sharing `cluster.connection_budget` resize their pools as others
//! join and leave without the sum passing the budget; one replica trains and the others load its
//! snapshot. (The multi-process kill-and-restart run under load is in `tests/api/replicas.rs`.)

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{
    Backend, TestApp, count_backends, pg_connect, sample_backends, spawn_app_with,
};

pub(crate) fn clustered(c: &mut reco::config::Config, url: &str, name: &str) {
    c.db.url = secrecy::SecretString::from(url.to_string());
    c.db.application_name = name.to_string();
    c.db.pool_timeout = 60.0;
    c.cluster.connection_budget = Some(15);
    c.cluster.heartbeat = 0.2;
    // The product's default: a busy machine can starve heartbeats for a second, and a replica
    // counted dead hands its share to the others while the test holds their connections.
    c.cluster.dead_after = 5.0;
    c.recommend.train_interval = 3600.0;
}

/// The first replica of cluster `name`, on a fresh database the others then join.
pub(crate) async fn first_replica(name: &str) -> TestApp {
    spawn_app_with(Backend::Postgres, |c| {
        let url = secrecy::ExposeSecret::expose_secret(&c.db.url).to_string();
        clustered(c, &url, name);
    })
    .await
}

/// Replicas A and B of a new cluster (`prefix` and a random suffix), settled at 7 + 7, and a
/// connection of the test's own to the server.
pub(crate) async fn two_replicas(prefix: &str) -> (String, TestApp, TestApp, sqlx::PgConnection) {
    let name = format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let a = first_replica(&name).await;
    let url = a.db_url.clone();
    let b = spawn_app_with(Backend::Postgres, |c| clustered(c, &url, &name)).await;
    let mut watch = pg_connect(&url).await;
    at_seven(&mut watch, &name, &a, &b).await;
    (name, a, b, watch)
}

/// Waits until A and B settle at 7 + 7; returns the most backends seen meanwhile.
async fn at_seven(watch: &mut sqlx::PgConnection, name: &str, a: &TestApp, b: &TestApp) -> i64 {
    until(watch, name, Duration::from_secs(120), "7 + 7", || async {
        (ceiling(a).await, ceiling(b).await) == (7, 7)
    })
    .await
}

pub(crate) async fn ceiling(app: &TestApp) -> u64 {
    let (s, p) = app.get("/api/admin/pool").await;
    assert_eq!(s, 200, "{p}");
    p["ceiling"].as_u64().unwrap()
}

/// Polls until `done` holds (or panics after `within`), sampling reco's backends meanwhile; returns
/// the highest count seen.
pub(crate) async fn until<F, Fut>(
    conn: &mut sqlx::PgConnection,
    name: &str,
    within: Duration,
    what: &str,
    mut done: F,
) -> i64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let mut peak = 0;
    loop {
        peak = peak.max(count_backends(conn, name).await);
        if done().await {
            return peak;
        }
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn replicas_share_the_budget_and_one_trains_for_all() {
    // A: alone, it takes the budget less the join reserve.
    let name = format!(
        "reco_c_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let a = first_replica(&name).await;
    let url = a.db_url.clone();
    let mut watch = pg_connect(&url).await;
    let peak = until(
        &mut watch,
        &name,
        Duration::from_secs(120),
        "A at 14",
        || async { ceiling(&a).await == 14 },
    )
    .await;
    assert!(peak <= 15, "peak {peak}");

    // Data, then a training run on A: it publishes the snapshot.
    let demo = reco::data::demo::generate(&reco::data::demo::DemoSpec::default(), 7);
    demo.write(&a.state.store).await.unwrap();
    a.state.engine.load(&a.state.store).await.unwrap();
    let trained = a.train().await;
    let version = trained["version"].as_u64().unwrap();

    // B joins: the two settle at 7 + 7, and the backends never pass the budget meanwhile.
    let b = spawn_app_with(Backend::Postgres, |c| clustered(c, &url, &name)).await;
    let peak = at_seven(&mut watch, &name, &a, &b).await;
    assert!(peak <= 15, "peak {peak} reco backends, budget 15");

    // B did not train: it loaded A's snapshot, and answers as A does.
    until(
        &mut watch,
        &name,
        Duration::from_secs(120),
        "B loads",
        || async { b.get("/api/admin/cluster").await.1["snapshot_version"] == version },
    )
    .await;
    let metrics_b = b.metrics().await;
    assert!(
        metrics_b.contains("reco_train_runs_total{result=\"loaded\"} 1"),
        "{metrics_b}"
    );
    assert!(
        !metrics_b.contains("result=\"ok\""),
        "B trained: {metrics_b}"
    );
    let user = &demo.users[3].id;
    let path = format!("/api/recommend/{user}?engine=quality&n=10");
    let (sa, ra): (u16, Value) = a.get(&path).await;
    let (sb, rb): (u16, Value) = b.get(&path).await;
    assert_eq!((sa, sb), (200, 200));
    assert_eq!(ra["items"], rb["items"], "same snapshot, same answer");
    assert_eq!(ra["engine"], "quality");
    let (_, reg) = a.get("/api/admin/cluster").await;
    assert_eq!(reg["replicas"].as_array().unwrap().len(), 2, "{reg}");
    assert_eq!(reg["snapshot_version"], version, "{reg}");

    monitor_finds_both(&a, &url, &name, &mut watch).await;
    training_lock_is_exclusive(&a, &b).await;

    // B leaves: once its heartbeat is missed, A takes the budget again.
    drop(b);
    let peak = until(
        &mut watch,
        &name,
        Duration::from_secs(120),
        "A back at 14",
        || async { ceiling(&a).await == 14 },
    )
    .await;
    assert!(peak <= 15, "peak {peak}");
}

/// `reco monitor` finds both replicas in the registry, with no URL configured, and reads their
/// pools (once both have recorded their address, a heartbeat after they listen).
async fn monitor_finds_both(a: &TestApp, url: &str, name: &str, watch: &mut sqlx::PgConnection) {
    until(
        watch,
        name,
        Duration::from_secs(120),
        "URLs recorded",
        || async {
            let (_, reg) = a.get("/api/admin/cluster").await;
            reg["replicas"]
                .as_array()
                .is_some_and(|r| r.iter().all(|r| r["url"].is_string()))
        },
    )
    .await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"))
        .env("DATABASE_URL", url)
        .env("RECO_DB__APPLICATION_NAME", name)
        .args(["monitor", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen: Vec<u64> = view["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pool"]["ceiling"].as_u64().expect("pool read"))
        .collect();
    assert_eq!(seen, [7, 7], "{view}");
    // Each replica's change-feed follower: its position and lag.
    assert!(
        view["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["pool"]["feed"]["position"].is_i64()
                && r["pool"]["feed"]["lag_seconds"]
                    .as_f64()
                    .is_some_and(|l| l < 60.0)),
        "{view}"
    );
}

/// The training lock: while B holds it, A cannot train and says so.
async fn training_lock_is_exclusive(a: &TestApp, b: &TestApp) {
    let lock = b
        .state
        .cluster
        .as_ref()
        .unwrap()
        .try_training_lock()
        .await
        .unwrap()
        .expect("free");
    let busy = a
        .state
        .cluster
        .as_ref()
        .unwrap()
        .try_training_lock()
        .await
        .unwrap();
    assert!(busy.is_none(), "two replicas held the training lock");
    lock.release().await;
}

/// Two replicas starting at the same moment while the others hold the whole budget: each needs a
/// connection before it can register, and one is kept free for that. The one that finds the
/// budget full hangs up and retries, so the excess lasts a round trip, never a sample interval
/// after another; all four then settle at their shares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_back_off_instead_of_holding_the_reserve_twice() {
    let (name, a, b, mut watch) = two_replicas("reco_j").await;
    let url = a.db_url.clone();
    // Training holds the training lock's connection while it checks out others: wait for A's
    // first run and B's load to end, or holding the rest would starve it (on a busy machine they
    // can still be running here).
    until(
        &mut watch,
        &name,
        Duration::from_secs(120),
        "A trained, B loaded",
        || async { a.state.engine.snapshot().is_some() && b.state.engine.snapshot().is_some() },
    )
    .await;
    // Make A and B hold all 14 connections, as under load (6 each besides the heartbeat's).
    let hold = |app: &TestApp| {
        let pool = app.state.pool.clone();
        async move {
            let mut held = Vec::new();
            for _ in 0..6 {
                match pool.acquire().await {
                    Ok(c) => held.push(c),
                    Err(e) => panic!("{e} holding 6 connections; the pool: {:?}", pool.status()),
                }
            }
            held
        }
    };
    let (ha, hb) = (hold(&a).await, hold(&b).await);
    // Sample every 100 ms from a task of its own while C and D start together.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_backends(&url, &name, Duration::from_millis(100), stop.clone());
    let release = async {
        // The holders let go after a while, as requests end.
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop((ha, hb));
    };
    let (c, d, ()) = tokio::join!(
        spawn_app_with(Backend::Postgres, |c| clustered(c, &url, &name)),
        spawn_app_with(Backend::Postgres, |c| clustered(c, &url, &name)),
        release,
    );
    until(
        &mut watch,
        &name,
        Duration::from_secs(120),
        "four shares",
        || async {
            let mut cs = vec![
                ceiling(&a).await,
                ceiling(&b).await,
                ceiling(&c).await,
                ceiling(&d).await,
            ];
            cs.sort();
            cs == [3, 3, 4, 4]
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    println!("backends sampled every 100 ms while C and D joined: {samples:?}");
    let over: Vec<usize> = (0..samples.len()).filter(|&i| samples[i] > 15).collect();
    assert!(
        samples.iter().all(|&n| n <= 16) && over.windows(2).all(|w| w[1] != w[0] + 1),
        "backends over the budget for more than a moment: {samples:?}"
    );
}

/// A publish cancelled halfway (its future dropped, as a request timeout or shutdown would) leaves
/// no connection inside an open transaction (where later single-statement writes would be
/// acknowledged and lost) and no partial snapshot; the same version publishes cleanly after.
#[tokio::test]
async fn a_cancelled_publish_leaves_no_open_transaction_and_no_partial_snapshot() {
    let name = format!(
        "reco_p_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let a = first_replica(&name).await;
    let mut watch = pg_connect(&a.db_url).await;
    let snapshots = a.state.cluster.as_ref().unwrap().snapshots();
    // The training at start publishes first (under the training lock, which this test does not
    // take): wait for it.
    until(
        &mut watch,
        &name,
        Duration::from_secs(120),
        "the first snapshot",
        || async { snapshots.latest_published().await.unwrap().is_some() },
    )
    .await;
    let version = snapshots.next_version().await.unwrap();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        publish_bytes(snapshots, version, vec![7u8; 256 << 20], true),
    )
    .await;
    assert!(cancelled.is_err(), "the publish was still running");
    let in_transaction = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND state LIKE 'idle in transaction%'",
        )
        .bind(&name)
    };
    until(
        &mut watch,
        &name,
        Duration::from_secs(30),
        "no backend left idle in a transaction",
        || async {
            let mut c = pg_connect(&a.db_url).await;
            in_transaction().fetch_one(&mut c).await.unwrap() == 0
        },
    )
    .await;
    let latest = snapshots.latest_published().await.unwrap();
    assert!(latest.is_none_or(|p| p.version < version), "{latest:?}");
    // An encoder that stops before its end mark stores nothing.
    let err = publish_bytes(snapshots, version, vec![1; 5 << 20], false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stopped before the end"), "{err}");
    let latest = snapshots.latest_published().await.unwrap();
    assert!(latest.is_none_or(|p| p.version < version), "{latest:?}");
    // Over several chunks, and back the same.
    let bytes: Vec<u8> = (0..(9 << 20) + 3).map(|i: u32| (i % 251) as u8).collect();
    let stored = publish_bytes(snapshots, version, bytes.clone(), true).await;
    assert_eq!(stored.unwrap(), bytes.len() as u64);
    let latest = snapshots.latest_published().await.unwrap().unwrap();
    assert_eq!(latest.version, version);
    assert!(fetch_bytes(snapshots, version).await == bytes);
}

/// Publishes `bytes` as `version` through a [`reco::cluster::ChunkWriter`] on a blocking thread,
/// as training does; without `finish` the writer stops before its end mark.
async fn publish_bytes(
    snapshots: &reco::cluster::SnapshotStore,
    version: u64,
    bytes: Vec<u8>,
    finish: bool,
) -> Result<u64, reco::cluster::Error> {
    use std::io::Write;
    let (mut writer, chunks) = reco::cluster::chunk_channel();
    let produce = tokio::task::spawn_blocking(move || {
        writer.write_all(&bytes)?;
        if finish { writer.finish() } else { Ok(()) }
    });
    let stored = snapshots.publish(version, chunks).await;
    let _ = produce.await.unwrap();
    stored
}

/// The stored bytes of `version`, read through a [`reco::cluster::ChunkReader`].
async fn fetch_bytes(snapshots: &reco::cluster::SnapshotStore, version: u64) -> Vec<u8> {
    use std::io::Read;
    let (mut reader, chunks) = reco::cluster::read_channel();
    let read = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    });
    snapshots.fetch(version, chunks).await.unwrap();
    read.await.unwrap().unwrap()
}
