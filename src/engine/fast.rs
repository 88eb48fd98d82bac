//! The `fast` engine: item-to-item neighbours of the user's items blended with time-decayed
//! popularity, from per-thread dense scratch (no allocation per catalogue item, no hashing).

use std::cell::RefCell;

use super::asked::{Asked, SeenMarks};
use super::request::Scored;
use crate::algo::accumulate::Sums;
use crate::algo::itemknn::FAST_NEIGHBOURS;
use crate::algo::reasons::{self, Tie};
use crate::algo::{SortedKeys, rank_key};

/// Weight of normalised, time-decayed popularity in the `fast` blend (neighbours weigh 1).
const FAST_POPULARITY_WEIGHT: f32 = 0.1;
/// History items whose neighbours `fast` gathers (the rest only filter).
pub const MAX_SOURCES: usize = 200;

thread_local! {
    /// The neighbour sums, which items the user has seen (set from the history, cleared after),
    /// and the tables that find the answer's reasons.
    static SCRATCH: RefCell<(Sums, SeenMarks, reasons::Scratch, Vec<u64>)> = RefCell::default();
}

/// Keeps the best `n` keys of `order` (the smallest), in no order. A plain selection: over the
/// thousand-odd candidates of a request, a sampled threshold first (as [`crate::algo::TopN`]
/// does over a catalogue) cost more than it saved.
fn keep_best(order: &mut Vec<u64>, n: usize) {
    if order.len() > n {
        order.select_nth_unstable(n);
        order.truncate(n);
    }
}

/// Fills `order` with the key of every item of `items` that `keep` admits, with room for `more`:
/// every key is written and only the admitted ones are kept, without a branch per item (whether
/// an item was seen is a coin toss for the predictor), into a buffer the thread keeps (a fresh one
/// was a 10 KB allocation per request).
fn keys_of(
    items: impl ExactSizeIterator<Item = u32>,
    order: &mut Vec<u64>,
    more: usize,
    score: impl Fn(u32) -> f32,
    keep: impl Fn(u32) -> bool,
) {
    order.clear();
    order.reserve(items.len() + more);
    order.resize(items.len(), 0);
    let mut kept = 0;
    for i in items {
        order[kept] = rank_key(score(i), i);
        kept += usize::from(keep(i));
    }
    order.truncate(kept);
}

/// `fast`'s score of an item: its popularity times `pop_scale` plus its sum over `best`.
struct Blend {
    pop_scale: f32,
    best: f32,
}

/// Items per step of [`Blend::keys`].
const STEP: usize = 64;
/// The most keys [`Blend::floor`] samples.
const FLOOR_SAMPLE: usize = 256;

impl Blend {
    fn score(&self, pop: f32, sum: f32) -> f32 {
        pop * self.pop_scale + sum / self.best
    }

    /// A key that at least `prefix` of the keys [`Blend::keys`] keeps are very likely to rank at
    /// or before: about the `2 × prefix`-th best, estimated from every 16th item's key (at most
    /// [`FLOOR_SAMPLE`] of them); `u64::MAX` (no floor) for a prefix of more than an eighth of
    /// the catalogue or a thin sample. With it the selection of the prefix looks at a few
    /// hundred keys, not the catalogue's: that selection was a tenth of `fast`'s own time.
    fn floor(&self, sums: &[f32], pop: &[f32], seen: &[bool], prefix: usize) -> u64 {
        let n = sums.len();
        if n == 0 || prefix.saturating_mul(8) > n {
            return u64::MAX;
        }
        let every = (n / FLOOR_SAMPLE).max(16);
        let mut sample = [0u64; FLOOR_SAMPLE + 1];
        let mut len = 0;
        for i in (0..n).step_by(every) {
            if !seen[i] && sums[i] > 0.0 {
                sample[len] = rank_key(self.score(pop[i], sums[i]), i as u32);
                len += 1;
            }
        }
        let rank = (2 * prefix * n.div_ceil(every)).div_ceil(n) + 3;
        if rank >= len {
            return u64::MAX;
        }
        *sample[..len].select_nth_unstable(rank).1
    }

    /// [`Blend::keys`] before the [`Blend::floor`] for `prefix`, or every key when fewer than
    /// `prefix` come before it (an unlucky sample); whether keys were left out.
    fn keys_for(
        &self,
        sums: &[f32],
        pop: &[f32],
        seen: &[bool],
        prefix: usize,
        order: &mut Vec<u64>,
        more: usize,
    ) -> bool {
        let floor = self.floor(sums, pop, seen, prefix);
        self.keys(sums, pop, seen, floor, order, more);
        if floor == u64::MAX || order.len() >= prefix {
            return floor != u64::MAX;
        }
        self.keys(sums, pop, seen, u64::MAX, order, more);
        false
    }

