//! x86-64 kernels over [`PackedMatrix`] (8-row interleaved records, see `packed.rs`).

use std::arch::x86_64::*;
use std::ops::Range;

use super::x86::{Dp, Madd, TILE, Vnni, bcast4, store_group};
use crate::act::{Q8Block, Q8KBlock};
use crate::isa::Simd;
use crate::matmul::SharedOut;
use crate::packed::{GROUP, PackedMatrix};

/// Panics unless everything the packed kernels read or write for `groups` × `n_tok` tokens
/// lies inside `p`'s records, `x_len` activation blocks and `y`.
fn check(p: &PackedMatrix, groups: &Range<usize>, x_len: usize, n_tok: usize, y: &SharedOut) {
    let n_groups = p.rows.div_ceil(GROUP);
    assert!(groups.end <= n_groups, "groups {groups:?} outside the {n_groups} of the matrix");
    let need = n_groups.checked_mul(p.nb).and_then(|n| n.checked_mul(p.fmt.record_bytes()));
    assert!(need.is_some_and(|n| n <= p.data.len()), "packed records shorter than their shape");
    assert!(n_tok.checked_mul(p.nb).is_some_and(|n| n <= x_len), "activations shorter than n_tok rows");
    y.check(n_tok, p.rows);
}

/// Rows of `groups` (8 rows each) of y = x · Wᵀ for a packed 32-element-block matrix and Q8
/// activations (`p.nb` blocks per token). Panics if the lengths do not fit.
///
/// # Safety
/// `y` was made from a slice that is still mutably borrowed for this call, and no other
/// thread reads or writes its elements (t, r) for rows r of `groups` meanwhile.
pub(crate) unsafe fn packed_rows(simd: Simd, p: &PackedMatrix, groups: Range<usize>, x: &[Q8Block], n_tok: usize, y: SharedOut) {
    assert!(!p.fmt.k, "K-quant matrix needs Q8_K activations");
    check(p, &groups, x.len(), n_tok, &y);
    match simd {
        // SAFETY: the token proves avx2+fma+f16c+avxvnni (isa.rs); `check` asserted every
        // bound the kernel relies on; exclusive rows of `y` are this function's contract.
        Simd::Vnni(_) => unsafe { packed_rows_avxvnni(p, groups, x, n_tok, y) },
        // SAFETY: as above, with the `Avx2` token proving avx2+fma+f16c.
        Simd::Avx2(_) => unsafe { packed_rows_avx2(p, groups, x, n_tok, y) },
    }
}

/// As [`packed_rows`] for packed K-quants and Q8_K activations.
///
/// # Safety
/// As [`packed_rows`].
pub(crate) unsafe fn packed_k_rows(simd: Simd, p: &PackedMatrix, groups: Range<usize>, x: &[Q8KBlock], n_tok: usize, y: SharedOut) {
    assert!(p.fmt.k, "32-element-block matrix needs Q8 activations");
    check(p, &groups, x.len(), n_tok, &y);
    match simd {
        // SAFETY: the token proves avx2+fma+f16c+avxvnni (isa.rs); `check` asserted every
        // bound the kernel relies on; exclusive rows of `y` are this function's contract.
        Simd::Vnni(_) => unsafe { packed_k_rows_avxvnni(p, groups, x, n_tok, y) },
        // SAFETY: as above, with the `Avx2` token proving avx2+fma+f16c.
        Simd::Avx2(_) => unsafe { packed_k_rows_avx2(p, groups, x, n_tok, y) },
    }
}

/// # Safety
/// AVX2 + FMA + F16C + AVX-VNNI, and the bounds [`check`] asserts.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn packed_rows_avxvnni(p: &PackedMatrix, groups: Range<usize>, x: &[Q8Block], n_tok: usize, y: SharedOut) {
    // SAFETY: forwarded contract; this function has the features `Vnni` needs.
    unsafe { packed_rows_with::<Vnni>(p, groups, x, n_tok, y) }
}

