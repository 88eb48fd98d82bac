//! The `smart` engine: routes by what is known about the user ([`crate::algo::smart::route`]).
//! A newcomer gets trending items (in the requested categories), a short history gets item-to-item
//! and content neighbours of its items (content reaches items nobody has interacted with) or, when
//! training found that better on its validation split, `quality`; an established user gets
//! `quality`.

use std::cell::RefCell;

use super::asked::Asked;
use super::models;
use super::request::Scored;
use crate::algo::accumulate::Accumulator;
use crate::algo::smart::{Route, SHORT_CONTENT_WEIGHT, ShortRoute, route};

thread_local! {
    static SCRATCH: RefCell<(Accumulator, Accumulator)> = RefCell::default();
}

/// `smart` for a user: the route taken and its items. The history's length is its liked items
/// (the policy's positive rule), the same count training sees.
pub fn recommend(asked: &Asked<'_>) -> (Route, Vec<Scored>) {
    let known = asked.liked_below(usize::MAX).count();
    let route = route(known);
    let items = match route {
        Route::NewUser => trending(asked),
        Route::ShortHistory => match asked.snap.short_route {
            ShortRoute::Neighbours => neighbourhood(asked),
            ShortRoute::Blend => models::quality(asked),
        },
        Route::Established => models::quality(asked),
    };
    (route, items)
}

/// Trending: decayed popularity of the snapshot, then live popularity.
fn trending(asked: &Asked<'_>) -> Vec<Scored> {
    let Asked { q, snap, .. } = *asked;
    asked.pick(&[&snap.popular_order], q, |i, meta| {
        let score = snap.popularity.score(i);
        let category = meta
            .categories
            .iter()
            .find(|c| q.categories.iter().any(|w| &***c == w.as_str()));
        let reason = match category {
            Some(c) => format!("trending in {c}").into(),
            None => "trending".into(),
        };
        (f64::from(score), reason)
    })
}

/// Item-to-item and content neighbours of a short history, equally weighted after scaling each
/// to its best score, then trending items.
fn neighbourhood(asked: &Asked<'_>) -> Vec<Scored> {
    let Asked { s, q, snap, .. } = *asked;
    SCRATCH.with(|cell| {
        let (knn, content) = &mut *cell.borrow_mut();
        knn.prepare(snap.n_items);
        content.prepare(snap.n_items);
        for j in asked.liked_trained() {
            knn.add_neighbours(j, &snap.itemknn.neighbours[j as usize]);
            content.add_neighbours(j, &snap.content.neighbours[j as usize]);
        }
        let (knn_max, content_max) = (
            knn.max().max(f32::MIN_POSITIVE),
            content.max().max(f32::MIN_POSITIVE),
        );
        let score = |i: u32| {
            (1.0 - SHORT_CONTENT_WEIGHT) * knn.sum(i) / knn_max
                + SHORT_CONTENT_WEIGHT * content.sum(i) / content_max
        };
        let mut order: Vec<(f32, u32)> = knn
            .touched()
            .iter()
            .copied()
            .chain(
                content
                    .touched()
                    .iter()
                    .copied()
                    .filter(|&i| !knn.contains(i)),
            )
            .map(|i| (score(i), i))
            .collect();
        order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let idx: Vec<u32> = order.iter().map(|x| x.1).collect();
        let picked = asked.pick(&[&idx, &snap.popular_order], q, |i, _| {
            let (k, c) = (knn.sum(i) / knn_max, content.sum(i) / content_max);
            let reason = if k == 0.0 && c == 0.0 {
                "trending".into()
            } else if k >= c {
                s.because_liked(knn.source(i))
            } else {
                s.similar_to(content.source(i))
            };
            (f64::from(score(i)), reason)
        });
        knn.reset();
        content.reset();
        picked
    })
}
