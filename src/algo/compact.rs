//! Model weights in compact form for serving: the catalogue-long rows a `quality` request reads
//! (EASE's rows in half precision, IEEE binary16; item-to-item's dense rows as bytes; the factor
//! blocks of [`super::factors`] as signed bytes) cost a half or a quarter of the bytes of `f32`,
//! and reading them, not the arithmetic, was what scoring waited for: on MovieLens 100K one
//! request read about 1.4 MB of weights, more than a core's L2 cache holds, and the same sums
//! over rows already in cache ran four to five times faster.
//!
//! Half-precision values are scaled by a power of two before rounding so that the largest lands
//! near the top of binary16's range (its 11-bit significand keeps about three decimal digits of
//! every weight down to a billionth of the largest); the scale is undone by multiplying the few
//! values the weights are combined with (a history's weights), which is exact. Byte rows carry
//! one step per row (what one unit is worth), folded into the history weight the same way. The
//! arithmetic is `f32`, each product added with one rounding (a fused multiply-add); the portable
//! loops do the same operations in the same order, so both give the same bits.
//!
//! The binary16 conversions come from the `half` crate; the row loops are ours (AVX2 with F16C
//! and FMA, found at run time by the standard library's feature detection), because they are
//! the inner loops of serving and must convert eight values per instruction.

use half::f16;

/// Whether this CPU runs the vector loops (checked once by the standard library, then cached).
#[cfg(target_arch = "x86_64")]
pub fn vector() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// The power of two that brings the largest magnitude of `values` to within a factor two below
/// 2^14 (1 when every value is zero or not finite).
pub fn scale_for(values: &[f32]) -> f32 {
    let max = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return 1.0;
    }
    let exp = 14 - max.log2().ceil() as i32;
    2f32.powi(exp.clamp(-100, 100))
}

/// `values × scale`, each rounded to the nearest binary16, as bits.
pub fn to_bits(values: &[f32], scale: f32) -> Vec<u16> {
    values
        .iter()
        .map(|&v| f16::from_f32(v * scale).to_bits())
        .collect()
}

/// One stored value as `f32` (still scaled).
pub fn value(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// `scores[j] += Σ x × row[j]` over `rows` (each at least `scores.len()` long), rows taken four
/// at a time so that `scores` is loaded and stored once per four rows; every item adds the rows
/// in their order, one fused multiply-add each. The rows come as an iterator, gathered four at
/// a time on the stack: a request allocates nothing for them.
pub fn add_rows<'a>(rows: impl IntoIterator<Item = (&'a [u16], f32)>, scores: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if vector() {
        // SAFETY: the CPU was just found to support AVX2, FMA and F16C, the calls' requirements.
        return in_fours(rows, scores, |quad, scores| unsafe {
            add_avx2(quad, scores)
        });
    }
    in_fours(rows, scores, |rows, scores| add_portable(rows, scores, 0));
}

