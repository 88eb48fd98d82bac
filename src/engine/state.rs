//! The engine's mutable state: items, users' interaction sets and popularity counts, keyed by
//! compact integer indices so that histories stay small. What each row means comes from the
//! [`FeedbackPolicy`]: only positive rows count as popularity and as "liked".
//!
//! What a request reads is shared, not borrowed: the catalogue is an `Arc<Items>` (changed
//! copy-on-write) and each user's history a [`History`] (compact rows in an `Arc`, replaced by the
//! next on each write), so a request clones two `Arc`s under the lock ([`State::items`],
//! [`State::user_history`]) and scores without it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::history::{Class, History, MAX_TYPES, Row};
use super::items::{ItemMeta, Items};
use super::request::Labels;
use crate::policy::FeedbackPolicy;
use crate::store::{Feedback, Item};

#[derive(Default)]
struct UserEntry {
    history: History,
    deleted: bool,
    /// Bumped by every change to the history, so cached answers can tell they are stale.
    generation: u64,
}

pub struct State {
    policy: FeedbackPolicy,
    item_index: HashMap<Arc<str>, u32>,
    items: Arc<Items>,
    /// Number of positive feedback rows on each item, by index (read by the re-ranker only).
    popularity: Vec<f64>,
    user_index: HashMap<Arc<str>, u32>,
    users: Vec<UserEntry>,
    /// Feedback types by the id a history row holds.
    type_ids: HashMap<Arc<str>, u32>,
    /// Every category name items have held, once, numbered in order of appearance: items share
    /// these `Arc`s (see [`ItemMeta::categories`]), and the first 64 numbers are the bits of
    /// [`ItemMeta::category_bits`].
    category_names: HashMap<Arc<str>, u32>,
    /// Counts changed since the last ranking.
    dirty: AtomicBool,
}

/// What the ranking is computed from: (index, popularity, timestamp, id) of live items.
pub type RankingInputs = Vec<(u32, f64, i64, Arc<str>)>;

/// The type of an anonymous session's rows.
const SESSION: &str = "session";

impl State {
    pub fn new(policy: FeedbackPolicy) -> Self {
        Self {
            policy,
            item_index: HashMap::new(),
            items: Arc::default(),
            popularity: Vec::new(),
            user_index: HashMap::new(),
            users: Vec::new(),
            type_ids: HashMap::from([(Arc::from(SESSION), 0)]),
            category_names: HashMap::new(),
            dirty: AtomicBool::new(true),
        }
    }

    /// An empty state whose item index starts with `ids`, in order (a snapshot's index space).
    /// They count as deleted until the store or a change says they exist.
    pub fn with_item_order(policy: FeedbackPolicy, ids: &[Arc<str>]) -> Self {
        let mut s = Self::new(policy);
        for id in ids {
            if s.item_index.contains_key(id) {
                continue;
            }
            let idx = s.item_idx(id, 0);
            s.items_mut().get_mut(idx).deleted = true;
        }
        s
    }

    pub fn policy(&self) -> &FeedbackPolicy {
        &self.policy
    }

    pub fn dirty(&self) -> bool {
        self.dirty.load(Ordering::Relaxed)
    }

    /// The catalogue for a change (copy-on-write: requests keep reading the one they took).
    fn items_mut(&mut self) -> &mut Items {
        Arc::make_mut(&mut self.items)
    }

    fn item_idx(&mut self, id: &str, timestamp_ms: i64) -> u32 {
        if let Some(idx) = self.item_index.get(id) {
            return *idx;
        }
        let id: Arc<str> = Arc::from(id);
        let idx = self.items_mut().push(ItemMeta {
            id: id.clone(),
            title: None,
            categories: Box::new([]),
            labels: None,
            category_bits: Some(0),
            hidden: false,
            deleted: false,
            timestamp_ms,
        });
        self.popularity.push(0.0);
        self.item_index.insert(id, idx);
        idx
    }

    fn user_idx(&mut self, id: &str) -> u32 {
        if let Some(idx) = self.user_index.get(id) {
            let idx = *idx;
            self.users[idx as usize].deleted = false;
            return idx;
        }
        let idx = self.users.len() as u32;
        self.users.push(UserEntry::default());
        self.user_index.insert(Arc::from(id), idx);
        idx
    }

