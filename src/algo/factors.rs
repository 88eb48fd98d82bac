//! [`ItemBlocks`]: a factor model's item factors laid out for scoring the whole catalogue for one
//! user, the inner loop of `quality` and of offline evaluation.
//!
//! Scoring item by item with [`super::dot`] ends every item with a sum across its eight lanes:
//! seven dependent additions that the CPU cannot spread over vector registers, which made scoring
//! 1,682 items with two 64-factor models a third of `quality`'s time on MovieLens. Here eight items
//! sit side by side (factor `f` of items `8b..8b+8` is one run of eight values), so every step,
//! the lanes' sums included, is one vector operation over eight items: eight lanes over the
//! factors in order (factor `f` into lane `f % 8`, one fused multiply-add each), the lanes summed
//! first to last.
//!
//! The factors are stored as signed bytes, each item with its own step (its largest magnitude
//! over 127; [`super::compact`]): 128 factors of 1,682 items are 215 KB instead of 861 KB, and a
//! request waited on reading them. The step multiplies the item's sum at the end. On MovieLens
//! 100K NDCG@10 of ALS moved by at most 0.0008 on three splits. On x86-64 with AVX2, FMA and
//! F16C (found at run time) the loop is written in intrinsics, one register per lane; elsewhere
//! the same arithmetic runs as plain Rust, to the same bits.
//!
//! The layout is a second copy of the item factors, built on first use (when a snapshot is
//! installed): the snapshot keeps the `f32` factors that folding a new user in and `enhanced`'s
//! features read.

use super::compact;

/// Items per block: one 256-bit vector of `f32`.
const WIDTH: usize = 8;
/// Independent sums per item (factor `f` adds into lane `f % LANES`).
const LANES: usize = 8;

/// Item factors in blocks of [`WIDTH`] items, factor-major inside a block, each item's factors
/// as signed bytes times its own step (its largest magnitude over 127); the last block is padded
/// with zero items.
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
        let mut data = vec![0i8; blocks * WIDTH * factors];
        let mut steps = vec![0f32; blocks * WIDTH];
        for (i, row) in rows.chunks_exact(factors.max(1)).enumerate() {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let step = if max > 0.0 { max / 127.0 } else { 1.0 };
            steps[i] = step;
            let block = &mut data[(i / WIDTH) * WIDTH * factors..][..WIDTH * factors];
            for (f, &v) in row.iter().enumerate() {
                block[f * WIDTH + i % WIDTH] = (v / step).round().clamp(-127.0, 127.0) as i8;
            }
        }
        Self {
            factors,
            items,
            steps,
            data,
        }
    }

    /// `out[i]` = the dot product of item `i`'s factors (as stored) with `x`, for every item
    /// (`out` may be shorter than the catalogue: the first `out.len()` items).
    pub fn scores(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), self.factors, "a user vector of the model's width");
        #[cfg(target_arch = "x86_64")]
        if compact::vector() {
            // SAFETY: the CPU was just found to support AVX2, FMA and F16C, the call's
            // requirements.
            unsafe { self.scores_avx2(x, out) };
            return;
        }
        self.scores_in_blocks(x, out);
    }

    /// [`Self::scores_in_blocks`] in vector registers: one register per lane holds that lane of
    /// the block's eight items, so each step is the scalar code's step for eight items at once.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn scores_avx2(&self, x: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::{
            __m128i, _mm_loadl_epi64, _mm256_add_ps, _mm256_cvtepi8_epi32, _mm256_cvtepi32_ps,
            _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps,
            _mm256_storeu_ps,
        };
        for ((rows, steps), out) in self.paired(out) {
            // SAFETY: each load reads exactly one `[i8; 8]`.
            let row = |f: usize| unsafe {
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                    rows[f].as_ptr().cast::<__m128i>(),
                )))
            };
            let mut lanes = [_mm256_setzero_ps(); LANES];
            let (whole, tail) = x.as_chunks::<LANES>();
            for (c, xs) in whole.iter().enumerate() {
                for (l, lane) in lanes.iter_mut().enumerate() {
                    *lane = _mm256_fmadd_ps(row(c * LANES + l), _mm256_set1_ps(xs[l]), *lane);
                }
            }
            for (l, &xf) in tail.iter().enumerate() {
                let f = whole.len() * LANES + l;
                lanes[l] = _mm256_fmadd_ps(row(f), _mm256_set1_ps(xf), lanes[l]);
            }
            let mut sum = _mm256_setzero_ps();
            for lane in lanes {
                sum = _mm256_add_ps(sum, lane);
            }
            let mut scores = [0f32; WIDTH];
            // SAFETY: reads and writes exactly one `[f32; 8]`.
            unsafe {
                let steps = _mm256_loadu_ps(steps.as_ptr());
                _mm256_storeu_ps(scores.as_mut_ptr(), _mm256_mul_ps(sum, steps));
            }
            out.copy_from_slice(&scores[..out.len()]);
        }
    }

    /// Each block's rows (`rows[f]`: factor `f` of its items) and steps with its stretch of
    /// `out`; every score is 0 for a model without factors.
    #[allow(clippy::type_complexity)]
    fn paired<'a, 'o>(
        &'a self,
        out: &'o mut [f32],
    ) -> impl Iterator<Item = ((&'a [[i8; WIDTH]], &'a [f32; WIDTH]), &'o mut [f32])> {
        let n = out.len().min(self.items);
        if self.factors == 0 {
            out[..n].fill(0.0);
        }
        let block = (WIDTH * self.factors).max(1);
        let blocks = self
            .data
            .chunks_exact(block)
            .map(|b| b.as_chunks::<WIDTH>().0)
            .zip(self.steps.as_chunks::<WIDTH>().0);
        blocks.zip(out[..n].chunks_mut(WIDTH))
    }

    #[inline(always)]
    fn scores_in_blocks(&self, x: &[f32], out: &mut [f32]) {
        for ((rows, steps), out) in self.paired(out) {
            // lanes[l][j]: lane `l` of item `j`.
            let mut lanes = [[0f32; WIDTH]; LANES];
            for (f, &xf) in x.iter().enumerate() {
                for j in 0..WIDTH {
                    let lane = &mut lanes[f % LANES][j];
                    *lane = f32::from(rows[f][j]).mul_add(xf, *lane);
                }
            }
            let mut sum = [0f32; WIDTH];
            for lane in &lanes {
                for j in 0..WIDTH {
                    sum[j] += lane[j];
                }
            }
            for (j, o) in out.iter_mut().enumerate() {
                *o = sum[j] * steps[j];
            }
        }
    }
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
                // most 3.
                let bound = 3.0 * factors as f32 / 508.0 + 1e-4;
                assert!((out[i] - want).abs() <= bound, "{factors} x {items}: {i}");
            }
            let mut portable = vec![f32::NAN; items];
            blocks.scores_in_blocks(&x, &mut portable);
            assert_eq!(out, portable, "the vector loop computes the same bits");
        }
    }
}
