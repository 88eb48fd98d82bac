//! The orchestrator's memory: each user's last `auto` answer and the impressions kept for click
//! attribution, both weighed by size ([`BySize`]) so that they are bounded in bytes.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use quick_cache::sync::Cache;

use crate::engine::{EngineKind, Recommendation, Request};

/// A cached answer and what it depends on.
pub struct Cached {
    pub request: Request,
    pub variant: Arc<str>,
    /// (snapshot version, user history generation, catalogue generation) when it was computed.
    pub freshness: (u64, u64, u64),
    pub rec: Recommendation,
    /// What the entry takes in memory, roughly (fixed when it is made).
    pub bytes: u64,
}

impl Cached {
    pub fn new(
        user: &str,
        request: Request,
        variant: Arc<str>,
        freshness: (u64, u64, u64),
        rec: Recommendation,
    ) -> Self {
        let strings = |v: &[String]| v.iter().map(|s| s.len() + 24).sum::<usize>();
        let items: usize = rec
            .items
            .iter()
            .map(|i| std::mem::size_of::<crate::engine::Scored>() + i.reason.len())
            .sum();
        let bytes =
            192 + user.len() + strings(&request.categories) + strings(&request.exclude) + items;
        Self {
            request,
            variant,
            freshness,
            rec,
            bytes: bytes as u64,
        }
    }
}

/// The items last recommended to a user, for click attribution.
pub struct Impression {
    pub variant: Arc<str>,
    pub engine: EngineKind,
    pub at: Instant,
    /// Items not clicked yet (a click counts once).
    pub items: Mutex<Vec<Arc<str>>>,
    /// What the entry takes in memory, roughly (fixed when it is made).
    pub bytes: u64,
}

/// Each user's last `auto` answer, weighed by size.
pub type AnswerCache = Cache<Arc<str>, Arc<Cached>, BySize>;

/// Weighs cache entries by their size, so a cache is bounded in bytes; each weighs at least
/// `floor` (the byte budget over the entry budget), so it is bounded in entries too.
#[derive(Clone)]
pub struct BySize {
    floor: u64,
}

impl BySize {
    pub fn new(bytes: u64, entries: usize) -> Self {
        Self {
            floor: bytes / entries.max(1) as u64,
        }
    }
}

impl quick_cache::Weighter<Arc<str>, Arc<Cached>> for BySize {
    fn weight(&self, key: &Arc<str>, val: &Arc<Cached>) -> u64 {
        (key.len() as u64 + val.bytes).max(self.floor)
    }
}

impl quick_cache::Weighter<Arc<str>, Arc<Impression>> for BySize {
    fn weight(&self, key: &Arc<str>, val: &Arc<Impression>) -> u64 {
        (key.len() as u64 + val.bytes).max(self.floor)
    }
}
