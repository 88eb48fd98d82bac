//! What an operator sees of one user in the dashboard's "look at a user" panel: their newest
//! history rows with each item's title and categories, from memory.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::history::{Class, History};
use super::items::Items;

/// One row of a user's history, newest first in [`recent`].
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub item_id: Arc<str>,
    pub title: Option<Arc<str>>,
    pub categories: Box<[Arc<str>]>,
    /// The feedback type (`like`, `view`, ...).
    #[serde(rename = "type")]
    pub feedback_type: Arc<str>,
    /// What the feedback policy made of it: `positive`, `negative` or `seen`.
    pub class: &'static str,
    pub timestamp: DateTime<Utc>,
}

/// The `limit` newest rows of `history`; `type_names` holds each type id's name.
pub fn recent(
    items: &Items,
    history: &History,
    type_names: &[Arc<str>],
    limit: usize,
) -> Vec<HistoryEntry> {
    let newest_first = |r: &super::history::Row| std::cmp::Reverse(r.time());
    let mut rows: Vec<_> = history.all().to_vec();
    // The newest `limit` in linear time, then sorted: a long history is not sorted whole.
    if rows.len() > limit {
        rows.select_nth_unstable_by_key(limit, newest_first);
        rows.truncate(limit);
    }
    rows.sort_unstable_by_key(newest_first);
    rows.into_iter()
        .filter_map(|r| {
            let meta = items.get(r.item())?;
            Some(HistoryEntry {
                item_id: meta.id.clone(),
                title: meta.title.clone(),
                categories: meta.categories.clone(),
                feedback_type: type_names
                    .get(r.type_id() as usize)
                    .cloned()
                    .unwrap_or_else(|| Arc::from("?")),
                class: match r.class() {
                    Class::Positive => "positive",
                    Class::Negative => "negative",
                    Class::Seen => "seen",
                },
                timestamp: DateTime::from_timestamp(i64::from(r.time()), 0).unwrap_or_default(),
            })
        })
        .collect()
}