/// Hands `rows` to `add` four at a time, then the last one to three one by one.
fn in_fours<'a, T: 'a>(
    rows: impl IntoIterator<Item = (&'a [T], f32)>,
    scores: &mut [f32],
    mut add: impl FnMut(&[(&'a [T], f32)], &mut [f32]),
) {
    let n = scores.len();
    let mut quad: [(&[T], f32); 4] = [(&[], 0.0); 4];
    let mut len = 0;
    for (row, x) in rows {
        assert!(row.len() >= n, "a row shorter than the scores");
        quad[len] = (row, x);
        len += 1;
        if len == 4 {
            add(&quad, scores);
            len = 0;
        }
    }
    for one in quad[..len].chunks(1) {
        add(one, scores);
    }
}

/// Adds four rows, or one, to `scores`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn add_avx2(rows: &[(&[u16], f32)], scores: &mut [f32]) {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm256_cvtph_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
        _mm256_set1_ps, _mm256_storeu_ps,
    };
    let n = scores.len();
    let whole = n / 8 * 8;
    // SAFETY (every load and store): `j + 8 <= whole <= n`, and every row is at least `n` long
    // (checked by `in_fours`).
    let load = |row: &[u16], j: usize| unsafe {
        _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(j).cast::<__m128i>()))
    };
    if let [(a, xa), (b, xb), (c, xc), (d, xd)] = *rows {
        let (va, vb, vc, vd) = (
            _mm256_set1_ps(xa),
            _mm256_set1_ps(xb),
            _mm256_set1_ps(xc),
            _mm256_set1_ps(xd),
        );
        for j in (0..whole).step_by(8) {
            let s = scores[j..].as_mut_ptr();
            // SAFETY: as above, eight floats of `scores` from `j`.
            unsafe {
                let mut acc = _mm256_loadu_ps(s);
                acc = _mm256_fmadd_ps(load(a, j), va, acc);
                acc = _mm256_fmadd_ps(load(b, j), vb, acc);
                acc = _mm256_fmadd_ps(load(c, j), vc, acc);
                acc = _mm256_fmadd_ps(load(d, j), vd, acc);
                _mm256_storeu_ps(s, acc);
            }
        }
    } else {
        for &(row, x) in rows {
            let vx = _mm256_set1_ps(x);
            for j in (0..whole).step_by(8) {
                let s = scores[j..].as_mut_ptr();
                // SAFETY: as above.
                unsafe {
                    _mm256_storeu_ps(s, _mm256_fmadd_ps(load(row, j), vx, _mm256_loadu_ps(s)))
                };
            }
        }
    }
    add_portable(rows, &mut scores[whole..n], whole);
}

/// [`add_rows`] over rows of bytes (`x × byte` per item: `x` carries the row's step).
pub fn add_byte_rows<'a>(rows: impl IntoIterator<Item = (&'a [u8], f32)>, scores: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if vector() {
        // SAFETY: the CPU was just found to support AVX2, FMA and F16C, the calls' requirements.
        return in_fours(rows, scores, |quad, scores| unsafe {
            add_bytes_avx2(quad, scores)
        });
    }
    in_fours(rows, scores, |rows, scores| {
        add_bytes_portable(rows, scores, 0)
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn add_bytes_avx2(rows: &[(&[u8], f32)], scores: &mut [f32]) {
    use std::arch::x86_64::{
        __m128i, _mm_loadl_epi64, _mm256_cvtepi32_ps, _mm256_cvtepu8_epi32, _mm256_fmadd_ps,
        _mm256_loadu_ps, _mm256_set1_ps, _mm256_storeu_ps,
    };
    let n = scores.len();
    let whole = n / 8 * 8;
    // SAFETY (every load and store): `j + 8 <= whole <= n`, and every row is at least `n` long.
    let load = |row: &[u8], j: usize| unsafe {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
            row.as_ptr().add(j).cast::<__m128i>(),
        )))
    };
    if let [(a, xa), (b, xb), (c, xc), (d, xd)] = *rows {
        let (va, vb, vc, vd) = (
            _mm256_set1_ps(xa),
            _mm256_set1_ps(xb),
            _mm256_set1_ps(xc),
            _mm256_set1_ps(xd),
        );
        for j in (0..whole).step_by(8) {
            let s = scores[j..].as_mut_ptr();
            // SAFETY: as above, eight floats of `scores` from `j`.
            unsafe {
                let mut acc = _mm256_loadu_ps(s);
                acc = _mm256_fmadd_ps(load(a, j), va, acc);
                acc = _mm256_fmadd_ps(load(b, j), vb, acc);
                acc = _mm256_fmadd_ps(load(c, j), vc, acc);
                acc = _mm256_fmadd_ps(load(d, j), vd, acc);
                _mm256_storeu_ps(s, acc);
            }
        }
    } else {
        for &(row, x) in rows {
            let vx = _mm256_set1_ps(x);
            for j in (0..whole).step_by(8) {
                let s = scores[j..].as_mut_ptr();
                // SAFETY: as above.
                unsafe {
                    _mm256_storeu_ps(s, _mm256_fmadd_ps(load(row, j), vx, _mm256_loadu_ps(s)))
                };
            }
        }
    }
    add_bytes_portable(rows, &mut scores[whole..n], whole);
}

