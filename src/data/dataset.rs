//! A whole data set in memory (items, users, feedback) and writing it to the store in batches.
//! Produced by the demo generator and the MovieLens importer.

use indicatif::ProgressBar;

use crate::store::{self, Feedback, Item, Store, User};

/// Rows per transaction when writing a data set.
const WRITE_BATCH: usize = 10_000;

#[derive(Debug, Default, Clone)]
pub struct Dataset {
    pub items: Vec<Item>,
    pub users: Vec<User>,
    pub feedback: Vec<Feedback>,
}

impl Dataset {
    /// Total rows, for progress bars.
    pub fn len(&self) -> usize {
        self.items.len() + self.users.len() + self.feedback.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads everything in the store (one connection per table, streamed).
    pub async fn load(store: &Store) -> Result<Self, store::Error> {
        let mut data = Dataset::default();
        store.for_each_item(|i| data.items.push(i)).await?;
        store.for_each_feedback(|f| data.feedback.push(f)).await?;
        Ok(data)
    }

    /// Writes items, then users, then feedback, each batch in its own transaction.
    pub async fn write(&self, store: &Store) -> Result<(), store::Error> {
        self.write_with_progress(store, &ProgressBar::hidden())
            .await
    }

    pub async fn write_with_progress(
        &self,
        store: &Store,
        progress: &ProgressBar,
    ) -> Result<(), store::Error> {
        for chunk in self.items.chunks(WRITE_BATCH) {
            store.upsert_items(chunk).await?;
            progress.inc(chunk.len() as u64);
        }
        for chunk in self.users.chunks(WRITE_BATCH) {
            store.upsert_users(chunk).await?;
            progress.inc(chunk.len() as u64);
        }
        for chunk in self.feedback.chunks(WRITE_BATCH) {
            store.insert_feedback(chunk, false).await?;
            progress.inc(chunk.len() as u64);
        }
        Ok(())
    }
}
