//! [`ItemBlocks`]: a factor model's item factors laid out for scoring the whole catalogue for one
//! user, the inner loop of `quality` and of offline evaluation.
//!
//! Scoring item by item with [`super::dot`] ends every item with a sum across its eight lanes:
//! seven dependent additions that the CPU cannot spread over vector registers, which made scoring
//! 1,682 items with two 64-factor models a third of `quality`'s time on MovieLens. Here eight items
//! sit side by side, so every step is one vector operation over eight items.
//!
//! The factors are stored as signed bytes, each item with its own step (its largest magnitude
//! over 127; [`super::compact`]): 128 factors of 1,682 items are 215 KB instead of 861 KB, and a
//! request waited on reading them. The user's vector is rounded to 16-bit integers (a step of
//! its largest magnitude over 32,767, far finer than the items' bytes), so a dot product is a sum
//! of integer products: exact, in any order, and two factors of eight items per instruction
//! (AVX2's multiply-add of 16-bit pairs into 32-bit sums, found at run time), which was twice the
//! speed of converting every byte to `f32` for a fused multiply-add. The two steps multiply the
//! item's sum at the end. On MovieLens 100K NDCG@10 of ALS moved by at most 0.0008 on three
//! splits with the bytes, and the rounding of the user's vector moved none. Elsewhere the same
//! integer arithmetic runs as plain Rust, to the same bits.
//!
//! The layout is a second copy of the item factors, built on first use (when a snapshot is
//! installed): the snapshot keeps the `f32` factors that folding a new user in and `enhanced`'s
//! features read.

use super::compact;

/// Items per block: one 256-bit vector of 32-bit sums.
const WIDTH: usize = 8;
/// Bytes per pair of factors of a block: each item's two factors side by side.
const PAIR: usize = 2 * WIDTH;

/// Item factors in blocks of [`WIDTH`] items, in pairs of factors inside a block (for pair `p`,
/// item `j`'s factors `2p` and `2p + 1` at bytes `2j` and `2j + 1`; a last odd factor pairs with
/// zero), each item's factors as signed bytes times its own step (its largest magnitude over
/// 127); the last block is padded with zero items.
#[derive(Debug, Clone)]
pub struct ItemBlocks {
    factors: usize,
    items: usize,
    /// Per item (padded to whole blocks), what one unit of its bytes is worth.
    steps: Vec<f32>,
    data: Vec<i8>,
}

impl ItemBlocks {
    /// From row-major factors (`factors` per item).
    pub fn from_rows(rows: &[f32], factors: usize) -> Self {
        let items = rows.len().checked_div(factors).unwrap_or(0);
        let blocks = items.div_ceil(WIDTH);
        let block = factors.div_ceil(2) * PAIR;
        let mut data = vec![0i8; blocks * block];
        let mut steps = vec![0f32; blocks * WIDTH];
        for (i, row) in rows.chunks_exact(factors.max(1)).enumerate() {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let step = if max > 0.0 { max / 127.0 } else { 1.0 };
            steps[i] = step;
            let (b, j) = (i / WIDTH, i % WIDTH);
            for (f, &v) in row.iter().enumerate() {
                let at = b * block + (f / 2) * PAIR + 2 * j + f % 2;
                data[at] = (v / step).round().clamp(-127.0, 127.0) as i8;
            }
        }
        Self {
            factors,
            items,
            steps,
            data,
        }
    }

