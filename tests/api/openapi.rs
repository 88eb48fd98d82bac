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

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::helpers::{BOTH, Backend, TestApp, spawn_app};

/// The document, with `$ref`s resolved on the way.
struct Doc(Value);

impl Doc {
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                &self.0["components"]["schemas"][name]
            }
            None => schema,
        }
    }
}

/// Text a client may send: letters from several scripts, punctuation, no control characters.
const ALPHABET: &[&str] = &[
    "a", "Z", "7", "-", "_", " ", "é", "日", "ß", "😀", "/", "%", "'",
];

fn text(rng: &mut ChaCha8Rng, min: usize, max: usize) -> String {
    let len = rng.random_range(min..=max.max(min));
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

fn bound(schema: &Value, key: &str) -> Option<i64> {
    schema.get(key).and_then(Value::as_i64)
}

fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// A value the schema accepts.
fn valid(doc: &Doc, schema: &Value, rng: &mut ChaCha8Rng, ids: &[String]) -> Value {
    let schema = doc.resolve(schema);
    if let Some(options) = schema["enum"].as_array() {
        return options[rng.random_range(0..options.len())].clone();
    }
    match types(schema).first().copied().unwrap_or("object") {
        "object" => {
            let mut out = Map::new();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = schema["properties"].as_object() {
                for (name, prop) in props {
                    if required.contains(&name.as_str()) || rng.random_bool(0.5) {
                        let v = if name.ends_with("id") && !ids.is_empty() && rng.random_bool(0.7) {
                            json!(ids[rng.random_range(0..ids.len())])
                        } else {
                            valid(doc, prop, rng, ids)
                        };
                        out.insert(name.clone(), v);
                    }
                }
            } else if schema["additionalProperties"] == json!(true) && rng.random_bool(0.7) {
                out.insert(
                    text(rng, 1, 8),
                    json!({ "n": rng.random_range(0..9), "s": text(rng, 0, 5) }),
                );
            }
            Value::Object(out)
        }
        "array" => {
            let min = bound(schema, "minItems").unwrap_or(0) as usize;
            let max = (bound(schema, "maxItems").unwrap_or(4) as usize).min(4);
            let n = rng.random_range(min..=max.max(min));
            let mut out: Vec<Value> = (0..n)
                .map(|_| valid(doc, &schema["items"], rng, ids))
                .collect();
            // `x-unique-by`: the document's word that no two elements share that field.
            if let Some(field) = schema["x-unique-by"].as_str() {
                let mut seen = std::collections::HashSet::new();
                out.retain(|v| seen.insert(v[field].to_string()));
            }
            Value::Array(out)
        }
        "string" if schema["format"] == "date-time" => {
            json!(format!(
                "20{:02}-0{}-1{}T0{}:1{}:2{}Z",
                rng.random_range(10..25),
                rng.random_range(1..10),
                rng.random_range(0..10),
                rng.random_range(0..10),
                rng.random_range(0..10),
                rng.random_range(0..10)
            ))
        }
        "string" => {
            let min = bound(schema, "minLength").unwrap_or(0) as usize;
            let max = (bound(schema, "maxLength").unwrap_or(24) as usize).min(24);
            json!(text(rng, min, max))
        }
        "integer" => {
            let lo = bound(schema, "minimum").unwrap_or(0);
            let hi = bound(schema, "maximum").unwrap_or(100);
            json!(rng.random_range(lo..=hi))
        }
        "number" => json!(rng.random_range(0.0..5.0)),
        "boolean" => json!(rng.random_bool(0.5)),
        _ => Value::Null,
    }
}

/// A value that breaks one rule of the schema, and the rule; `None` when the schema has no rule a
/// value of its own type can break.
///
/// `textual`: the value travels as text (a path or query parameter), where a number is also a
/// string, so only rules that text can break count.
fn invalid(
    doc: &Doc,
    schema: &Value,
    rng: &mut ChaCha8Rng,
    ids: &[String],
    textual: bool,
) -> Option<(Value, &'static str)> {
    let schema = doc.resolve(schema);
    let t = types(schema).first().copied().unwrap_or("object");
    let mut breaks: Vec<(Value, &'static str)> = Vec::new();
    match t {
        "object" => {
            breaks.push((json!(text(rng, 0, 5)), "a string for an object"));
            let base = valid(doc, schema, rng, ids);
            if let Some(req) = schema["required"].as_array().and_then(|r| r.first()) {
                let mut v = base.clone();
                v.as_object_mut().unwrap().remove(req.as_str().unwrap());
                breaks.push((v, "a required field missing"));
            }
            if schema["additionalProperties"] == json!(false) {
                let mut v = base.clone();
                v["not_a_field"] = json!(1);
                breaks.push((v, "an unknown field"));
            }
            for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
                if let Some((bad, _)) = invalid(doc, prop, rng, ids, false) {
                    let mut v = base.clone();
                    v[name.as_str()] = bad;
                    breaks.push((v, "a field breaking its own rule"));
                }
            }
        }
        "array" => {
            if !textual {
                breaks.push((json!({ "a": 1 }), "an object for an array"));
            }
            if bound(schema, "minItems") == Some(1) {
                breaks.push((json!([]), "an empty array"));
            }
            if let Some((bad, _)) = invalid(doc, &schema["items"], rng, ids, textual) {
                breaks.push((json!([bad]), "an element breaking its rule"));
            }
        }
        "string" => {
            if !textual {
                breaks.push((json!(rng.random_range(0..99)), "a number for a string"));
            }
            breaks.push((json!(format!("a\u{0}{}", text(rng, 0, 4))), "a NUL byte"));
            if let Some(max) = bound(schema, "maxLength") {
                breaks.push((json!("x".repeat(max as usize + 1)), "longer than maxLength"));
            }
            if schema["enum"].is_array() {
                breaks.push((json!("not-in-the-enum"), "outside the enum"));
            }
            if schema["format"] == "date-time" {
                breaks.push((json!("yesterday"), "not a date-time"));
            }
        }
        "integer" => {
            breaks.push((json!("seven"), "a string for an integer"));
            if let Some(lo) = bound(schema, "minimum") {
                breaks.push((json!(lo - 1), "below minimum"));
            }
            if let Some(hi) = bound(schema, "maximum") {
                breaks.push((json!(hi + 1), "above maximum"));
            }
        }
        "number" => breaks.push((json!("many"), "a string for a number")),
        "boolean" => breaks.push((json!("maybe"), "a string for a boolean")),
        _ => {}
    }
    if breaks.is_empty() {
        return None;
    }
    Some(breaks.swap_remove(rng.random_range(0..breaks.len())))
}

/// Checks `value` against `schema`; the error names the JSON path.
fn check(doc: &Doc, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = doc.resolve(schema);
    let fail = |why: String| Err(format!("{at}: {why} (value {value}, schema {schema})"));
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return fail("not in the enum".into());
    }
    let ts = types(schema);
    let is = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    };
    if !ts.is_empty() && !ts.iter().any(|t| is(t)) {
        return fail(format!("not of type {ts:?}"));
    }
    if let Some(s) = value.as_str() {
        if schema["format"] == "date-time" && chrono::DateTime::parse_from_rfc3339(s).is_err() {
            return fail("not an RFC 3339 date-time".into());
        }
        let len = s.chars().count() as i64;
        if bound(schema, "maxLength").is_some_and(|m| len > m) {
            return fail("longer than maxLength".into());
        }
    }
    if let Some(n) = value.as_f64()
        && (schema["minimum"].as_f64().is_some_and(|m| n < m)
            || schema["maximum"].as_f64().is_some_and(|m| n > m))
    {
        return fail("out of range".into());
    }
    if let Some(items) = value.as_array() {
        for (i, v) in items.iter().enumerate() {
            check(doc, &schema["items"], v, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(obj) = value.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(req.as_str().unwrap()) {
                return fail(format!("missing required {req}"));
            }
        }
        for (k, v) in obj {
            match schema["properties"].get(k) {
                Some(prop) => check(doc, prop, v, &format!("{at}.{k}"))?,
                None if schema["additionalProperties"] == json!(false) => {
                    return fail(format!("undocumented field {k}"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

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
