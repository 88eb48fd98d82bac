//! Recommendation algorithms over compact integer ids, shared by the engines, training and offline
//! evaluation. Each algorithm is its own module with a `fit` that builds an immutable model and a
//! [`Scorer`] implementation that scores every item for a user from the user's history alone, so the
//! same fitted model serves known users, new users and anonymous sessions.
//!
//! Nothing here touches the database or async code: fitting is CPU work meant for blocking threads
//! (rayon inside).

pub mod accumulate;
pub mod als;
pub mod blend;
pub mod bpr;
pub mod compact;
pub mod content;
pub mod diversity;
pub mod ease;
pub mod enhanced;
pub mod factors;
pub mod itemknn;
pub mod matrix;
pub mod popularity;
pub mod reasons;
pub mod recency;
pub mod rp3beta;
pub mod smart;
#[cfg(test)]
pub(crate) mod testing;

use std::cell::Cell;

pub use matrix::Csr;

/// A user's history: item indices (sorted, unique) and their weights.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub items: &'a [u32],
    pub weights: &'a [f32],
}

impl<'a> History<'a> {
    pub fn of(matrix: &'a Csr, user: usize) -> Self {
        let (items, weights) = matrix.row(user);
        Self { items, weights }
    }
}

/// Something that scores items for a user: higher is better.
pub trait Scorer: Send + Sync {
    /// Writes a score for every item into `scores` (its length is the item count). `user` is the
    /// user's row in the training matrix, when the user was known at training time.
    fn score(&self, user: Option<usize>, history: History<'_>, scores: &mut [f32]);

    /// The final `n` items from the scores, skipping `exclude` (sorted): by default the best
    /// scores; a diversifying scorer re-ranks.
    fn rank(&self, scores: &[f32], exclude: &[u32], n: usize) -> Vec<u32> {
        top_n(scores, exclude, n)
    }
}

/// A borrowed scorer scores like the scorer: blends and routes over models fitted elsewhere
/// (validation's) are built without copying them.
impl<S: Scorer + ?Sized> Scorer for &S {
    fn score(&self, user: Option<usize>, history: History<'_>, scores: &mut [f32]) {
        (**self).score(user, history, scores)
    }

    fn rank(&self, scores: &[f32], exclude: &[u32], n: usize) -> Vec<u32> {
        (**self).rank(scores, exclude, n)
    }
}

/// The `n` best items by score, best first (ties: lower index first), skipping `exclude` (sorted)
/// and non-finite scores.
///
/// Each candidate is one `u64` whose integer order is that order (see [`rank_key`]): selecting
/// and sorting plain integers is several times cheaper than comparing (score, index) pairs, and
/// this runs over the whole catalogue in every `quality` request and every evaluated user.
pub fn top_n(scores: &[f32], exclude: &[u32], n: usize) -> Vec<u32> {
    TopN::new(scores, exclude, n).collect()
}

/// [`top_n`]'s items in the same order, sorted as they are taken: a caller that stops early
/// (filters usually keep the head of the list) sorts only what it took.
pub struct TopN(SortedKeys<Vec<u64>>);

thread_local! {
    /// The key buffer of the thread's last [`TopN`], for the next: a catalogue of keys was an
    /// allocation as large as the catalogue in every request.
    static KEYS: Cell<Vec<u64>> = const { Cell::new(Vec::new()) };
}

impl TopN {
    pub fn new(scores: &[f32], exclude: &[u32], n: usize) -> Self {
        // Every entry's key, with the worst key for an excluded or non-finite score (no finite
        // score's key is `u64::MAX`): a loop without branches, then the exclusions written over.
        let all = || {
            let mut keys = KEYS.take();
            keys.clear();
            keys.extend((0u32..).zip(scores).map(|(i, &s)| {
                if s.is_finite() {
                    rank_key(s, i)
                } else {
                    u64::MAX
                }
            }));
            for &e in exclude {
                if let Some(k) = keys.get_mut(e as usize) {
                    *k = u64::MAX;
                }
            }
            keys
        };
        let mut keys = smallest(all(), n, all);
        keys.retain(|&k| k != u64::MAX);
        Self(SortedKeys::new(keys))
    }
}

/// The `n` smallest of `keys`, in no order. A threshold from a sample of every eighth key first
/// keeps the keys at or below it (about 1.5 `n` of them), so the selection runs over those rather
/// than the catalogue (it was half of [`TopN::new`]); in the rare case that fewer than `n` are
/// kept (a sample that misrepresents the keys), `again()` builds them anew and all are selected.
fn smallest(mut keys: Vec<u64>, n: usize, again: impl FnOnce() -> Vec<u64>) -> Vec<u64> {
    if keys.len() <= n {
        return keys;
    }
    if n >= 8 && keys.len() >= 4 * n {
        let mut sample: Vec<u64> = keys.iter().step_by(8).copied().collect();
        let rank = (n / 8 + n / 16 + 8).min(sample.len() - 1);
        let threshold = *sample.select_nth_unstable(rank).1;
        // Compacted in place, without a branch per key.
        let mut kept = 0;
        for i in 0..keys.len() {
            let k = keys[i];
            keys[kept] = k;
            kept += usize::from(k <= threshold);
        }
        keys.truncate(kept);
        if kept < n {
            keys = again();
        }
    }
    if keys.len() > n {
        keys.select_nth_unstable(n);
        keys.truncate(n);
    }
    keys
}

/// The indices of [`rank_key`]s (owned, or borrowed as `&mut [u64]`), best first, sorted as
/// they are taken: each stretch as long as those sorted so far (at least 32), so a caller that
/// stops early (filters usually keep the head of the list) sorts only what it took.
pub struct SortedKeys<K> {
    keys: K,
    next: usize,
    sorted: usize,
}

impl<K: AsMut<[u64]>> SortedKeys<K> {
    pub fn new(keys: K) -> Self {
        Self {
            keys,
            next: 0,
            sorted: 0,
        }
    }
}

impl<K: AsMut<[u64]>> Iterator for SortedKeys<K> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let keys = self.keys.as_mut();
        if self.next == self.sorted {
            let rest = &mut keys[self.sorted..];
            let take = self.sorted.max(32).min(rest.len());
            if take == 0 {
                return None;
            }
            if take < rest.len() {
                rest.select_nth_unstable(take);
            }
            rest[..take].sort_unstable();
            self.sorted += take;
        }
        self.next += 1;
        Some(rank_index(keys[self.next - 1]))
    }
}