    /// `out[i]` = the dot product of item `i`'s factors (as stored) with `x` (rounded to 16-bit
    /// steps), for every item (`out` may be shorter than the catalogue: the first `out.len()`
    /// items).
    pub fn scores(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), self.factors, "a user vector of the model's width");
        let (pairs, step) = pairs_of(x);
        #[cfg(target_arch = "x86_64")]
        if compact::vector() {
            // SAFETY: the CPU was just found to support AVX2, FMA and F16C, the call's
            // requirements.
            unsafe { self.scores_avx2(&pairs, step, out) };
            return;
        }
        self.scores_in_blocks(&pairs, step, out);
    }

    /// [`Self::scores_in_blocks`] in vector registers: a pair of factors of the block's eight
    /// items is one 16-byte load, widened to 16-bit and multiplied by the pair of the user's
    /// values, each item's two products added into its 32-bit sum.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn scores_avx2(&self, pairs: &[i32], step: f32, out: &mut [f32]) {
        use std::arch::x86_64::{
            __m128i, _mm_loadu_si128, _mm256_add_epi32, _mm256_cvtepi8_epi16, _mm256_cvtepi32_ps,
            _mm256_loadu_ps, _mm256_madd_epi16, _mm256_mul_ps, _mm256_set1_epi32, _mm256_set1_ps,
            _mm256_setzero_si256, _mm256_storeu_ps,
        };
        let step = _mm256_set1_ps(step);
        // The products of one pair of factors of the block's items.
        let products = |bytes: &[i8], x: i32| {
            // SAFETY: reads exactly the pair's 16 bytes.
            let items =
                unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(bytes.as_ptr().cast::<__m128i>())) };
            _mm256_madd_epi16(items, _mm256_set1_epi32(x))
        };
        for ((block, steps), out) in self.paired(out) {
            // Two sums, for pairs in turn: one chain of additions was the loop's limit.
            let (mut even, mut odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let (twos, last) = pairs.as_chunks::<2>();
            for (bytes, x) in block.chunks_exact(2 * PAIR).zip(twos) {
                even = _mm256_add_epi32(even, products(&bytes[..PAIR], x[0]));
                odd = _mm256_add_epi32(odd, products(&bytes[PAIR..], x[1]));
            }
            if let [x] = *last {
                even = _mm256_add_epi32(even, products(&block[block.len() - PAIR..], x));
            }
            let sum = _mm256_cvtepi32_ps(_mm256_add_epi32(even, odd));
            let mut scores = [0f32; WIDTH];
            // SAFETY: reads and writes exactly one `[f32; 8]`.
            unsafe {
                let steps = _mm256_loadu_ps(steps.as_ptr());
                let scaled = _mm256_mul_ps(_mm256_mul_ps(sum, steps), step);
                _mm256_storeu_ps(scores.as_mut_ptr(), scaled);
            }
            out.copy_from_slice(&scores[..out.len()]);
        }
    }

    /// Each block's bytes and steps with its stretch of `out`; every score is 0 for a model
    /// without factors.
    fn paired<'a, 'o>(
        &'a self,
        out: &'o mut [f32],
    ) -> impl Iterator<Item = ((&'a [i8], &'a [f32; WIDTH]), &'o mut [f32])> {
        let n = out.len().min(self.items);
        if self.factors == 0 {
            out[..n].fill(0.0);
        }
        let block = (self.factors.div_ceil(2) * PAIR).max(1);
        let blocks = self
            .data
            .chunks_exact(block)
            .zip(self.steps.as_chunks::<WIDTH>().0);
        blocks.zip(out[..n].chunks_mut(WIDTH))
    }

    fn scores_in_blocks(&self, pairs: &[i32], step: f32, out: &mut [f32]) {
        for ((block, steps), out) in self.paired(out) {
            let mut sums = [0i32; WIDTH];
            for (bytes, &x) in block.chunks_exact(PAIR).zip(pairs) {
                let (lo, hi) = (i32::from(x as i16), x >> 16);
                for (j, sum) in sums.iter_mut().enumerate() {
                    *sum += i32::from(bytes[2 * j]) * lo + i32::from(bytes[2 * j + 1]) * hi;
                }
            }
            for (j, o) in out.iter_mut().enumerate() {
                *o = sums[j] as f32 * steps[j] * step;
            }
        }
    }
}

/// `x` rounded to 16-bit integers, two factors per `i32` (factor `2p` in the low half, `2p + 1`
/// in the high half, zero past the end), and what one unit is worth: the largest magnitude over
/// 32,767, or less when the model is so wide that the sums could pass `i32::MAX`.
fn pairs_of(x: &[f32]) -> (Vec<i32>, f32) {
    let max = x
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()));
    // |byte| <= 127 times |unit| <= top, over every factor.
    let top = (i32::MAX as usize / (127 * x.len().max(1))).min(i16::MAX as usize) as f32;
    let step = if max > 0.0 { max / top } else { 1.0 };
    let unit = |v: f32| (v / step).round().clamp(-top, top) as i16 as u16 as i32;
    let pairs = x
        .chunks(2)
        .map(|two| unit(two[0]) | (two.get(1).map_or(0, |&v| unit(v)) << 16))
        .collect();
    (pairs, step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every item's score is its dot product with `x` to within the bytes' precision, for widths
    /// with and without a tail and catalogues that do not fill their last block; the vector loop
    /// and the portable one give the same bits.
    #[test]
    fn scores_are_dot_products_and_the_loops_agree() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (factors, items) in [(64, 1682), (8, 9), (19, 17), (4, 3), (1, 1), (128, 8)] {
            let rows: Vec<f32> = (0..factors * items)
                .map(|_| rng.random::<f32>() - 0.5)
                .collect();
            let x: Vec<f32> = (0..factors).map(|_| rng.random::<f32>() * 3.0).collect();
            let blocks = ItemBlocks::from_rows(&rows, factors);
            let mut out = vec![f32::NAN; items];
            blocks.scores(&x, &mut out);
            for (i, row) in rows.chunks_exact(factors).enumerate() {
                let want = crate::algo::dot(row, &x);
                // Each factor within half a step (at most 0.5 / 127 / 2) of itself, times at
                // most 3, and the user's values within 3 / 32,767 / 2 of themselves.
                let bound = 3.0 * factors as f32 / 508.0 + 3.0 * factors as f32 / 65534.0 + 1e-4;
                assert!((out[i] - want).abs() <= bound, "{factors} x {items}: {i}");
            }
            let mut portable = vec![f32::NAN; items];
            let (pairs, step) = pairs_of(&x);
            blocks.scores_in_blocks(&pairs, step, &mut portable);
            assert_eq!(out, portable, "the vector loop computes the same bits");
        }
    }
}
