//! `reco export` and `reco import` through the real binary: a round trip into an empty database
//! on both backends and in both formats, column mappings and defaults, bad rows (stop or skip),
//! a batch the database refuses (rolled back whole), and rows read from another PostgreSQL
//! database by a query.

use std::path::Path;
use std::process::{Command, Output};

use reco::store::{Feedback, Item, Store, User};
use serde_json::json;
use sqlx::Executor;

use crate::helpers::{BOTH, Backend, TestApp, pg_connect, spawn_app};

fn reco(db_url: &str, args: &[&str]) -> Output {
    reco_with(db_url, args, &[])
}

fn reco_with(db_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reco"))
        .envs(env.iter().copied())
        .env_remove("DATABASE_URL")
        .env_remove("RECO_CONFIG")
        .env("NO_COLOR", "1")
        .arg("--database-url")
        .arg(db_url)
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every row of the three tables, in id order.
async fn dump(store: &Store) -> (Vec<Item>, Vec<User>, Vec<Feedback>) {
    let (mut items, mut users, mut feedback) = (Vec::new(), Vec::new(), Vec::new());
    store
        .export_items(None, |i| {
            items.push(i);
            true
        })
        .await
        .unwrap();
    store
        .export_users(None, |u| {
            users.push(u);
            true
        })
        .await
        .unwrap();
    store
        .export_feedback(None, |f| {
            feedback.push(f);
            true
        })
        .await
        .unwrap();
    items.sort_by(|a, b| a.id.cmp(&b.id));
    users.sort_by(|a, b| a.id.cmp(&b.id));
    feedback.sort_by(|a, b| {
        (&a.user_id, &a.item_id, &a.feedback_type).cmp(&(&b.user_id, &b.item_id, &b.feedback_type))
    });
    (items, users, feedback)
}

/// Rows that are hard to carry through text: separators and quotes in every field, categories
/// holding `|`, nested labels, times to the millisecond, values that are not round numbers.
async fn awkward_rows(app: &TestApp) {
    let items = json!([
        {"id": "i,1", "categories": ["a|b", "c"], "labels": {"n": {"deep": [1, "x\"y"]}},
         "title": "Say \"hi\",\nthen go", "description": "ünïcödé ✓", "timestamp": "2024-01-02T03:04:05.678Z"},
        {"id": "i2", "categories": ["[x]"], "hidden": true, "timestamp": "1999-12-31T23:59:59Z"},
        {"id": "i3", "title": "plain", "timestamp": "2025-06-01T00:00:00Z"},
    ]);
    let (s, body) = app.post("/api/items/batch", items).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = app
        .post(
            "/api/users/batch",
            json!([{"id": "u 1", "labels": {"age": 31}}, {"id": "u2"}]),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let feedback = json!([
        {"user_id": "u 1", "item_id": "i,1", "type": "rating", "value": 3.5, "timestamp": "2024-02-03T04:05:06.789Z"},
        {"user_id": "u 1", "item_id": "i2", "type": "view", "value": 0.1, "timestamp": "2023-05-05T00:00:00Z"},
        {"user_id": "u2", "item_id": "i3", "type": "like", "value": -1e-7, "timestamp": "2025-07-01T00:00:00Z"},
        {"user_id": "u3", "item_id": "i3", "type": "like", "timestamp": "2025-08-01T00:00:00Z"},
    ]);
    let (s, body) = app.post("/api/feedback", feedback).await;
    assert_eq!(s, 200, "{body}");
}

/// Exported from one database and imported into an empty one, on either backend and in either
/// format, the data is the same to the millisecond; `--since` keeps the newer rows.
#[tokio::test]
async fn an_export_imported_into_an_empty_database_reproduces_it() {
    for backend in BOTH {
        let source = spawn_app(backend).await;
        awkward_rows(&source).await;
        let expected = dump(&source.state.store).await;
        for format in ["jsonl", "csv"] {
            let dir = tempfile::tempdir().unwrap();
            let folder = dir.path().join("out");
            let out = reco(
                &source.db_url,
                &[
                    "export",
                    "all",
                    "--output",
                    folder.to_str().unwrap(),
                    "--format",
                    format,
                ],
            );
            assert!(out.status.success(), "{}", text(&out));
            let target = spawn_app(backend).await;
            let out = reco(&target.db_url, &["import", "all", folder.to_str().unwrap()]);
            assert!(out.status.success(), "{}", text(&out));
            assert!(text(&out).contains("imported 3 items"), "{}", text(&out));
            assert_eq!(
                dump(&target.state.store).await,
                expected,
                "{backend:?} {format}"
            );
        }
        // Since a time: the feedback stamped from 2025 on (two rows), to standard output.
        let out = reco(
            &source.db_url,
            &[
                "export",
                "feedback",
                "--since",
                "2025-01-01",
                "--format",
                "csv",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let csv = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "user_id,item_id,type,value,timestamp", "{csv}");
        assert_eq!(lines.len(), 3, "{csv}");
    }
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

/// A CSV of another application's columns comes in through `--columns` and `--default`; a bad row
/// stops the import naming its line and field, with every row before it imported; with
/// `--skip-bad` it is skipped and counted.
#[tokio::test]
async fn a_mapped_csv_imports_and_a_bad_row_stops_or_is_skipped() {
    let app = spawn_app(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "events.csv",
        "uid,post_id,created_at,extra\n\
         1,p1,2024-01-01 10:00:00+00,x\n\
         2,p1,1704103200,y\n\
         3,p2,yesterday,z\n\
         4,p3,2024-01-03T00:00:00Z,w\n",
    );
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "import",
            "feedback",
            file.as_str(),
            "--columns",
            "user_id=uid,item_id=post_id,timestamp=created_at",
            "--default",
            "type=like",
        ];
        a.extend_from_slice(extra);
        a
    };
    let out = reco(&app.db_url, &args(&[]));
    assert!(!out.status.success(), "{}", text(&out));
    let message = text(&out);
    assert!(
        message.contains("line 4") && message.contains("timestamp (column created_at)"),
        "{message}"
    );
    assert!(message.contains("(2 rows)"), "{message}");
    let (_, _, feedback) = dump(&app.state.store).await;
    assert_eq!(
        feedback.len(),
        2,
        "the rows before the bad one: {feedback:?}"
    );
    assert_eq!(
        (
            feedback[0].feedback_type.as_str(),
            feedback[1].timestamp.to_rfc3339()
        ),
        ("like", "2024-01-01T10:00:00+00:00".to_string())
    );

    let out = reco(&app.db_url, &args(&["--skip-bad"]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("skipped 1 bad rows"), "{}", text(&out));
    assert!(text(&out).contains("skipped line 4"), "{}", text(&out));
    let (_, users, feedback) = dump(&app.state.store).await;
    assert_eq!(feedback.len(), 3, "{feedback:?}");
    assert_eq!(users.len(), 3, "users created on the fly: {users:?}");

    // A missing required column is refused before anything is read.
    let out = reco(&app.db_url, &["import", "feedback", file.as_str()]);
    assert!(
        text(&out).contains("--columns user_id=COLUMN"),
        "{}",
        text(&out)
    );

    // JSON Lines items; a row of the wrong shape names its line.
    let items = write(
        dir.path(),
        "items.jsonl",
        "{\"id\": \"a\", \"categories\": \"x|y\", \"hidden\": \"yes\"}\n\n[1, 2]\n",
    );
    let out = reco(&app.db_url, &["import", "items", items.as_str()]);
    assert!(
        text(&out).contains("line 3: not a JSON object"),
        "{}",
        text(&out)
    );
    let (items, _, _) = dump(&app.state.store).await;
    let a = items.iter().find(|i| i.id == "a").expect("line 1 imported");
    assert_eq!(
        (a.categories.clone(), a.hidden),
        (vec!["x".into(), "y".into()], true)
    );
}

/// A batch the database refuses is rolled back whole: the batches before it stay, nothing of it
/// does, and the error names its lines.
#[tokio::test]
async fn a_batch_the_database_refuses_leaves_nothing_behind() {
    let app = spawn_app(Backend::Postgres).await;
    let mut conn = pg_connect(&app.db_url).await;
    conn.execute(
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ \
         LANGUAGE plpgsql; \
         CREATE TRIGGER refuse BEFORE INSERT ON items FOR EACH ROW WHEN (NEW.id = 'i5') \
         EXECUTE FUNCTION refuse();",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (1..=8).map(|i| format!("i{i},t{i}\n")).collect();
    let file = write(dir.path(), "items.csv", &format!("id,title\n{rows}"));
    let out = reco(
        &app.db_url,
        &["import", "items", file.as_str(), "--batch-size", "3"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("lines 5-7 failed"), "{}", text(&out));
    let (items, _, _) = dump(&app.state.store).await;
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i1", "i2", "i3"]);
}

/// `--from-database` reads another application's table by a query, over a read-only connection
/// named `reco-import`, and maps its columns like a file's.
#[tokio::test]
async fn rows_come_from_a_query_on_another_database() {
    let source = spawn_app(Backend::Postgres).await;
    let mut conn = pg_connect(&source.db_url).await;
    conn.execute(
        "CREATE TABLE app_events (uid INT, post_id TEXT, kind TEXT, created_at TIMESTAMPTZ); \
         INSERT INTO app_events VALUES (7, 'post-1', 'like', '2024-03-04 05:06:07.5+00'), \
         (8, 'post-2', 'view', '2024-03-05 00:00:00+00'); \
         CREATE SEQUENCE side_effect;",
    )
    .await
    .unwrap();
    let target = spawn_app(Backend::Sqlite).await;
    let out = reco(
        &target.db_url,
        &[
            "import",
            "feedback",
            "--from-database",
            &source.db_url,
            "--query",
            "SELECT uid, post_id, kind, created_at FROM app_events",
            "--columns",
            "user_id=uid,item_id=post_id,type=kind,timestamp=created_at",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (_, _, feedback) = dump(&target.state.store).await;
    assert_eq!(feedback.len(), 2);
    assert_eq!(
        (
            feedback[0].user_id.as_str(),
            feedback[0].item_id.as_str(),
            feedback[0].timestamp.to_rfc3339()
        ),
        ("7", "post-1", "2024-03-04T05:06:07.500+00:00".to_string())
    );

    // The connection names itself (its URL from the environment this time), and it cannot write.
    let out = reco_with(
        &target.db_url,
        &[
            "import",
            "items",
            "--query",
            "SELECT current_setting('application_name') AS id",
        ],
        &[("RECO_IMPORT_FROM_DATABASE", source.db_url.as_str())],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (items, _, _) = dump(&target.state.store).await;
    assert!(items.iter().any(|i| i.id == "reco-import"), "{items:?}");
    let out = reco(
        &target.db_url,
        &[
            "import",
            "items",
            "--from-database",
            &source.db_url,
            "--query",
            "SELECT nextval('side_effect')::text AS id",
        ],
    );
    assert!(
        text(&out).contains("read-only transaction"),
        "{}",
        text(&out)
    );
    let next: i64 = sqlx::query_scalar("SELECT nextval('side_effect')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(next, 1, "the sequence never moved");
}
