//! [`Items`]: the catalogue's filterable fields (and those an answer can carry: title, labels) as
//! an immutable value a request reads without any lock, and the filter walk every list ends with
//! ([`Items::pick`]).
//!
//! The state holds the current `Arc<Items>`; a request clones the `Arc` under the state's read
//! lock and scores on it after releasing the lock, so a long request never holds up the writer and
//! a waiting writer never holds up reads. A writer changes items copy-on-write: the catalogue is
//! split into fixed chunks behind their own `Arc`s, so a change while requests hold the old value
//! copies one chunk (1,024 entries) and the chunk table, not the catalogue. (A persistent-vector
//! crate such as `im` would do this too; we need only indexed get, set and push.)

use std::collections::HashSet;

use foldhash::fast::RandomState;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::request::{Labels, Query, Reason, Scored};

/// Entries per chunk: a change copies at most this many while requests hold the old catalogue.
const CHUNK: usize = 1024;

/// The fields of an item that filtering and ranking need.
#[derive(Debug, Clone)]
pub struct ItemMeta {
    pub id: Arc<str>,
    /// What a reason calls the item ("because you liked <title>"); `None`: its id.
    pub title: Option<Arc<str>>,
    /// Shared names: the state keeps one `Arc` per name (one allocation per name, not per item).
    pub categories: Box<[Arc<str>]>,
    /// Returned with an answer that asks for them (`fields=labels`); `None`: no labels.
    pub labels: Option<Labels>,
    /// The categories as a bit set over the catalogue's numbering of names (the first 64 names
    /// it met), unless one is numbered beyond them or listed twice: `quality`'s diversity
    /// compares items by these without numbering names per request.
    pub category_bits: Option<u64>,
    pub hidden: bool,
    /// Deleted items keep their index (a re-created id reuses it) but are never recommended.
    pub deleted: bool,
    pub timestamp_ms: i64,
}

/// An item's labels as held in memory: their JSON text, `None` for no labels (`{}`), so an item
/// without labels costs no allocation.
pub fn labels_in_memory(labels: &serde_json::Value) -> Option<Labels> {
    let empty = labels.is_null() || labels.as_object().is_some_and(|m| m.is_empty());
    (!empty).then(|| {
        Labels(Arc::from(
            serde_json::value::to_raw_value(labels).expect("a JSON value serialises"),
        ))
    })
}

pub fn empty_labels() -> Labels {
    Labels(Arc::from(
        RawValue::from_string("{}".into()).expect("valid JSON"),
    ))
}

/// Every item's [`ItemMeta`] by compact index, shared copy-on-write in chunks.
#[derive(Debug, Clone, Default)]
pub struct Items {
    chunks: Vec<Arc<Vec<ItemMeta>>>,
    len: usize,
}

impl Items {
    pub fn get(&self, idx: u32) -> Option<&ItemMeta> {
        let idx = idx as usize;
        self.chunks.get(idx / CHUNK)?.get(idx % CHUNK)
    }

    /// The entry at `idx` for a change, copying its chunk if a request still reads it.
    ///
    /// Panics when `idx` is out of range: indices come from the state's own item index.
    pub fn get_mut(&mut self, idx: u32) -> &mut ItemMeta {
        let idx = idx as usize;
        &mut Arc::make_mut(&mut self.chunks[idx / CHUNK])[idx % CHUNK]
    }

