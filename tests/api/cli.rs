//! The `reco` binary: configuration output and validation, migrate.

use std::process::Command;

fn reco() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reco"));
    c.env_remove("DATABASE_URL")
        .env_remove("RECO_CONFIG")
        .env("NO_COLOR", "1");
    c
}

/// Sends SIGTERM to a spawned server.
fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// The base URL a spawned `reco serve` prints first on stdout.
async fn listening_on(child: &mut tokio::process::Child) -> String {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next_line().await.unwrap().expect("a line on stdout");
    let base = first.strip_prefix("reco is listening on ").expect(&first);
    base.to_string()
}

#[test]
fn config_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = reco()
        .current_dir(dir.path())
        .env("DATABASE_URL", "postgres://reco:hunter2@db.example/reco")
        .env("RECO_HTTP__API_KEY", "sekrit-api-key")
        .env("RECO_DB__POOL_SIZE", "7")
        .args(["config"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("sekrit"),
        "{text}"
    );
    assert!(
        text.contains("postgres://reco:***@db.example/reco"),
        "{text}"
    );
    assert!(text.contains("pool_size = 7"), "{text}");
    assert!(text.contains("pool_recycle = 1800"), "{text}");
}

/// `reco serve` on an address other hosts can reach, without an API key, refuses to start (every
/// write and admin route would be open to the network); with a key, or said explicitly, it would.
#[test]
fn serve_refuses_an_open_bind_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = reco()
        .current_dir(dir.path())
        .env("DATABASE_URL", "sqlite://reco.db")
        .args(["serve", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("http.bind = 0.0.0.0:0") && err.contains("http.api_key"),
        "{err}"
    );
    assert!(
        !dir.path().join("reco.db").exists(),
        "refused before touching the database"
    );
    let out = reco()
        .current_dir(dir.path())
        .env("RECO_HTTP__BIND", "0.0.0.0:8080")
        .env("RECO_HTTP__ALLOW_UNAUTHENTICATED", "true")
        .args(["config"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn invalid_configuration_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("reco.toml"), "[db]\nmax_overflow = 5000\n").unwrap();
    let out = reco()
        .current_dir(dir.path())
        .args(["config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        "invalid configuration: db.max_overflow = 5000 (allowed: 0..=1000)"
    );
    let out = reco()
        .current_dir(dir.path())
        .args(["--config", "missing.toml", "config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn migrate_creates_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let out = reco()
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("m.db").exists());
}

/// `reco serve` as a process: JSON logs carrying the request id, graceful stop on SIGTERM.
#[tokio::test]
async fn serve_logs_json_with_request_ids_and_stops_on_sigterm() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--no-demo",
            "--log-format",
            "json",
        ])
        .args([
            "--log-level",
            "info,tower_http=debug",
            "--database-url",
            &url,
        ])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = listening_on(&mut child).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/api/popular"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req-abc-123");
    sigterm(&child);
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == "req-abc-123"),
        "no log line carries the request id:\n{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "pool closed"),
        "{err}"
    );
}

