//! API-key protection of write, admin and (optionally) read routes.

use serde_json::json;

use crate::helpers::{Backend, spawn_app_with};

const KEY: &str = "test-key-0123456789";

#[tokio::test]
async fn writes_and_admin_need_the_key_reads_are_configurable() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.http.api_key = Some(KEY.into())).await;
    let r = app
        .client
        .post(app.url("/api/items"))
        .json(&json!({"id": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "unauthorized"
    );
    let r = app
        .client
        .post(app.url("/api/items"))
        .bearer_auth("wrong-key-000")
        .json(&json!({"id": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(app.url("/api/items"))
        .bearer_auth(KEY)
        .json(&json!({"id": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .post(app.url("/api/feedback"))
        .header("x-api-key", KEY)
        .json(&json!([{"user_id": "u", "item_id": "a", "type": "like"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.client
            .get(app.url("/api/admin/pool"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.client
            .get(app.url("/api/admin/pool"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .delete(app.url("/api/items/a"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Reads are public by default; health is always open.
    assert_eq!(
        app.client
            .get(app.url("/api/recommend/u"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/api/items/a"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.http.api_key = Some(KEY.into());
        c.http.protect_reads = true;
    })
    .await;
    assert_eq!(
        app.client
            .get(app.url("/api/recommend/u"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.client
            .get(app.url("/api/recommend/u"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
