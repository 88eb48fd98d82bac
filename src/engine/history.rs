//! One user's history as serving holds it: the (item, feedback type) rows they left, sorted by
//! item index, 12 bytes each in one shared allocation.
//!
//! Histories are most of the serving state (a replica holds every user's), so each row packs the
//! item index with the feedback type (an id the state interns) and the row's class under the
//! policy: whether the item was seen, liked or disliked is all a request asks of it, and the
//! training weight comes from the policy again at training time. A history is immutable: a write
//! builds the next one (one copy of the user's rows, at most a few thousand) and swaps it in, so a
//! request reads the one it took without a lock.

use std::sync::Arc;

use crate::policy::Signal;

/// What serving needs of a row's [`Signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Seen = 0,
    Positive = 1,
    Negative = 2,
}

impl From<Signal> for Class {
    fn from(signal: Signal) -> Self {
        match signal {
            Signal::Positive(_) => Class::Positive,
            Signal::Negative => Class::Negative,
            Signal::Seen => Class::Seen,
        }
    }
}

/// One feedback row: the item's index, its type's id and its class packed, and its time (what
/// recency inside a history orders by, `algo::recency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    item: u32,
    /// `type id << 2 | class`.
    mark: u32,
    /// Seconds since the Unix epoch, clamped to `u32` (until 2106; earlier than 1970 is 0).
    time: u32,
}

/// Most distinct feedback types the packing holds (ids are interned per process).
pub const MAX_TYPES: u32 = u32::MAX >> 2;

impl Row {
    pub fn new(item: u32, type_id: u32, class: Class, time: u32) -> Row {
        debug_assert!(type_id <= MAX_TYPES);
        Row {
            item,
            mark: type_id << 2 | class as u32,
            time,
        }
    }

    /// A row's time from a feedback timestamp.
    pub fn time_of(timestamp: chrono::DateTime<chrono::Utc>) -> u32 {
        timestamp.timestamp().clamp(0, i64::from(u32::MAX)) as u32
    }

    pub fn item(&self) -> u32 {
        self.item
    }

    /// Seconds since the Unix epoch.
    pub fn time(&self) -> u32 {
        self.time
    }

    pub fn type_id(&self) -> u32 {
        self.mark >> 2
    }

    pub fn class(&self) -> Class {
        match self.mark & 3 {
            1 => Class::Positive,
            2 => Class::Negative,
            _ => Class::Seen,
        }
    }

    fn key(&self) -> (u32, u32) {
        (self.item, self.type_id())
    }
}

/// Whether an item's rows make it one the user liked: some row is positive and none is negative
/// (the policy's rule).
pub fn liked(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.class() == Class::Positive)
        && !rows.iter().any(|r| r.class() == Class::Negative)
}

/// A user's rows, sorted by (item, type id), each key once.
#[derive(Debug, Clone, Default)]
pub struct History(Arc<[Row]>);

impl History {
    /// The history of `rows`; of rows with the same key, the last counts.
    pub fn from_rows(mut rows: Vec<Row>) -> History {
        // Stable: equal keys keep their order, so the last of each run is the latest.
        rows.sort_by_key(Row::key);
        let mut kept: Vec<Row> = Vec::with_capacity(rows.len());
        for row in rows {
            match kept.last_mut() {
                Some(last) if last.key() == row.key() => *last = row,
                _ => kept.push(row),
            }
        }
        History(kept.into())
    }

    /// The rows on `item`.
    pub fn marks(&self, item: u32) -> &[Row] {
        let start = self.0.partition_point(|r| r.item < item);
        let len = self.0[start..].partition_point(|r| r.item == item);
        &self.0[start..start + len]
    }

    /// Whether the user interacted with `item` in any way.
    pub fn contains(&self, item: u32) -> bool {
        !self.marks(item).is_empty()
    }

    /// Each item with its rows, by ascending index.
    pub fn items(&self) -> impl Iterator<Item = (u32, &[Row])> {
        self.0
            .chunk_by(|a, b| a.item == b.item)
            .map(|r| (r[0].item, r))
    }

