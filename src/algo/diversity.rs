//! Maximal marginal relevance (Carbonell and Goldstein 1998) across categories: re-ranks a scored
//! candidate list so that each pick trades relevance against its category overlap (Jaccard) with the
//! items already picked. Strength 0 keeps the relevance order; 1 maximises spread.

/// How many positions MMR chooses one by one; past them the list continues in relevance order. A
/// page shows far fewer, and the greedy picks are the same whatever comes after them, so a long
/// list (`n=1000`) costs 100 rounds, not 1,000 (2 × 10^5 similarity calls at the 2,000-candidate
/// cap instead of 2 × 10^6).
pub const MAX_MMR_PICKS: usize = 100;

/// Picks `k` of `candidates` ((item, score), best first); `similarity(a, b)` is the category
/// overlap of two items, in [0, 1] (see [`jaccard`]). The first [`MAX_MMR_PICKS`] are diversified,
/// the rest follow by relevance.
///
/// Each candidate keeps its running best overlap with the items picked so far, updated once per
/// pick against the newest one only: O(k × candidates) similarity calls, not O(k² × candidates).
pub fn mmr(
    candidates: &[(u32, f32)],
    similarity: impl Fn(u32, u32) -> f32,
    k: usize,
    strength: f32,
) -> Vec<u32> {
    if strength <= 0.0 || candidates.len() <= 1 {
        return candidates.iter().take(k).map(|c| c.0).collect();
    }
    let max = candidates
        .iter()
        .map(|c| c.1)
        .fold(f32::MIN_POSITIVE, f32::max);
    let min = candidates.iter().map(|c| c.1).fold(f32::MAX, f32::min);
    let span = (max - min).max(f32::MIN_POSITIVE);
    let mut taken = vec![false; candidates.len()];
    // The best overlap of each candidate with any picked item (0 before the first pick).
    let mut overlap = vec![0.0f32; candidates.len()];
    let mut picked: Vec<usize> = Vec::with_capacity(k);
    while picked.len() < k.min(candidates.len()).min(MAX_MMR_PICKS) {
        let mut best: Option<(usize, f32)> = None;
        for (c, cand) in candidates.iter().enumerate() {
            if taken[c] {
                continue;
            }
            let relevance = (cand.1 - min) / span;
            let value = (1.0 - strength) * relevance - strength * overlap[c];
            if best.is_none_or(|(_, v)| value > v) {
                best = Some((c, value));
            }
        }
        let (c, _) = best.expect("an untaken candidate");
        taken[c] = true;
        picked.push(c);
        let newest = candidates[c].0;
        for (o, cand) in candidates.iter().enumerate() {
            if !taken[o] {
                overlap[o] = overlap[o].max(similarity(cand.0, newest));
            }
        }
    }
    let rest = (0..candidates.len()).filter(|&c| !taken[c]);
    picked.extend(rest.take(k.saturating_sub(picked.len())));
    picked.into_iter().map(|c| candidates[c].0).collect()
}

/// |a ∩ b| / |a ∪ b| of two short lists without repeats; 0 when either is empty.
pub fn jaccard<T: PartialEq>(a: &[T], b: &[T]) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let common = a.iter().filter(|x| b.contains(x)).count();
    common as f32 / (a.len() + b.len() - common) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long list is diversified for its first `MAX_MMR_PICKS` positions (the same picks as a
    /// list of that length), then continues by relevance; no item twice, none missing.
    #[test]
    fn long_lists_diversify_their_head_and_follow_relevance_after() {
        let candidates: Vec<(u32, f32)> = (0..400).map(|i| (i, 1000.0 - i as f32)).collect();
        // Items of the same residue mod 4 share a category.
        let similarity = |a: u32, b: u32| f32::from(u8::from(a % 4 == b % 4));
        let long = mmr(&candidates, similarity, 300, 0.5);
        let head = mmr(&candidates, similarity, MAX_MMR_PICKS, 0.5);
        assert_eq!(long.len(), 300);
        assert_eq!(&long[..MAX_MMR_PICKS], &head[..]);
        assert!(long[MAX_MMR_PICKS..].windows(2).all(|w| w[0] < w[1]));
        let mut all = long.clone();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 300);
    }

    #[test]
    fn spreads_categories_as_strength_grows() {
        // Items 0, 1, 2 in category 7 (best scores); item 3 in category 9.
        let cands = [(0, 1.0), (1, 0.9), (2, 0.8), (3, 0.5)];
        let cat = |i: u32| if i < 3 { vec![7] } else { vec![9] };
        let sim = |a: u32, b: u32| jaccard(&cat(a), &cat(b));
        assert_eq!(
            mmr(&cands, sim, 3, 0.0),
            [0, 1, 2],
            "strength 0 keeps relevance order"
        );
        assert_eq!(
            mmr(&cands, sim, 3, 0.5),
            [0, 3, 1],
            "the other category moves up"
        );
        assert_eq!(jaccard(&[1, 2], &[2, 3]), 1.0 / 3.0);
        assert_eq!(jaccard::<u32>(&[], &[2]), 0.0);
    }

    /// The running best overlap makes the cost linear in `k`: picking 1,000 of 5,000 calls the
    /// similarity once per (pick, candidate left), about k × candidates, where recomputing the
    /// overlap with every picked item would call it about k² × candidates / 2 times.
    #[test]
    fn similarity_calls_grow_with_k_times_candidates() {
        let cands: Vec<(u32, f32)> = (0..5000).map(|i| (i, 1.0 / (1.0 + i as f32))).collect();
        let calls = std::cell::Cell::new(0u64);
        let sim = |a: u32, b: u32| {
            calls.set(calls.get() + 1);
            f32::from(u8::from(a % 7 == b % 7))
        };
        let picked = mmr(&cands, sim, 1000, 0.3);
        assert_eq!(picked.len(), 1000);
        assert!(calls.get() <= 1000 * 5000, "{} calls", calls.get());
    }
}
