//! x86-64 SIMD dot kernels. Each public function here is `unsafe` because it requires the
//! CPU features named in its `target_feature`; `matmul` only calls them after runtime
//! detection. Results equal the scalar kernels up to float summation order (tested).

#![allow(unsafe_op_in_unsafe_fn)]

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use crate::act::Q8Block;
    use crate::quant::QType;

    /// Max tokens processed together against one unpacked weight block.
    pub const TILE: usize = 4;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// 32 bits → 32 bytes, 0xFF where the bit is set (element j ↔ bit j).
    #[inline(always)]
    unsafe fn bytes_from_bits_32(bits: u32) -> __m256i {
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

    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        let q = _mm_loadu_si128(p as *const __m128i);
        let m = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(q, m);
        let hi = _mm_and_si128(_mm_srli_epi16(q, 4), m);
        _mm256_set_m128i(hi, lo)
    }

    /// Two f16 values at `p` (d, m) → f32.
    #[inline(always)]
    unsafe fn f16x2(p: *const u8) -> (f32, f32) {
        let v = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const u32).read_unaligned() as i32));
        (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1)))
    }

    #[inline(always)]
    unsafe fn f16x1(p: *const u8) -> f32 {
        let h = (p as *const u16).read_unaligned();
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
    }

    /// A weight block unpacked: `q` bytes (unsigned when `signed` is false), scale `d`,
    /// min `m` (0 for symmetric types).
    struct Unpacked {
        q: __m256i,
        d: f32,
        m: f32,
    }

    #[inline(always)]
    unsafe fn unpack(ty: QType, b: *const u8) -> Unpacked {
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
            _ => unreachable!(),
        }
    }

    #[inline(always)]
    fn is_signed(ty: QType) -> bool {
        matches!(ty, QType::Q4_0 | QType::Q5_0 | QType::Q8_0)
    }

    macro_rules! define_rows_q8 {
        ($name:ident, $features:literal, $dot:ident) => {
            /// y[t * ldy + r] = Σ_cols W[r] · x[t] for rows `r` of `w` and `n_tok` tokens.
            #[target_feature(enable = $features)]
            pub unsafe fn $name(
                ty: QType,
                w: &[u8],
                row_bytes: usize,
                rows: std::ops::Range<usize>,
                x: &[Q8Block],
                nb: usize,
                n_tok: usize,
                y: *mut f32,
                ldy: usize,
            ) {
                let bs = ty.block().1;
                let signed = is_signed(ty);
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
                            *y.add((t0 + t) * ldy + r) = hsum(acc[t]) + accm[t];
                        }
                        t0 += nt;
                    }
                }
            }
        };
    }

    #[inline(always)]
    unsafe fn dot_maddubs(a: __m256i, b: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
    }
    #[inline(always)]
    unsafe fn dot_avxvnni(a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), a, b)
    }

    /// `acc + Σ₄ a·b` per i32 lane, a unsigned and b signed bytes. AVX-VNNI does it in one
    /// instruction; plain AVX2 multiplies pairs into i16 (saturating: callers keep
    /// |2·a·b| < 2¹⁵, i.e. weights below 128) and sums pairs into i32.
    pub(crate) trait Dp {
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
        /// Whether [`Dp::dp_q8`] works on the offset (value + 128) bytes, so the caller
        /// subtracts `128 · Σx`.
        const Q8_OFFSET: bool;
        /// `acc + Σ₄ w·x` for Q8_0 weights stored as value + 128.
        unsafe fn dp_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i;
    }
    pub(crate) struct Vnni;
    pub(crate) struct Madd;
    impl Dp for Vnni {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            _mm256_dpbusd_avx_epi32(acc, a, b)
        }
        const Q8_OFFSET: bool = true;
        #[inline(always)]
        unsafe fn dp_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
            _mm256_dpbusd_avx_epi32(acc, w, x)
        }
    }
    impl Dp for Madd {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)))
        }
        // 8-bit weights would saturate the i16 pair sums as offset bytes; back to i8 and
        // multiply |w| by x·sign(w) instead (|pair| ≤ 2·128·127 < 2¹⁵).
        const Q8_OFFSET: bool = false;
        #[inline(always)]
        unsafe fn dp_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
            let ws = _mm256_xor_si256(w, _mm256_set1_epi8(-128));
            Self::dp(acc, _mm256_sign_epi8(ws, ws), _mm256_sign_epi8(x, ws))
        }
    }

    define_rows_q8!(rows_q8_avx2, "avx2,fma,f16c", dot_maddubs);
    define_rows_q8!(rows_q8_avxvnni, "avx2,fma,f16c,avxvnni", dot_avxvnni);

    /// Packed (8-row interleaved) kernel: rows of `groups` for `n_tok` tokens.
    /// Requires AVX2 + FMA + F16C + AVX-VNNI.
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    pub unsafe fn packed_rows_avxvnni(p: &crate::packed::PackedMatrix, groups: std::ops::Range<usize>, x: &[Q8Block], n_tok: usize, y: *mut f32, ldy: usize) {
        packed_rows_with::<Vnni>(p, groups, x, n_tok, y, ldy)
    }

    /// The same on plain AVX2 (+ FMA + F16C); see [`Dp`] for how pairs stay unsaturated.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn packed_rows_avx2(p: &crate::packed::PackedMatrix, groups: std::ops::Range<usize>, x: &[Q8Block], n_tok: usize, y: *mut f32, ldy: usize) {
        packed_rows_with::<Madd>(p, groups, x, n_tok, y, ldy)
    }

    #[inline(always)]
    unsafe fn packed_rows_with<D: Dp>(p: &crate::packed::PackedMatrix, groups: std::ops::Range<usize>, x: &[Q8Block], n_tok: usize, y: *mut f32, ldy: usize) {
        let f = p.fmt;
        match (f.has_min, f.nibbles, f.high_bits) {
            (false, true, false) => packed_kernel::<D, false, true, false>(p, groups, x, n_tok, y, ldy),
            (true, true, false) => packed_kernel::<D, true, true, false>(p, groups, x, n_tok, y, ldy),
            (false, true, true) => packed_kernel::<D, false, true, true>(p, groups, x, n_tok, y, ldy),
            (true, true, true) => packed_kernel::<D, true, true, true>(p, groups, x, n_tok, y, ldy),
            (false, false, false) => packed_kernel::<D, false, false, false>(p, groups, x, n_tok, y, ldy),
            _ => unreachable!("no such packed format"),
        }
    }

    /// Store one 8-row group's results for consecutive tokens (rows past `rows` are padding).
    #[inline(always)]
    unsafe fn store_group(acc: &[__m256], rows: usize, g: usize, y: *mut f32, ldy: usize) {
        let r0 = g * crate::packed::GROUP;
        let valid = (rows - r0).min(crate::packed::GROUP);
        for (t, a) in acc.iter().enumerate() {
            let dst = y.add(t * ldy + r0);
            if valid == crate::packed::GROUP {
                _mm256_storeu_ps(dst, *a);
            } else {
                let mut tmp = [0f32; 8];
                _mm256_storeu_ps(tmp.as_mut_ptr(), *a);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, valid);
            }
        }
    }

    /// Four vectors of eight i32 (each in i8 range) → 32 bytes in element order.
    #[inline(always)]
    unsafe fn pack_i8x32(q: &[__m256i; 4]) -> __m256i {
        let a = _mm256_packs_epi32(q[0], q[1]);
        let b = _mm256_packs_epi32(q[2], q[3]);
        let v = _mm256_packs_epi16(a, b);
        _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    #[inline(always)]
    unsafe fn hsum_i32(v: __m256i) -> i32 {
        let s4 = _mm_add_epi32(_mm256_extracti128_si256(v, 1), _mm256_castsi256_si128(v));
        let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b01_00_11_10));
        let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b10_11_00_01));
        _mm_cvtsi128_si32(s4)
    }

    /// Largest |x| over 8·n floats at p.
    #[inline(always)]
    unsafe fn amax(p: *const f32, n: usize) -> f32 {
        let sign_mask = _mm256_set1_ps(-0.0);
        let mut m = _mm256_setzero_ps();
        for k in 0..n {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign_mask, _mm256_loadu_ps(p.add(8 * k))));
        }
        let m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)))
    }

    #[inline(always)]
    unsafe fn bcast4(p: *const i8) -> __m256i {
        _mm256_set1_epi32((p as *const i32).read_unaligned())
    }

    #[inline(always)]
    unsafe fn packed_kernel<D: Dp, const MIN: bool, const NIB: bool, const HB: bool>(
        p: &crate::packed::PackedMatrix,
        groups: std::ops::Range<usize>,
        x: &[Q8Block],
        n_tok: usize,
        y: *mut f32,
        ldy: usize,
    ) {
        let nb = p.nb;
        let rec = p.fmt.record_bytes();
        let qo = p.fmt.quant_offset();
        let off = p.fmt.off;
        let base = p.data.as_ptr();
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
                store_group(&acc[..nt], p.rows, g, y.add(t0 * ldy), ldy);
                t0 += nt;
            }
        }
    }

    /// Packed K-quant kernel (Q8_K activations): rows of `groups` for `n_tok` tokens.
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    pub unsafe fn packed_k_rows_avxvnni(p: &crate::packed::PackedMatrix, groups: std::ops::Range<usize>, x: &[crate::act::Q8KBlock], n_tok: usize, y: *mut f32, ldy: usize) {
        packed_k_kernel::<Vnni>(p, groups, x, n_tok, y, ldy)
    }

    /// The same on plain AVX2: K-quant weights are at most 6 bits, so pairs never saturate.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn packed_k_rows_avx2(p: &crate::packed::PackedMatrix, groups: std::ops::Range<usize>, x: &[crate::act::Q8KBlock], n_tok: usize, y: *mut f32, ldy: usize) {
        packed_k_kernel::<Madd>(p, groups, x, n_tok, y, ldy)
    }

    #[inline(always)]
    unsafe fn packed_k_kernel<D: Dp>(
        p: &crate::packed::PackedMatrix,
        groups: std::ops::Range<usize>,
        x: &[crate::act::Q8KBlock],
        n_tok: usize,
        y: *mut f32,
        ldy: usize,
    ) {
        let nb = p.nb;
        let rec = p.fmt.record_bytes();
        let off = p.fmt.off;
        let has_min = p.fmt.has_min;
        let base = p.data.as_ptr();
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
                store_group(&acc[..nt], p.rows, g, y.add(t0 * ldy), ldy);
                t0 += nt;
            }
        }
    }

    /// Integer dot of 16 i8 pairs (auto-vectorised under AVX2).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn idot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
    }

    /// Dot of f32 `a` with f16 `b` (raw little-endian bits).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32_f16_avx2(a: &[f32], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i + 16 <= n {
            for k in 0..2 {
                let va = _mm256_loadu_ps(a.as_ptr().add(i + 8 * k));
                let vb = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(i + 8 * k) as *const __m128i));
                acc[k] = _mm256_fmadd_ps(va, vb, acc[k]);
            }
            i += 16;
        }
        let mut s = hsum(_mm256_add_ps(acc[0], acc[1]));
        while i < n {
            s += a[i] * half::f16::from_bits(b[i]).to_f32();
            i += 1;
        }
        s
    }

    /// out += a * f16 row `b`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn axpy_f16_avx2(out: &mut [f32], a: f32, b: &[u16]) {
        let n = out.len().min(b.len());
        let va = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            let vb = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i));
            let o = _mm256_loadu_ps(out.as_ptr().add(i));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_fmadd_ps(va, vb, o));
            i += 8;
        }
        while i < n {
            out[i] += a * half::f16::from_bits(b[i]).to_f32();
            i += 1;
        }
    }

    /// f16 bits → f32 (hardware).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f16_to_f32_avx2(src: &[u16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
        while i < n {
            dst[i] = half::f16::from_bits(src[i]).to_f32();
            i += 1;
        }
    }

    /// Q8 activation blocks (ggml's AVX2 quantize_row_q8_0/q8_1 rounding).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize_q8_avx2(x: &[f32], out: &mut [Q8Block]) {
        for (xb, ob) in x.chunks_exact(32).zip(out.iter_mut()) {
            let p = xb.as_ptr();
            let amax = amax(p, 4);
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let idv = _mm256_set1_ps(id);
            let mut sum = _mm256_setzero_si256();
            let mut q32 = [_mm256_setzero_si256(); 4];
            for k in 0..4 {
                let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(8 * k)), idv);
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

    /// Q8_K activation blocks, bit-identical to the reference (`quantize_q8k`).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize_q8k_avx2(x: &[f32], out: &mut [crate::act::Q8KBlock]) {
        for (xb, ob) in x.chunks_exact(256).zip(out.iter_mut()) {
            let p = xb.as_ptr();
            let amax = amax(p, 32);
            if amax == 0.0 {
                *ob = crate::act::Q8KBlock::default();
                continue;
            }
            // The first element whose magnitude is the maximum decides the sign (as ggml).
            let max = *xb.iter().find(|v| v.abs() == amax).unwrap_or(&amax);
            let iscale = -127.0 / max;
            let isv = _mm256_set1_ps(iscale);
            let lim = _mm256_set1_epi32(127);
            for c in 0..8 {
                let mut q32 = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(32 * c + 8 * k)), isv);
                    let r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    q32[k] = _mm256_min_epi32(_mm256_cvtps_epi32(r), lim);
                }
                ob.bsums[2 * c] = hsum_i32(_mm256_add_epi32(q32[0], q32[1]));
                ob.bsums[2 * c + 1] = hsum_i32(_mm256_add_epi32(q32[2], q32[3]));
                _mm256_storeu_si256(ob.qs.as_mut_ptr().add(32 * c) as *mut __m256i, pack_i8x32(&q32));
            }
            ob.d = 1.0 / iscale;
        }
    }

    /// f32 → f16 bits, round to nearest even (hardware).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f32_to_f16_avx2(src: &[f32], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_loadu_ps(src.as_ptr().add(i));
            let h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
            _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
            i += 8;
        }
        while i < n {
            dst[i] = half::f16::from_f32(src[i]).to_bits();
            i += 1;
        }
    }
}
