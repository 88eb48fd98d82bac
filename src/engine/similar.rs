//! Items like one item: its item-to-item neighbours ("often liked together"), then its content
//! neighbours ("similar content", which also serve items nobody has touched), then popular items of
//! its categories.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::items::Items;
use super::ranking::Ranking;
use super::request::{Query, Scored};
use super::snapshot::Snapshot;

/// Items like item `idx`; `snap` when models are trained.
pub fn similar(
    s: &Items,
    idx: u32,
    snap: Option<&Snapshot>,
    ranking: &Ranking,
    q: &Query<'_>,
) -> Vec<Scored> {
    let mut order: Vec<(u32, f32, &'static str)> = Vec::new();
    if let Some(snap) = snap.filter(|snap| (idx as usize) < snap.n_items) {
        order.extend(
            snap.itemknn.neighbours[idx as usize]
                .iter()
                .map(|&(i, sim)| (i, sim, "often liked together")),
        );
        let listed: HashSet<u32> = order.iter().map(|x| x.0).collect();
        order.extend(
            snap.content.neighbours[idx as usize]
                .iter()
                .filter(|(i, _)| !listed.contains(i))
                .map(|&(i, sim)| (i, sim * 0.5, "similar content")),
        );
    }
    let by_index: HashMap<u32, (f32, &'static str)> =
        order.iter().map(|&(i, sc, r)| (i, (sc, r))).collect();
    // Then popular items sharing a category with it.
    let categories: Vec<Arc<str>> = s.item_categories(idx).to_vec();
    let same_category = ranking.popular.iter().copied().filter(|i| {
        !by_index.contains_key(i) && s.item_categories(*i).iter().any(|c| categories.contains(c))
    });
    s.pick(
        order.iter().map(|x| x.0).chain(same_category),
        q,
        |i| i == idx,
        |i, meta| match by_index.get(&i) {
            Some(&(score, reason)) => (score as f64, reason.into()),
            None => {
                let shared = meta
                    .categories
                    .iter()
                    .find(|c| categories.contains(c))
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                (0.0, format!("popular in {shared}").into())
            }
        },
    )
}
