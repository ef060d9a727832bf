//! x86-64 kernels over [`PackedMatrix`] (G-row interleaved records, see `packed.rs`), written
//! once over [`Lanes`]: 256-bit vectors for 8-row groups (AVX2, AVX-VNNI, AVX-512 VL) and
//! 512-bit vectors for 16-row groups (AVX-512).

use std::arch::x86_64::*;
use std::marker::PhantomData;
use std::ops::Range;

use super::x86::{Dp, Evex, Madd, Vnni};
use crate::act::{Q8Block, Q8KBlock};
use crate::isa::Simd;
use crate::matmul::SharedOut;
use crate::packed::PackedMatrix;
use crate::quant::{QK, QK_K};

/// Whether `simd`'s kernels read records of `group` rows.
pub(crate) fn runs(simd: Simd, group: usize) -> bool {
    group == 8 || (group == 16 && matches!(simd, Simd::Avx512(_)))
}

/// One vector width's operations for the packed kernels: lane k of an integer vector is row k
/// of a `G`-row group (four bytes or one i32 per lane). Every method is `unsafe`: it needs the
/// implementor's CPU features, which the `#[target_feature]` entry points that instantiate the
/// kernels enable; pointer arguments must be readable (writable for `store`) for the stated
/// number of bytes.
pub(super) trait Lanes {
    /// Rows per group = i32 lanes per vector.
    const G: usize;
    /// Tokens processed together against one weight record.
    const TILE: usize;
    /// Whether [`Lanes::dp_q8`] works on the offset (value + 128) bytes.
    const Q8_OFFSET: bool;
    type I: Copy;
    type F: Copy;
    unsafe fn zi() -> Self::I;
    unsafe fn zf() -> Self::F;
    /// 4·G bytes.
    unsafe fn load(p: *const u8) -> Self::I;
    unsafe fn and(a: Self::I, b: Self::I) -> Self::I;
    unsafe fn or(a: Self::I, b: Self::I) -> Self::I;
    unsafe fn add(a: Self::I, b: Self::I) -> Self::I;
    unsafe fn sub(a: Self::I, b: Self::I) -> Self::I;
    unsafe fn mullo(a: Self::I, b: Self::I) -> Self::I;
    /// Logical shifts of 16-bit lanes by `n` (a constant after inlining).
    unsafe fn shl16(a: Self::I, n: i32) -> Self::I;
    unsafe fn shr16(a: Self::I, n: i32) -> Self::I;
    unsafe fn splat8(v: i8) -> Self::I;
    unsafe fn splat32(v: i32) -> Self::I;
    /// The 4 bytes at `p` in every lane.
    unsafe fn bcast4(p: *const i8) -> Self::I;
    /// `acc + Σ₄ w·x` per lane, w unsigned bytes below 128, x signed.
    unsafe fn dp(acc: Self::I, w: Self::I, x: Self::I) -> Self::I;
    /// `acc + Σ₄ w·x` for Q8_0 weights stored as value + 128 (see [`Dp::dp_q8`]).
    unsafe fn dp_q8(acc: Self::I, w: Self::I, x: Self::I) -> Self::I;
    /// Σ of the products of each lane's two i16 halves.
    unsafe fn madd16(a: Self::I, b: Self::I) -> Self::I;
    /// 2·G i8 at `p` → each lane the i16 pair (p[2k], p[2k+1]).
    unsafe fn i8_pairs(p: *const u8) -> Self::I;
    /// 2·G u8 at `p` → each lane the i16 pair (p[2k], p[2k+1]).
    unsafe fn u8_pairs(p: *const u8) -> Self::I;
    /// Each lane's low / high i16, sign-extended.
    unsafe fn lo16(a: Self::I) -> Self::I;
    unsafe fn hi16(a: Self::I) -> Self::I;
    /// G f16 at `p` → f32.
    unsafe fn ph(p: *const u8) -> Self::F;
    unsafe fn to_f(a: Self::I) -> Self::F;
    unsafe fn splatf(v: f32) -> Self::F;
    unsafe fn mul(a: Self::F, b: Self::F) -> Self::F;
    /// a·b + c
    unsafe fn fmadd(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// c − a·b
    unsafe fn fnmadd(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// The first `n` ≤ G lanes of `a` to `dst`.
    unsafe fn store(a: Self::F, dst: *mut f32, n: usize);
}

/// 256-bit vectors, 8 rows per group, with `D`'s byte dot product.
pub(super) struct Y<D>(PhantomData<D>);

/// 512-bit vectors, 16 rows per group (AVX-512 F/BW/VL/VNNI).
pub(super) struct Z;

// SAFETY (every method of both impls): register-only intrinsics plus the loads/stores each
// method's documented byte count bounds; the features are the implementor's, guaranteed by the
// `#[target_feature]` kernel entry that inlines them.
#[allow(clippy::undocumented_unsafe_blocks)]
impl<D: Dp> Lanes for Y<D> {
    const G: usize = 8;
    const TILE: usize = 4;
    const Q8_OFFSET: bool = D::Q8_OFFSET;
    type I = __m256i;
    type F = __m256;
    #[inline(always)]
    unsafe fn zi() -> __m256i {
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn zf() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        unsafe { _mm256_loadu_si256(p as *const __m256i) }
    }
    #[inline(always)]
    unsafe fn and(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_and_si256(a, b) }
    }
    #[inline(always)]
    unsafe fn or(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_or_si256(a, b) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_add_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_sub_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn mullo(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_mullo_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn shl16(a: __m256i, n: i32) -> __m256i {
        unsafe { _mm256_sll_epi16(a, _mm_cvtsi32_si128(n)) }
    }
    #[inline(always)]
    unsafe fn shr16(a: __m256i, n: i32) -> __m256i {
        unsafe { _mm256_srl_epi16(a, _mm_cvtsi32_si128(n)) }
    }
    #[inline(always)]
    unsafe fn splat8(v: i8) -> __m256i {
        unsafe { _mm256_set1_epi8(v) }
    }
    #[inline(always)]
    unsafe fn splat32(v: i32) -> __m256i {
        unsafe { _mm256_set1_epi32(v) }
    }
    #[inline(always)]
    unsafe fn bcast4(p: *const i8) -> __m256i {
        unsafe { _mm256_set1_epi32((p as *const i32).read_unaligned()) }
    }
    #[inline(always)]
    unsafe fn dp(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        unsafe { D::dp(acc, w, x) }
    }
    #[inline(always)]
    unsafe fn dp_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        unsafe { D::dp_q8(acc, w, x) }
    }
    #[inline(always)]
    unsafe fn madd16(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_madd_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn i8_pairs(p: *const u8) -> __m256i {
        unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    unsafe fn u8_pairs(p: *const u8) -> __m256i {
        unsafe { _mm256_cvtepu8_epi16(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    unsafe fn lo16(a: __m256i) -> __m256i {
        unsafe { _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(a)) }
    }
    #[inline(always)]
    unsafe fn hi16(a: __m256i) -> __m256i {
        unsafe { _mm256_srai_epi32::<16>(a) }
    }
    #[inline(always)]
    unsafe fn ph(p: *const u8) -> __m256 {
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    unsafe fn to_f(a: __m256i) -> __m256 {
        unsafe { _mm256_cvtepi32_ps(a) }
    }
    #[inline(always)]
    unsafe fn splatf(v: f32) -> __m256 {
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn store(a: __m256, dst: *mut f32, n: usize) {
        unsafe {
            if n == 8 {
                _mm256_storeu_ps(dst, a);
            } else {
                let mut tmp = [0f32; 8];
                _mm256_storeu_ps(tmp.as_mut_ptr(), a);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, n);
            }
        }
    }
}

// SAFETY: as for `Y`.
#[allow(clippy::undocumented_unsafe_blocks)]
impl Lanes for Z {
    const G: usize = 16;
    const TILE: usize = 4;
    const Q8_OFFSET: bool = true;
    type I = __m512i;
    type F = __m512;
    #[inline(always)]
    unsafe fn zi() -> __m512i {
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    unsafe fn zf() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        unsafe { _mm512_loadu_si512(p as *const __m512i) }
    }
    #[inline(always)]
    unsafe fn and(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_and_si512(a, b) }
    }
    #[inline(always)]
    unsafe fn or(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_or_si512(a, b) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_sub_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn mullo(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_mullo_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn shl16(a: __m512i, n: i32) -> __m512i {
        unsafe { _mm512_sll_epi16(a, _mm_cvtsi32_si128(n)) }
    }
    #[inline(always)]
    unsafe fn shr16(a: __m512i, n: i32) -> __m512i {
        unsafe { _mm512_srl_epi16(a, _mm_cvtsi32_si128(n)) }
    }
    #[inline(always)]
    unsafe fn splat8(v: i8) -> __m512i {
        unsafe { _mm512_set1_epi8(v) }
    }
    #[inline(always)]
    unsafe fn splat32(v: i32) -> __m512i {
        unsafe { _mm512_set1_epi32(v) }
    }
    #[inline(always)]
    unsafe fn bcast4(p: *const i8) -> __m512i {
        unsafe { _mm512_set1_epi32((p as *const i32).read_unaligned()) }
    }
    #[inline(always)]
    unsafe fn dp(acc: __m512i, w: __m512i, x: __m512i) -> __m512i {
        unsafe { _mm512_dpbusd_epi32(acc, w, x) }
    }
    #[inline(always)]
    unsafe fn dp_q8(acc: __m512i, w: __m512i, x: __m512i) -> __m512i {
        unsafe { _mm512_dpbusd_epi32(acc, w, x) }
    }
    #[inline(always)]
    unsafe fn madd16(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_madd_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn i8_pairs(p: *const u8) -> __m512i {
        unsafe { _mm512_cvtepi8_epi16(_mm256_loadu_si256(p as *const __m256i)) }
    }
    #[inline(always)]
    unsafe fn u8_pairs(p: *const u8) -> __m512i {
        unsafe { _mm512_cvtepu8_epi16(_mm256_loadu_si256(p as *const __m256i)) }
    }
    #[inline(always)]
    unsafe fn lo16(a: __m512i) -> __m512i {
        unsafe { _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(a)) }
    }
    #[inline(always)]
    unsafe fn hi16(a: __m512i) -> __m512i {
        unsafe { _mm512_srai_epi32::<16>(a) }
    }
    #[inline(always)]
    unsafe fn ph(p: *const u8) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
    #[inline(always)]
    unsafe fn to_f(a: __m512i) -> __m512 {
        unsafe { _mm512_cvtepi32_ps(a) }
    }
    #[inline(always)]
    unsafe fn splatf(v: f32) -> __m512 {
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn store(a: __m512, dst: *mut f32, n: usize) {
        // Masked-off lanes are neither written nor faulted on.
        unsafe { _mm512_mask_storeu_ps(dst, ((1u32 << n) - 1) as __mmask16, a) }
    }
}

/// Panics unless everything the packed kernels read or write for `groups` × `n_tok` tokens
/// lies inside `p`'s records, `x_len` activation blocks and `y`, and `p` has `g` rows per group.
fn check(p: &PackedMatrix, g: usize, groups: &Range<usize>, x_len: usize, n_tok: usize, y: &SharedOut) {
    assert_eq!(p.fmt.group, g, "packed for {}-row groups, kernel reads {g}", p.fmt.group);
    let n_groups = p.rows.div_ceil(g);
    assert!(groups.end <= n_groups, "groups {groups:?} outside the {n_groups} of the matrix");
    let need = n_groups.checked_mul(p.nb).and_then(|n| n.checked_mul(p.fmt.record_bytes()));
    assert!(need.is_some_and(|n| n <= p.data.len()), "packed records shorter than their shape");
    assert!(n_tok.checked_mul(p.nb).is_some_and(|n| n <= x_len), "activations shorter than n_tok rows");
    y.check(n_tok, p.rows);
}

macro_rules! entries {
    ($($name:ident, $k_name:ident, $features:literal, $lanes:ty;)*) => {$(
        /// # Safety
        /// This function's features, and the bounds [`check`] asserts.
        #[target_feature(enable = $features)]
        unsafe fn $name(p: &PackedMatrix, groups: Range<usize>, x: &[Q8Block], n_tok: usize, y: SharedOut) {
            // SAFETY: forwarded contract; this function has the features the lanes need.
            unsafe { packed_rows_with::<$lanes>(p, groups, x, n_tok, y) }
        }
        /// # Safety
        /// This function's features, and the bounds [`check`] asserts.
        #[target_feature(enable = $features)]
        unsafe fn $k_name(p: &PackedMatrix, groups: Range<usize>, x: &[Q8KBlock], n_tok: usize, y: SharedOut) {
            // SAFETY: forwarded contract; this function has the features the lanes need.
            unsafe { packed_k_rows_with::<$lanes>(p, groups, x, n_tok, y) }
        }
    )*};
}

entries! {
    rows_avx2, k_rows_avx2, "avx2,fma,f16c", Y<Madd>;
    rows_avxvnni, k_rows_avxvnni, "avx2,fma,f16c,avxvnni", Y<Vnni>;
    rows_evex, k_rows_evex, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", Y<Evex>;
    rows_avx512, k_rows_avx512, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", Z;
}

/// Rows of `groups` of y = x · Wᵀ for a packed 32-element-block matrix and Q8 activations
/// (`p.nb` blocks per token). Panics if the lengths do not fit or `simd` cannot read `p`'s
/// records ([`runs`]).
///
/// # Safety
/// `y` was made from a slice that is still mutably borrowed for this call, and no other
/// thread reads or writes its elements (t, r) for rows r of `groups` meanwhile.
pub(crate) unsafe fn packed_rows(simd: Simd, p: &PackedMatrix, groups: Range<usize>, x: &[Q8Block], n_tok: usize, y: SharedOut) {
    assert!(!p.fmt.k, "K-quant matrix needs Q8_K activations");
    let g = p.fmt.group;
    assert!(runs(simd, g), "no kernel for {g}-row groups on this path");
    check(p, g, &groups, x.len(), n_tok, &y);
    // SAFETY: each token proves the features its kernels enable (isa.rs); `check` asserted
    // every bound the kernels rely on, including the group width they read; exclusive rows of
    // `y` are this function's contract.
    unsafe {
        match simd {
            Simd::Avx512(_) if g == 16 => rows_avx512(p, groups, x, n_tok, y),
            Simd::Avx512(_) => rows_evex(p, groups, x, n_tok, y),
            Simd::Vnni(_) => rows_avxvnni(p, groups, x, n_tok, y),
            Simd::Avx2(_) => rows_avx2(p, groups, x, n_tok, y),
        }
    }
}

/// As [`packed_rows`] for packed K-quants and Q8_K activations.
///
/// # Safety
/// As [`packed_rows`].
pub(crate) unsafe fn packed_k_rows(simd: Simd, p: &PackedMatrix, groups: Range<usize>, x: &[Q8KBlock], n_tok: usize, y: SharedOut) {
    assert!(p.fmt.k, "32-element-block matrix needs Q8 activations");
    let g = p.fmt.group;
    assert!(runs(simd, g), "no kernel for {g}-row groups on this path");
    check(p, g, &groups, x.len(), n_tok, &y);
    // SAFETY: as in `packed_rows`.
    unsafe {
        match simd {
            Simd::Avx512(_) if g == 16 => k_rows_avx512(p, groups, x, n_tok, y),
            Simd::Avx512(_) => k_rows_evex(p, groups, x, n_tok, y),
            Simd::Vnni(_) => k_rows_avxvnni(p, groups, x, n_tok, y),
            Simd::Avx2(_) => k_rows_avx2(p, groups, x, n_tok, y),
        }
    }
}

/// Asks for the record two ahead of the one at `r` (`rec` bytes each) to be brought into L1.
/// Records are read in address order; the hardware prefetchers alone leave 512-bit decode,
/// which reads a record in half the instructions, waiting on DRAM (measured: Q6_K 16 vs
/// 39 GB/s on one Zen 5 core).
#[inline(always)]
fn prefetch_ahead(r: *const u8, rec: usize) {
    let ahead = r.wrapping_add(2 * rec);
    let mut o = 0;
    while o < rec {
        // SAFETY: a prefetch is a hint: it never faults and reads nothing into the program,
        // so an address past the matrix (wrapping arithmetic, never dereferenced) is harmless.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(o) as *const i8) };
        o += 64;
    }
}

/// The 8 registers of one 32-element chunk at `q` (nibbles, then `H` high planes): register i,
/// lane k = elements 4i..4i+4 of row k, unsigned.
///
/// # Safety
/// `L`'s features; `q` is readable for `(16 + 4H)·G` bytes.
#[inline(always)]
unsafe fn unpack_chunk<L: Lanes, const H: usize>(q: *const u8) -> [L::I; 8] {
    let g = L::G;
    // SAFETY: loads at q + 4G·i (i < 4) and q + 16G + 4G·p (p < H), each 4G bytes, end at
    // (16 + 4H)·G, inside the caller's readable range; features: the caller's.
    unsafe {
        let m0f = L::splat8(0x0F);
        let mut v = [L::zi(); 8];
        for i in 0..4 {
            let raw = L::load(q.add(4 * g * i));
            v[i] = L::and(raw, m0f);
            v[i + 4] = L::and(L::shr16(raw, 4), m0f);
        }
        for p in 0..H {
            let h = L::load(q.add(16 * g + 4 * g * p));
            let bit = L::splat8((0x10 << p) as i8);
            for (i, vi) in v.iter_mut().enumerate() {
                // Bit i of each byte → bit 4 + p. 16-bit shifts carry bits across the byte
                // boundary only into positions the mask clears.
                let s = 4 + p as i32 - i as i32;
                let hb = if s >= 0 { L::shl16(h, s) } else { L::shr16(h, -s) };
                *vi = L::or(*vi, L::and(hb, bit));
            }
        }
        v
    }
}

/// # Safety
/// `L`'s features, and the bounds [`check`] asserts for `L::G`.
#[inline(always)]
unsafe fn packed_rows_with<L: Lanes>(p: &PackedMatrix, groups: Range<usize>, x: &[Q8Block], n_tok: usize, y: SharedOut) {
    let f = p.fmt;
    // SAFETY: forwarded contract; the format flags select the record layout `p` was packed in.
    unsafe {
        match (f.has_min, f.nibbles, f.high) {
            (false, true, 0) => packed_kernel::<L, false, true, 0>(p, groups, x, n_tok, y),
            (true, true, 0) => packed_kernel::<L, true, true, 0>(p, groups, x, n_tok, y),
            (false, true, 1) => packed_kernel::<L, false, true, 1>(p, groups, x, n_tok, y),
            (true, true, 1) => packed_kernel::<L, true, true, 1>(p, groups, x, n_tok, y),
            (false, false, 0) => packed_kernel::<L, false, false, 0>(p, groups, x, n_tok, y),
            _ => unreachable!("no such packed format"),
        }
    }
}

/// # Safety
/// `L`'s features, `p.fmt` matches `MIN`/`NIB`/`H`, and the bounds [`check`] asserts for `L::G`.
#[inline(always)]
unsafe fn packed_kernel<L: Lanes, const MIN: bool, const NIB: bool, const H: usize>(
    p: &PackedMatrix,
    groups: Range<usize>,
    x: &[Q8Block],
    n_tok: usize,
    y: SharedOut,
) {
    let g_rows = L::G;
    let nb = p.nb;
    let rec = p.fmt.record_bytes();
    let qo = p.fmt.quant_offset();
    let off = p.fmt.off;
    let base = p.data.as_ptr();
    // SAFETY: record (g, b) spans base + (g·nb + b)·rec .. + rec, inside `p.data` for
    // g < groups.end ≤ n_groups and b < nb (asserted by `check`). Within a record this reads
    // d at 0..2G, m at 2G..4G (MIN), then (16 + 4H)·G nibble bytes or 32·G bytes at `qo`,
    // ending exactly at `rec` (`PackFormat::record_bytes`). Activation block (t0+t)·nb + b <
    // n_tok·nb ≤ x.len() (`check`); `bcast4` reads qs[0..32] of that block. Stores cover rows
    // g·G .. g·G + valid ≤ p.rows of tokens < n_tok, inside `y` (`check`) and this thread's.
    unsafe {
        for g in groups {
            let valid = (p.rows - g * g_rows).min(g_rows);
            let mut t0 = 0;
            while t0 < n_tok {
                let nt = (n_tok - t0).min(L::TILE);
                let mut acc = [L::zf(); 8];
                for b in 0..nb {
                    let r = base.add((g * nb + b) * rec);
                    prefetch_ahead(r, rec);
                    let dv = L::ph(r);
                    let mv = if MIN { L::ph(r.add(2 * g_rows)) } else { L::zf() };
                    let q = r.add(qo);
                    let v = if NIB {
                        unpack_chunk::<L, H>(q)
                    } else {
                        let mut v = [L::zi(); 8];
                        for (i, vi) in v.iter_mut().enumerate() {
                            *vi = L::load(q.add(4 * g_rows * i));
                        }
                        v
                    };
                    for t in 0..nt {
                        let xb = x.get_unchecked((t0 + t) * nb + b);
                        let xq = xb.qs.as_ptr();
                        let z = L::zi();
                        let dp = |acc, w, x| if NIB { L::dp(acc, w, x) } else { L::dp_q8(acc, w, x) };
                        let p0 = dp(z, v[0], L::bcast4(xq));
                        let p1 = dp(z, v[1], L::bcast4(xq.add(4)));
                        let p2 = dp(z, v[2], L::bcast4(xq.add(8)));
                        let p3 = dp(z, v[3], L::bcast4(xq.add(12)));
                        let p0 = dp(p0, v[4], L::bcast4(xq.add(16)));
                        let p1 = dp(p1, v[5], L::bcast4(xq.add(20)));
                        let p2 = dp(p2, v[6], L::bcast4(xq.add(24)));
                        let p3 = dp(p3, v[7], L::bcast4(xq.add(28)));
                        let mut s = L::add(L::add(p0, p1), L::add(p2, p3));
                        if off != 0 && (NIB || L::Q8_OFFSET) {
                            s = L::sub(s, L::splat32(off * xb.isum));
                        }
                        let scale = L::mul(dv, L::splatf(xb.d));
                        acc[t] = L::fmadd(L::to_f(s), scale, acc[t]);
                        if MIN {
                            acc[t] = L::fmadd(mv, L::splatf(xb.s), acc[t]);
                        }
                    }
                }
                for (t, a) in acc[..nt].iter().enumerate() {
                    L::store(*a, y.row_ptr(t0 + t, g * g_rows), valid);
                }
                t0 += nt;
            }
        }
    }
}

/// # Safety
/// `L`'s features, `p.fmt.k`, and the bounds [`check`] asserts for `L::G`.
#[inline(always)]
unsafe fn packed_k_rows_with<L: Lanes>(p: &PackedMatrix, groups: Range<usize>, x: &[Q8KBlock], n_tok: usize, y: SharedOut) {
    let f = p.fmt;
    // SAFETY: forwarded contract; the format selects the record layout `p` was packed in.
    unsafe {
        match (f.sub, f.high, f.has_min, f.off != 0) {
            (16, 0, true, false) => packed_k_kernel::<L, 16, 0, true, false>(p, groups, x, n_tok, y), // Q2_K
            (16, 0, false, true) => packed_k_kernel::<L, 16, 0, false, true>(p, groups, x, n_tok, y), // Q3_K
            (32, 0, true, false) => packed_k_kernel::<L, 32, 0, true, false>(p, groups, x, n_tok, y), // Q4_K
            (32, 1, true, false) => packed_k_kernel::<L, 32, 1, true, false>(p, groups, x, n_tok, y), // Q5_K
            (16, 2, false, true) => packed_k_kernel::<L, 16, 2, false, true>(p, groups, x, n_tok, y), // Q6_K
            _ => unreachable!("no such packed K format"),
        }
    }
}

/// Packed K-quant kernel (Q8_K activations): rows of `groups` for `n_tok` tokens. `SUB` is the
/// sub-block length, `H` the high bit planes, `MIN` whether the type has mins, `OFF` whether
/// values are stored with an offset.
///
/// # Safety
/// `L`'s features, `p.fmt` matches the parameters, and the bounds [`check`] asserts for `L::G`.
#[inline(always)]
unsafe fn packed_k_kernel<L: Lanes, const SUB: usize, const H: usize, const MIN: bool, const OFF: bool>(
    p: &PackedMatrix,
    groups: Range<usize>,
    x: &[Q8KBlock],
    n_tok: usize,
    y: SharedOut,
) {
    let g_rows = L::G;
    let f = p.fmt;
    let nb = p.nb;
    let rec = f.record_bytes();
    let (sco, mno, qo, cb) = (f.sc_offset(), f.mn_offset(), f.quant_offset(), f.chunk_bytes());
    let npairs = QK_K / SUB / 2;
    let base = p.data.as_ptr();
    // SAFETY: record (g, b) spans base + (g·nb + b)·rec .. + rec, inside `p.data` for
    // g < groups.end ≤ n_groups, b < nb (`check`). Within it (PackFormat offsets): d at 0..2G,
    // dmin at 2G..4G (MIN), scale pairs at sco + 2G·j + 2G ≤ mno for j < npairs, min pairs at
    // mno + 2G·j + 2G ≤ qo (MIN), chunk c at qo + c·cb + cb ≤ rec for c < 8. Activation block
    // (t0+t)·nb + b < n_tok·nb ≤ x.len() (`check`); `bcast4` reads qs[32c + 4i..+4] < 256.
    // Stores cover rows g·G .. g·G + valid ≤ p.rows of tokens < n_tok, inside `y` (`check`).
    unsafe {
        let off = L::splat32(f.off);
        for g in groups {
            let valid = (p.rows - g * g_rows).min(g_rows);
            let mut t0 = 0;
            while t0 < n_tok {
                let nt = (n_tok - t0).min(L::TILE);
                let mut acc = [L::zf(); 8];
                for b in 0..nb {
                    let r = base.add((g * nb + b) * rec);
                    prefetch_ahead(r, rec);
                    let dv = L::ph(r);
                    let mut isc = [L::zi(); 8];
                    for c in 0..QK_K / QK {
                        let v = unpack_chunk::<L, H>(r.add(qo + c * cb));
                        // Scales of this chunk's sub-blocks (one of 32 or two of 16 elements).
                        let (s0, s1) = if SUB == 32 {
                            let pr = L::i8_pairs(r.add(sco + (c / 2) * 2 * g_rows));
                            let s = if c % 2 == 0 { L::lo16(pr) } else { L::hi16(pr) };
                            (s, s)
                        } else {
                            let pr = L::i8_pairs(r.add(sco + c * 2 * g_rows));
                            (L::lo16(pr), L::hi16(pr))
                        };
                        for t in 0..nt {
                            let xq = x.get_unchecked((t0 + t) * nb + b).qs.as_ptr().add(QK * c);
                            let z = L::zi();
                            let a = L::dp(z, v[0], L::bcast4(xq));
                            let e = L::dp(z, v[4], L::bcast4(xq.add(16)));
                            let a = L::dp(a, v[1], L::bcast4(xq.add(4)));
                            let e = L::dp(e, v[5], L::bcast4(xq.add(20)));
                            let a = L::dp(a, v[2], L::bcast4(xq.add(8)));
                            let e = L::dp(e, v[6], L::bcast4(xq.add(24)));
                            let a = L::dp(a, v[3], L::bcast4(xq.add(12)));
                            let e = L::dp(e, v[7], L::bcast4(xq.add(28)));
                            isc[t] = if SUB == 32 {
                                L::add(isc[t], L::mullo(L::add(a, e), s0))
                            } else {
                                L::add(isc[t], L::add(L::mullo(a, s0), L::mullo(e, s1)))
                            };
                        }
                    }
                    let dminv = if MIN { L::ph(r.add(2 * g_rows)) } else { L::zf() };
                    for t in 0..nt {
                        let xb = x.get_unchecked((t0 + t) * nb + b);
                        let mut v = isc[t];
                        if OFF {
                            // Σ_s sc_s·bsum_s, two sub-blocks per `pmaddwd` (OFF types have SUB 16).
                            let mut corr = L::zi();
                            for j in 0..npairs {
                                let scp = L::i8_pairs(r.add(sco + j * 2 * g_rows));
                                corr = L::add(corr, L::madd16(scp, L::splat32(xb.bsum_pairs[j])));
                            }
                            v = L::sub(v, L::mullo(corr, off));
                        }
                        let xd = L::splatf(xb.d);
                        acc[t] = L::fmadd(L::to_f(v), L::mul(dv, xd), acc[t]);
                        if MIN {
                            let pairs0 = if SUB == 32 { 8 } else { 0 };
                            let mut imn = L::zi();
                            for j in 0..npairs {
                                let mnp = L::u8_pairs(r.add(mno + j * 2 * g_rows));
                                imn = L::add(imn, L::madd16(mnp, L::splat32(xb.bsum_pairs[pairs0 + j])));
                            }
                            acc[t] = L::fnmadd(L::to_f(imn), L::mul(dminv, xd), acc[t]);
                        }
                    }
                }
                for (t, a) in acc[..nt].iter().enumerate() {
                    L::store(*a, y.row_ptr(t0 + t, g * g_rows), valid);
                }
                t0 += nt;
            }
        }
    }
}
