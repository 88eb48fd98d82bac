//! The model-based engines: `quality` (a fitted blend of every model, then MMR diversity) and
//! `enhanced` (candidates from several sources scored by a learned ranker). Both read the trained
//! snapshot and the user's live history; per-thread scratch holds the catalogue-sized buffers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::asked::{Asked, SeenMarks};
use super::fast::MAX_SOURCES;
use super::request::{Query, Scored};
use crate::algo::blend::{add_normalised, mmr_pool};
use crate::algo::diversity::{jaccard, mmr};
use crate::algo::enhanced::{self, Source};
use crate::algo::reasons::{self, Tie};
use crate::algo::{Scorer, TopN};

/// Catalogue-sized buffers of one thread.
#[derive(Default)]
struct Scratch {
    blended: Vec<f32>,
    member: Vec<f32>,
    seen: SeenMarks,
    reasons: reasons::Scratch,
    enhanced: enhanced::Scratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// 1 / (1 + e^-x): a ranker's log-odds as a probability-like score.
fn sigmoid(x: f32) -> f64 {
    1.0 / (1.0 + (-f64::from(x)).exp())
}

/// `quality`: every trained model scores the whole catalogue for the user (factor models from
/// the user's trained row, or folded in from the live history for users new since training),
/// scores are scaled per model and blended with the fitted weights, then MMR spreads the list
/// across categories. The work is bounded whatever `n`: MMR chooses from at most
/// [`crate::algo::blend::MAX_MMR_POOL`] candidates, and only the chosen items are explained.
pub fn quality(asked: &Asked<'_>) -> Vec<Scored> {
    let Asked {
        s, row, q, snap, ..
    } = *asked;
    let liked = asked.liked_history();
    let (items, hist) = (&liked.items, liked.history());
    let pool_n = mmr_pool(q.n);
    let want = (pool_n + q.exclude.len()) * 4 + 100;
    // Filter first, over-fetching, then let MMR choose `n` spread across categories.
    let pool_query = Query { n: pool_n, ..*q };
    let pool: Vec<(u32, f32)> = SCRATCH.with(|cell| {
        let sc = &mut *cell.borrow_mut();
        sc.blended.clear();
        sc.blended.resize(snap.n_items, 0.0);
        sc.member.resize(snap.n_items, 0.0);
        // In the order of `eval::QUALITY_MEMBERS`.
        let members: [Option<&dyn Scorer>; 6] = [
            Some(&snap.als),
            Some(&snap.bpr),
            Some(&snap.itemknn),
            Some(&snap.content),
            snap.ease.as_ref().map(|e| e as &dyn Scorer),
            Some(&snap.popularity),
        ];
        for (m, &w) in members.iter().zip(&snap.quality_weights) {
            if let (Some(m), true) = (m, w > 0.0) {
                m.score(row, hist, &mut sc.member[..snap.n_items]);
                add_normalised(&mut sc.blended, &sc.member[..snap.n_items], w);
            }
        }
        // The blended score of the ranked items; popular items filling up after them score 0.
        // `member` is free once blended: NaN marks the ranked items as the walk takes them
        // (every score is finite), instead of a per-request map from item to score; the marks
        // are cleared after. The ranking is sorted only as far as the walk goes.
        let mut ranked = Vec::new();
        let order = TopN::new(&sc.blended[..snap.n_items], items, want).inspect(|&i| {
            sc.member[i as usize] = f32::NAN;
            ranked.push(i);
        });
        let marked = sc.seen.mark(asked.history, snap.n_items);
        let picked = asked.pick_marked(asked.then_popular(order), &pool_query, &marked);
        drop(marked);
        let score = |i: u32| match sc.member.get(i as usize) {
            Some(m) if m.is_nan() => sc.blended[i as usize],
            _ => 0.0,
        };
        let pool = picked.into_iter().map(|i| (i, score(i))).collect();
        for &i in &ranked {
            sc.member[i as usize] = 0.0;
        }
        pool
    });
    let chosen = diversify(asked, pool);
    let because = strongest_sources(asked, &items[..items.len().min(MAX_SOURCES)], &chosen);
    chosen
        .into_iter()
        .zip(because)
        .map(|((i, score), because)| {
            s.scored(i, q, |_, _| {
                let reason = match because {
                    Some(j) => s.because_liked(j),
                    None if items.is_empty() => "popular".into(),
                    None => "matches your taste".into(),
                };
                (f64::from(score), reason)
            })
        })
        .collect()
}

/// For each chosen item, the source among `sources` whose item-to-item neighbour list holds it
/// with the highest similarity (the later source on a tie), if any (see [`reasons`]).
fn strongest_sources(
    asked: &Asked<'_>,
    sources: &[u32],
    chosen: &[(u32, f32)],
) -> Vec<Option<u32>> {
    let knn = &asked.snap.itemknn;
    let targets: Vec<u32> = chosen.iter().map(|&(i, _)| i).collect();
    SCRATCH.with(|cell| {
        let sc = &mut cell.borrow_mut().reasons;
        let (lists, longest) = (&knn.neighbours, knn.longest());
        reasons::strongest_sources(lists, longest, sources, &targets, Tie::Later, sc)
    })
}

/// MMR over the filtered pool: `q.n` items spread across categories (`diversity` 0: the pool's
/// head). While an item's categories fit in 64 bits (and it lists none twice) they are one bit
/// set and an overlap is three `popcount`s, the same value as [`jaccard`] over the lists: the
/// catalogue's own bits ([`ItemMeta::category_bits`](super::items::ItemMeta)) when every pool
/// item has them, else bits numbered for this pool, else the lists.
fn diversify(asked: &Asked<'_>, pool: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
    let Asked { s, q, .. } = *asked;
    if asked.diversity <= 0.0 {
        return pool.into_iter().take(q.n).collect();
    }
    let lists: Vec<&[Arc<str>]> = pool.iter().map(|&(i, _)| s.item_categories(i)).collect();
    // MMR runs on positions in the pool.
    let positions: Vec<(u32, f32)> = (0u32..)
        .zip(&pool)
        .map(|(pos, &(_, score))| (pos, score))
        .collect();
    let catalogue_bits: Option<Vec<u64>> = pool
        .iter()
        .map(|&(i, _)| s.get(i).and_then(|m| m.category_bits))
        .collect();
    let chosen = match catalogue_bits.or_else(|| category_bits(&lists)) {
        Some(bits) => mmr(
            &positions,
            |a, b| jaccard_bits(bits[a as usize], bits[b as usize]),
            q.n,
            asked.diversity,
        ),
        None => mmr(
            &positions,
            |a, b| jaccard(lists[a as usize], lists[b as usize]),
            q.n,
            asked.diversity,
        ),
    };
    chosen.into_iter().map(|pos| pool[pos as usize]).collect()
}

/// Each list's categories as bits (numbered in order of appearance), unless there are more than
/// 64 names or a list repeats one: for a pool whose items lack the catalogue's bits (a catalogue
/// of more than 64 names).
fn category_bits(lists: &[&[Arc<str>]]) -> Option<Vec<u64>> {
    let mut numbers: HashMap<&str, u32, foldhash::fast::RandomState> = HashMap::default();
    lists
        .iter()
        .map(|list| {
            list.iter().try_fold(0u64, |bits, c| {
                let next = numbers.len() as u32;
                let bit = 1u64.checked_shl(*numbers.entry(&**c).or_insert(next))?;
                (bits & bit == 0).then_some(bits | bit)
            })
        })
        .collect()
}

/// [`jaccard`] of two category bit sets.
fn jaccard_bits(a: u64, b: u64) -> f32 {
    if a == 0 || b == 0 {
        return 0.0;
    }
    let common = (a & b).count_ones();
    common as f32 / (a.count_ones() + b.count_ones() - common) as f32
}

/// `enhanced`: candidates from the factorisation, item-to-item and content neighbours of the
/// history, and popular items of the user's favourite categories, each scored by the learned
/// ranker over the same features; the score shown is the ranker's probability.
pub fn enhanced(asked: &Asked<'_>) -> Vec<Scored> {
    let Asked {
        s, row, q, snap, ..
    } = *asked;
    let liked = asked.liked_history();
    let hist = liked.history();
    let mut candidates = SCRATCH.with(|cell| {
        let sc = &mut *cell.borrow_mut();
        snap.enhanced_models()
            .candidates(row, hist, &mut sc.enhanced)
    });
    snap.ranker.rank(&mut candidates);
    let by_item: HashMap<u32, (f32, Source)> = candidates
        .iter()
        .map(|c| (c.item, (c.score, c.source)))
        .collect();
    let order: Vec<u32> = candidates.iter().map(|c| c.item).collect();
    asked.pick(&[&order], q, |i, _| match by_item.get(&i) {
        Some(&(score, source)) => {
            let reason = match source {
                Source::Neighbours(j) => s.because_liked(j),
                Source::Content(j) => s.similar_to(j),
                Source::Category(c) => {
                    let name = snap.category_names.get(c as usize).map_or("", |n| n);
                    format!("popular in {name}").into()
                }
                Source::Factors => "matches your taste".into(),
                Source::Popular => "trending".into(),
            };
            (sigmoid(score), reason)
        }
        None => (0.0, "popular".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits number names, shared or not, in order of appearance; the overlap of two bit sets is
    /// the overlap of the lists; 65 names or a repeated one fall back to the lists.
    #[test]
    fn category_bits_number_names_by_content_and_overlap_as_the_lists_do() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let unshared_b: Arc<str> = Arc::from("b");
        let lists: [&[Arc<str>]; 4] = [
            &[a.clone(), b.clone()],
            std::slice::from_ref(&unshared_b),
            &[c.clone(), a.clone()],
            &[],
        ];
        let bits = category_bits(&lists).expect("three names");
        assert_eq!(bits, [0b011, 0b010, 0b101, 0]);
        for x in 0..lists.len() {
            for y in 0..lists.len() {
                let want = jaccard(lists[x], lists[y]);
                assert_eq!(jaccard_bits(bits[x], bits[y]), want, "{x} {y}");
            }
        }
        let repeated: [&[Arc<str>]; 1] = [&[b.clone(), unshared_b]];
        assert_eq!(category_bits(&repeated), None);
        let many: Vec<Arc<str>> = (0..65).map(|n| Arc::from(n.to_string())).collect();
        assert_eq!(category_bits(&[&many[..64]]).map(|b| b[0]), Some(u64::MAX));
        assert_eq!(category_bits(&[&many[..]]), None);
    }
}
