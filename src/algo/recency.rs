//! Recency inside one user's history: the newest items weigh most.
//!
//! Tastes drift, so when the next items a user picks follow from what they picked lately (as on a
//! time-ordered split, where the test items are each user's newest), the history's recent items
//! should count more than its old ones. Of a history of `n` entries, the `k`-th newest weighs
//! `0.5^(k / (half_life × n))`: the half-life is a share of the history's length rather than a
//! time, because users act in bursts (a MovieLens user rates dozens of films in one sitting, so a
//! clock-based decay weighs a whole burst alike), and rather than a count of entries, because the
//! same share carries from the shorter histories of a validation split to the full ones (on
//! MovieLens a fixed count chosen on validation decayed the full histories too fast). Whether a
//! half-life helps, and which, is chosen on the validation split (`eval::tune`); serving applies it
//! to each request's history.

use std::cmp::Reverse;

/// Multiplies `weights[k]` by `0.5^(r / (half_life × n))`, where `n` is the history's length and
/// `r` how many of its entries are newer than entry `k` by `times` (of equal times, the later
/// entry counts as newer).
pub fn weigh<T: Ord + Copy>(times: &[T], half_life: f64, weights: &mut [f32]) {
    debug_assert_eq!(times.len(), weights.len());
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_unstable_by_key(|&k| Reverse((times[k], k)));
    let entries = half_life * times.len() as f64;
    for (newer, k) in order.into_iter().enumerate() {
        weights[k] *= 0.5f64.powf(newer as f64 / entries) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_entry_keeps_its_weight_and_each_half_life_halves() {
        let times = [30i64, 10, 20, 20];
        let mut weights = [2.0f32, 1.0, 1.0, 1.0];
        // A quarter of four entries: every entry newer halves the weight.
        weigh(&times, 0.25, &mut weights);
        // Newest first: entry 0 (30), entry 3 (20, later of the tie), entry 2, entry 1.
        assert_eq!(weights, [2.0, 0.125, 0.25, 0.5]);
        let mut long = [1.0f32; 8];
        weigh(&[8u32, 7, 6, 5, 4, 3, 2, 1], 0.5, &mut long);
        assert!(
            (long[4] - 0.5).abs() < 1e-6,
            "four newer of eight: one half-life"
        );
        assert!((long[0] - 1.0).abs() < 1e-6);
    }
}
