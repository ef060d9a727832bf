//! AVX-512 attention for a tile of tokens over one KV head's cache rows (f16 or q8_0): each
//! 16-row K/V block is converted once for every query of the tile, and the query (or the
//! output) stays in registers while the block's rows stream past.

use std::arch::x86_64::*;

use crate::isa::Avx512;

/// As [`crate::attend`] for a tile of tokens, whose bounds [`crate::AttnHead`]'s check has
/// asserted. Returns false (doing nothing) for head sizes this kernel does not cover.
pub(crate) fn attend(_: Avx512, a: &crate::AttnHead, scratch: &mut Vec<f32>, out: &mut [f32]) -> bool {
    let kmin = a.ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let kmax = a.ranges.iter().map(|r| r.1).max().unwrap_or(0);
    let need = (a.ranges.len() * a.group).checked_mul(kmax - kmin).expect("scores size overflows");
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    // SAFETY: the `Avx512` token proves AVX-512 F plus AVX2/FMA/F16C (isa.rs); `AttnHead::check`
    // asserted that every query, cache row and output the tile touches is in bounds, and
    // `scratch` holds (tokens × heads) × (kmax − kmin) scores.
    unsafe {
        match (a.hd, a.hdv) {
            (64, 64) => attend_tile::<4, 4>(a, kmin, kmax, scratch, out),
            (128, 128) => attend_tile::<8, 8>(a, kmin, kmax, scratch, out),
            (256, 256) => attend_tile::<16, 16>(a, kmin, kmax, scratch, out),
            // DeepSeek-2's latent attention: compressed row 512 + rotary 64, V the first 512.
            (576, 512) => attend_tile::<36, 32>(a, kmin, kmax, scratch, out),
            _ => return false,
        }
    }
    true
}

/// The widest K or V row the tiled kernel converts (DeepSeek-2's 576).
const ROW_MAX: usize = 576;

/// 16 vectors → one vector of their 16 horizontal sums (lane i = Σ acc[i]).
///
/// # Safety
/// AVX-512 F.
#[inline(always)]
unsafe fn reduce16(acc: &[__m512; 16]) -> __m512 {
    // SAFETY: register-only AVX-512 F intrinsics; features per contract.
    unsafe {
        let mut b = [_mm512_setzero_ps(); 8];
        for i in 0..8 {
            // Per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3].
            b[i] = _mm512_add_ps(_mm512_unpacklo_ps(acc[2 * i], acc[2 * i + 1]), _mm512_unpackhi_ps(acc[2 * i], acc[2 * i + 1]));
        }
        let mut c = [_mm512_setzero_ps(); 4];
        for i in 0..4 {
            // Per 128-bit lane: the lane's sums of acc[4i..4i+4].
            let (x, y) = (_mm512_castps_pd(b[2 * i]), _mm512_castps_pd(b[2 * i + 1]));
            c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
        }
        // Across the four 128-bit lanes: pairs, then the final sum, keeping acc order.
        let e0 = _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(c[0], c[1]), _mm512_shuffle_f32x4::<0b11_01_11_01>(c[0], c[1]));
        let e1 = _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(c[2], c[3]), _mm512_shuffle_f32x4::<0b11_01_11_01>(c[2], c[3]));
        _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(e0, e1), _mm512_shuffle_f32x4::<0b11_01_11_01>(e0, e1))
    }
}

/// e^x per lane (Cephes expf: |error| ≤ 1 ulp over the range softmax uses; x ≤ −104 → 0).
///
/// # Safety
/// AVX-512 F.
#[inline(always)]
unsafe fn exp512(x: __m512) -> __m512 {
    // SAFETY: register-only AVX-512 F intrinsics; features per contract.
    unsafe {
        let x = _mm512_max_ps(x, _mm512_set1_ps(-104.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0)));
        _mm512_scalef_ps(p, n)
    }
}