/// SIGTERM while slow requests run: they get `http.shutdown_timeout` (1 s here), then answer 503,
/// and the process exits, instead of serving the whole queue first (over a minute before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_server_within_its_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_reco"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &url])
        .env("RECO_HTTP__SHUTDOWN_TIMEOUT", "1")
        .env("RECO_ORCHESTRATOR__DEADLINE", "0")
        .env("RECO_ORCHESTRATOR__WORKERS", "1")
        .env("RECO_LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = listening_on(&mut child).await;
    let client = reqwest::Client::new();
    let slow = format!("{base}/api/recommend/user-1?engine=quality&n=1000");
    // The demo data trains at start; wait until `quality` answers as itself.
    let started = std::time::Instant::now();
    loop {
        let r: serde_json::Value = client
            .get(&slow)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["engine"] == "quality" {
            break;
        }
        assert!(started.elapsed().as_secs() < 300, "never trained: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Far more work than the grace period: enough slow requests to keep one worker busy for
    // four seconds, however fast this machine answers one (the median of five, measured here).
    let mut times = Vec::new();
    for _ in 0..5 {
        let at = std::time::Instant::now();
        client
            .get(&slow)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        times.push(at.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let count = ((4.0 / times[2].max(1e-4)).ceil() as usize).clamp(300, 5000);
    let requests: Vec<_> = (0..count)
        .map(|_| {
            let (client, slow) = (client.clone(), slow.clone());
            tokio::spawn(async move {
                match client.get(&slow).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                }
            })
        })
        .collect();
    loop {
        let m = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // Half of them queued: at least two seconds of work left when SIGTERM arrives.
        if crate::helpers::sample(&m, "reco_engine_jobs_waiting ") >= (count / 2) as f64 {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 300,
            "the slow requests never queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let term = std::time::Instant::now();
    sigterm(&child);
    let status = child.wait().await.unwrap();
    let took = term.elapsed().as_secs_f64();
    assert!(status.success(), "{status:?}");
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap());
    }
    let unavailable = statuses.iter().filter(|&&s| s == 503).count();
    eprintln!(
        "exited {took:.1} s after SIGTERM; answers: {} x 200, {unavailable} x 503, {} dropped",
        statuses.iter().filter(|&&s| s == 200).count(),
        statuses.iter().filter(|&&s| s == 0).count()
    );
    // 1 s of grace, 2 s to deliver the 503s, up to 1 s for blocking work: generous on a busy
    // machine.
    assert!(took < 15.0, "exited {took:.1} s after SIGTERM");
    assert!(
        unavailable > 0,
        "requests still running at the deadline are answered 503"
    );
    assert!(
        statuses.iter().all(|s| [0, 200, 503].contains(s)),
        "{statuses:?}"
    );
}

#[test]
fn database_passwords_never_reach_the_output() {
    let out = reco()
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            "postgres://reco:hunter2@127.0.0.1:1/reco",
        ])
        .env("RECO_DB__CONNECT_TIMEOUT", "2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("opening the database pool"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
}

/// `reco evaluate world`: the generated implicit world, split by `--split`, with RP3beta and
/// recent popularity among the rows, and what was generated said first.
#[test]
fn evaluate_on_the_generated_world() {
    let out = reco()
        .args(["evaluate", "world", "--items", "300", "--users", "2000"])
        .args(["--split", "global-time", "--json"])
        .args(["--models", "recent,rp3beta,smart"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("world: 300 items, 2000 users"), "{stderr}");
    assert!(stderr.contains("split: global-time"), "{stderr}");
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let models: Vec<&str> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["recent", "rp3beta", "smart"]);
    for r in reports.as_array().unwrap() {
        assert!(r["ndcg"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["users"].as_u64().unwrap() > 100, "{r}");
    }
    let setting = reports[1]["setting"].as_str().unwrap();
    assert!(
        setting.contains("alpha") && setting.contains("beta"),
        "{setting}"
    );
    let out = reco()
        .args(["evaluate", "world", "--items", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--items"));
}

#[test]
fn evaluate_on_a_given_split_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    // 30 users in three taste groups of 10 items each; ratings 5 within the group, 1 outside. Each
    // user holds out two of their group's items, which other users of the group trained on.
    let (mut train, mut test) = (String::new(), String::new());
    for u in 0..30 {
        let group = u / 10;
        for i in 0..10 {
            let item = group * 10 + i;
            let line = format!("{u}\t{item}\t5\t{}\n", 1000 + i);
            if i == u % 10 || i == (u + 1) % 10 {
                test.push_str(&line);
            } else {
                train.push_str(&line);
            }
        }
        train.push_str(&format!("{u}\t{}\t1\t999\n", (group * 10 + 15) % 30));
    }
    std::fs::write(dir.path().join("a.base"), train).unwrap();
    std::fs::write(dir.path().join("a.test"), test).unwrap();
    let out = reco()
        .args(["evaluate", "files"])
        .arg(dir.path().join("a.base"))
        .arg(dir.path().join("a.test"))
        .args(["--json", "--models", "popularity,itemknn"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1]["model"], "itemknn");
    assert_eq!(reports[1]["users"], 30);
    // Item-to-item finds each user's two held-out group items: perfect recall at 10.
    assert_eq!(reports[1]["recall"], 1.0);
    assert!(reports[0]["ndcg"].as_f64().unwrap() < reports[1]["ndcg"].as_f64().unwrap());
    let out = reco()
        .args(["evaluate", "files", "missing.base", "missing.test"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // A file pair is split already: another split is refused, by name.
    let out = reco()
        .args(["evaluate", "files"])
        .arg(dir.path().join("a.base"))
        .arg(dir.path().join("a.test"))
        .args(["--split", "random"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--split"));
}