impl Drop for TopN {
    fn drop(&mut self) {
        let keys = std::mem::take(&mut self.0.keys);
        // Not while the thread's storage is torn down.
        let _ = KEYS.try_with(|k| k.set(keys));
    }
}

impl Iterator for TopN {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        self.0.next()
    }
}

/// A (score, item) pair as an integer that sorts ascending in the order "higher score first (in
/// `f32::total_cmp`'s order), then lower index": the score's bits made monotone as `total_cmp`
/// does, above the complemented index, all complemented.
pub fn rank_key(score: f32, index: u32) -> u64 {
    let bits = score.to_bits() as i32;
    let monotone = (bits ^ (((bits >> 31) as u32) >> 1) as i32) as u32 ^ 0x8000_0000;
    !((u64::from(monotone) << 32) | u64::from(!index))
}

/// The index a [`rank_key`] holds.
pub fn rank_index(key: u64) -> u32 {
    !(!key as u32)
}

/// Item `i`'s co-occurrences: for every other item `j` that shares a user with `i`, the sum of
/// `weight(u)` over the users `u` they share (added in the order of `i`'s users), in the order the
/// items were first met. `acc` is catalogue-long scratch, all zeros before and after. Item-to-item's
/// cosine and RP3beta's walk are each a function of these sums.
pub(crate) fn co_occurrences(
    user_items: &Csr,
    item_users: &Csr,
    i: usize,
    weight: impl Fn(u32) -> f32,
    acc: &mut [f32],
) -> Vec<(u32, f32)> {
    let mut touched = Vec::new();
    for &u in item_users.row(i).0 {
        let w = weight(u);
        for &j in user_items.row(u as usize).0 {
            if j as usize != i {
                if acc[j as usize] == 0.0 {
                    touched.push(j);
                }
                acc[j as usize] += w;
            }
        }
    }
    touched
        .into_iter()
        .map(|j| (j, std::mem::take(&mut acc[j as usize])))
        .collect()
}

/// Keeps the `k` most similar entries, best first (ties by index).
pub(crate) fn top_k_similar(mut sims: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    let by_sim = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if sims.len() > k {
        sims.select_nth_unstable_by(k, by_sim);
        sims.truncate(k);
    }
    sims.sort_unstable_by(by_sim);
    // Kept for the model's lifetime: copy into an exact-size vector instead of shrinking in place.
    // Shrinking leaves a small live block at the front of each large freed one, and on a
    // 100,000-item catalogue those fragments held gigabytes.
    sims.as_slice().to_vec()
}

/// Scores items by their summed similarity to the history's items, weighted by the history.
pub(crate) fn score_by_neighbours(
    neighbours: &[Vec<(u32, f32)>],
    history: History<'_>,
    scores: &mut [f32],
) {
    score_by_nearest(neighbours, usize::MAX, history, scores);
}

/// [`score_by_neighbours`] over the first `cap` neighbours of each list (lists are best first).
pub(crate) fn score_by_nearest(
    neighbours: &[Vec<(u32, f32)>],
    cap: usize,
    history: History<'_>,
    scores: &mut [f32],
) {
    scores.fill(0.0);
    for (&j, &w) in history.items.iter().zip(history.weights) {
        let list = &neighbours[j as usize];
        for &(i, sim) in &list[..list.len().min(cap)] {
            scores[i as usize] += sim * w;
        }
    }
}

