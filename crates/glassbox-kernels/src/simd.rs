//! x86-64 SIMD kernels. Results equal the scalar kernels up to float summation order (tested).
//!
//! Only the `pub(crate)` entry points below are reachable from the rest of the crate, and each
//! takes a proof token from [`crate::isa`] (minted only after CPU detection) so the
//! `#[target_feature]` code never runs on a CPU without those features. Entry points that read
//! through raw offsets assert every length they rely on before entering the unchecked loops;
//! those that write a shared output through a raw pointer stay `unsafe fn`, with exclusive
//! access to the rows they write as the caller's only obligation.

// Indexed loops over small register arrays mirror the data layout; keep them.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
pub(crate) mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use crate::act::{Q8Block, Q8KBlock};
    use crate::isa::{Avx2, Simd};
    use crate::matmul::SharedOut;
    use crate::quant::QType;

    pub(crate) use super::x86_packed::{packed_k_rows, packed_rows, runs};

    /// Max tokens processed together against one weight block.
    pub(crate) const TILE: usize = 4;

    // ---- Register helpers. `#[inline(always)]` without `target_feature`, so they are compiled
    // inside (and with the features of) the `#[target_feature]` kernel that calls them. ----
    // Each is `unsafe` because it needs AVX2 (+FMA/F16C where used): the caller must be such a
    // kernel, which in turn is reached only through a proof token.

    /// # Safety
    /// The CPU has AVX2.
    #[inline(always)]
    pub(super) unsafe fn hsum(v: __m256) -> f32 {
        // SAFETY: register-only AVX intrinsics; AVX2 is this function's precondition.
        unsafe {
            let lo = _mm256_castps256_ps128(v);
            let hi = _mm256_extractf128_ps(v, 1);
            let s = _mm_add_ps(lo, hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }

    /// 32 bits → 32 bytes, 0xFF where the bit is set (element j ↔ bit j).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[inline(always)]
    unsafe fn bytes_from_bits_32(bits: u32) -> __m256i {
        // SAFETY: register-only AVX2 intrinsics; AVX2 is this function's precondition.
        unsafe {
            let shuf = _mm256_set_epi64x(
                0x0303030303030303,
                0x0202020202020202,
                0x0101010101010101,
                0x0000000000000000,
            );
            let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf);
            let mask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
            _mm256_cmpeq_epi8(_mm256_or_si256(bytes, mask), _mm256_set1_epi64x(-1))
        }
    }

    /// The 16 bytes at `p` as 32 nibbles (low nibbles first).
    ///
    /// # Safety
    /// The CPU has AVX2 and `p..p+16` is readable.
    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        // SAFETY: 16-byte unaligned load inside the readable range the caller guarantees;
        // the rest is register-only AVX2.
        unsafe {
            let q = _mm_loadu_si128(p as *const __m128i);
            let m = _mm_set1_epi8(0x0F);
            let lo = _mm_and_si128(q, m);
            let hi = _mm_and_si128(_mm_srli_epi16(q, 4), m);
            _mm256_set_m128i(hi, lo)
        }
    }

    /// Two f16 values at `p` (d, m) → f32.
    ///
    /// # Safety
    /// The CPU has F16C and `p..p+4` is readable.
    #[inline(always)]
    unsafe fn f16x2(p: *const u8) -> (f32, f32) {
        // SAFETY: a 4-byte unaligned read inside the caller's readable range; F16C per contract.
        unsafe {
            let v = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const u32).read_unaligned() as i32));
            (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1)))
        }
    }

    /// # Safety
    /// The CPU has F16C and `p..p+2` is readable.
    #[inline(always)]
    unsafe fn f16x1(p: *const u8) -> f32 {
        // SAFETY: a 2-byte unaligned read inside the caller's readable range; F16C per contract.
        unsafe {
            let h = (p as *const u16).read_unaligned();
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
        }
    }

    /// A weight block unpacked: `q` bytes (unsigned when `signed` is false), scale `d`,
    /// min `m` (0 for symmetric types).
    struct Unpacked {
        q: __m256i,
        d: f32,
        m: f32,
    }

    /// # Safety
    /// The CPU has AVX2 + F16C, `ty` is one of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and
    /// `b..b + ty.block().1` is readable.
    #[inline(always)]
    unsafe fn unpack(ty: QType, b: *const u8) -> Unpacked {
        // SAFETY: every read below ends within the type's block size (Q4_0 18: d@0, nibbles
        // 2..18; Q4_1 20: d,m@0..4, 4..20; Q5_0 22: qh 2..6, 6..22; Q5_1 24: qh 4..8, 8..24;
        // Q8_0 34: 2..34), which the caller guarantees readable; features per contract.
        unsafe {
            match ty {
                QType::Q4_0 => {
                    let q = _mm256_sub_epi8(nibbles(b.add(2)), _mm256_set1_epi8(8));
                    Unpacked { q, d: f16x1(b), m: 0.0 }
                }
                QType::Q4_1 => {
                    let (d, m) = f16x2(b);
                    Unpacked { q: nibbles(b.add(4)), d, m }
                }
                QType::Q5_0 => {
                    let qh = (b.add(2) as *const u32).read_unaligned();
                    let hi = _mm256_andnot_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0xF0u8 as i8));
                    Unpacked { q: _mm256_or_si256(nibbles(b.add(6)), hi), d: f16x1(b), m: 0.0 }
                }
                QType::Q5_1 => {
                    let (d, m) = f16x2(b);
                    let qh = (b.add(4) as *const u32).read_unaligned();
                    let hi = _mm256_and_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0x10));
                    Unpacked { q: _mm256_or_si256(nibbles(b.add(8)), hi), d, m }
                }
                QType::Q8_0 => Unpacked {
                    q: _mm256_loadu_si256(b.add(2) as *const __m256i),
                    d: f16x1(b),
                    m: 0.0,
                },
                _ => unreachable!("checked by rows_q8"),
            }
        }
    }

    #[inline(always)]
    fn is_signed(ty: QType) -> bool {
        matches!(ty, QType::Q4_0 | QType::Q5_0 | QType::Q8_0)
    }

    macro_rules! define_rows_q8 {
        ($name:ident, $features:literal, $dot:ident) => {
            /// y[t * ldy + r] = Σ_cols W[r] · x[t] for rows `r` of `w` and `n_tok` tokens.
            ///
            /// # Safety
            /// The CPU has the enabled features, and the bounds `rows_q8` asserts hold.
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $name(
                ty: QType,
                w: &[u8],
                row_bytes: usize,
                rows: Range<usize>,
                x: &[Q8Block],
                nb: usize,
                n_tok: usize,
                y: SharedOut,
            ) {
                let bs = ty.block().1;
                let signed = is_signed(ty);
                // SAFETY: (see `rows_q8`, which asserted these before the call) row r < rows.end
                // starts at r·row_bytes with rows.end·row_bytes ≤ w.len(), and its nb blocks of bs
                // bytes fit in row_bytes; x[(t0+t)·nb + b] < n_tok·nb ≤ x.len(); each write is
                // (t, r) with t < n_tok, r < rows.end, inside `y` by `SharedOut::check` and
                // exclusive to this thread by the caller's contract. Features: this kernel's.
                unsafe {
                    for r in rows {
                        let row = w.as_ptr().add(r * row_bytes);
                        let mut t0 = 0;
                        while t0 < n_tok {
                            let nt = (n_tok - t0).min(TILE);
                            let mut acc = [_mm256_setzero_ps(); TILE];
                            let mut accm = [0f32; TILE];
                            for b in 0..nb {
                                let u = unpack(ty, row.add(b * bs));
                                let aq = if signed { _mm256_sign_epi8(u.q, u.q) } else { u.q };
                                for t in 0..nt {
                                    let xb = x.get_unchecked((t0 + t) * nb + b);
                                    let xq = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
                                    let xq = if signed { _mm256_sign_epi8(xq, u.q) } else { xq };
                                    let p = $dot(aq, xq);
                                    let s = _mm256_set1_ps(u.d * xb.d);
                                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[t]);
                                    accm[t] += u.m * xb.s;
                                }
                            }
                            for t in 0..nt {
                                y.write(t0 + t, r, hsum(acc[t]) + accm[t]);
                            }
                            t0 += nt;
                        }
                    }
                }
            }
        };
    }

    /// # Safety
    /// The CPU has AVX2.
    #[inline(always)]
    unsafe fn dot_maddubs(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only AVX2 intrinsics; AVX2 per contract.
        unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)) }
    }
    /// # Safety
    /// The CPU has AVX-VNNI.
    #[inline(always)]
    unsafe fn dot_avxvnni(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only AVX-VNNI intrinsic; AVX-VNNI per contract.
        unsafe { _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), a, b) }
    }
    /// # Safety
    /// The CPU has AVX-512 VNNI and VL.
    #[inline(always)]
    unsafe fn dot_evex(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only AVX-512 VNNI/VL intrinsic; those features per contract.
        unsafe { _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b) }
    }

    /// `acc + Σ₄ a·b` per i32 lane, a unsigned and b signed bytes. AVX-VNNI does it in one
    /// instruction; plain AVX2 multiplies pairs into i16 (saturating: callers keep
    /// |2·a·b| < 2¹⁵, i.e. weights below 128) and sums pairs into i32.
    ///
    /// Methods are `unsafe`: they require the implementor's features (AVX2, plus AVX-VNNI for
    /// [`Vnni`]).
    pub(super) trait Dp {
        /// # Safety
        /// The CPU has the implementor's features.
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
        /// Whether [`Dp::dp_q8`] works on the offset (value + 128) bytes, so the caller
        /// subtracts `128 · Σx`.
        const Q8_OFFSET: bool;
        /// `acc + Σ₄ w·x` for Q8_0 weights stored as value + 128.
        ///
        /// # Safety
        /// The CPU has the implementor's features.
        unsafe fn dp_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i;
    }
    pub(super) struct Vnni;
    /// The EVEX-encoded 256-bit `vpdpbusd` of AVX-512 VNNI + VL (CPUs such as Zen 4 have it
    /// without the VEX-encoded AVX-VNNI form).
    pub(super) struct Evex;
    pub(super) struct Madd;
    impl Dp for Evex {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: register-only AVX-512 VNNI/VL intrinsic; those features per the trait contract.
            unsafe { _mm256_dpbusd_epi32(acc, a, b) }
        }
        const Q8_OFFSET: bool = true;
        #[inline(always)]
        unsafe fn dp_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
            // SAFETY: register-only AVX-512 VNNI/VL intrinsic; those features per the trait contract.
            unsafe { _mm256_dpbusd_epi32(acc, w, x) }
        }
    }
    impl Dp for Vnni {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: register-only AVX-VNNI intrinsic; AVX-VNNI per the trait contract.
            unsafe { _mm256_dpbusd_avx_epi32(acc, a, b) }
        }
        const Q8_OFFSET: bool = true;
        #[inline(always)]
        unsafe fn dp_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
            // SAFETY: register-only AVX-VNNI intrinsic; AVX-VNNI per the trait contract.
            unsafe { _mm256_dpbusd_avx_epi32(acc, w, x) }
        }
    }
    impl Dp for Madd {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: register-only AVX2 intrinsics; AVX2 per the trait contract.
            unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))) }
        }
        // 8-bit weights would saturate the i16 pair sums as offset bytes; back to i8 and
        // multiply |w| by x·sign(w) instead (|pair| ≤ 2·128·127 < 2¹⁵).
        const Q8_OFFSET: bool = false;
        #[inline(always)]
        unsafe fn dp_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
            // SAFETY: register-only AVX2 intrinsics; AVX2 per the trait contract.
            unsafe {
                let ws = _mm256_xor_si256(w, _mm256_set1_epi8(-128));
                Self::dp(acc, _mm256_sign_epi8(ws, ws), _mm256_sign_epi8(x, ws))
            }
        }
    }

    define_rows_q8!(rows_q8_avx2, "avx2,fma,f16c", dot_maddubs);
    define_rows_q8!(rows_q8_avxvnni, "avx2,fma,f16c,avxvnni", dot_avxvnni);
    define_rows_q8!(rows_q8_avx512, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", dot_evex);

    /// Rows `rows` of y (`n_tok × y.ldy`) = x · Wᵀ for unpacked Q4_0/Q4_1/Q5_0/Q5_1/Q8_0
    /// weights `w`: rows of `row_bytes` bytes, each holding `nb` blocks; `x` holds `nb`
    /// blocks per token. Panics if any of those lengths do not fit.
    ///
    /// # Safety
    /// `y` was made from a slice that is still mutably borrowed for this call, and no other
    /// thread reads or writes its elements (t, r) for r in `rows` meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn rows_q8(
        simd: Simd,
        ty: QType,
        w: &[u8],
        row_bytes: usize,
        rows: Range<usize>,
        x: &[Q8Block],
        nb: usize,
        n_tok: usize,
        y: SharedOut,
    ) {
        assert!(matches!(ty, QType::Q4_0 | QType::Q4_1 | QType::Q5_0 | QType::Q5_1 | QType::Q8_0), "{ty:?} has no Q8 kernel");
        assert!(nb.checked_mul(ty.block().1).is_some_and(|n| n <= row_bytes), "row shorter than its blocks");
        assert!(rows.end.checked_mul(row_bytes).is_some_and(|n| n <= w.len()), "rows outside the weights");
        assert!(n_tok.checked_mul(nb).is_some_and(|n| n <= x.len()), "activations shorter than n_tok rows");
        y.check(n_tok, rows.end);
        match simd {
            // SAFETY: the token proves avx2+fma+f16c+avxvnni (isa.rs); the bounds the kernel
            // relies on were asserted just above; exclusive access to `y`'s rows is ours by
            // this function's contract.
            Simd::Vnni(_) => unsafe { rows_q8_avxvnni(ty, w, row_bytes, rows, x, nb, n_tok, y) },
            // SAFETY: as above, with the `Avx2` token proving avx2+fma+f16c.
            Simd::Avx2(_) => unsafe { rows_q8_avx2(ty, w, row_bytes, rows, x, nb, n_tok, y) },
            // SAFETY: as above, with the `Avx512` token proving avx2+fma+f16c and AVX-512
            // F/BW/VL/VNNI.
            Simd::Avx512(_) => unsafe { rows_q8_avx512(ty, w, row_bytes, rows, x, nb, n_tok, y) },
        }
    }

    /// Four vectors of eight i32 (each in i8 range) → 32 bytes in element order.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[inline(always)]
    unsafe fn pack_i8x32(q: &[__m256i; 4]) -> __m256i {
        // SAFETY: register-only AVX2 intrinsics; AVX2 per contract.
        unsafe {
            let a = _mm256_packs_epi32(q[0], q[1]);
            let b = _mm256_packs_epi32(q[2], q[3]);
            let v = _mm256_packs_epi16(a, b);
            _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
        }
    }

    /// # Safety
    /// The CPU has AVX2.
    #[inline(always)]
    unsafe fn hsum_i32(v: __m256i) -> i32 {
        // SAFETY: register-only AVX2 intrinsics; AVX2 per contract.
        unsafe {
            let s4 = _mm_add_epi32(_mm256_extracti128_si256(v, 1), _mm256_castsi256_si128(v));
            let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b01_00_11_10));
            let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b10_11_00_01));
            _mm_cvtsi128_si32(s4)
        }
    }

    /// Largest |x| over the 8·k floats of `x` (k = len / 8).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[inline(always)]
    unsafe fn amax(x: &[f32]) -> f32 {
        // SAFETY: loads 8 floats at 8k for 8k + 8 ≤ x.len(); AVX2 per contract.
        unsafe {
            let sign_mask = _mm256_set1_ps(-0.0);
            let mut m = _mm256_setzero_ps();
            for k in 0..x.len() / 8 {
                m = _mm256_max_ps(m, _mm256_andnot_ps(sign_mask, _mm256_loadu_ps(x.as_ptr().add(8 * k))));
            }
            let m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
            let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)))
        }
    }

    /// Integer dot of i8 pairs (auto-vectorised under AVX2).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn idot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
    }

    /// Integer dot of i8 pairs (over the shorter slice).
    #[inline]
    pub(crate) fn idot_i8(_: Avx2, a: &[i8], b: &[i8]) -> i32 {
        // SAFETY: the `Avx2` token exists only once detection found avx2+fma+f16c (isa.rs).
        unsafe { idot_i8_avx2(a, b) }
    }

    /// Dot of f32 `a` with f16 `b` (raw little-endian bits).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_f32_f16_avx2(a: &[f32], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i + 16 <= n {
            for k in 0..2 {
                // SAFETY: i + 8k + 8 ≤ i + 16 ≤ n ≤ both lengths.
                let (va, vb) = unsafe {
                    (_mm256_loadu_ps(a.as_ptr().add(i + 8 * k)), _mm_loadu_si128(b.as_ptr().add(i + 8 * k) as *const __m128i))
                };
                acc[k] = _mm256_fmadd_ps(va, _mm256_cvtph_ps(vb), acc[k]);
            }
            i += 16;
        }
        // SAFETY: register-only; this function's features include AVX2.
        let mut s = unsafe { hsum(_mm256_add_ps(acc[0], acc[1])) };
        while i < n {
            s += a[i] * half::f16::from_bits(b[i]).to_f32();
            i += 1;
        }
        s
    }

    /// Dot of f32 `a` with a row of little-endian f32 bytes `b` (F32 weights).
    #[target_feature(enable = "avx2,fma")]
    fn dot_f32_f32le_avx2(a: &[f32], b: &[u8]) -> f32 {
        let n = a.len().min(b.len() / 4);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for k in 0..4 {
                // SAFETY: i + 8k + 8 ≤ i + 32 ≤ n: in bounds of `a` and of `b` (4 bytes per value);
                // unaligned loads.
                let (va, vb) = unsafe {
                    (_mm256_loadu_ps(a.as_ptr().add(i + 8 * k)), _mm256_loadu_ps(b.as_ptr().add(4 * (i + 8 * k)) as *const f32))
                };
                acc[k] = _mm256_fmadd_ps(va, vb, acc[k]);
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: i + 8 ≤ n, as above.
            let (va, vb) = unsafe { (_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(4 * i) as *const f32)) };
            acc[0] = _mm256_fmadd_ps(va, vb, acc[0]);
            i += 8;
        }
        // SAFETY: register-only; this function's features include AVX2.
        let mut s = unsafe { hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) };
        while i < n {
            s += a[i] * f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
            i += 1;
        }
        s
    }

    /// Dot of f32 `a` with little-endian f32 bytes `b` (over the shorter).
    #[inline]
    pub(crate) fn dot_f32_f32le(_: Avx2, a: &[f32], b: &[u8]) -> f32 {
        // SAFETY: the `Avx2` token exists only once detection found avx2+fma+f16c (isa.rs).
        unsafe { dot_f32_f32le_avx2(a, b) }
    }

    /// Dot of f32 `a` with f16 `b` (over the shorter slice).
    #[inline]
    pub(crate) fn dot_f32_f16(_: Avx2, a: &[f32], b: &[u16]) -> f32 {
        // SAFETY: the `Avx2` token exists only once detection found avx2+fma+f16c (isa.rs).
        unsafe { dot_f32_f16_avx2(a, b) }
    }

    /// out += a * f16 row `b`.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn axpy_f16_avx2(out: &mut [f32], a: f32, b: &[u16]) {
        let n = out.len().min(b.len());
        let va = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 ≤ n ≤ both lengths, and `out` is borrowed mutably.
            unsafe {
                let vb = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i));
                let o = _mm256_loadu_ps(out.as_ptr().add(i));
                _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_fmadd_ps(va, vb, o));
            }
            i += 8;
        }
        while i < n {
            out[i] += a * half::f16::from_bits(b[i]).to_f32();
            i += 1;
        }
    }

    /// out += a · b over the shorter slice.
    #[inline]
    pub(crate) fn axpy_f16(_: Avx2, out: &mut [f32], a: f32, b: &[u16]) {
        // SAFETY: the `Avx2` token exists only once detection found avx2+fma+f16c (isa.rs).
        unsafe { axpy_f16_avx2(out, a, b) }
    }

    /// f16 bits → f32 (hardware).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f16_to_f32_avx2(src: &[u16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 ≤ n ≤ both lengths, and `dst` is borrowed mutably.
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
            i += 8;
        }
        while i < n {
            dst[i] = half::f16::from_bits(src[i]).to_f32();
            i += 1;
        }
    }

    /// f16 bits → f32 over the shorter slice.
    #[inline]
    pub(crate) fn f16_to_f32(_: Avx2, src: &[u16], dst: &mut [f32]) {
        // SAFETY: the `Avx2` token exists only once detection found avx2+fma+f16c (isa.rs).
        unsafe { f16_to_f32_avx2(src, dst) }
    }

    /// f32 → f16 bits, round to nearest even (hardware).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f32_to_f16_avx2(src: &[f32], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 ≤ n ≤ both lengths, and `dst` is borrowed mutably.
            unsafe {
                let v = _mm256_loadu_ps(src.as_ptr().add(i));
                let h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
                _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
            }
            i += 8;
        }
        while i < n {
            dst[i] = half::f16::from_f32(src[i]).to_bits();
            i += 1;
        }
    }

    /// f32 → f16 bits over the shorter slice.
    #[inline]
    pub(crate) fn f32_to_f16(_: Avx2, src: &[f32], dst: &mut [u16]) {
        // SAFETY: the `Avx2` token exists only once detection found avx2+fma+f16c (isa.rs).
        unsafe { f32_to_f16_avx2(src, dst) }
    }

    /// Q8 activation blocks (ggml's AVX2 quantize_row_q8_0/q8_1 rounding).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn quantize_q8_avx2(x: &[f32], out: &mut [Q8Block]) {
        for (xb, ob) in x.chunks_exact(32).zip(out.iter_mut()) {
            // SAFETY: `xb` has 32 floats (loads at 8k, k < 4); `ob.qs` has 32 bytes for the
            // one 32-byte store; all else is register-only under this function's features.
            unsafe {
                let amax = amax(xb);
                let d = amax / 127.0;
                let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                let idv = _mm256_set1_ps(id);
                let mut sum = _mm256_setzero_si256();
                let mut q32 = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    let v = _mm256_mul_ps(_mm256_loadu_ps(xb.as_ptr().add(8 * k)), idv);
                    let r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    q32[k] = _mm256_cvtps_epi32(r);
                    sum = _mm256_add_epi32(sum, q32[k]);
                }
                _mm256_storeu_si256(ob.qs.as_mut_ptr() as *mut __m256i, pack_i8x32(&q32));
                let isum = hsum_i32(sum);
                ob.d = half::f16::from_f32(d).to_f32();
                ob.s = half::f16::from_f32(d * isum as f32).to_f32();
                ob.isum = isum;
            }
        }
    }

    /// Q8 activation blocks for whole 32-float chunks of `x` (as many as `out` holds).
    #[inline]
    pub(crate) fn quantize_q8(_: Avx2, x: &[f32], out: &mut [Q8Block]) {
        // SAFETY: the `Avx2` token exists only once detection found avx2+fma+f16c (isa.rs).
        unsafe { quantize_q8_avx2(x, out) }
    }

    /// Q8_K activation blocks, bit-identical to the reference (`quantize_q8k`).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn quantize_q8k_avx2(x: &[f32], out: &mut [Q8KBlock]) {
        for (xb, ob) in x.chunks_exact(256).zip(out.iter_mut()) {
            // SAFETY: AVX2 (this function's features); reads only `xb`.
            let amax = unsafe { amax(xb) };
            if amax == 0.0 {
                *ob = Q8KBlock::default();
                continue;
            }
            // The first element whose magnitude is the maximum decides the sign (as ggml).
            let max = *xb.iter().find(|v| v.abs() == amax).unwrap_or(&amax);
            let iscale = -127.0 / max;
            let isv = _mm256_set1_ps(iscale);
            let lim = _mm256_set1_epi32(127);
            for c in 0..8 {
                // SAFETY: loads at 32c + 8k + 8 ≤ 256 = xb.len(); the 32-byte store at 32c ≤ 224
                // stays inside the 256-byte `ob.qs`; the helpers need AVX2, which we have.
                unsafe {
                    let mut q32 = [_mm256_setzero_si256(); 4];
                    for k in 0..4 {
                        let v = _mm256_mul_ps(_mm256_loadu_ps(xb.as_ptr().add(32 * c + 8 * k)), isv);
                        let r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                        q32[k] = _mm256_min_epi32(_mm256_cvtps_epi32(r), lim);
                    }
                    ob.bsums[2 * c] = hsum_i32(_mm256_add_epi32(q32[0], q32[1]));
                    ob.bsums[2 * c + 1] = hsum_i32(_mm256_add_epi32(q32[2], q32[3]));
                    _mm256_storeu_si256(ob.qs.as_mut_ptr().add(32 * c) as *mut __m256i, pack_i8x32(&q32));
                }
            }
            ob.set_pairs();
            ob.d = 1.0 / iscale;
        }
    }

    /// Q8_K activation blocks for whole 256-float chunks of `x` (as many as `out` holds).
    #[inline]
    pub(crate) fn quantize_q8k(_: Avx2, x: &[f32], out: &mut [Q8KBlock]) {
        // SAFETY: the `Avx2` token exists only once detection found avx2+fma+f16c (isa.rs).
        unsafe { quantize_q8k_avx2(x, out) }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod x86_packed;

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_attn;

#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
pub(crate) mod x86_lowrank;
