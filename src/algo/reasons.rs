//! Which of a user's items explains a recommended item: among the sources (the user's liked
//! items), the one whose item-to-item neighbour list holds the item with the highest similarity
//! ("because you liked ..."). Found from the recommended item's own list, without walking the
//! lists of all sources.
//!
//! Item-to-item similarity is symmetric, bit for bit: `sim(i, j)` is the co-occurrence count over
//! `sqrt(count_i × count_j) + shrinkage`, and `f32` multiplication commutes (see
//! [`super::itemknn::fit`]). So a source `j` in the list of item `c` has `c` in its own list
//! exactly when `(sim, c)` ranks within `j`'s list (best first, ties by index: a binary search),
//! and a source outside `c`'s list has a similarity no higher than the last entry of that list.
//! Hence:
//! - when `c`'s list is complete (shorter than the longest list: nothing of it was cut), the
//!   sources in it are all the candidates;
//! - when the best source found beats the last entry of `c`'s list, no source outside can tie or
//!   beat it;
//! - otherwise (no source found, or a tie with the last entry) the answer may lie outside, and
//!   `c` is settled the old way, by one walk over all sources' lists for every such item.
//!
//! Walking every source's list (a hundred entries each, for up to 200 sources) was a seventh of
//! `quality`'s time on MovieLens; a recommended item's list is one of them, plus a few binary
//! searches.

/// Which source a tie goes to: the earlier or the later in the order of `sources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tie {
    Earlier,
    Later,
}

/// Catalogue-sized tables of [`strongest_sources`]: every entry `u32::MAX` between calls.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Per item, its position among the sources.
    position: Vec<u32>,
    /// Per item, its slot among the targets still unsettled.
    target: Vec<u32>,
}

/// For each of `targets` (distinct), the source among `sources` (distinct) whose list in
/// `neighbours` holds it with the highest similarity, ties as `tie` says; `None` when no source's
/// list holds it (or the target is not in the model). `longest` is the length of the longest list
/// (lists of that length may have been cut).
pub fn strongest_sources(
    neighbours: &[Vec<(u32, f32)>],
    longest: usize,
    sources: &[u32],
    targets: &[u32],
    tie: Tie,
    sc: &mut Scratch,
) -> Vec<Option<u32>> {
    let n = neighbours.len();
    for table in [&mut sc.position, &mut sc.target] {
        if table.len() < n {
            table.resize(n, u32::MAX);
        }
    }
    let known = |i: u32| (i as usize) < n;
    for (p, &j) in (0u32..).zip(sources) {
        if known(j) {
            sc.position[j as usize] = p;
        }
    }
    // (position, similarity) of the best source so far; `better` applies the tie rule.
    let better = |(p, s): (u32, f32), best: Option<(u32, f32)>| match best {
        None => true,
        Some((bp, bs)) => s > bs || (s == bs && (p > bp) == (tie == Tie::Later)),
    };
    let mut best: Vec<Option<(u32, f32)>> = vec![None; targets.len()];
    let mut unsettled = Vec::new();
    for (slot, &c) in targets.iter().enumerate() {
        if !known(c) {
            continue;
        }
        let list = &neighbours[c as usize];
        // Best first: past the best source found, only its ties remain to be looked at.
        for &(j, s) in list {
            if best[slot].is_some_and(|(_, b)| s < b) {
                break;
            }
            let p = sc.position[j as usize];
            if p != u32::MAX && better((p, s), best[slot]) && holds(&neighbours[j as usize], c, s) {
                best[slot] = Some((p, s));
            }
        }
        let complete = list.len() < longest;
        let beats_the_rest = match (best[slot], list.last()) {
            (Some((_, s)), Some(&(_, last))) => s > last,
            _ => false,
        };
        if !complete && !beats_the_rest {
            best[slot] = None;
            sc.target[c as usize] = slot as u32;
            unsettled.push(c);
        }
    }
    if !unsettled.is_empty() {
        for (p, &j) in (0u32..).zip(sources) {
            if !known(j) {
                continue;
            }
            for &(i, s) in &neighbours[j as usize] {
                let slot = sc.target[i as usize];
                if slot != u32::MAX && better((p, s), best[slot as usize]) {
                    best[slot as usize] = Some((p, s));
                }
            }
        }
    }
    for &c in &unsettled {
        sc.target[c as usize] = u32::MAX;
    }
    for &j in sources {
        if known(j) {
            sc.position[j as usize] = u32::MAX;
        }
    }
    best.into_iter()
        .map(|b| b.map(|(p, _)| sources[p as usize]))
        .collect()
}

