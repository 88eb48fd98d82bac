//! What a valid item, user and feedback row is: the inputs as a client sends them (HTTP or an
//! import file) and the rules every field is checked by. The API and `reco import` both check
//! input here, so a row the server would refuse cannot come in through a file either.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::store::{Feedback, Item, User};

/// Longest id, in bytes.
pub const MAX_ID_BYTES: usize = 256;
const MAX_CATEGORIES: usize = 100;
const MAX_TITLE_BYTES: usize = 4 * 1024;
const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
const MAX_TYPE_BYTES: usize = 64;
const MAX_LABELS_BYTES: usize = 64 * 1024;

/// A field that breaks a rule: its name (a path such as `[3].id` in a batch) and the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Invalid>;

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Ids: 1 to 256 bytes, no control characters. Anything else (quotes, SQL-looking text, emoji) is
/// stored and returned verbatim.
pub fn validate_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(invalid(
            field,
            format!("must be at most {MAX_ID_BYTES} bytes (got {})", id.len()),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A bounded free-text field without NUL characters (PostgreSQL's text cannot hold them).
pub fn validate_text(field: &str, text: &str, max_bytes: usize) -> Result<()> {
    if text.len() > max_bytes {
        return Err(invalid(
            field,
            format!("must be at most {max_bytes} bytes (got {})", text.len()),
        ));
    }
    reject_nul(field, text)
}

/// Rejects text holding a NUL character, which no database text column can store.
pub fn reject_nul(field: &str, text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// Labels must be a JSON object of at most 64 KiB with no NUL in any key or string.
pub fn validate_labels(field: &str, labels: &Value) -> Result<()> {
    if !labels.is_object() {
        return Err(invalid(field, "must be a JSON object"));
    }
    if labels.to_string().len() > MAX_LABELS_BYTES {
        return Err(invalid(
            field,
            format!("must be at most {MAX_LABELS_BYTES} bytes of JSON"),
        ));
    }
    // Iterative: the depth of a 64 KiB document is not ours to bound.
    let mut todo = vec![labels];
    while let Some(v) = todo.pop() {
        match v {
            Value::String(s) => reject_nul(field, s)?,
            Value::Array(a) => todo.extend(a),
            Value::Object(o) => {
                for (k, v) in o {
                    reject_nul(field, k)?;
                    todo.push(v);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn validate_categories(field: &str, categories: &[String]) -> Result<()> {
    if categories.len() > MAX_CATEGORIES {
        return Err(invalid(
            field,
            format!("at most {MAX_CATEGORIES} categories allowed"),
        ));
    }
    for (i, c) in categories.iter().enumerate() {
        validate_id(&format!("{field}[{i}]"), c)?;
    }
    Ok(())
}

/// A feedback type: an id of at most 64 bytes.
pub fn validate_type(field: &str, t: &str) -> Result<()> {
    validate_id(field, t)?;
    if t.len() > MAX_TYPE_BYTES {
        return Err(invalid(
            field,
            format!("must be at most {MAX_TYPE_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The free-text and list fields an item and a patch share; `prefix` locates them in a batch.
pub fn validate_item_fields(
    prefix: &str,
    categories: Option<&[String]>,
    labels: Option<&Value>,
    title: Option<&str>,
    description: Option<&str>,
) -> Result<()> {
    if let Some(c) = categories {
        validate_categories(&format!("{prefix}categories"), c)?;
    }
    if let Some(l) = labels {
        validate_labels(&format!("{prefix}labels"), l)?;
    }
    if let Some(t) = title {
        validate_text(&format!("{prefix}title"), t, MAX_TITLE_BYTES)?;
    }
    if let Some(d) = description {
        validate_text(&format!("{prefix}description"), d, MAX_DESCRIPTION_BYTES)?;
    }
    Ok(())
}

pub fn empty_object() -> Value {
    json!({})
}

/// An item as sent by a client: only `id` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    id: String,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default = "empty_object")]
    labels: Value,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    hidden: bool,
}

impl ItemInput {
    /// Checks every field; `prefix` locates the item in a batch (`[3].`).
    pub fn validate(self, prefix: &str) -> Result<Item> {
        validate_id(&format!("{prefix}id"), &self.id)?;
        validate_item_fields(
            prefix,
            Some(&self.categories),
            Some(&self.labels),
            Some(&self.title),
            Some(&self.description),
        )?;
        Ok(Item {
            id: self.id,
            categories: self.categories,
            labels: self.labels,
            title: self.title,
            description: self.description,
            timestamp: self.timestamp.unwrap_or_else(Utc::now),
            hidden: self.hidden,
        })
    }
}

/// A user as sent by a client: only `id` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    id: String,
    #[serde(default = "empty_object")]
    labels: Value,
}

impl UserInput {
    /// Checks every field; the user is created now.
    pub fn validate(self, prefix: &str) -> Result<User> {
        validate_id(&format!("{prefix}id"), &self.id)?;
        validate_labels(&format!("{prefix}labels"), &self.labels)?;
        Ok(User {
            id: self.id,
            labels: self.labels,
            created_at: Utc::now(),
        })
    }
}

/// One feedback event as sent by a client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    user_id: String,
    item_id: String,
    #[serde(rename = "type")]
    feedback_type: String,
    #[serde(default = "one")]
    value: f64,
    timestamp: Option<DateTime<Utc>>,
}

fn one() -> f64 {
    1.0
}

impl FeedbackInput {
    /// Checks every field; a timestamp may be at most `latest` (now plus the allowed skew).
    pub fn validate(self, prefix: &str, latest: DateTime<Utc>) -> Result<Feedback> {
        validate_id(&format!("{prefix}user_id"), &self.user_id)?;
        validate_id(&format!("{prefix}item_id"), &self.item_id)?;
        validate_type(&format!("{prefix}type"), &self.feedback_type)?;
        if !self.value.is_finite() {
            return Err(invalid(
                &format!("{prefix}value"),
                "must be a finite number",
            ));
        }
        if let Some(t) = self.timestamp
            && t > latest
        {
            return Err(invalid(
                &format!("{prefix}timestamp"),
                format!(
                    "must not be later than now plus feedback.max_future_skew ({})",
                    latest.to_rfc3339()
                ),
            ));
        }
        Ok(Feedback {
            user_id: self.user_id,
            item_id: self.item_id,
            feedback_type: self.feedback_type,
            value: self.value,
            timestamp: self.timestamp.unwrap_or_else(Utc::now),
        })
    }
}

/// The latest feedback time accepted now: now plus `max_future_skew` seconds.
pub fn latest_feedback_time(max_future_skew: f64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds((max_future_skew * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("id", "ok-1 'or 1=1; DROP TABLE items;--").is_ok());
        assert!(validate_id("id", "").is_err());
        assert!(validate_id("id", &"x".repeat(257)).is_err());
        assert!(validate_id("id", &"x".repeat(256)).is_ok());
        assert_eq!(validate_id("[2].id", "a\nb").unwrap_err().field, "[2].id");
    }
}
