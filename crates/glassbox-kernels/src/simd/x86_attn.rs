//! AVX-512 attention helpers over an f16 KV cache: the query (or the output) stays in
//! registers while rows stream past, instead of being reloaded for every row.

use std::arch::x86_64::*;

use crate::isa::Avx512;

/// As [`crate::ops::dots_f16_strided`], whose bounds check the caller has done. Returns
/// false (doing nothing) for row lengths this kernel does not cover (not 64, 128 or 256).
pub(crate) fn dots_f16_strided(_: Avx512, a: &[f32], b: &[u16], stride: usize, out: &mut [f32]) -> bool {
    if let Some(last) = out.len().checked_sub(1) {
        assert!(last.checked_mul(stride).and_then(|s| s.checked_add(a.len())).is_some_and(|e| e <= b.len()), "rows exceed the cache");
    }
    // SAFETY: the `Avx512` token exists only once detection found AVX-512 F and AVX2/F16C
    // (isa.rs); rows i < out.len() end at i·stride + a.len() ≤ b.len() (asserted above).
    unsafe {
        match a.len() {
            64 => dots::<4>(a, b, stride, out),
            128 => dots::<8>(a, b, stride, out),
            256 => dots::<16>(a, b, stride, out),
            _ => return false,
        }
    }
    true
}

/// As [`crate::ops::weighted_sum_f16_strided`], whose bounds check the caller has done.
/// Returns false (doing nothing) for row lengths this kernel does not cover.
pub(crate) fn weighted_sum_f16_strided(_: Avx512, out: &mut [f32], w: &[f32], b: &[u16], stride: usize) -> bool {
    if let Some(last) = w.len().checked_sub(1) {
        assert!(last.checked_mul(stride).and_then(|s| s.checked_add(out.len())).is_some_and(|e| e <= b.len()), "rows exceed the cache");
    }
    // SAFETY: as in `dots_f16_strided`, for rows i < w.len() of out.len() values.
    unsafe {
        match out.len() {
            64 => wsum::<4>(out, w, b, stride),
            128 => wsum::<8>(out, w, b, stride),
            256 => wsum::<16>(out, w, b, stride),
            _ => return false,
        }
    }
    true
}

/// # Safety
/// AVX-512 F + F16C; `a.len() == 16·N`; rows i < out.len() at `b[i·stride..]` hold 16·N values.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn dots<const N: usize>(a: &[f32], b: &[u16], stride: usize, out: &mut [f32]) {
    // SAFETY: loads a[16j..16j+16] for j < N (a.len() = 16N) and 16 f16 at row + 16j, inside
    // row i's 16N values (the contract); features: this function's.
    unsafe {
        let mut q = [_mm512_setzero_ps(); N];
        for (j, qj) in q.iter_mut().enumerate() {
            *qj = _mm512_loadu_ps(a.as_ptr().add(16 * j));
        }
        for (i, o) in out.iter_mut().enumerate() {
            let row = b.as_ptr().add(i * stride);
            let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            for j in (0..N).step_by(2) {
                s0 = _mm512_fmadd_ps(q[j], _mm512_cvtph_ps(_mm256_loadu_si256(row.add(16 * j) as *const __m256i)), s0);
                s1 = _mm512_fmadd_ps(q[j + 1], _mm512_cvtph_ps(_mm256_loadu_si256(row.add(16 * j + 16) as *const __m256i)), s1);
            }
            *o = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
        }
    }
}

/// # Safety
/// AVX-512 F + F16C; `out.len() == 16·N`; rows i < w.len() at `b[i·stride..]` hold 16·N values.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn wsum<const N: usize>(out: &mut [f32], w: &[f32], b: &[u16], stride: usize) {
    // SAFETY: loads 16 f16 at row + 16j (j < N) inside row i's 16N values, stores
    // out[16j..16j+16] with out.len() = 16N (the contract); features: this function's.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); N];
        for (i, &wi) in w.iter().enumerate() {
            let row = b.as_ptr().add(i * stride);
            let ws = _mm512_set1_ps(wi);
            for (j, aj) in acc.iter_mut().enumerate() {
                *aj = _mm512_fmadd_ps(ws, _mm512_cvtph_ps(_mm256_loadu_si256(row.add(16 * j) as *const __m256i)), *aj);
            }
        }
        for (j, aj) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.as_mut_ptr().add(16 * j), *aj);
        }
    }
}