/// Rows of bytes with one step for all of them (what one unit is worth), unweighted:
/// `sums[j] += step × Σ row[j]`, the sum counted exactly in 16-bit integers (up to
/// [`COUNT_BATCH`] rows at a time, the most that cannot overflow) and multiplied by the step once
/// per item, instead of a conversion and a multiply-add per row and item. Integer sums do not
/// depend on the order of adding, so any instruction set gives the same bits: one loop, compiled
/// twice (for AVX2, found at run time, and for the baseline), with no hand-written intrinsics.
pub fn count_byte_rows(rows: &[&[u8]], step: f32, sums: &mut [f32]) {
    assert!(
        rows.iter().all(|r| r.len() >= sums.len()),
        "a row shorter than the sums"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just found to support AVX2, the call's requirement.
        return unsafe { count_avx2(rows, step, sums) };
    }
    count(rows, step, sums);
}

/// The most byte rows whose sum fits 16 bits: 257 × 255 = 65,535.
pub const COUNT_BATCH: usize = (u16::MAX / u8::MAX as u16) as usize;

/// Items per span of [`count`]: their 16-bit sums (8 KB) stay in the L1 cache while the rows
/// are added four at a time, each row read front to back (a stream the prefetcher follows; rows
/// read a cache line at a time across many rows waited on memory and were slower than
/// [`add_byte_rows`]).
const COUNT_SPAN: usize = 4096;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_avx2(rows: &[&[u8]], step: f32, sums: &mut [f32]) {
    count(rows, step, sums);
}

/// [`count_byte_rows`]' loop, inlined into each caller so that it is compiled for the caller's
/// instruction set.
#[inline(always)]
fn count<'a>(rows: &[&'a [u8]], step: f32, sums: &mut [f32]) {
    let mut acc = [0u16; COUNT_SPAN];
    for batch in rows.chunks(COUNT_BATCH) {
        for (at, span) in (0..).step_by(COUNT_SPAN).zip(sums.chunks_mut(COUNT_SPAN)) {
            let len = span.len();
            let acc = &mut acc[..len];
            acc.fill(0);
            let part = |row: &'a [u8]| &row[at..at + len];
            let mut quads = batch.chunks_exact(4);
            for quad in &mut quads {
                let [a, b, c, d] = [quad[0], quad[1], quad[2], quad[3]].map(part);
                for ((((x, &a), &b), &c), &d) in acc.iter_mut().zip(a).zip(b).zip(c).zip(d) {
                    *x += u16::from(a) + u16::from(b) + u16::from(c) + u16::from(d);
                }
            }
            for row in quads.remainder() {
                for (x, &a) in acc.iter_mut().zip(part(row)) {
                    *x += u16::from(a);
                }
            }
            for (s, &x) in span.iter_mut().zip(acc.iter()) {
                *s += f32::from(x) * step;
            }
        }
    }
}

/// [`add_byte_rows`]' arithmetic without vector instructions, from item `from` on.
fn add_bytes_portable(rows: &[(&[u8], f32)], scores: &mut [f32], from: usize) {
    for (j, s) in (from..).zip(scores.iter_mut()) {
        let mut acc = *s;
        for &(row, x) in rows {
            acc = f32::from(row[j]).mul_add(x, acc);
        }
        *s = acc;
    }
}