/// The same on plain AVX2 (+ FMA + F16C); see [`Dp`] for how pairs stay unsaturated.
///
/// # Safety
/// AVX2 + FMA + F16C, and the bounds [`check`] asserts.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn packed_rows_avx2(p: &PackedMatrix, groups: Range<usize>, x: &[Q8Block], n_tok: usize, y: SharedOut) {
    // SAFETY: forwarded contract; this function has the features `Madd` needs.
    unsafe { packed_rows_with::<Madd>(p, groups, x, n_tok, y) }
}

/// # Safety
/// `D`'s features, and the bounds [`check`] asserts.
#[inline(always)]
unsafe fn packed_rows_with<D: Dp>(p: &PackedMatrix, groups: Range<usize>, x: &[Q8Block], n_tok: usize, y: SharedOut) {
    let f = p.fmt;
    // SAFETY: forwarded contract; the format flags select the record layout `p` was packed in.
    unsafe {
        match (f.has_min, f.nibbles, f.high_bits) {
            (false, true, false) => packed_kernel::<D, false, true, false>(p, groups, x, n_tok, y),
            (true, true, false) => packed_kernel::<D, true, true, false>(p, groups, x, n_tok, y),
            (false, true, true) => packed_kernel::<D, false, true, true>(p, groups, x, n_tok, y),
            (true, true, true) => packed_kernel::<D, true, true, true>(p, groups, x, n_tok, y),
            (false, false, false) => packed_kernel::<D, false, false, false>(p, groups, x, n_tok, y),
            _ => unreachable!("no such packed format"),
        }
    }
}

/// # Safety
/// `D`'s features (and AVX2 + FMA + F16C), `p.fmt` matches `MIN`/`NIB`/`HB`, and the bounds
/// [`check`] asserts.
#[inline(always)]
unsafe fn packed_kernel<D: Dp, const MIN: bool, const NIB: bool, const HB: bool>(
    p: &PackedMatrix,
    groups: Range<usize>,
    x: &[Q8Block],
    n_tok: usize,
    y: SharedOut,
) {
    let nb = p.nb;
    let rec = p.fmt.record_bytes();
    let qo = p.fmt.quant_offset();
    let off = p.fmt.off;
    let base = p.data.as_ptr();
    // SAFETY: record (g, b) spans base + (g·nb + b)·rec .. + rec, inside `p.data` for
    // g < groups.end ≤ n_groups and b < nb (asserted by `check`). Within a record this reads
    // d at 0..16, m at 16..32 (MIN), 4 × 32 nibble bytes + 32 high-bit bytes (HB) or 8 × 32
    // bytes at `qo`, ending exactly at `rec` (`PackFormat::record_bytes`). Activation block
    // (t0+t)·nb + b < n_tok·nb ≤ x.len() (`check`); `bcast4` reads qs[0..32] of that block.
    // Stores go through `store_group` inside `y` (`check`). Features: the caller's.
    unsafe {
        let m0f = _mm256_set1_epi8(0x0F);
        let m10 = _mm256_set1_epi8(0x10);
        for g in groups {
            let mut t0 = 0;
            while t0 < n_tok {
                let nt = (n_tok - t0).min(TILE);
                let mut acc = [_mm256_setzero_ps(); TILE];
                for b in 0..nb {
                    let r = base.add((g * nb + b) * rec);
                    let dv = _mm256_cvtph_ps(_mm_loadu_si128(r as *const __m128i));
                    let mv = if MIN { _mm256_cvtph_ps(_mm_loadu_si128(r.add(16) as *const __m128i)) } else { _mm256_setzero_ps() };
                    let q = r.add(qo);
                    let mut v = [_mm256_setzero_si256(); 8];
                    if NIB {
                        for i in 0..4 {
                            let raw = _mm256_loadu_si256(q.add(32 * i) as *const __m256i);
                            v[i] = _mm256_and_si256(raw, m0f);
                            v[i + 4] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m0f);
                        }
                        if HB {
                            let h = _mm256_loadu_si256(q.add(128) as *const __m256i);
                            v[0] = _mm256_or_si256(v[0], _mm256_and_si256(_mm256_slli_epi16(h, 4), m10));
                            v[1] = _mm256_or_si256(v[1], _mm256_and_si256(_mm256_slli_epi16(h, 3), m10));
                            v[2] = _mm256_or_si256(v[2], _mm256_and_si256(_mm256_slli_epi16(h, 2), m10));
                            v[3] = _mm256_or_si256(v[3], _mm256_and_si256(_mm256_slli_epi16(h, 1), m10));
                            v[4] = _mm256_or_si256(v[4], _mm256_and_si256(h, m10));
                            v[5] = _mm256_or_si256(v[5], _mm256_and_si256(_mm256_srli_epi16(h, 1), m10));
                            v[6] = _mm256_or_si256(v[6], _mm256_and_si256(_mm256_srli_epi16(h, 2), m10));
                            v[7] = _mm256_or_si256(v[7], _mm256_and_si256(_mm256_srli_epi16(h, 3), m10));
                        }
                    } else {
                        for i in 0..8 {
                            v[i] = _mm256_loadu_si256(q.add(32 * i) as *const __m256i);
                        }
                    }
                    for t in 0..nt {
                        let xb = x.get_unchecked((t0 + t) * nb + b);
                        let xq = xb.qs.as_ptr();
                        let z = _mm256_setzero_si256();
                        let dp = |acc, w, x| if NIB { D::dp(acc, w, x) } else { D::dp_q8(acc, w, x) };
                        let p0 = dp(z, v[0], bcast4(xq));
                        let p1 = dp(z, v[1], bcast4(xq.add(4)));
                        let p2 = dp(z, v[2], bcast4(xq.add(8)));
                        let p3 = dp(z, v[3], bcast4(xq.add(12)));
                        let p0 = dp(p0, v[4], bcast4(xq.add(16)));
                        let p1 = dp(p1, v[5], bcast4(xq.add(20)));
                        let p2 = dp(p2, v[6], bcast4(xq.add(24)));
                        let p3 = dp(p3, v[7], bcast4(xq.add(28)));
                        let mut s = _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3));
                        if off != 0 && (NIB || D::Q8_OFFSET) {
                            s = _mm256_sub_epi32(s, _mm256_set1_epi32(off * xb.isum));
                        }
                        let scale = _mm256_mul_ps(dv, _mm256_set1_ps(xb.d));
                        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[t]);
                        if MIN {
                            acc[t] = _mm256_fmadd_ps(mv, _mm256_set1_ps(xb.s), acc[t]);
                        }
                    }
                }
                store_group(&acc[..nt], p.rows, g, t0, y);
                t0 += nt;
            }
        }
    }
}

