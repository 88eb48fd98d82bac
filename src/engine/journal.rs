//! A change to the live state, as writers apply it and as the reload journal records it (a
//! reload replays the changes applied while it read the store onto the state it read).

use super::request::Labels;
use super::state::State;
use crate::store::{Feedback, Item};

/// A change to the state, as recorded in the reload journal.
pub(super) enum Change {
    /// An item and its labels as held in memory (prepared before the lock is taken).
    Upsert(Item, Option<Labels>),
    DeleteItem(String),
    EnsureUser(String),
    DeleteUser(String),
    AddFeedback(Feedback),
    RemoveFeedback(Feedback),
}

impl Change {
    pub(super) fn apply(&self, s: &mut State) {
        match self {
            Change::Upsert(item, labels) => s.upsert_item(item, labels.clone()),
            Change::DeleteItem(id) => s.delete_item(id),
            Change::EnsureUser(id) => s.ensure_user(id),
            Change::DeleteUser(id) => s.delete_user(id),
            Change::AddFeedback(f) => s.add_feedback(f),
            Change::RemoveFeedback(f) => s.remove_feedback(f),
        }
    }
}