/// Adds `rows` from item `from` on to `scores` (which starts at item `from`) without vector
/// instructions: the vector loop's operations in the same order.
fn add_portable(rows: &[(&[u16], f32)], scores: &mut [f32], from: usize) {
    for (j, s) in (from..).zip(scores.iter_mut()) {
        let mut acc = *s;
        for &(row, x) in rows {
            acc = value(row[j]).mul_add(x, acc);
        }
        *s = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// The scale puts the largest value just under 2^14 whatever its size, and rounding keeps
    /// every value within binary16's relative precision of itself.
    #[test]
    fn scaled_values_keep_three_digits() {
        for max in [3e-7f32, 0.02, 1.0, 7.5, 9e6] {
            let values = [max, -max / 3.0, max / 1000.0, 0.0];
            let scale = scale_for(&values);
            let top = max * scale;
            assert!((8192.0..=16384.0).contains(&top), "{max}: {top}");
            for (&v, bits) in values.iter().zip(to_bits(&values, scale)) {
                let back = value(bits) / scale;
                assert!((back - v).abs() <= v.abs() / 1024.0, "{v} -> {back}");
            }
        }
        assert_eq!(scale_for(&[0.0, f32::NAN]), 1.0);
    }

    /// The vector loop gives the portable loop's bits, for any number of rows and any width,
    /// and both are the sum of the rounded rows to within float rounding.
    #[test]
    fn vector_rows_add_as_portable_rows() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for n in [1, 7, 8, 9, 33, 1682] {
            let data: Vec<Vec<u16>> = (0..13)
                .map(|_| {
                    let row: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
                    to_bits(&row, 1.0)
                })
                .collect();
            for len in [0, 1, 3, 4, 5, 9, 13] {
                let rows: Vec<(&[u16], f32)> = data[..len]
                    .iter()
                    .map(|r| (&r[..], rng.random::<f32>() * 2.0))
                    .collect();
                let mut got = vec![0.5f32; n];
                add_rows(rows.iter().copied(), &mut got);
                let mut portable = vec![0.5f32; n];
                in_fours(rows.iter().copied(), &mut portable, |rows, scores| {
                    add_portable(rows, scores, 0)
                });
                assert_eq!(got, portable, "{n} items, {len} rows");
                for (j, &g) in got.iter().enumerate() {
                    let want: f64 = 0.5
                        + rows
                            .iter()
                            .map(|&(r, x)| f64::from(value(r[j])) * f64::from(x))
                            .sum::<f64>();
                    assert!((f64::from(g) - want).abs() < 1e-5, "{n} {len} {j}");
                }
            }
        }
    }

    /// Counted rows: the vector loop gives the baseline loop's bits, which are the exact sum
    /// times the step, past a batch of rows and for widths that are not whole blocks.
    #[test]
    fn counted_rows_are_exact_sums() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for n in [0, 1, 63, 64, 65, 1682] {
            let data: Vec<Vec<u8>> = (0..COUNT_BATCH + 3)
                .map(|_| (0..n).map(|_| rng.random::<u8>()).collect())
                .collect();
            for len in [0, 1, 5, COUNT_BATCH, COUNT_BATCH + 3] {
                let rows: Vec<&[u8]> = data[..len].iter().map(|r| &r[..]).collect();
                let step = 0.37f32;
                let mut got = vec![0.0f32; n];
                count_byte_rows(&rows, step, &mut got);
                let mut baseline = vec![0.0f32; n];
                count(&rows, step, &mut baseline);
                assert_eq!(got, baseline, "{n} items, {len} rows");
                for (j, &g) in got.iter().enumerate() {
                    let sum: u32 = rows.iter().map(|r| u32::from(r[j])).sum();
                    let want = f64::from(sum) * f64::from(step);
                    assert!((f64::from(g) - want).abs() <= want * 1e-6, "{n} {len} {j}");
                }
            }
        }
    }

    /// Byte rows: the vector loop gives the portable loop's bits, and both are the exact sum.
    #[test]
    fn byte_rows_add_as_portable_rows() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for n in [1, 8, 9, 1682] {
            let data: Vec<Vec<u8>> = (0..9)
                .map(|_| (0..n).map(|_| rng.random::<u8>()).collect())
                .collect();
            for len in [0, 1, 4, 5, 9] {
                let rows: Vec<(&[u8], f32)> = data[..len]
                    .iter()
                    .map(|r| (&r[..], rng.random::<f32>() / 255.0))
                    .collect();
                let mut got = vec![0.25f32; n];
                add_byte_rows(rows.iter().copied(), &mut got);
                let mut portable = vec![0.25f32; n];
                in_fours(rows.iter().copied(), &mut portable, |rows, scores| {
                    add_bytes_portable(rows, scores, 0)
                });
                assert_eq!(got, portable, "{n} items, {len} rows");
                for (j, &g) in got.iter().enumerate() {
                    let want: f64 = 0.25
                        + rows
                            .iter()
                            .map(|&(r, x)| f64::from(r[j]) * f64::from(x))
                            .sum::<f64>();
                    assert!((f64::from(g) - want).abs() < 1e-5, "{n} {len} {j}");
                }
            }
        }
    }
}
