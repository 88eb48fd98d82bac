//! The `fast` engine: item-to-item neighbours of the user's items blended with time-decayed
//! popularity, from per-thread dense scratch (no allocation per catalogue item, no hashing).

use std::cell::RefCell;

use super::asked::Asked;
use super::request::Scored;
use crate::algo::accumulate::Sums;
use crate::algo::reasons::{self, Tie};
use crate::algo::{rank_index, rank_key};

/// Weight of normalised, time-decayed popularity in the `fast` blend (neighbours weigh 1).
const FAST_POPULARITY_WEIGHT: f32 = 0.1;
/// History items whose neighbours `fast` gathers (the rest only filter).
pub const MAX_SOURCES: usize = 200;

thread_local! {
    /// The neighbour sums, which items the user has seen (set from the history, cleared after),
    /// and the tables that find the answer's reasons.
    static SCRATCH: RefCell<(Sums, Vec<bool>, reasons::Scratch, Vec<u64>)> = RefCell::default();
}

/// Puts the best `prefix` entries of `order` first, sorted (see [`rank_key`]: higher score first,
/// ties by index), and returns how many are sorted.
fn sorted_prefix(order: &mut [u64], prefix: usize) -> usize {
    if order.len() > prefix {
        order.select_nth_unstable(prefix);
        order[..prefix].sort_unstable();
        prefix
    } else {
        order.sort_unstable();
        order.len()
    }
}

/// `fast`: item-to-item neighbours of the user's liked items, each candidate scored by its summed
/// similarity (normalised to the best candidate) plus a little time-decayed popularity. A user
/// without history gets trending items.
pub fn recommend(asked: &Asked<'_>) -> Vec<Scored> {
    let Asked {
        history, q, snap, ..
    } = *asked;
    let knn = &snap.itemknn;
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (sc, seen, why, keys) = &mut *guard;
        sc.prepare(snap.n_items);
        let sources: Vec<u32> = asked.liked_trained().take(MAX_SOURCES).collect();
        for &j in &sources {
            sc.add_neighbours(&knn.neighbours[j as usize]);
        }
        // Seen items never make the list: leaving them out before sorting keeps the sorted prefix
        // short (it was deepened by the history's length to make up for them).
        let rows = history.map_or(&[][..], |h| h.all());
        let trained_rows = || {
            rows.iter()
                .map(|r| r.item())
                .filter(|&i| (i as usize) < snap.n_items)
        };
        if seen.len() < snap.n_items {
            seen.resize(snap.n_items, false);
        }
        for i in trained_rows() {
            seen[i as usize] = true;
        }
        let seen = &*seen;
        let unseen = |i: u32| !seen[i as usize];
        let best = sc.max().max(f32::MIN_POSITIVE);
        let pop_best = snap
            .popular_order
            .first()
            .map(|&i| snap.popularity.scores[i as usize])
            .unwrap_or(0.0);
        let pop_scale = FAST_POPULARITY_WEIGHT / pop_best.max(f32::MIN_POSITIVE);
        let score = |i: u32| {
            let pop = snap.popularity.score(i) * pop_scale;
            pop + sc.sum(i) / best
        };
        // Candidates: the touched items, and the popularity order's untouched items. The latter
        // come in descending score already (their score is popularity times a constant), so a
        // prefix pass needs only their head: walking and sorting the whole catalogue per request
        // was half the server's CPU under `fast` load (docs/BENCHMARKS.md). Fills `order` with
        // the candidates of a pass `prefix` deep and returns whether they are all there are.
        let candidates = |prefix: usize, order: &mut Vec<u64>| -> bool {
            // Every touched item's key is written and only the unseen ones are kept, without a
            // branch per item (whether an item was seen is a coin toss for the predictor), into
            // a buffer the thread keeps (a fresh one was a 10 KB allocation per request).
            let touched = sc.touched();
            let head = prefix.min(snap.popular_order.len()).saturating_add(1);
            order.clear();
            order.reserve(touched.len() + head);
            order.resize(touched.len(), 0);
            let mut kept = 0;
            for &i in touched {
                order[kept] = rank_key(score(i), i);
                kept += usize::from(unseen(i));
            }
            order.truncate(kept);
            // Only selected here: the prefix is sorted once, with the untouched head.
            let mut cut = order.len() > prefix;
            if cut {
                order.select_nth_unstable(prefix);
                order.truncate(prefix);
            }
            // The untouched head: `prefix` of them and any tied with the last (float rounding can
            // tie distinct popularities, and ties go by index).
            let (mut taken, mut last) = (0, None);
            for i in snap
                .popular_order
                .iter()
                .copied()
                .filter(|&i| !sc.contains(i) && unseen(i))
            {
                let x = score(i);
                if taken >= prefix && last != Some(x.to_bits()) {
                    cut = true;
                    break;
                }
                (taken, last) = (taken + 1, Some(x.to_bits()));
                order.push(rank_key(x, i));
            }
            !cut && order.len() <= prefix
        };
        // Sorting every candidate is the expensive part: sort a prefix deep enough for the
        // filters, and everything only when the filters ate through it.
        let depth = 4 * (q.n + q.exclude.len()) + 50;
        let mut picked = Vec::new();
        for prefix in [depth, usize::MAX] {
            let complete = candidates(prefix, keys);
            let sorted = sorted_prefix(keys, prefix);
            let idx = keys[..sorted].iter().map(|&k| rank_index(k));
            // Complete: then everything else (items new since training, long tail), by live
            // popularity.
            picked = if complete {
                asked.pick_indices(asked.then_popular(idx), q)
            } else {
                asked.pick_indices(idx, q)
            };
            if picked.len() >= q.n || complete {
                break;
            }
        }
        let picked = answers(asked, picked, &sources, sc, why, score);
        sc.reset();
        let seen = &mut guard.1;
        for i in trained_rows() {
            seen[i as usize] = false;
        }
        picked
    })
}

/// The picked items as answers: a neighbour's names its strongest source (the smaller id on a
/// tie, see [`reasons`]), the rest are trending.
fn answers(
    asked: &Asked<'_>,
    picked: Vec<u32>,
    sources: &[u32],
    sc: &Sums,
    why: &mut reasons::Scratch,
    score: impl Fn(u32) -> f32,
) -> Vec<Scored> {
    let Asked { s, q, snap, .. } = *asked;
    let knn = &snap.itemknn;
    let explained: Vec<u32> = picked.iter().copied().filter(|&i| sc.contains(i)).collect();
    let (lists, longest) = (&knn.neighbours, knn.longest());
    let because =
        reasons::strongest_sources(lists, longest, sources, &explained, Tie::Earlier, why);
    let mut because = because.into_iter();
    picked
        .into_iter()
        .map(|i| {
            let source = if sc.contains(i) {
                because.next().flatten()
            } else {
                None
            };
            s.scored(i, q, |_, _| {
                let reason = match source {
                    Some(j) => format!("because you liked {}", s.item_id(j)),
                    None => "trending".to_string(),
                };
                (score(i) as f64, reason)
            })
        })
        .collect()
}