/// Whether `list` (best first, ties by index), a source's list, holds `item`, whose similarity
/// to the source is `sim`: exactly when `(sim, item)` ranks no later than the list's last entry,
/// since a list keeps its source's most similar items (and a complete list every item it shares
/// a user with, `item` among them). One comparison with the last entry, not a binary search: the
/// searches' reads, one cache miss each, were most of the time of `fast`'s reasons.
fn holds(list: &[(u32, f32)], item: u32, sim: f32) -> bool {
    let held = list
        .last()
        .is_some_and(|&(last, s)| sim > s || (sim == s && item <= last));
    debug_assert_eq!(held, {
        let at = list.partition_point(|&(i, s)| s > sim || (s == sim && i < item));
        list.get(at).is_some_and(|&(i, _)| i == item)
    });
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{Csr, itemknn};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// What a walk over every source's list finds, the definition.
    fn by_walking(
        neighbours: &[Vec<(u32, f32)>],
        sources: &[u32],
        targets: &[u32],
        tie: Tie,
    ) -> Vec<Option<u32>> {
        targets
            .iter()
            .map(|&c| {
                let mut best: Option<(u32, f32)> = None;
                for &j in sources {
                    for &(i, s) in &neighbours[j as usize] {
                        let wins = best.is_none_or(|(_, b)| match tie {
                            Tie::Later => s >= b,
                            Tie::Earlier => s > b,
                        });
                        if i == c && wins {
                            best = Some((j, s));
                        }
                    }
                }
                best.map(|(j, _)| j)
            })
            .collect()
    }

    /// On fitted models with short and cut lists, many ties (few users) and sources in any
    /// order, the answer is the walk's, for both tie rules; the tables are left clean.
    #[test]
    fn the_strongest_source_is_the_one_a_walk_finds() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut sc = Scratch::default();
        for (users, items, k) in [(30, 40, 5), (200, 60, 10), (15, 25, 100), (300, 120, 20)] {
            let mut pairs: Vec<(u32, u32)> = (0..users * 6)
                .map(|_| {
                    let item = (rng.random::<f32>().powi(2) * items as f32) as u32;
                    (rng.random_range(0..users), item)
                })
                .collect();
            pairs.sort_unstable();
            pairs.dedup();
            let triplets = pairs.into_iter().map(|(u, i)| (u, i, 1.0)).collect();
            let ui = Csr::from_triplets(users as usize, items, triplets);
            let knn = itemknn::fit(&ui, itemknn::Params { k, shrinkage: 1.0 });
            let longest = knn.neighbours.iter().map(Vec::len).max().unwrap_or(0);
            for _ in 0..50 {
                let mut sources: Vec<u32> = (0..items as u32)
                    .filter(|_| rng.random::<f32>() < 0.2)
                    .collect();
                if rng.random::<bool>() {
                    sources.reverse();
                }
                let mut targets: Vec<u32> = (0..10)
                    .map(|_| rng.random_range(0..items as u32 + 2))
                    .collect();
                targets.sort_unstable();
                targets.dedup();
                for tie in [Tie::Earlier, Tie::Later] {
                    let got = strongest_sources(
                        &knn.neighbours,
                        longest,
                        &sources,
                        &targets,
                        tie,
                        &mut sc,
                    );
                    let want = by_walking(&knn.neighbours, &sources, &targets, tie);
                    assert_eq!(got, want, "{users} users, {items} items, k {k}, {tie:?}");
                }
            }
            assert!(sc.position.iter().chain(&sc.target).all(|&x| x == u32::MAX));
        }
    }
}
