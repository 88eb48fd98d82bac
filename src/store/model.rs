//! The data model as stored and as returned by the API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Something that can be recommended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    /// Categories such as genres; a recommendation request can filter on them.
    pub categories: Vec<String>,
    /// Free-form properties (a JSON object).
    pub labels: Value,
    pub title: String,
    pub description: String,
    /// Publication time; "latest" ranks by it.
    pub timestamp: DateTime<Utc>,
    /// Hidden items are never recommended.
    pub hidden: bool,
}

/// Fields of an item to change; absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    pub categories: Option<Vec<String>>,
    pub labels: Option<Value>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    pub hidden: Option<bool>,
}

/// Someone recommendations are made for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    /// Free-form properties (a JSON object).
    pub labels: Value,
    pub created_at: DateTime<Utc>,
}

/// Fields of a user to change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub labels: Option<Value>,
}

/// One interaction. The key is (user, item, type): sending the same key again updates its value
/// and timestamp rather than adding a row, so repeated views do not inflate the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub user_id: String,
    pub item_id: String,
    #[serde(rename = "type")]
    pub feedback_type: String,
    pub value: f64,
    pub timestamp: DateTime<Utc>,
}

/// Which side of a feedback row a listing is keyed by.
#[derive(Debug, Clone, Copy)]
pub enum FeedbackOf {
    User,
    Item,
}

/// The identity of a feedback row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedbackKey<'a> {
    pub user_id: &'a str,
    pub item_id: &'a str,
    pub feedback_type: &'a str,
}

impl Feedback {
    pub fn key(&self) -> FeedbackKey<'_> {
        FeedbackKey {
            user_id: &self.user_id,
            item_id: &self.item_id,
            feedback_type: &self.feedback_type,
        }
    }
}

pub(super) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
