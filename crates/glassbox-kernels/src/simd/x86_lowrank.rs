//! AVX2 (FMA, F16C) low-rank products: the same operations as `lowrank.rs`'s reference, lane
//! for lane, so every ISA gives the same bits (tested there).

use std::arch::x86_64::*;

use crate::isa::Avx2;
use crate::lowrank::{Part, tree16};

/// 8 values of `p` from element `i` as f32.
///
/// # Safety
/// AVX2 + F16C; `i + 8 <= p.len()`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8(p: Part, i: usize) -> __m256 {
    // SAFETY: bounds per contract (F16: bytes 2i..2i+16; F32: i..i+8); features per contract.
    unsafe {
        match p {
            Part::F16(b) => _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(2 * i) as *const __m128i)),
            Part::F32(v) => _mm256_loadu_ps(v.as_ptr().add(i)),
        }
    }
}

pub(crate) fn a_product(_: Avx2, a: Part, cols: usize, x: &[f32], t: &mut [f32]) {
    // SAFETY: the `Avx2` token proves AVX2 + FMA + F16C (isa.rs); bounds as `a_avx2` requires.
    unsafe { a_avx2(a, cols, x, t) }
}

/// # Safety
/// AVX2 + FMA + F16C; a.len() == t.len() × cols, x.len() == cols and cols % 16 == 0 (asserted by
/// the caller), so every 8-value load of row r at c and c + 8 (c < cols, step 16) is in bounds.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn a_avx2(a: Part, cols: usize, x: &[f32], t: &mut [f32]) {
    // SAFETY: per the function's contract.
    unsafe {
        for (r, t) in t.iter_mut().enumerate() {
            let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for c in (0..cols).step_by(16) {
                lo = _mm256_fmadd_ps(load8(a, r * cols + c), _mm256_loadu_ps(x.as_ptr().add(c)), lo);
                hi = _mm256_fmadd_ps(load8(a, r * cols + c + 8), _mm256_loadu_ps(x.as_ptr().add(c + 8)), hi);
            }
            let mut lanes = [0f32; 16];
            _mm256_storeu_ps(lanes.as_mut_ptr(), lo);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), hi);
            *t = tree16(&lanes);
        }
    }
}

pub(crate) fn b_product(_: Avx2, bt: Part, rank: usize, out: usize, t: &[f32], o0: usize, z: &mut [f32]) {
    let whole = z.len() / 8 * 8;
    // SAFETY: the `Avx2` token proves AVX2 + FMA + F16C (isa.rs); bounds as `b_avx2` requires.
    unsafe { b_avx2(bt, rank, out, t, o0, &mut z[..whole]) }
    crate::lowrank::b_product_scalar(bt, rank, out, t, o0 + whole, &mut z[whole..]);
}

/// # Safety
/// AVX2 + FMA + F16C; bt.len() == rank × out, t.len() == rank, o0 + z.len() <= out and
/// z.len() % 8 == 0, so the 8 outputs from o = o0 + k of any row r < rank lie inside bt, and
/// z[k..k + 8] inside z.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn b_avx2(bt: Part, rank: usize, out: usize, t: &[f32], o0: usize, z: &mut [f32]) {
    let whole = z.len();
    // SAFETY: per the function's contract.
    unsafe {
        for k in (0..whole).step_by(8) {
            let o = o0 + k;
            if rank.is_multiple_of(16) {
                let mut acc = [_mm256_setzero_ps(); 16];
                for c in (0..rank).step_by(16) {
                    for (l, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(load8(bt, (c + l) * out + o), _mm256_set1_ps(t[c + l]), *acc);
                    }
                }
                // The reduction tree, for 8 outputs at once.
                let mut t3 = [_mm256_setzero_ps(); 8];
                for i in 0..8 {
                    t3[i] = _mm256_add_ps(acc[8 + i], acc[i]);
                }
                let t6 = [
                    _mm256_add_ps(t3[4], t3[0]),
                    _mm256_add_ps(t3[5], t3[1]),
                    _mm256_add_ps(t3[6], t3[2]),
                    _mm256_add_ps(t3[7], t3[3]),
                ];
                let r = _mm256_add_ps(_mm256_add_ps(t6[0], t6[2]), _mm256_add_ps(t6[1], t6[3]));
                _mm256_storeu_ps(z.as_mut_ptr().add(k), r);
            } else {
                let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
                for (r, &tr) in t.iter().enumerate() {
                    let p = _mm256_mul_ps(load8(bt, r * out + o), _mm256_set1_ps(tr));
                    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
                    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
                }
                _mm_storeu_ps(z.as_mut_ptr().add(k), _mm256_cvtpd_ps(lo));
                _mm_storeu_ps(z.as_mut_ptr().add(k + 4), _mm256_cvtpd_ps(hi));
            }
        }
    }
}
