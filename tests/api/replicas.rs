//! Scale-out under load, with real processes: three `reco serve` replicas on a private PostgreSQL
//! capped at `max_connections = 20`, budget 15, under `wrk` at concurrency 500 while one replica is
//! killed (SIGKILL) and restarted. `pg_stat_activity` is sampled every 100 ms; reco's backends must
//! never pass 15, the server must never refuse a connection, and every response must be 2xx or
//! 503 with Retry-After. The same load then runs through PgBouncer in transaction mode.
//!
//! `RECO_LOAD_SECONDS` sets the load's length (default 12; the benchmark row uses 30).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reco::config::Config;
use reco::db::{Pool, PoolMetrics};
use reco::store::Store;
use secrecy::SecretString;

use crate::helpers::sample_backends;
use crate::servers::{Bouncer, PrivatePg, Replica, have};

/// What one wrk run reported.
#[derive(Debug, Default)]
struct WrkReport {
    statuses: BTreeMap<u16, u64>,
    missing_retry_after: u64,
    /// connect, read, write, timeout
    errors: [u64; 4],
    requests: u64,
    p99_ms: f64,
}

fn load_seconds() -> u64 {
    std::env::var("RECO_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

/// Runs wrk against `base` with `connections` for `seconds`.
async fn wrk(base: String, connections: u32, seconds: u64) -> WrkReport {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/load/mixed.lua");
    let out = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--timeout", "10s", "-s"])
        .arg(script)
        .arg(&base)
        .output()
        .await
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = WrkReport::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["STATUS", code, n] => {
                r.statuses.insert(code.parse().unwrap(), n.parse().unwrap());
            }
            ["MISSING_RETRY_AFTER", n] => r.missing_retry_after = n.parse().unwrap(),
            ["ERRORS", a, b, c, d] => {
                r.errors = [a, b, c, d].map(|x| x.parse().unwrap());
            }
            ["REQUESTS", n] => r.requests = n.parse().unwrap(),
            ["LATENCY_P99_US", us] => r.p99_ms = us.parse::<f64>().unwrap() / 1000.0,
            _ => {}
        }
    }
    r
}

fn check(name: &str, r: &WrkReport) {
    assert!(r.requests > 0, "{name}: no requests: {r:?}");
    assert_eq!(
        r.errors,
        [0, 0, 0, 0],
        "{name}: socket errors or timeouts: {r:?}"
    );
    for code in r.statuses.keys() {
        assert!(
            (200..300).contains(code) || *code == 503,
            "{name}: status {code}: {r:?}"
        );
    }
    assert_eq!(
        r.missing_retry_after, 0,
        "{name}: 503 without Retry-After: {r:?}"
    );
}

/// Schema and the demo catalogue, written through the library's own pool.
async fn seed(url: &str) {
    let mut config = Config::default();
    config.db.url = SecretString::from(url.to_string());
    config.db.application_name = "reco-seed".into();
    config.db.pool_size = 1;
    config.db.max_overflow = 0;
    let pool = Pool::open(&config.db, PoolMetrics::default())
        .await
        .unwrap();
    let store = Store::new(pool.clone());
    store.migrate(&config.db).await.unwrap();
    let demo = reco::data::demo::generate(&reco::data::demo::DemoSpec::default(), 42);
    demo.write(&store).await.unwrap();
    pool.close().await;
}

fn replica_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", url.to_string()),
        ("RECO_DB__APPLICATION_NAME", "reco".into()),
        ("RECO_DB__POOL_TIMEOUT", "2".into()),
        ("RECO_CLUSTER__CONNECTION_BUDGET", "15".into()),
        ("RECO_CLUSTER__HEARTBEAT", "0.25".into()),
        ("RECO_CLUSTER__DEAD_AFTER", "1.5".into()),
        ("RECO_RECOMMEND__TRAIN_INTERVAL", "3600".into()),
        ("RECO_LOG__LEVEL", "warn".into()),
    ]
}

async fn get_json(client: &reqwest::Client, url: String) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn ceiling(client: &reqwest::Client, r: &Replica) -> u64 {
    get_json(client, r.url("/api/admin/pool")).await["ceiling"]
        .as_u64()
        .unwrap()
}

