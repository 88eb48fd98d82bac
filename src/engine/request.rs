//! What a recommendation request asks for and what an engine answers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::algo::smart::Route;
use crate::kinds::EngineKind;

/// What a recommendation request asks for, already validated.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub n: usize,
    /// Only items in at least one of these categories (empty: any).
    pub categories: &'a [String],
    /// Never these item ids.
    pub exclude: &'a [String],
    /// Only items whose timestamp is at or after this (epoch ms): the item time-to-live.
    pub not_before_ms: Option<i64>,
}

/// An owned [`Query`], for work that moves to another thread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Request {
    pub n: usize,
    pub categories: Vec<String>,
    pub exclude: Vec<String>,
    pub not_before_ms: Option<i64>,
}

impl Request {
    pub fn query(&self) -> Query<'_> {
        Query {
            n: self.n,
            categories: &self.categories,
            exclude: &self.exclude,
            not_before_ms: self.not_before_ms,
        }
    }
}

/// Whom a recommendation is for.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// A user, with their live history.
    User(&'a str),
    /// An anonymous visitor, by the item ids of their session so far.
    Session(&'a [String]),
}

/// One recommended item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scored {
    pub id: Arc<str>,
    pub score: f64,
    pub reason: String,
    /// The id of the item the reason names by its title, so a client can link or localise it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_item: Option<Arc<str>>,
    /// The item fields the request asked for (`fields=`), filled after scoring.
    #[serde(flatten)]
    pub fields: Option<Box<ItemFields>>,
    /// The item's index in the catalogue it was scored on, to find its fields without a lookup.
    #[serde(skip)]
    pub idx: u32,
}

/// Why an item is recommended: the text, and the id of the item it names, if it names one.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub text: String,
    pub item: Option<Arc<str>>,
}

impl From<String> for Reason {
    fn from(text: String) -> Self {
        Reason { text, item: None }
    }
}

impl From<&str> for Reason {
    fn from(text: &str) -> Self {
        text.to_string().into()
    }
}

/// An engine's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The engine that served (`popularity` when the chosen one had no models yet).
    pub engine: EngineKind,
    /// `smart`'s route for this user.
    pub route: Option<Route>,
    pub items: Vec<Scored>,
}

/// The item fields of one recommendation, flattened into it in the response.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ItemFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Box<[Arc<str>]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Labels as JSON text, serialised as they are (no parse per answer).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Labels(pub Arc<RawValue>);

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}
