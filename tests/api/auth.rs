//! API-key protection of write, admin and (optionally) read routes, as a table of (method, path,
//! key, expected status) requests, sent in order against a real server.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app_with};

const KEY: &str = "test-key-0123456789";

/// How a request presents the key.
#[derive(Debug, Clone, Copy)]
enum Key {
    None,
    Bearer(&'static str),
    Header(&'static str),
}

/// One request of the table: method, path, key, body, the status it must get.
type Case = (Method, &'static str, Key, Option<Value>, u16);

/// Sends every case in order; a 401 must also say `unauthorized` in its body.
async fn check(app: &TestApp, cases: Vec<Case>) {
    for (method, path, key, body, expected) in cases {
        let mut req = app.client.request(method.clone(), app.url(path));
        req = match key {
            Key::None => req,
            Key::Bearer(k) => req.bearer_auth(k),
            Key::Header(k) => req.header("x-api-key", k),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        assert_eq!(status, expected, "{method} {path} with {key:?}");
        if status == 401 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "unauthorized", "{method} {path}");
        }
    }
}

#[tokio::test]
async fn writes_and_admin_need_the_key_reads_are_configurable() {
    let item = || Some(json!({"id": "a"}));
    let like = || Some(json!([{"user_id": "u", "item_id": "a", "type": "like"}]));
    let app = spawn_app_with(Backend::Sqlite, |c| c.http.api_key = Some(KEY.into())).await;
    check(
        &app,
        vec![
            (Method::POST, "/api/items", Key::None, item(), 401),
            (
                Method::POST,
                "/api/items",
                Key::Bearer("wrong-key-000"),
                item(),
                401,
            ),
            (Method::POST, "/api/items", Key::Bearer(KEY), item(), 200),
            (Method::POST, "/api/feedback", Key::Header(KEY), like(), 200),
            (Method::GET, "/api/admin/pool", Key::None, None, 401),
            (Method::GET, "/api/admin/pool", Key::Bearer(KEY), None, 200),
            (Method::DELETE, "/api/items/a", Key::None, None, 401),
            // Reads are public by default; health is always open.
            (Method::GET, "/api/recommend/u", Key::None, None, 200),
            (Method::GET, "/api/items/a", Key::None, None, 200),
            (Method::GET, "/health/live", Key::None, None, 200),
        ],
    )
    .await;

    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.http.api_key = Some(KEY.into());
        c.http.protect_reads = true;
    })
    .await;
    check(
        &app,
        vec![
            (Method::GET, "/api/recommend/u", Key::None, None, 401),
            (Method::GET, "/api/recommend/u", Key::Bearer(KEY), None, 200),
            (Method::GET, "/health/ready", Key::None, None, 200),
            (Method::GET, "/metrics", Key::None, None, 200),
        ],
    )
    .await;
}

/// Without a key, an admin action is still not something a web page can trigger: a plain form
/// post (no JSON content type, no custom header) is 403, and so is a `Host` that is not this
/// loopback server's (DNS rebinding); the same action sent deliberately works.
#[tokio::test]
async fn admin_actions_refuse_cross_site_and_rebinding_requests() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let url = app.url("/api/admin/pool/reset");
    let form = app
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 403);
    let body: Value = form.json().await.unwrap();
    assert_eq!(body["error"], "forbidden", "{body}");
    let bare = app.client.post(&url).send().await.unwrap();
    assert_eq!(bare.status().as_u16(), 403);
    let rebound = app
        .client
        .post(&url)
        .header("host", format!("evil.example:{}", app.addr.port()))
        .json(&json!(null))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 403);
    let deliberate = app
        .client
        .post(&url)
        .json(&json!(null))
        .send()
        .await
        .unwrap();
    assert_eq!(deliberate.status().as_u16(), 200);
    let tool = app
        .client
        .post(&url)
        .header("x-requested-with", "reco")
        .header("host", format!("localhost:{}", app.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(tool.status().as_u16(), 200);
}