/// Softmax of `x` in place, each probability then rounded to f16 (sum in f64, as ggml).
///
/// # Safety
/// AVX-512 F + F16C; `x` is non-empty.
#[inline(always)]
unsafe fn softmax_f16(x: &mut [f32]) {
    let n = x.len();
    let full = n / 16;
    let tail = (1u32 << (n % 16)) as u16 - 1;
    // SAFETY: loads/stores of 16 floats at 16i for i < full, and the masked tail at 16·full
    // touching only lanes < n % 16: all inside `x`. Features per contract.
    unsafe {
        let p = x.as_mut_ptr();
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut m = ninf;
        for i in 0..full {
            m = _mm512_max_ps(m, _mm512_loadu_ps(p.add(16 * i)));
        }
        m = _mm512_max_ps(m, _mm512_mask_loadu_ps(ninf, tail, p.add(16 * full)));
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
        let (mut s0, mut s1) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let mut add = |e: __m512| {
            s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e)))));
        };
        for i in 0..full {
            let e = exp512(_mm512_sub_ps(_mm512_loadu_ps(p.add(16 * i)), max));
            _mm512_storeu_ps(p.add(16 * i), e);
            add(e);
        }
        if tail != 0 {
            let e = exp512(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, tail, p.add(16 * full)), max));
            _mm512_mask_storeu_ps(p.add(16 * full), tail, e);
            add(e);
        }
        let inv = _mm512_set1_ps((1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))) as f32);
        let round = |v: __m512| _mm512_cvtph_ps(_mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(v, inv)));
        for i in 0..full {
            _mm512_storeu_ps(p.add(16 * i), round(_mm512_loadu_ps(p.add(16 * i))));
        }
        if tail != 0 {
            _mm512_mask_storeu_ps(p.add(16 * full), tail, round(_mm512_mask_loadu_ps(_mm512_setzero_ps(), tail, p.add(16 * full))));
        }
    }
}

/// Rows `kb..kb + nk` (nk ≤ 16) of a cache, 16·D elements each (row p from element p·stride),
/// as f32 into `buf` (row r at 16·D·r); rows past `nk` become zeros.
///
/// # Safety
/// AVX-512 F + F16C; rows kb..kb+nk hold 16·D elements inside `c`; for Q8_0 the stride and
/// 16·D are whole blocks (as `AttnHead::check` asserts).
#[inline(always)]
unsafe fn rows_to_f32<const D: usize>(c: crate::CacheRows, stride: usize, kb: usize, nk: usize, buf: &mut [[f32; ROW_MAX]; 16]) {
    // SAFETY: F16 reads 16 f16 at (kb + r)·stride + 16d inside row kb + r; Q8_0 reads block
    // ((kb + r)·stride + 16d) / 32 — its f16 scale and the 16 quants of half (d mod 2) — inside
    // the same row's blocks (contract); writes stay inside `buf` (16·D ≤ 256). Features per
    // contract.
    unsafe {
        for (r, row) in buf.iter_mut().enumerate() {
            for d in 0..D {
                let v = if r >= nk {
                    _mm512_setzero_ps()
                } else {
                    let e = (kb + r) * stride + 16 * d;
                    match c {
                        crate::CacheRows::F16(b) => _mm512_cvtph_ps(_mm256_loadu_si256(b.as_ptr().add(e) as *const __m256i)),
                        crate::CacheRows::Q8_0(b) => {
                            let blk = b.as_ptr().add(e / 32 * crate::Q8_0_BLOCK);
                            let scale = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((blk as *const u16).read_unaligned() as i32)));
                            let q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(blk.add(2 + e % 32) as *const __m128i)));
                            _mm512_mul_ps(q, _mm512_set1_ps(scale))
                        }
                        crate::CacheRows::F32(b) => _mm512_loadu_ps(b.as_ptr().add(e)),
                    }
                };
                _mm512_storeu_ps(row.as_mut_ptr().add(16 * d), v);
            }
        }
    }
}

