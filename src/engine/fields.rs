//! Item fields returned with each recommendation (`?fields=title,categories,labels,timestamp`),
//! read from the in-memory catalogue: a page renders its list without a database round trip.
//!
//! The fields are added to an answer after the engine (or the answer cache) produced it, so they
//! are always the item's current ones, also for a cached answer.

use std::sync::Arc;

use chrono::DateTime;

use super::items::{ItemMeta, Items, empty_labels};
use super::request::{ItemFields, Scored};

/// Which item fields an answer carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields {
    pub title: bool,
    pub categories: bool,
    pub labels: bool,
    pub timestamp: bool,
}

impl Fields {
    /// The names `fields=` accepts, in the order they are documented.
    pub const NAMES: [&'static str; 4] = ["title", "categories", "labels", "timestamp"];

    /// Adds the field called `name`; `false` when there is no such field.
    pub fn add(&mut self, name: &str) -> bool {
        let flag = match name {
            "title" => &mut self.title,
            "categories" => &mut self.categories,
            "labels" => &mut self.labels,
            "timestamp" => &mut self.timestamp,
            _ => return false,
        };
        *flag = true;
        true
    }

    pub fn any(&self) -> bool {
        *self != Self::default()
    }

    /// The asked fields of one item, each as `GET /api/items/{id}` shows it (an item without a
    /// title has the title `""`, one without labels has `{}`).
    fn of(&self, meta: &ItemMeta) -> ItemFields {
        ItemFields {
            title: self
                .title
                .then(|| meta.title.clone().unwrap_or_else(|| Arc::from(""))),
            categories: self.categories.then(|| meta.categories.clone()),
            labels: self
                .labels
                .then(|| meta.labels.clone().unwrap_or_else(empty_labels)),
            timestamp: self
                .timestamp
                .then(|| DateTime::from_timestamp_millis(meta.timestamp_ms).unwrap_or_default()),
        }
    }
}

/// Fills the asked fields of every answer from `items`, finding each by the index it was scored
/// under. An answer scored on an older catalogue (a cached one, after a reload renumbered items)
/// may find another item there: those are returned for a lookup by id.
pub fn describe(items: &Items, answers: &mut [Scored], which: Fields) -> Vec<usize> {
    let mut stale = Vec::new();
    for (i, s) in answers.iter_mut().enumerate() {
        match items.get(s.idx).filter(|m| m.id == s.id) {
            Some(meta) => s.fields = Some(Box::new(which.of(meta))),
            None => stale.push(i),
        }
    }
    stale
}

/// Fills answer `s` from `meta`, found by id.
pub fn describe_one(s: &mut Scored, meta: Option<&ItemMeta>, which: Fields) {
    s.fields = meta.map(|m| Box::new(which.of(m)));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::items::labels_in_memory;
    use super::super::items::tests::meta;
    use super::*;

    fn answer(items: &Items, idx: u32) -> Scored {
        items.scored(idx, &Default::default(), |_, _| (1.0, "popular".into()))
    }

    /// Each asked field as `GET /api/items/{id}` shows it (an empty title, `{}` labels when the
    /// item has none), nothing that was not asked, and an answer whose index now holds another
    /// item left for a lookup by id.
    #[test]
    fn an_answer_carries_the_asked_fields_of_its_item() {
        let mut items = Items::default();
        items.push(ItemMeta {
            title: Some(Arc::from("Star Wars (1977)")),
            categories: Box::new([Arc::from("Sci-Fi")]),
            labels: labels_in_memory(&json!({ "year": 1977 })),
            ..meta(0)
        });
        items.push(meta(1));
        let mut answers = vec![answer(&items, 0), answer(&items, 1)];
        let mut which = Fields::default();
        assert!(which.add("title") && which.add("labels") && which.add("categories"));
        assert!(!which.add("description"), "not held in memory");
        assert!(describe(&items, &mut answers, which).is_empty());
        let json = serde_json::to_value(&answers).unwrap();
        assert_eq!(json[0]["title"], "Star Wars (1977)");
        assert_eq!(json[0]["labels"], json!({ "year": 1977 }));
        assert_eq!(json[0]["categories"], json!(["Sci-Fi"]));
        assert_eq!(json[1]["title"], "");
        assert_eq!(json[1]["labels"], json!({}));
        assert!(json[0].get("timestamp").is_none(), "not asked: {json}");

        let mut renumbered = Items::default();
        renumbered.push(meta(1));
        let mut cached = vec![answer(&items, 0), answer(&items, 1)];
        assert_eq!(describe(&renumbered, &mut cached, which), vec![0, 1]);
        assert!(labels_in_memory(&json!({})).is_none(), "no allocation");
    }
}
