//! The engine's mutable state: items, users' interaction sets and popularity counts, keyed by
//! compact integer indices so that histories stay small. What each row means comes from the
//! [`FeedbackPolicy`]: only positive rows count as popularity and as "liked".
//!
//! What a request reads is shared, not borrowed: the catalogue is an `Arc<Items>` and each
//! user's history an `Arc<UserHistory>`, both changed copy-on-write, so a request clones two
//! `Arc`s under the lock ([`State::items`], [`State::user_history`]) and scores without it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::items::{ItemMeta, Items};
use crate::policy::{FeedbackPolicy, Signal};
use crate::store::{Feedback, Item};

/// One feedback row of a user on an item: its type and what it means.
#[derive(Debug, Clone)]
pub struct Mark {
    pub feedback_type: Arc<str>,
    pub signal: Signal,
}

/// One user's interactions: item index → the feedback rows recorded for it.
pub type UserHistory = HashMap<u32, Vec<Mark>>;

/// Whether a history entry makes the item one the user liked: some row is positive and none is
/// negative (the policy's rule).
pub fn liked(marks: &[Mark]) -> bool {
    marks
        .iter()
        .any(|m| matches!(m.signal, Signal::Positive(_)))
        && !marks.iter().any(|m| m.signal == Signal::Negative)
}

#[derive(Default)]
struct UserEntry {
    history: Arc<UserHistory>,
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
    /// Counts changed since the last ranking.
    dirty: AtomicBool,
}

/// What the ranking is computed from: (index, popularity, timestamp, id) of live items.
pub type RankingInputs = Vec<(u32, f64, i64, Arc<str>)>;

fn is_positive(signal: Signal) -> bool {
    matches!(signal, Signal::Positive(_))
}

impl State {
    pub fn new(policy: FeedbackPolicy) -> Self {
        Self {
            policy,
            item_index: HashMap::new(),
            items: Arc::default(),
            popularity: Vec::new(),
            user_index: HashMap::new(),
            users: Vec::new(),
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
            categories: Box::new([]),
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

    pub fn upsert_item(&mut self, item: &Item) {
        let ts = item.timestamp.timestamp_millis();
        let idx = self.item_idx(&item.id, ts);
        let meta = self.items_mut().get_mut(idx);
        meta.categories = item
            .categories
            .iter()
            .map(|c| Arc::from(c.as_str()))
            .collect();
        meta.hidden = item.hidden;
        meta.deleted = false;
        meta.timestamp_ms = ts;
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub fn delete_item(&mut self, id: &str) {
        let Some(&idx) = self.item_index.get(id) else {
            return;
        };
        let meta = self.items_mut().get_mut(idx);
        meta.deleted = true;
        meta.categories = Box::new([]);
        self.popularity[idx as usize] = 0.0;
        // Its feedback was deleted with it (cascade).
        for user in &mut self.users {
            if user.history.contains_key(&idx) {
                Arc::make_mut(&mut user.history).remove(&idx);
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
        for (item, marks) in user.history.iter() {
            let positives = marks.iter().filter(|m| is_positive(m.signal)).count();
            self.popularity[*item as usize] -= positives as f64;
        }
        self.users[idx as usize].deleted = true;
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub fn add_feedback(&mut self, f: &Feedback) {
        let u = self.user_idx(&f.user_id) as usize;
        let i = self.item_idx(&f.item_id, chrono::Utc::now().timestamp_millis());
        if self.items.get(i).is_some_and(|m| m.deleted) {
            self.items_mut().get_mut(i).deleted = false;
        }
        self.users[u].generation += 1;
        let signal = self.policy.signal(&f.feedback_type, f.value);
        let marks = Arc::make_mut(&mut self.users[u].history)
            .entry(i)
            .or_default();
        // The same key again updates its value: a rating may cross the threshold either way.
        let before = match marks
            .iter_mut()
            .find(|m| *m.feedback_type == *f.feedback_type)
        {
            Some(mark) => std::mem::replace(&mut mark.signal, signal),
            None => {
                // Exactly one more: most entries hold one row, and a Vec's first push would
                // otherwise reserve four (a history is most of the serving state's memory).
                marks.reserve_exact(1);
                marks.push(Mark {
                    feedback_type: Arc::from(f.feedback_type.as_str()),
                    signal,
                });
                Signal::Seen
            }
        };
        let change = is_positive(signal) as i8 - is_positive(before) as i8;
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
        self.users[u as usize].generation += 1;
        let entry = &mut self.users[u as usize];
        if !entry.history.contains_key(&i) {
            return;
        }
        let history = Arc::make_mut(&mut entry.history);
        let Some(marks) = history.get_mut(&i) else {
            return;
        };
        let Some(pos) = marks
            .iter()
            .position(|m| *m.feedback_type == *f.feedback_type)
        else {
            return;
        };
        let removed = marks.remove(pos);
        if marks.is_empty() {
            history.remove(&i);
        }
        if is_positive(removed.signal) {
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

    /// An anonymous session's history from the item ids it touched (unknown ids are skipped).
    /// Every item of a session counts as liked.
    pub fn session_history(&self, item_ids: &[String]) -> UserHistory {
        let mark = Mark {
            feedback_type: Arc::from("session"),
            signal: Signal::Positive(1.0),
        };
        item_ids
            .iter()
            .filter_map(|id| self.item_index.get(id.as_str()))
            .map(|&i| (i, vec![mark.clone()]))
            .collect()
    }

    /// How many times the user's history changed (0 for unknown users).
    pub fn user_generation(&self, id: &str) -> u64 {
        self.user_index
            .get(id)
            .map_or(0, |&u| self.users[u as usize].generation)
    }

    /// The user's history as of now, for a request to read without the lock.
    pub fn user_history(&self, id: &str) -> Option<Arc<UserHistory>> {
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