/// # Safety
/// AVX-512 F + F16C; `a` passed `AttnHead::check` with hd = 16·DK, hdv = 16·DV; `kmin`/`kmax`
/// are the smallest start and largest end of `a.ranges`; `s` holds (tokens × heads) ×
/// (kmax − kmin) floats.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn attend_tile<const DK: usize, const DV: usize>(a: &crate::AttnHead, kmin: usize, kmax: usize, s: &mut [f32], out: &mut [f32]) {
    let span = kmax - kmin;
    let mut buf = [[0f32; ROW_MAX]; 16];
    // Lanes of the 16-key block at kb that token j attends.
    let lanes = |kb: usize, nk: usize, (st, en): (usize, usize)| -> (usize, usize) { (st.saturating_sub(kb).min(nk), en.saturating_sub(kb).min(nk)) };
    // SAFETY: queries q[j·q_stride + g·hd + 16c ..+16] and cache rows < kmax are in bounds
    // (`AttnHead::check`); score rows (j·group + g)·span + (kb − kmin) + lane for valid lanes
    // (key < en ≤ kmax) lie in `s`; out rows (j·group + g)·hdv + 16d ..+16 lie in `out`
    // (check). Features: this function's.
    unsafe {
        // Scores, 16 keys at a time: each K row converted once for every query head of the tile.
        let iota = _mm512_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0);
        let mut kb = kmin;
        while kb < kmax {
            let nk = (kmax - kb).min(16);
            rows_to_f32::<DK>(a.k, a.k_stride, kb, nk, &mut buf);
            for (j, &r) in a.ranges.iter().enumerate() {
                let (lo, hi) = lanes(kb, nk, r);
                if lo >= hi {
                    continue;
                }
                let mask = (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16;
                for g in 0..a.group {
                    let qp = a.q.as_ptr().add(j * a.q_stride + g * a.hd);
                    // The query in registers; each key's sum is one chain written once, so the
                    // 16 partial sums stay in registers too.
                    let mut qv = [_mm512_setzero_ps(); DK];
                    for (c, qc) in qv.iter_mut().enumerate() {
                        *qc = _mm512_loadu_ps(qp.add(16 * c));
                    }
                    let mut acc = [_mm512_setzero_ps(); 16];
                    for (ak, krow) in acc.iter_mut().zip(buf.iter()) {
                        let mut s = _mm512_setzero_ps();
                        for (c, qc) in qv.iter().enumerate() {
                            s = _mm512_fmadd_ps(*qc, _mm512_loadu_ps(krow.as_ptr().add(16 * c)), s);
                        }
                        *ak = s;
                    }
                    let mut sc = _mm512_mul_ps(reduce16(&acc), _mm512_set1_ps(a.scale));
                    if let Some(&slope) = a.alibi.get(g) {
                        // ALiBi: slope × (key − the query's position), as the scalar path
                        // computes it (product, then sum; small integers are exact in f32).
                        let dist = _mm512_add_ps(_mm512_set1_ps(kb as f32 - (r.1 - 1) as f32), iota);
                        sc = _mm512_add_ps(sc, _mm512_mul_ps(_mm512_set1_ps(slope), dist));
                    }
                    _mm512_mask_storeu_ps(s.as_mut_ptr().add((j * a.group + g) * span + (kb - kmin)), mask, sc);
                }
            }
            kb += 16;
        }
        for (j, &(st, en)) in a.ranges.iter().enumerate() {
            for g in 0..a.group {
                let row = (j * a.group + g) * span;
                softmax_f16(&mut s[row + st - kmin..row + en - kmin]);
            }
        }
        // Probability-weighted V rows, 16 keys at a time, each converted once.
        out.fill(0.0);
        let mut kb = kmin;
        while kb < kmax {
            let nk = (kmax - kb).min(16);
            rows_to_f32::<DV>(a.v, a.v_stride, kb, nk, &mut buf);
            for (j, &r) in a.ranges.iter().enumerate() {
                let (lo, hi) = lanes(kb, nk, r);
                for g in 0..a.group {
                    let (row, op) = ((j * a.group + g) * span + (kb - kmin), out.as_mut_ptr().add((j * a.group + g) * a.hdv));
                    let mut o = [_mm512_setzero_ps(); DV];
                    for (d, od) in o.iter_mut().enumerate() {
                        *od = _mm512_loadu_ps(op.add(16 * d));
                    }
                    for (vrow, &pl) in buf[lo..hi].iter().zip(&s[row + lo..row + hi]) {
                        let p = _mm512_set1_ps(pl);
                        for (d, od) in o.iter_mut().enumerate() {
                            *od = _mm512_fmadd_ps(p, _mm512_loadu_ps(vrow.as_ptr().add(16 * d)), *od);
                        }
                    }
                    for (d, od) in o.iter().enumerate() {
                        _mm512_storeu_ps(op.add(16 * d), *od);
                    }
                }
            }
            kb += 16;
        }
    }
}
