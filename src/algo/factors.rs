//! [`ItemBlocks`]: a factor model's item factors laid out for scoring the whole catalogue for one
//! user, the inner loop of `quality` and of offline evaluation.
//!
//! Scoring item by item with [`super::dot`] ends every item with a sum across its eight lanes:
//! seven dependent additions that the CPU cannot spread over vector registers, which made scoring
//! 1,682 items with two 64-factor models a third of `quality`'s time on MovieLens. Here eight items
//! sit side by side (factor `f` of items `8b..8b+8` is one run of eight floats), so every step,
//! the lanes' sums included, is one vector operation over eight items. Each item's arithmetic is
//! the same as [`super::dot`]'s, operation for operation (eight lanes over the factors in order,
//! the lanes summed first to last, then the tail), so the scores are bit-identical to scoring item
//! by item: answers do not change.
//!
//! On x86-64 with AVX2 (found at run time by the standard library's feature detection: one cached
//! check, no crate needed for a single function) the loop is written in AVX2 intrinsics, one
//! register per lane; elsewhere the same arithmetic runs as plain Rust (the compiler kept its
//! arrays in memory, so it is the slower path). Neither fuses a multiply and an add, so both
//! compute `dot`'s bits.
//!
//! The layout is a second copy of the item factors, built on first use (when a snapshot is
//! installed): 512 bytes per item for the two 64-factor models.

/// Items per block: one 256-bit vector of `f32`.
const WIDTH: usize = 8;
/// The lanes of [`super::dot`].
const LANES: usize = 8;

/// Item factors in blocks of [`WIDTH`] items, factor-major inside a block; the last block is
/// padded with zero items.
#[derive(Debug, Clone)]
pub struct ItemBlocks {
    factors: usize,
    items: usize,
    data: Vec<f32>,
}

impl ItemBlocks {
    /// From row-major factors (`factors` per item).
    pub fn from_rows(rows: &[f32], factors: usize) -> Self {
        let items = rows.len().checked_div(factors).unwrap_or(0);
        let blocks = items.div_ceil(WIDTH);
        let mut data = vec![0f32; blocks * WIDTH * factors];
        for (i, row) in rows.chunks_exact(factors.max(1)).enumerate() {
            let block = &mut data[(i / WIDTH) * WIDTH * factors..][..WIDTH * factors];
            for (f, &v) in row.iter().enumerate() {
                block[f * WIDTH + i % WIDTH] = v;
            }
        }
        Self {
            factors,
            items,
            data,
        }
    }

    /// `out[i]` = the dot product of item `i`'s factors with `x`, for every item (`out` may be
    /// shorter than the catalogue: the first `out.len()` items).
    pub fn scores(&self, x: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just found to support AVX2, the only requirement of the call.
            unsafe { self.scores_avx2(x, out) };
            return;
        }
        self.scores_in_blocks(x, out);
    }

    /// [`Self::scores_in_blocks`] in AVX2 registers: one register per lane holds that lane of
    /// the block's eight items, so each step is the scalar code's step for eight items at once.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn scores_avx2(&self, x: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::{
            _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps,
            _mm256_storeu_ps,
        };
        let k = self.factors;
        let whole = k / LANES * LANES;
        for (rows, out) in self.paired(x, out) {
            // SAFETY (every load and store below): each reads or writes exactly one `[f32; 8]`.
            let row = |f: usize| unsafe { _mm256_loadu_ps(rows[f].as_ptr()) };
            let mut lanes = [_mm256_setzero_ps(); LANES];
            for c in 0..whole / LANES {
                for (l, lane) in lanes.iter_mut().enumerate() {
                    let f = c * LANES + l;
                    *lane = _mm256_add_ps(*lane, _mm256_mul_ps(row(f), _mm256_set1_ps(x[f])));
                }
            }
            let mut tail = _mm256_set1_ps(-0.0);
            for (f, &xf) in x.iter().enumerate().skip(whole) {
                tail = _mm256_add_ps(tail, _mm256_mul_ps(row(f), _mm256_set1_ps(xf)));
            }
            let mut sum = _mm256_set1_ps(-0.0);
            for lane in lanes {
                sum = _mm256_add_ps(sum, lane);
            }
            let mut scores = [0f32; WIDTH];
            unsafe { _mm256_storeu_ps(scores.as_mut_ptr(), _mm256_add_ps(sum, tail)) };
            out.copy_from_slice(&scores[..out.len()]);
        }
    }

    /// Each block's rows (`rows[f]`: factor `f` of its items) with its stretch of `out`; every
    /// score is 0 for a model without factors.
    fn paired<'a, 'o>(
        &'a self,
        x: &[f32],
        out: &'o mut [f32],
    ) -> impl Iterator<Item = (&'a [[f32; WIDTH]], &'o mut [f32])> {
        assert_eq!(x.len(), self.factors, "a user vector of the model's width");
        let n = out.len().min(self.items);
        if self.factors == 0 {
            out[..n].fill(0.0);
        }
        let block = (WIDTH * self.factors).max(1);
        let blocks = self
            .data
            .chunks_exact(block)
            .map(|b| b.as_chunks::<WIDTH>().0);
        blocks.zip(out[..n].chunks_mut(WIDTH))
    }

    #[inline(always)]
    fn scores_in_blocks(&self, x: &[f32], out: &mut [f32]) {
        let k = self.factors;
        let whole = k / LANES * LANES;
        for (rows, out) in self.paired(x, out) {
            // lanes[l][j]: lane `l` of item `j`, as `dot` keeps it.
            let mut lanes = [[0f32; WIDTH]; LANES];
            for c in 0..whole / LANES {
                let xs: &[f32; LANES] = x[c * LANES..][..LANES].try_into().expect("8 factors");
                let rs: &[[f32; WIDTH]; LANES] =
                    rows[c * LANES..][..LANES].try_into().expect("8 rows");
                for l in 0..LANES {
                    for j in 0..WIDTH {
                        lanes[l][j] += rs[l][j] * xs[l];
                    }
                }
            }
            let mut tail = [-0f32; WIDTH];
            for f in whole..k {
                for j in 0..WIDTH {
                    tail[j] += rows[f][j] * x[f];
                }
            }
            let mut sum = [-0f32; WIDTH];
            for lane in &lanes {
                for j in 0..WIDTH {
                    sum[j] += lane[j];
                }
            }
            for (j, o) in out.iter_mut().enumerate() {
                *o = sum[j] + tail[j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every item's score is bit for bit what `dot` gives, for widths with and without a tail and
    /// catalogues that do not fill their last block.
    #[test]
    fn scores_equal_dot_bit_for_bit() {
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
                assert_eq!(out[i].to_bits(), want.to_bits(), "{factors} x {items}: {i}");
            }
            let mut portable = vec![f32::NAN; items];
            blocks.scores_in_blocks(&x, &mut portable);
            assert_eq!(out, portable, "the vector copy computes the same bits");
        }
    }
}
