//! The `reco` binary: configuration output and validation, migrate.

use std::process::Command;

fn reco() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reco"));
    c.env_remove("DATABASE_URL")
        .env_remove("RECO_CONFIG")
        .env("NO_COLOR", "1");
    c
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
