//! Drives the HTTP API from its own OpenAPI document (`/openapi.json`) with generated requests.
//!
//! For every documented operation: requests generated from its parameter and body schemas
//! (valid), and requests breaking one documented rule (invalid: a wrong type, a value out of
//! range, a missing required or an unknown field, a NUL byte, an over-long id, broken JSON). The
//! test fails on any 5xx, on a status the document does not list, on a body or content type that
//! does not match the documented response, on a valid request refused as bad input, and on an
//! invalid one accepted. A seeded generator (case count `RECO_OPENAPI_CASES`, default 12 of each
//! kind per operation; seed `RECO_OPENAPI_SEED`) keeps it bounded and reproducible in CI.
//!
//! Written here rather than run with schemathesis: the generator needs only `rand` and
//! `serde_json`, which the crate already has, and a Python tool chain in the test script would be
//! a second ecosystem to install and pin for one test.

mod schema;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use serde_json::{Value, json};

use schema::{Doc, check, invalid, valid};

use crate::helpers::{BOTH, Backend, TestApp, spawn_app};

/// One generated request.
struct Case {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<String>,
    /// What it breaks, for an invalid case.
    breaks: Option<String>,
}

fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (one path segment).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request for `op`; invalid in one place when `break_one`.
fn case(
    doc: &Doc,
    method: &str,
    path: &str,
    op: &Value,
    rng: &mut ChaCha8Rng,
    ids: &[String],
    break_one: bool,
) -> Option<Case> {
    let params: Vec<&Value> = op["parameters"].as_array().unwrap().iter().collect();
    let body_schema = &op["requestBody"]["content"]["application/json"]["schema"];
    // Where the one broken rule goes: a parameter, or the body.
    let slots = params.len() + usize::from(!body_schema.is_null());
    let target = if break_one {
        if slots == 0 {
            return None;
        }
        Some(rng.random_range(0..slots))
    } else {
        None
    };
    let mut breaks = None;
    let mut url_path = path.to_string();
    let mut query = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let name = p["name"].as_str().unwrap();
        let in_path = p["in"] == "path";
        let value = if target == Some(i) {
            let (v, why) = invalid(doc, &p["schema"], rng, ids, true)?;
            breaks = Some(format!("parameter {name}: {why}"));
            v
        } else if !in_path && !rng.random_bool(0.5) {
            continue;
        } else if in_path
            && !ids.is_empty()
            && rng.random_bool(0.6)
            && p["schema"]["type"] == "string"
        {
            json!(ids[rng.random_range(0..ids.len())])
        } else {
            valid(doc, &p["schema"], rng, ids)
        };
        let values = match value {
            Value::Array(vs) if !in_path => vs,
            v => vec![v],
        };
        for v in values {
            if in_path {
                let encoded = percent_encode(&param_text(&v));
                url_path = url_path.replace(&format!("{{{name}}}"), &encoded);
            } else {
                query.push((name.to_string(), param_text(&v)));
            }
        }
    }
    let body = if body_schema.is_null() {
        None
    } else if target == Some(params.len()) {
        if rng.random_bool(0.15) {
            breaks = Some("body: not JSON".into());
            Some("{\"id\": ".to_string())
        } else {
            let (v, why) = invalid(doc, body_schema, rng, ids, false)?;
            breaks = Some(format!("body: {why}"));
            Some(v.to_string())
        }
    } else {
        Some(valid(doc, body_schema, rng, ids).to_string())
    };
    Some(Case {
        method: method.to_uppercase().parse().unwrap(),
        path: url_path,
        query,
        body,
        breaks,
    })
}

/// Sends `c` and checks the answer against `op`'s documented responses.
async fn run(app: &TestApp, doc: &Doc, op: &Value, c: &Case) -> Result<u16, String> {
    let query: Vec<String> = c
        .query
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    let url = format!("{}?{}", app.url(&c.path), query.join("&"));
    let mut req = app
        .client
        .request(c.method.clone(), url)
        .header("X-Requested-With", "reco-openapi-test");
    if let Some(b) = &c.body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.clone());
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    let what = format!(
        "{} {} {:?} body {:?} ({}) -> {status} {}",
        c.method,
        c.path,
        c.query,
        c.body
            .as_deref()
            .map(|b| b.chars().take(200).collect::<String>()),
        c.breaks.as_deref().unwrap_or("valid"),
        text.chars().take(200).collect::<String>()
    );
    if status >= 500 {
        return Err(format!("server error: {what}"));
    }
    let responses = &op["responses"];
    let documented = responses
        .get(status.to_string())
        .or_else(|| responses.get(format!("{}XX", status / 100)));
    let Some(documented) = documented else {
        return Err(format!("status not in the document: {what}"));
    };
    match documented["content"]
        .as_object()
        .and_then(|m| m.iter().next())
    {
        None if !text.is_empty() => return Err(format!("a body where none is documented: {what}")),
        None => {}
        Some((media, _)) if !content_type.starts_with(media.as_str()) => {
            return Err(format!(
                "content type {content_type}, documented {media}: {what}"
            ));
        }
        Some((media, body)) if media == "application/json" => {
            let value: Value =
                serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {what}"))?;
            check(doc, &body["schema"], &value, "$").map_err(|e| format!("{e}\n  {what}"))?;
        }
        Some(_) => {}
    }
    match (&c.breaks, status) {
        (None, 200..=299 | 404 | 409) => Ok(status),
        (None, _) => Err(format!("a valid request was refused: {what}")),
        (Some(_), 400..=499) => Ok(status),
        (Some(_), _) => Err(format!("an invalid request was accepted: {what}")),
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn every_operation_answers_generated_requests_as_documented() {
    for backend in BOTH {
        generated_requests_on(backend).await;
    }
}

async fn generated_requests_on(backend: Backend) {
    let app = spawn_app(backend).await;
    let demo = reco::data::demo::generate(&reco::data::demo::DemoSpec::default(), 3);
    demo.write(&app.state.store).await.unwrap();
    app.state.engine.load(&app.state.store).await.unwrap();
    let mut ids: Vec<String> = demo.items.iter().take(40).map(|i| i.id.clone()).collect();
    ids.extend(demo.users.iter().take(40).map(|u| u.id.clone()));

    let (status, document) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc = Doc(document);
    let cases = env_or("RECO_OPENAPI_CASES", 12);
    let seed = env_or("RECO_OPENAPI_SEED", 10);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut failures = Vec::new();
    let mut sent = 0;
    let mut by_status = std::collections::BTreeMap::<u16, u32>::new();
    for (path, ops) in doc.0["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for i in 0..cases * 2 {
                let Some(c) = case(&doc, method, path, op, &mut rng, &ids, i % 2 == 1) else {
                    continue;
                };
                sent += 1;
                match run(&app, &doc, op, &c).await {
                    Ok(s) => *by_status.entry(s).or_default() += 1,
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    println!("{backend:?}: {sent} generated requests (seed {seed}), by status: {by_status:?}");
    assert!(sent > 500, "only {sent} requests generated");
    assert!(
        failures.is_empty(),
        "{backend:?}: {} of {sent} answers do not match the document (seed {seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
