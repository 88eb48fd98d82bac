//! Maximal marginal relevance (Carbonell and Goldstein 1998) across categories: re-ranks a scored
//! candidate list so that each pick trades relevance against its category overlap (Jaccard) with the
//! items already picked. Strength 0 keeps the relevance order; 1 maximises spread.

/// Picks `k` of `candidates` ((item, score), best first); `similarity(a, b)` is the category
/// overlap of two items, in [0, 1] (see [`jaccard`]).
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
    let mut picked: Vec<usize> = Vec::with_capacity(k);
    while picked.len() < k.min(candidates.len()) {
        let mut best: Option<(usize, f32)> = None;
        for (c, cand) in candidates.iter().enumerate() {
            if taken[c] {
                continue;
            }
            let relevance = (cand.1 - min) / span;
            let overlap = picked
                .iter()
                .map(|&p| similarity(cand.0, candidates[p].0))
                .fold(0.0f32, f32::max);
            let value = (1.0 - strength) * relevance - strength * overlap;
            if best.is_none_or(|(_, v)| value > v) {
                best = Some((c, value));
            }
        }
        let (c, _) = best.expect("an untaken candidate");
        taken[c] = true;
        picked.push(c);
    }
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
}
