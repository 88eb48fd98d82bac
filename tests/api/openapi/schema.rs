//! The schema side of the OpenAPI property test: values a schema accepts, values breaking one
//! of its rules, and a check of a response against the subset of JSON Schema the document uses.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

/// The document, with `$ref`s resolved on the way.
pub struct Doc(pub Value);

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

pub fn bound(schema: &Value, key: &str) -> Option<i64> {
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
pub fn valid(doc: &Doc, schema: &Value, rng: &mut ChaCha8Rng, ids: &[String]) -> Value {
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
pub fn invalid(
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
pub fn check(doc: &Doc, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
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