/// Packed K-quant kernel (Q8_K activations): rows of `groups` for `n_tok` tokens.
///
/// # Safety
/// AVX2 + FMA + F16C + AVX-VNNI, and the bounds [`check`] asserts.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn packed_k_rows_avxvnni(p: &PackedMatrix, groups: Range<usize>, x: &[Q8KBlock], n_tok: usize, y: SharedOut) {
    // SAFETY: forwarded contract; this function has the features `Vnni` needs.
    unsafe { packed_k_kernel::<Vnni>(p, groups, x, n_tok, y) }
}

/// The same on plain AVX2: K-quant weights are at most 6 bits, so pairs never saturate.
///
/// # Safety
/// AVX2 + FMA + F16C, and the bounds [`check`] asserts.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn packed_k_rows_avx2(p: &PackedMatrix, groups: Range<usize>, x: &[Q8KBlock], n_tok: usize, y: SharedOut) {
    // SAFETY: forwarded contract; this function has the features `Madd` needs.
    unsafe { packed_k_kernel::<Madd>(p, groups, x, n_tok, y) }
}

/// # Safety
/// `D`'s features (and AVX2 + FMA + F16C), `p.fmt.k`, and the bounds [`check`] asserts.
#[inline(always)]
unsafe fn packed_k_kernel<D: Dp>(p: &PackedMatrix, groups: Range<usize>, x: &[Q8KBlock], n_tok: usize, y: SharedOut) {
    let nb = p.nb;
    let rec = p.fmt.record_bytes();
    let off = p.fmt.off;
    let has_min = p.fmt.has_min;
    let base = p.data.as_ptr();
    // SAFETY: record (g, b) spans base + (g·nb + b)·rec .. + rec (2336 bytes), inside `p.data`
    // for g < groups.end ≤ n_groups, b < nb (`check`). Within it: d 0..16, dmin 16..32,
    // sc 32 + 8s + 8 ≤ 160, mn 160 + 8s + 8 ≤ 288, q 288 + 128s + 128 ≤ 2336 for s < 16.
    // Activation block (t0+t)·nb + b < n_tok·nb ≤ x.len() (`check`); `bcast4` reads
    // qs[16s..16s+16] of its 256. Stores go through `store_group` inside `y` (`check`).
    unsafe {
        for g in groups {
            let mut t0 = 0;
            while t0 < n_tok {
                let nt = (n_tok - t0).min(TILE);
                let mut acc = [_mm256_setzero_ps(); TILE];
                for b in 0..nb {
                    let r = base.add((g * nb + b) * rec);
                    let dv = _mm256_cvtph_ps(_mm_loadu_si128(r as *const __m128i));
                    let dminv = _mm256_cvtph_ps(_mm_loadu_si128(r.add(16) as *const __m128i));
                    let sc = r.add(32);
                    let mn = r.add(160);
                    let q = r.add(288);
                    let mut isc = [_mm256_setzero_si256(); TILE];
                    for s in 0..16 {
                        let w0 = _mm256_loadu_si256(q.add(128 * s) as *const __m256i);
                        let w1 = _mm256_loadu_si256(q.add(128 * s + 32) as *const __m256i);
                        let w2 = _mm256_loadu_si256(q.add(128 * s + 64) as *const __m256i);
                        let w3 = _mm256_loadu_si256(q.add(128 * s + 96) as *const __m256i);
                        let scv = _mm256_cvtepi8_epi32(_mm_loadl_epi64(sc.add(8 * s) as *const __m128i));
                        for t in 0..nt {
                            let xq = x.get_unchecked((t0 + t) * nb + b).qs.as_ptr().add(16 * s);
                            let z = _mm256_setzero_si256();
                            let a = D::dp(z, w0, bcast4(xq));
                            let c = D::dp(z, w1, bcast4(xq.add(4)));
                            let a = D::dp(a, w2, bcast4(xq.add(8)));
                            let c = D::dp(c, w3, bcast4(xq.add(12)));
                            isc[t] = _mm256_add_epi32(isc[t], _mm256_mullo_epi32(_mm256_add_epi32(a, c), scv));
                        }
                    }
                    for t in 0..nt {
                        let xb = x.get_unchecked((t0 + t) * nb + b);
                        // Offset correction and mins: Σ_s sc_s·bsum_s and Σ_s mn_s·bsum_s.
                        let mut corr = _mm256_setzero_si256();
                        let mut imn = _mm256_setzero_si256();
                        for s in 0..16 {
                            let bs = _mm256_set1_epi32(xb.bsums[s]);
                            if off != 0 {
                                let scv = _mm256_cvtepi8_epi32(_mm_loadl_epi64(sc.add(8 * s) as *const __m128i));
                                corr = _mm256_add_epi32(corr, _mm256_mullo_epi32(scv, bs));
                            }
                            if has_min {
                                let mnv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(mn.add(8 * s) as *const __m128i));
                                imn = _mm256_add_epi32(imn, _mm256_mullo_epi32(mnv, bs));
                            }
                        }
                        let mut v = isc[t];
                        if off != 0 {
                            v = _mm256_sub_epi32(v, _mm256_mullo_epi32(corr, _mm256_set1_epi32(off)));
                        }
                        let xd = _mm256_set1_ps(xb.d);
                        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(dv, xd), acc[t]);
                        if has_min {
                            acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imn), _mm256_mul_ps(dminv, xd), acc[t]);
                        }
                    }
                }
                store_group(&acc[..nt], p.rows, g, t0, y);
                t0 += nt;
            }
        }
    }
}