fn tools_present() -> bool {
    if !have("wrk") {
        eprintln!("notice: wrk not found; skipping the load test (./scripts/test.sh installs it)");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_stay_within_the_budget_while_one_is_killed_and_restarted() {
    if !tools_present() {
        return;
    }
    let Some(pg) = PrivatePg::start(20) else {
        return;
    };
    let url = pg.url("postgres");
    seed(&url).await;
    let env = replica_env(&url);
    let a = Replica::start(&env);
    let b = Replica::start(&env);
    let mut c = Replica::start(&env);
    let client = reqwest::Client::new();
    let settled = Instant::now();
    loop {
        let cs = [
            ceiling(&client, &a).await,
            ceiling(&client, &b).await,
            ceiling(&client, &c).await,
        ];
        if cs.iter().sum::<u64>() == 14 {
            break;
        }
        assert!(
            settled.elapsed() < Duration::from_secs(120),
            "shares did not settle: {cs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_backends(&url, "reco", Duration::from_millis(100), stop.clone());
    let d = load_seconds();
    let started = Instant::now();
    let load_a = tokio::spawn(wrk(format!("http://{}", a.addr), 200, d));
    let load_b = tokio::spawn(wrk(format!("http://{}", b.addr), 200, d));
    // C takes its share of the load, is killed, stays dead long enough for A and B to take its
    // connections, then comes back and takes load again.
    let c_first = wrk(format!("http://{}", c.addr), 100, d / 3).await;
    c.kill();
    tokio::time::sleep(Duration::from_secs_f64(d as f64 / 4.0)).await;
    let grown = ceiling(&client, &a).await + ceiling(&client, &b).await;
    let env2 = env.clone();
    let c = match tokio::task::spawn_blocking(move || Replica::start(&env2)).await {
        Ok(c) => c,
        Err(e) => {
            let log = pg.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "restart failed: {e}\nPostgreSQL log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
    };
    let left = d.saturating_sub(started.elapsed().as_secs()).max(2);
    let c_second = wrk(format!("http://{}", c.addr), 100, left).await;
    let (ra, rb) = (load_a.await.unwrap(), load_b.await.unwrap());
    let elapsed = started.elapsed().as_secs_f64();
    let rejoined = ceiling(&client, &c).await;
    stop.store(true, Ordering::Relaxed);
    let all_samples = sampler.await.unwrap();
    let (samples, peak) = (
        all_samples.len() as u64,
        all_samples.iter().copied().max().unwrap_or(0),
    );

    for (name, r) in [
        ("A", &ra),
        ("B", &rb),
        ("C before", &c_first),
        ("C after", &c_second),
    ] {
        check(name, r);
    }
    let reports = [&ra, &rb, &c_first, &c_second];
    let total: u64 = reports.iter().map(|r| r.requests).sum();
    let busy: u64 = reports
        .iter()
        .map(|r| r.statuses.get(&503).copied().unwrap_or(0))
        .sum();
    println!(
        "replicas: 3 (one killed and restarted), {elapsed:.1} s at concurrency 500: {total} requests \
         ({:.0}/s), 503: {busy}, p99 A {:.1} ms B {:.1} ms; reco backends peak {peak} of budget 15 \
         over {samples} samples (100 ms); A+B ceilings with C dead: {grown}; C's ceiling after rejoining: {rejoined}",
        total as f64 / elapsed,
        ra.p99_ms,
        rb.p99_ms
    );
    assert!(samples >= (d * 5), "sampled {samples} times in {d} s");
    assert!(
        peak <= 15,
        "reco held {peak} backends; budget 15: {all_samples:?}"
    );
    assert!(
        grown > 10,
        "A and B did not take C's share while it was dead: {grown}"
    );
    assert!(
        rejoined >= 2,
        "the restarted replica did not get a share: {rejoined}"
    );
    let log = pg.log();
    assert!(
        !log.contains("too many clients"),
        "PostgreSQL refused connections:\n{log}"
    );
    for (name, r) in [("A", &a), ("B", &b), ("C", &c)] {
        let l = r.log();
        assert!(!l.contains("too many clients"), "{name}: {l}");
        assert!(!l.contains("panicked"), "{name}: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_load_through_pgbouncer_in_transaction_mode() {
    if !tools_present() {
        return;
    }
    let Some(pg) = PrivatePg::start(20) else {
        return;
    };
    let Some(bouncer) = Bouncer::start(pg.port, "transaction", 10) else {
        return;
    };
    let direct = pg.url("postgres");
    seed(&direct).await;
    let pooled = format!("postgres://postgres@127.0.0.1:{}/postgres", bouncer.port);
    let mut env = replica_env(&pooled);
    env.retain(|(k, _)| !k.starts_with("RECO_CLUSTER"));
    env.push(("RECO_DB__POOLER", "transaction".into()));
    env.push(("RECO_DB__DIRECT_URL", direct.clone()));
    let r = Replica::start(&env);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_backends(&direct, "reco", Duration::from_millis(100), stop.clone());
    let d = load_seconds();
    let report = wrk(format!("http://{}", r.addr), 500, d).await;
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    check("through PgBouncer", &report);
    let ok: u64 = report
        .statuses
        .iter()
        .filter(|(c, _)| (200..300).contains(*c))
        .map(|(_, n)| n)
        .sum();
    println!(
        "pgbouncer transaction mode, pool size 10, concurrency 500, {d} s: {} requests, 2xx {ok}, p99 {:.1} ms",
        report.requests, report.p99_ms
    );
    assert!(ok > 0, "{report:?}");
    let log = r.log();
    assert!(
        !log.contains("prepared statement"),
        "prepared statements broke: {log}"
    );
    assert!(!log.to_lowercase().contains("error"), "{log}");
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses); utime and stime are 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// An idle server does no work: no background loop spins (a trainer once did, at 80% of a core).
#[tokio::test]
async fn an_idle_server_uses_no_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reco.db").display());
    let r = Replica::start(&[
        ("DATABASE_URL", url),
        ("RECO_RECOMMEND__TRAIN_INTERVAL", "3600".into()),
    ]);
    let client = reqwest::Client::new();
    // Wait for the first training (demo data) to end.
    let started = Instant::now();
    loop {
        let d = get_json(&client, r.url("/api/admin/dashboard")).await;
        if d["training"].as_array().is_some_and(|t| !t.is_empty()) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no training");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_seconds(r.pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_seconds(r.pid()) - before;
    assert!(used < 0.3, "idle server used {used} CPU seconds in 3 s");
}