    /// [`keys_of`] over the whole catalogue (`sums`, `pop` and `seen` per item): the touched
    /// unseen items' keys that rank at or before `floor`. In steps of [`STEP`] items, every key
    /// of a step first (the same arithmetic for each item, which the compiler turns into vector
    /// instructions: the division per item was the pass's bottleneck, one at a time), then the
    /// kept ones compacted.
    fn keys(
        &self,
        sums: &[f32],
        pop: &[f32],
        seen: &[bool],
        floor: u64,
        order: &mut Vec<u64>,
        more: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just found to support AVX2, the call's requirement.
            return unsafe { self.keys_avx2(sums, pop, seen, floor, order, more) };
        }
        self.keys_here(sums, pop, seen, floor, order, more);
    }

    /// [`Blend::keys`] in AVX2's registers, twice as wide as the baseline's.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn keys_avx2(
        &self,
        sums: &[f32],
        pop: &[f32],
        seen: &[bool],
        floor: u64,
        order: &mut Vec<u64>,
        more: usize,
    ) {
        self.keys_here(sums, pop, seen, floor, order, more);
    }

    /// [`Blend::keys`]' loop, inlined into each caller so that it is compiled for the caller's
    /// instruction set.
    #[inline(always)]
    fn keys_here(
        &self,
        sums: &[f32],
        pop: &[f32],
        seen: &[bool],
        floor: u64,
        order: &mut Vec<u64>,
        more: usize,
    ) {
        order.clear();
        order.reserve(sums.len() + more);
        let mut keys = [0u64; STEP];
        let mut keep = [false; STEP];
        let steps = sums
            .chunks(STEP)
            .zip(pop.chunks(STEP))
            .zip(seen.chunks(STEP));
        for (at, ((sums, pop), seen)) in (0u32..).step_by(STEP).zip(steps) {
            for (k, ((&sum, &p), &seen)) in sums.iter().zip(pop).zip(seen).enumerate() {
                keys[k] = rank_key(self.score(p, sum), at + k as u32);
                keep[k] = !seen & (sum > 0.0) & (keys[k] <= floor);
            }
            let mut kept = order.len();
            order.resize(kept + sums.len(), 0);
            for (&key, &keep) in keys.iter().zip(&keep).take(sums.len()) {
                order[kept] = key;
                kept += usize::from(keep);
            }
            order.truncate(kept);
        }
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
        let sources: Vec<u32> = asked.liked_trained().take(MAX_SOURCES).collect();
        let adds = sources
            .iter()
            .map(|&j| knn.nearest(j, FAST_NEIGHBOURS).len());
        sc.prepare(snap.n_items, adds.sum());
        // When most items get touched anyway, the lists as byte rows (eight items an
        // instruction) if the catalogue has them; else one neighbour at a time.
        let rows: Vec<(u32, f32)> = sources.iter().map(|&j| (j, 1.0)).collect();
        if !sc
            .all_mut()
            .is_some_and(|all| knn.add_nearest_rows(&rows, all))
        {
            for &j in &sources {
                sc.add_neighbours(knn.nearest(j, FAST_NEIGHBOURS));
            }
        }
        // Seen items never make the list: leaving them out before sorting keeps the sorted prefix
        // short (it was deepened by the history's length to make up for them).
        let marked = seen.mark(history, snap.n_items);
        let unseen = |i: u32| !marked.seen(i);
        let best = sc.max().max(f32::MIN_POSITIVE);
        let pop_best = snap
            .popular_order
            .first()
            .map(|&i| snap.popularity.scores[i as usize])
            .unwrap_or(0.0);
        let pop_scale = FAST_POPULARITY_WEIGHT / pop_best.max(f32::MIN_POSITIVE);
        let blend = Blend { pop_scale, best };
        let score = |i: u32| blend.score(snap.popularity.score(i), sc.sum(i));
        // `score` of an item no neighbour touched.
        let score_untouched = |i: u32| blend.score(snap.popularity.score(i), 0.0);
        // Candidates: the touched items, and the popularity order's untouched items. The latter
        // come in descending score already (their score is popularity times a constant), so a
        // prefix pass needs only their head: walking and sorting the whole catalogue per request
        // was half the server's CPU under `fast` load (docs/BENCHMARKS.md). Fills `order` with
        // the candidates of a pass `prefix` deep and returns whether they are all there are.
        let candidates = |prefix: usize, order: &mut Vec<u64>| -> bool {
            let head = prefix.min(snap.popular_order.len()).saturating_add(1);
            // Whether keys past a floor were left out: there are more candidates than `order`.
            let floored = match sc.touched() {
                Some(touched) => {
                    keys_of(touched.iter().copied(), order, head, score, unseen);
                    false
                }
                None => {
                    let (n, pop) = (snap.n_items, &snap.popularity.scores);
                    blend.keys_for(sc.all(), &pop[..n], marked.first(n), prefix, order, head)
                }
            };
            // Only selected here: the prefix is sorted once, with the untouched head.
            let mut cut = order.len() > prefix || floored;
            // The worst key the prefix keeps so far: an untouched item ranked below it cannot
            // enter the prefix.
            let mut worst = u64::MAX;
            if cut {
                keep_best(order, prefix);
                worst = order.iter().copied().max().unwrap_or(u64::MAX);
            }
            // The untouched head: `prefix` of them and any tied with the last (float rounding can
            // tie distinct popularities, and ties go by index). An untouched item's key is its
            // popularity's, and the popularity order's scores do not increase, so the walk stops
            // at the first item of the order, touched or not, whose score ranks past `worst`
            // whatever its index (for a user whose neighbours fill the prefix, at once: skipping
            // the head's touched items was a tenth of `fast`).
            let (mut taken, mut last) = (0, None);
            for &i in &snap.popular_order {
                let x = score_untouched(i);
                if rank_key(x, 0) > worst {
                    break;
                }
                if sc.contains(i) || !unseen(i) {
                    continue;
                }
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
            keep_best(keys, prefix);
            let idx = SortedKeys::new(&mut keys[..]);
            // Complete: then everything else (items new since training, long tail), by live
            // popularity.
            picked = if complete {
                asked.pick_marked(asked.then_popular(idx), q, &marked)
            } else {
                asked.pick_marked(idx, q, &marked)
            };
            if picked.len() >= q.n || complete {
                break;
            }
        }
        let picked = answers(asked, picked, &sources, sc, why, score);
        drop(marked);
        sc.reset();
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
                    Some(j) => s.because_liked(j),
                    None => "trending".into(),
                };
                (score(i) as f64, reason)
            })
        })
        .collect()
}
