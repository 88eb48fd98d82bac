//! `reco monitor --json` and `--once` against a running server on PostgreSQL.

use serde_json::Value;

use crate::helpers::{Backend, spawn_app_with};

const KEY: &str = "monitor-test-key";

async fn monitor(args: &[&str], db_url: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"))
        .env_remove("RECO_CONFIG")
        .env("DATABASE_URL", db_url)
        .env("RECO_HTTP__API_KEY", KEY)
        .env("NO_COLOR", "1")
        .arg("monitor")
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn monitor_reports_pools_backends_and_warnings() {
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.http.api_key = Some(KEY.to_string().into());
    })
    .await;
    let me = format!("http://{}", app.addr);
    let dead = "http://127.0.0.1:1";
    let out = monitor(
        &["--json", "--replica", &me, "--replica", dead],
        &app.db_url,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains(KEY), "the API key never shows");
    let view: Value = serde_json::from_str(&stdout).unwrap();
    let pool = &view["replicas"][0]["pool"];
    assert_eq!(pool["ceiling"], 15, "{view}");
    assert!(pool["size"].as_u64().unwrap() >= 1, "{view}");
    assert_eq!(view["replicas"][1]["error"], "unreachable", "{view}");
    let server = &view["server"];
    assert!(server["max_connections"].as_i64().unwrap() > 0, "{view}");
    let ours: i64 = server["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["application"] == app.application_name.as_str())
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    let pool_size = pool["size"].as_i64().unwrap();
    assert_eq!(
        ours, pool_size,
        "the server sees exactly the replica's pool: {view}"
    );
    let warnings: Vec<(String, String)> = view["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["level"].as_str().unwrap().into(),
                w["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        warnings.contains(&("fail".into(), format!("replica {dead}: unreachable"))),
        "{warnings:?}"
    );

    // A threshold below the current count warns; --once prints the same as text.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"))
        .env_remove("RECO_CONFIG")
        .env("DATABASE_URL", &app.db_url)
        .env("RECO_HTTP__API_KEY", KEY)
        .env("RECO_MONITOR__WARN_TOTAL_CONNECTIONS", "0")
        .args(["monitor", "--once", "--replica", &me])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("database: max_connections "), "{text}");
    assert!(text.contains(&app.application_name), "{text}");
    assert!(
        text.contains("connections on the database, above 0"),
        "{text}"
    );
    assert!(text.contains(&me), "{text}");

    // Without the key the replica answers 401, and the monitor says so.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"))
        .env_remove("RECO_CONFIG")
        .env_remove("RECO_HTTP__API_KEY")
        .args(["monitor", "--json", "--no-database", "--replica", &me])
        .output()
        .await
        .unwrap();
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["replicas"][0]["error"], "answered HTTP 401", "{view}");
    assert!(view.get("server").is_none(), "{view}");
}

/// The live view in a real terminal (tmux): it draws the replica's pool and quits on `q`.
#[tokio::test]
async fn live_view_draws_in_a_terminal_and_quits_on_q() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        println!("SKIPPED live_view_draws_in_a_terminal_and_quits_on_q: tmux is not installed");
        return;
    }
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let session = format!("reco-monitor-{}", app.addr.port());
    let command = format!(
        "env -u RECO_CONFIG -u RECO_HTTP__API_KEY {} monitor --no-database --replica http://{}",
        env!("CARGO_BIN_EXE_reco"),
        app.addr
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .unwrap()
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "30",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let mut screen = String::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        screen = String::from_utf8(tmux(&["capture-pane", "-p", "-t", &session]).stdout).unwrap();
        if screen.contains(&app.addr.to_string()) && screen.contains("no warnings") {
            break;
        }
    }
    assert!(screen.contains("reco monitor"), "{screen}");
    assert!(screen.contains(&format!("http://{}", app.addr)), "{screen}");
    assert!(screen.contains("/15 "), "in use of the ceiling: {screen}");
    assert!(screen.contains("no warnings"), "{screen}");
    tmux(&["send-keys", "-t", &session, "q"]);
    let mut alive = true;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        alive = tmux(&["has-session", "-t", &session]).status.success();
        if !alive {
            break;
        }
    }
    if alive {
        tmux(&["kill-session", "-t", &session]);
    }
    assert!(!alive, "q quits the live view");
}
