//! `reco diagnose` on a deliberately broken setup: a leaked connection, a session idle in a
//! transaction (as psql leaves one), pools larger than the server allows, an unreachable database.

use std::time::Duration;

use serde_json::Value;
use sqlx::{ConnectOptions, Executor};

use crate::helpers::{Backend, spawn_app_with};

const KEY: &str = "diagnose-test-key";

async fn diagnose(db_url: &str, env: &[(&str, &str)], args: &[&str]) -> (i32, Vec<Value>) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"));
    cmd.env_remove("RECO_CONFIG")
        .env("DATABASE_URL", db_url)
        .env("RECO_HTTP__API_KEY", KEY)
        .args(["diagnose", "--json"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    let checks: Vec<Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (out.status.code().unwrap(), checks)
}

fn verdict<'a>(checks: &'a [Value], name: &str) -> (&'a str, &'a str) {
    let c = checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"));
    (
        c["verdict"].as_str().unwrap(),
        c["evidence"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn diagnose_finds_leaks_idle_transactions_and_oversized_pools() {
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.db.leak_threshold = 0.1;
        c.http.api_key = Some(KEY.to_string().into());
    })
    .await;
    let replica = format!("http://{}", app.addr);
    let leaked = app.state.pool.acquire().await.unwrap();
    // What psql leaves behind after `BEGIN; SELECT 1;`.
    let mut psql = app
        .db_url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .application_name("psql")
        .connect()
        .await
        .unwrap();
    psql.execute("BEGIN; SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    let (status, checks) = diagnose(&app.db_url, &[], &["--replica", &replica]).await;
    assert_eq!(verdict(&checks, "database").0, "ok", "{checks:?}");
    let (v, evidence) = verdict(&checks, "leaks");
    assert_eq!(v, "warn", "{checks:?}");
    assert!(evidence.contains("tests/api/diagnose.rs"), "{evidence}");
    let (v, evidence) = verdict(&checks, "idle_in_transaction");
    assert_eq!(v, "warn", "{checks:?}");
    assert!(
        evidence.contains("of psql idle in transaction"),
        "{evidence}"
    );
    assert_eq!(verdict(&checks, "connection_limit").0, "ok", "{checks:?}");
    assert_eq!(verdict(&checks, "pooler").0, "ok", "{checks:?}");
    assert_eq!(status, 1, "warnings only: {checks:?}");
    let leaks = checks.iter().find(|c| c["name"] == "leaks").unwrap();
    assert!(
        leaks["remedy"]
            .as_str()
            .unwrap()
            .contains("return its connection")
    );

    // Three replicas of 60 + 50 connections each cannot fit any server this test runs against.
    let oversized = [
        ("RECO_DB__POOL_SIZE", "60"),
        ("RECO_DB__MAX_OVERFLOW", "50"),
    ];
    let (status, checks) = diagnose(&app.db_url, &oversized, &["--replica-count", "3"]).await;
    let (v, evidence) = verdict(&checks, "connection_limit");
    assert_eq!(v, "fail", "{checks:?}");
    assert!(
        evidence.contains("= 110 per replica x 3 replica(s) = 330"),
        "{evidence}"
    );
    assert_eq!(status, 2);

    // A cluster budget beyond what the server allows fails the same check, whatever the pools.
    let over_budget = [("RECO_CLUSTER__CONNECTION_BUDGET", "5000")];
    let (status, checks) = diagnose(&app.db_url, &over_budget, &[]).await;
    let (v, evidence) = verdict(&checks, "connection_limit");
    assert_eq!(v, "fail", "{checks:?}");
    assert!(
        evidence.contains("cluster.connection_budget 5000"),
        "{evidence}"
    );
    assert_eq!(status, 2);
    let remedy = checks
        .iter()
        .find(|c| c["name"] == "connection_limit")
        .unwrap()["remedy"]
        .as_str()
        .unwrap();
    assert!(
        remedy.contains("set cluster.connection_budget to at most"),
        "{remedy}"
    );

    drop(leaked);
    psql.execute("ROLLBACK").await.unwrap();

    // Nothing listens: one failed check, the password never shown.
    let (status, checks) = diagnose(
        "postgres://reco:hunter2@127.0.0.1:1/reco",
        &[("RECO_DB__CONNECT_TIMEOUT", "1")],
        &[],
    )
    .await;
    assert_eq!(status, 2);
    assert_eq!(checks.len(), 1, "{checks:?}");
    let (v, evidence) = verdict(&checks, "database");
    assert_eq!(v, "fail");
    assert!(
        evidence.contains("postgres://reco:***@127.0.0.1:1/reco"),
        "{evidence}"
    );
    assert!(!format!("{checks:?}").contains("hunter2"));
}

/// Through PgBouncer in transaction mode: without `db.pooler` the check warns and names the
/// setting; with `pooler = "transaction"` (and a direct URL for migrations) it is satisfied.
#[tokio::test]
async fn diagnose_detects_pgbouncer_and_whether_the_pooler_setting_suits_it() {
    let Some(pg) = crate::servers::PrivatePg::start(50) else {
        return;
    };
    let Some(bouncer) = crate::servers::Bouncer::start(pg.port, "transaction", 5) else {
        return;
    };
    let pooled = format!("postgres://postgres@127.0.0.1:{}/postgres", bouncer.port);
    let (status, checks) = diagnose(&pooled, &[], &[]).await;
    let (v, evidence) = verdict(&checks, "pooler");
    assert_eq!(v, "warn", "{checks:?}");
    assert!(
        evidence.contains(&format!("a pooler answers on port {}", bouncer.port)),
        "{evidence}"
    );
    assert_eq!(status, 1, "{checks:?}");
    let direct = pg.url("postgres");
    let handled = [
        ("RECO_DB__POOLER", "transaction"),
        ("RECO_DB__DIRECT_URL", direct.as_str()),
    ];
    let (_, checks) = diagnose(&pooled, &handled, &[]).await;
    let (v, evidence) = verdict(&checks, "pooler");
    assert_eq!(v, "ok", "{checks:?}");
    assert!(
        evidence.contains("db.pooler = \"transaction\" handles it"),
        "{evidence}"
    );
    // Directly, a transaction-mode setting is a needless cost.
    let (_, checks) = diagnose(&direct, &handled, &[]).await;
    assert_eq!(verdict(&checks, "pooler").0, "warn", "{checks:?}");
}
