//! `reco import movielens` on the shared ML-100K files.

use std::process::Command;

use reco::config::DbConfig;
use reco::db::Pool;
use reco::metrics::Metrics;
use reco::store::Store;

use crate::helpers::ml100k;

#[tokio::test]
async fn import_movielens_loads_every_row_and_latin1_titles() {
    let Some(dir) = ml100k() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("ml.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_reco"))
        .args(["import", "movielens"])
        .arg(&dir)
        .args(["--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("imported 1682 items, 943 users, 100000 ratings")
    );

    let config = DbConfig {
        url: url.into(),
        ..Default::default()
    };
    let store = Store::new(Pool::open(&config, Metrics::new().pool).await.unwrap());
    assert_eq!(store.counts().await.unwrap(), (1682, 943, 100_000));
    let item = store.get_item("543").await.unwrap().unwrap();
    assert_eq!(item.title, "Misérables, Les (1995)");
    assert_eq!(item.categories, ["Drama", "Musical"]);
    let toy = store.get_item("1").await.unwrap().unwrap();
    assert_eq!(toy.categories, ["Animation", "Children's", "Comedy"]);
    let user = store.get_user("1").await.unwrap().unwrap();
    assert_eq!(user.labels["occupation"], "technician");
}