/// Users of `train` with validation items, at most `max` of them spread evenly over the rows: the
/// users blend-weight and ranker fitting learn from.
pub(crate) fn validation_users(train: &Csr, validation: &[Vec<u32>], max: usize) -> Vec<usize> {
    let users: Vec<usize> = (0..train.n_rows)
        .filter(|&u| validation.get(u).is_some_and(|v| !v.is_empty()))
        .collect();
    if users.len() <= max {
        return users;
    }
    let stride = users.len() as f64 / max as f64;
    (0..max)
        .map(|n| users[(n as f64 * stride) as usize])
        .collect()
}

/// NDCG@`k` of a ranked list against sorted relevant items (binary relevance).
pub fn ndcg_at(top: &[u32], relevant: &[u32], k: usize) -> f64 {
    let dcg: f64 = top
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, i)| relevant.binary_search(i).is_ok())
        .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(k))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

/// Dot product of two factor vectors, in eight independent lanes: a plain sequential sum cannot be
/// vectorised (float addition is not associative), and scoring a 100,000-item catalogue is a
/// hundred thousand of these per request.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((super::dot(&a, &b) - plain).abs() < 1e-4);
    }

    #[test]
    fn top_n_orders_and_excludes() {
        let scores = [0.5, 3.0, f32::NEG_INFINITY, 2.0, 3.0];
        assert_eq!(super::top_n(&scores, &[], 3), [1, 4, 3]);
        assert_eq!(super::top_n(&scores, &[1], 2), [4, 3]);
        assert_eq!(super::top_n(&scores, &[], 10), [1, 4, 3, 0]);
    }

    /// Sorting as it goes gives the order of sorting everything, however far a caller reads.
    #[test]
    fn top_n_sorted_as_taken_equals_sorted_at_once() {
        let scores: Vec<f32> = (0..500u32).map(|i| ((i * 37) % 101) as f32 * 0.5).collect();
        let exclude = [3, 4, 200, 499];
        let mut all: Vec<(f32, u32)> = (0u32..)
            .zip(&scores)
            .filter(|(i, _)| !exclude.contains(i))
            .map(|(i, &s)| (s, i))
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let want: Vec<u32> = all.iter().map(|x| x.1).take(300).collect();
        assert_eq!(super::top_n(&scores, &exclude, 300), want);
        let head: Vec<u32> = super::TopN::new(&scores, &exclude, 300).take(70).collect();
        assert_eq!(head, want[..70]);
    }

    /// The sampled threshold keeps the `n` smallest keys, also when the sample misrepresents the
    /// keys (every eighth is among the smallest, the rest far above) and all are selected again.
    #[test]
    fn smallest_keys_whatever_the_sample() {
        let want = |keys: &[u64], n: usize| {
            let mut sorted = keys.to_vec();
            sorted.sort_unstable();
            sorted.truncate(n);
            sorted
        };
        let shuffled: Vec<u64> = (0..2000u64).map(|i| (i * 7919) % 2003).collect();
        let skewed: Vec<u64> = (0..2000u64)
            .map(|i| if i % 8 == 0 { i } else { 1_000_000 + i })
            .collect();
        for (keys, fallbacks) in [(shuffled, 0), (skewed, 4)] {
            let again = std::cell::Cell::new(0);
            for n in [0, 1, 8, 100, 300, 499, 500, 1999, 2000, 2500] {
                let mut got = super::smallest(keys.clone(), n, || {
                    again.set(again.get() + 1);
                    keys.clone()
                });
                got.sort_unstable();
                assert_eq!(got, want(&keys, n), "n = {n}");
            }
            assert_eq!(again.get(), fallbacks);
        }
    }

    /// Borrowed keys come out best first, however far a caller reads.
    #[test]
    fn sorted_keys_as_taken() {
        let keys: Vec<u64> = (0..300u32)
            .map(|i| super::rank_key(((i * 37) % 101) as f32, i))
            .collect();
        let mut want = keys.clone();
        want.sort_unstable();
        let want: Vec<u32> = want.into_iter().map(super::rank_index).collect();
        for take in [0, 1, 31, 32, 33, 100, 300, 400] {
            let mut buffer = keys.clone();
            let got: Vec<u32> = super::SortedKeys::new(&mut buffer).take(take).collect();
            assert_eq!(got, want[..take.min(300)], "take = {take}");
        }
    }

    /// The integer keys order exactly as comparing (score by `total_cmp`, then index) does,
    /// signed zeros, negatives and ties included.
    #[test]
    fn rank_keys_order_as_score_then_index() {
        let values = [
            -3.5f32,
            -0.0,
            0.0,
            1e-30,
            2.0,
            2.0,
            f32::MAX,
            -f32::MAX,
            7.25,
        ];
        let mut pairs: Vec<(f32, u32)> = (0..40u32)
            .map(|i| (values[(i as usize * 7) % values.len()], i * 3 % 41))
            .collect();
        let mut keys: Vec<u64> = pairs.iter().map(|&(s, i)| super::rank_key(s, i)).collect();
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        keys.sort_unstable();
        let by_key: Vec<u32> = keys.into_iter().map(super::rank_index).collect();
        let by_pair: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        assert_eq!(by_key, by_pair);
        assert_eq!(super::rank_index(super::rank_key(1.0, u32::MAX)), u32::MAX);
    }
}