    /// Applies an item; `labels` are its labels as held in memory (`items::labels_in_memory`,
    /// prepared by the caller outside the state's lock).
    pub fn upsert_item(&mut self, item: &Item, labels: Option<Labels>) {
        let ts = item.timestamp.timestamp_millis();
        let idx = self.item_idx(&item.id, ts);
        let mut bits = Some(0u64);
        let categories = item
            .categories
            .iter()
            .map(|c| {
                let (name, number) = self.category_name(c);
                let bit = 1u64.checked_shl(number);
                bits = bits
                    .zip(bit)
                    .and_then(|(b, bit)| (b & bit == 0).then_some(b | bit));
                name
            })
            .collect();
        let title = (!item.title.is_empty()).then(|| Arc::from(item.title.as_str()));
        let meta = self.items_mut().get_mut(idx);
        meta.title = title;
        meta.labels = labels;
        meta.categories = categories;
        meta.category_bits = bits;
        meta.hidden = item.hidden;
        meta.deleted = false;
        meta.timestamp_ms = ts;
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// The shared `Arc` of a category name, and its number.
    fn category_name(&mut self, name: &str) -> (Arc<str>, u32) {
        if let Some((shared, &number)) = self.category_names.get_key_value(name) {
            return (shared.clone(), number);
        }
        let (shared, number): (Arc<str>, u32) = (Arc::from(name), self.category_names.len() as u32);
        self.category_names.insert(shared.clone(), number);
        (shared, number)
    }

    pub fn delete_item(&mut self, id: &str) {
        let Some(&idx) = self.item_index.get(id) else {
            return;
        };
        let meta = self.items_mut().get_mut(idx);
        meta.deleted = true;
        meta.title = None;
        meta.labels = None;
        meta.categories = Box::new([]);
        meta.category_bits = Some(0);
        self.popularity[idx as usize] = 0.0;
        // Its feedback was deleted with it (cascade).
        for user in &mut self.users {
            if let Some(next) = user.history.without_item(idx) {
                user.history = next;
            }
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub fn ensure_user(&mut self, id: &str) {
        self.user_idx(id);
    }

    pub fn delete_user(&mut self, id: &str) {
        let Some(&idx) = self.user_index.get(id) else {
            return;
        };
        let user = std::mem::take(&mut self.users[idx as usize]);
        self.users[idx as usize].generation = user.generation + 1;
        for row in user.history.all() {
            if row.class() == Class::Positive {
                self.popularity[row.item() as usize] -= 1.0;
            }
        }
        self.users[idx as usize].deleted = true;
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// The id of a feedback type in history rows, interned on first use.
    fn type_id(&mut self, feedback_type: &str) -> u32 {
        if let Some(&id) = self.type_ids.get(feedback_type) {
            return id;
        }
        // Types are short validated names; past the packing's range (a billion distinct types)
        // they would share the last id, which only merges their rows.
        let id = (self.type_ids.len() as u32).min(MAX_TYPES);
        self.type_ids.insert(Arc::from(feedback_type), id);
        id
    }

    /// Every feedback type's name, by the id history rows hold.
    pub fn type_names(&self) -> Vec<Arc<str>> {
        let mut names = vec![Arc::from(""); self.type_ids.len()];
        for (name, &id) in &self.type_ids {
            if let Some(slot) = names.get_mut(id as usize) {
                *slot = name.clone();
            }
        }
        names
    }

    pub fn add_feedback(&mut self, f: &Feedback) {
        let u = self.user_idx(&f.user_id) as usize;
        let i = self.item_idx(&f.item_id, chrono::Utc::now().timestamp_millis());
        if self.items.get(i).is_some_and(|m| m.deleted) {
            self.items_mut().get_mut(i).deleted = false;
        }
        let class = Class::from(self.policy.signal(&f.feedback_type, f.value));
        let row = Row::new(
            i,
            self.type_id(&f.feedback_type),
            class,
            Row::time_of(f.timestamp),
        );
        let user = &mut self.users[u];
        user.generation += 1;
        // The same key again updates its class: a rating may cross the threshold either way.
        let (next, before) = user.history.with(row);
        user.history = next;
        let positive = |c: Option<Class>| (c == Some(Class::Positive)) as i8;
        let change = positive(Some(class)) - positive(before);
        if change != 0 {
            self.popularity[i as usize] += f64::from(change);
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    pub fn remove_feedback(&mut self, f: &Feedback) {
        let (Some(&u), Some(&i)) = (
            self.user_index.get(f.user_id.as_str()),
            self.item_index.get(f.item_id.as_str()),
        ) else {
            return;
        };
        let entry = &mut self.users[u as usize];
        entry.generation += 1;
        let Some(&type_id) = self.type_ids.get(f.feedback_type.as_str()) else {
            return;
        };
        let Some((next, removed)) = entry.history.without(i, type_id) else {
            return;
        };
        entry.history = next;
        if removed == Class::Positive {
            self.popularity[i as usize] -= 1.0;
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    pub fn item_index(&self) -> &HashMap<Arc<str>, u32> {
        &self.item_index
    }

    /// The catalogue as of now, for a request to read without the lock.
    pub fn items(&self) -> Arc<Items> {
        self.items.clone()
    }

    pub fn has_user(&self, id: &str) -> bool {
        self.user_index
            .get(id)
            .is_some_and(|&u| !self.users[u as usize].deleted)
    }

    pub fn has_item(&self, id: &str) -> bool {
        self.item_index
            .get(id)
            .is_some_and(|&i| self.items.get(i).is_some_and(|m| !m.deleted))
    }

    /// An anonymous session's history from the item ids it touched, oldest first (unknown ids
    /// are skipped). Every item of a session counts as liked; its position is its time.
    pub fn session_history(&self, item_ids: &[String]) -> History {
        let rows = (0..)
            .zip(item_ids)
            .filter_map(|(at, id)| Some((at, *self.item_index.get(id.as_str())?)))
            .map(|(at, i)| Row::new(i, self.type_ids[SESSION], Class::Positive, at))
            .collect();
        History::from_rows(rows)
    }

    /// How many times the user's history changed (0 for unknown users).
    pub fn user_generation(&self, id: &str) -> u64 {
        self.user_index
            .get(id)
            .map_or(0, |&u| self.users[u as usize].generation)
    }

    /// The user's history as of now, for a request to read without the lock.
    pub fn user_history(&self, id: &str) -> Option<History> {
        self.user_index
            .get(id)
            .map(|&u| self.users[u as usize].history.clone())
    }

    pub fn ranking_inputs(&self) -> RankingInputs {
        self.dirty.store(false, Ordering::Relaxed);
        self.items
            .iter()
            .zip(&self.popularity)
            .enumerate()
            .filter(|(_, (m, _))| !m.deleted)
            .map(|(i, (m, &p))| (i as u32, p, m.timestamp_ms, m.id.clone()))
            .collect()
    }
}