    /// The items the user liked, by ascending index.
    pub fn liked(&self) -> impl Iterator<Item = u32> + '_ {
        self.items().filter(|(_, r)| liked(r)).map(|(i, _)| i)
    }

    /// The items the user liked, by ascending index, each with its newest row's time (as training
    /// times a user's item by its newest row).
    pub fn liked_times(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.items()
            .filter(|(_, r)| liked(r))
            .map(|(i, r)| (i, r.iter().map(|r| r.time).max().unwrap_or(0)))
    }

    /// Every row.
    pub fn all(&self) -> &[Row] {
        &self.0
    }

    /// This history with `row` recorded (replacing the row of the same item and type), and the
    /// class that row had before, if any.
    pub fn with(&self, row: Row) -> (History, Option<Class>) {
        let rows = &self.0;
        match rows.binary_search_by_key(&row.key(), Row::key) {
            Ok(at) => {
                let before = rows[at].class();
                let mut next = rows.to_vec();
                next[at] = row;
                (History(next.into()), Some(before))
            }
            Err(at) => {
                let next = rows[..at]
                    .iter()
                    .chain([&row])
                    .chain(&rows[at..])
                    .copied()
                    .collect();
                (History(next), None)
            }
        }
    }

    /// This history without the row of `item` and `type_id`, and that row's class; `None` when
    /// there is no such row.
    pub fn without(&self, item: u32, type_id: u32) -> Option<(History, Class)> {
        let at = self
            .0
            .binary_search_by_key(&(item, type_id), Row::key)
            .ok()?;
        let next = self.0[..at].iter().chain(&self.0[at + 1..]).copied();
        Some((History(next.collect()), self.0[at].class()))
    }

    /// This history without any row of `item`; `None` when it has none.
    pub fn without_item(&self, item: u32) -> Option<History> {
        if !self.contains(item) {
            return None;
        }
        Some(History(
            self.0.iter().filter(|r| r.item != item).copied().collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(h: &History) -> Vec<u32> {
        h.items().map(|(i, _)| i).collect()
    }

    #[test]
    fn rows_stay_sorted_and_unique_per_item_and_type() {
        let h = History::from_rows(vec![
            Row::new(9, 0, Class::Positive, 0),
            Row::new(3, 1, Class::Seen, 0),
            Row::new(9, 0, Class::Seen, 0),
            Row::new(3, 0, Class::Positive, 0),
        ]);
        assert_eq!(h.all().len(), 3, "the repeated key kept once");
        assert_eq!(
            h.marks(9),
            [Row::new(9, 0, Class::Seen, 0)],
            "the later row wins"
        );
        assert_eq!(items(&h), [3, 9]);
        let (h2, before) = h.with(Row::new(5, 2, Class::Negative, 0));
        assert_eq!(before, None);
        assert_eq!(items(&h2), [3, 5, 9]);
        assert_eq!(items(&h), [3, 9], "the old history is unchanged");
        let (h3, before) = h2.with(Row::new(9, 0, Class::Positive, 0));
        assert_eq!(before, Some(Class::Seen));
        assert_eq!(h3.all().len(), 4);
        assert!(h3.contains(5) && !h3.contains(4) && !h3.contains(10));
    }

    #[test]
    fn liked_needs_a_positive_and_no_negative() {
        let h = History::from_rows(vec![
            Row::new(1, 0, Class::Positive, 0),
            Row::new(2, 0, Class::Positive, 0),
            Row::new(2, 1, Class::Negative, 0),
            Row::new(3, 1, Class::Seen, 0),
            Row::new(4, 3, Class::Positive, 0),
            Row::new(4, 1, Class::Seen, 0),
        ]);
        assert_eq!(h.liked().collect::<Vec<_>>(), [1, 4]);
        let (h, class) = h.without(2, 1).unwrap();
        assert_eq!(class, Class::Negative);
        assert_eq!(h.liked().collect::<Vec<_>>(), [1, 2, 4]);
        assert!(h.without(2, 1).is_none(), "already gone");
        let h = h.without_item(4).unwrap();
        assert_eq!(items(&h), [1, 2, 3]);
        assert!(h.without_item(4).is_none());
    }

    #[test]
    fn a_liked_item_is_timed_by_its_newest_row() {
        let h = History::from_rows(vec![
            Row::new(1, 0, Class::Positive, 50),
            Row::new(1, 1, Class::Seen, 70),
            Row::new(2, 0, Class::Positive, 60),
            Row::new(3, 0, Class::Seen, 90),
        ]);
        assert_eq!(h.liked_times().collect::<Vec<_>>(), [(1, 70), (2, 60)]);
        let (h, _) = h.with(Row::new(2, 0, Class::Positive, 80));
        assert_eq!(h.liked_times().collect::<Vec<_>>(), [(1, 70), (2, 80)]);
        let before_1970 = chrono::DateTime::from_timestamp(-5, 0).unwrap();
        assert_eq!(Row::time_of(before_1970), 0);
    }

    #[test]
    fn a_row_is_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Row>(), 12);
        let r = Row::new(7, MAX_TYPES, Class::Negative, 0);
        assert_eq!(
            (r.item(), r.type_id(), r.class()),
            (7, MAX_TYPES, Class::Negative)
        );
    }
}