    /// Appends an item and returns its index.
    pub fn push(&mut self, meta: ItemMeta) -> u32 {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
        }
        let last = self.chunks.last_mut().expect("a chunk with room");
        Arc::make_mut(last).push(meta);
        self.len += 1;
        (self.len - 1) as u32
    }

    pub fn iter(&self) -> impl Iterator<Item = &ItemMeta> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    pub fn item_id(&self, idx: u32) -> &str {
        self.get(idx).map(|m| &*m.id).unwrap_or("")
    }

    /// What a reason calls item `idx`: its title, or its id when it has none.
    pub fn item_name(&self, idx: u32) -> &str {
        let meta = self.get(idx);
        meta.and_then(|m| m.title.as_deref())
            .unwrap_or_else(|| self.item_id(idx))
    }

    /// "because you liked <item `j`>", naming item `j`.
    pub fn because_liked(&self, j: u32) -> Reason {
        self.naming(j, "because you liked")
    }

    /// "similar to <item `j`>", naming item `j`.
    pub fn similar_to(&self, j: u32) -> Reason {
        self.naming(j, "similar to")
    }

    fn naming(&self, j: u32, words: &str) -> Reason {
        Reason {
            text: format!("{words} {}", self.item_name(j)),
            item: self.get(j).map(|m| m.id.clone()),
        }
    }

    pub fn item_categories(&self, idx: u32) -> &[Arc<str>] {
        self.get(idx).map(|m| &*m.categories).unwrap_or(&[])
    }

    /// Walks `order` and keeps the first `q.n` items that pass every filter, scored by `score`.
    pub fn pick(
        &self,
        order: impl IntoIterator<Item = u32>,
        q: &Query<'_>,
        seen: impl Fn(u32) -> bool,
        score: impl Fn(u32, &ItemMeta) -> (f64, Reason),
    ) -> Vec<Scored> {
        self.pick_indices(order, q, seen)
            .into_iter()
            .map(|i| self.scored(i, q, &score))
            .collect()
    }

    /// The indices of the first `q.n` entries of `order` that pass every filter. The walk is
    /// bounded by `order` (at most the catalogue, each entry looked at once), and each look costs
    /// a few hash lookups whatever the lengths of the request's lists.
    pub fn pick_indices(
        &self,
        order: impl IntoIterator<Item = u32>,
        q: &Query<'_>,
        seen: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        let filter = Filter::new(q);
        let mut out = Vec::with_capacity(q.n.min(self.len));
        for idx in order {
            if out.len() >= q.n {
                break;
            }
            let Some(meta) = self.get(idx) else {
                continue;
            };
            if meta.deleted || meta.hidden || seen(idx) || !filter.matches(meta) {
                continue;
            }
            out.push(idx);
        }
        out
    }

    /// Item `idx` as an answer, scored and explained by `score` ("popular" names the category
    /// when the request asked for one).
    pub fn scored(
        &self,
        idx: u32,
        q: &Query<'_>,
        score: impl Fn(u32, &ItemMeta) -> (f64, Reason),
    ) -> Scored {
        let meta = self.get(idx).expect("an index from this catalogue");
        let (score, Reason { text, item }) = score(idx, meta);
        let reason = if q.categories.len() == 1 && text == "popular" {
            format!("popular in {}", q.categories[0])
        } else {
            text
        };
        Scored {
            id: meta.id.clone(),
            score,
            reason,
            reason_item: item,
            fields: None,
            idx,
        }
    }
}

/// A request's time-to-live, category and exclusion filters, with the lists as hash sets.
struct Filter<'a> {
    not_before_ms: Option<i64>,
    // foldhash, randomly seeded per set, as hashbrown's default: these sets live for one request.
    categories: HashSet<&'a str, RandomState>,
    exclude: HashSet<&'a str, RandomState>,
}

impl<'a> Filter<'a> {
    fn new(q: &Query<'a>) -> Self {
        Self {
            not_before_ms: q.not_before_ms,
            categories: q.categories.iter().map(String::as_str).collect(),
            exclude: q.exclude.iter().map(String::as_str).collect(),
        }
    }

    fn matches(&self, meta: &ItemMeta) -> bool {
        if self.not_before_ms.is_some_and(|t| meta.timestamp_ms < t) {
            return false;
        }
        if !self.categories.is_empty()
            && !meta
                .categories
                .iter()
                .any(|c| self.categories.contains(&**c))
        {
            return false;
        }
        !self.exclude.contains(&*meta.id)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn meta(i: usize) -> ItemMeta {
        ItemMeta {
            id: Arc::from(format!("i{i}")),
            title: None,
            categories: Box::new([]),
            labels: None,
            category_bits: Some(0),
            hidden: false,
            deleted: false,
            timestamp_ms: i as i64,
        }
    }

    #[test]
    fn a_change_leaves_a_held_copy_alone_and_copies_one_chunk() {
        let mut items = Items::default();
        for i in 0..3 * CHUNK {
            assert_eq!(items.push(meta(i)), i as u32);
        }
        let held = Arc::new(items.clone());
        items.get_mut(5).hidden = true;
        assert!(items.get(5).unwrap().hidden);
        assert!(
            !held.get(5).unwrap().hidden,
            "the reader's copy is unchanged"
        );
        assert!(
            Arc::ptr_eq(&items.chunks[1], &held.chunks[1]),
            "other chunks shared"
        );
        assert!(!Arc::ptr_eq(&items.chunks[0], &held.chunks[0]));
        assert_eq!(
            items.item_id(3 * CHUNK as u32 - 1),
            format!("i{}", 3 * CHUNK - 1)
        );
        assert!(items.get(3 * CHUNK as u32).is_none());
        assert_eq!(items.iter().count(), 3 * CHUNK);
    }

    /// A reason names an item by its title and links it by its id; without a title, by its id.
    #[test]
    fn a_reason_names_an_item_by_its_title() {
        let mut items = Items::default();
        items.push(meta(0));
        items.push(ItemMeta {
            title: Some(Arc::from("Star Wars (1977)")),
            ..meta(1)
        });
        let titled = items.because_liked(1);
        assert_eq!(titled.text, "because you liked Star Wars (1977)");
        assert_eq!(titled.item.as_deref(), Some("i1"));
        let untitled = items.similar_to(0);
        assert_eq!(untitled.text, "similar to i0");
        assert_eq!(untitled.item.as_deref(), Some("i0"));
    }
}
