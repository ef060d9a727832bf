//! Attention for one KV head over an f16 cache, for a tile of query tokens that share it:
//! softmax(scale · q·Kᵀ), rounded to f16 as llama.cpp does before its f16 V product, times V.
//! Over an f32 cache (llama.cpp's exact path, `-ctk f32 -ctv f32`) nothing is rounded.

use crate::isa::Isa;
use crate::ops;

/// Rows of a KV cache as stored: f16 bits, or ggml's `block_q8_0` (f16 scale + 32 × i8 per
/// 32 elements, 34 bytes). Element indices and strides are in elements for both.
#[derive(Clone, Copy)]
pub enum CacheRows<'a> {
    F16(&'a [u16]),
    Q8_0(&'a [u8]),
    F32(&'a [f32]),
}

/// Bytes of one ggml `block_q8_0`.
pub const Q8_0_BLOCK: usize = 34;

impl<'a> CacheRows<'a> {
    /// Elements held.
    pub fn elems(&self) -> usize {
        match self {
            CacheRows::F16(b) => b.len(),
            CacheRows::Q8_0(b) => b.len() / Q8_0_BLOCK * 32,
            CacheRows::F32(b) => b.len(),
        }
    }
    /// The rows from element `e` on. Panics past the end, or for Q8_0 if `e` is not a block
    /// boundary.
    pub fn offset(self, e: usize) -> CacheRows<'a> {
        match self {
            CacheRows::F16(b) => CacheRows::F16(&b[e..]),
            CacheRows::F32(b) => CacheRows::F32(&b[e..]),
            CacheRows::Q8_0(b) => {
                assert!(e.is_multiple_of(32), "q8_0 cache offset {e} is not a block boundary");
                CacheRows::Q8_0(&b[e / 32 * Q8_0_BLOCK..])
            }
        }
    }
    /// Elements `e..e + out.len()` as f32 (Q8_0: `e` and the length whole blocks).
    pub fn to_f32(&self, e: usize, out: &mut [f32]) {
        match self {
            CacheRows::F16(b) => {
                let n = out.len();
                out.iter_mut().zip(&b[e..e + n]).for_each(|(o, &h)| *o = half::f16::from_bits(h).to_f32());
            }
            CacheRows::F32(b) => {
                let n = out.len();
                out.copy_from_slice(&b[e..e + n]);
            }
            CacheRows::Q8_0(b) => {
                assert!(e.is_multiple_of(32) && out.len().is_multiple_of(32), "q8_0 rows are read in whole blocks");
                for (i, ob) in out.chunks_exact_mut(32).enumerate() {
                    let blk = &b[(e / 32 + i) * Q8_0_BLOCK..][..Q8_0_BLOCK];
                    let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                    ob.iter_mut().zip(&blk[2..]).for_each(|(o, &q)| *o = q as i8 as f32 * d);
                }
            }
        }
    }
}

/// Quantize `x` (a multiple of 32 long) to ggml `block_q8_0`s in `out`, rounding as ggml's x86
/// build does. Panics if the lengths do not match.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [u8]) {
    assert!(x.len().is_multiple_of(32) && out.len() == x.len() / 32 * Q8_0_BLOCK, "q8_0 row length mismatch");
    // One block at a time on the stack: this runs for every cached token and layer.
    let mut b = [crate::Q8Block::default()];
    for (xb, o) in x.chunks_exact(32).zip(out.chunks_exact_mut(Q8_0_BLOCK)) {
        crate::quantize_q8(xb, &mut b);
        o[..2].copy_from_slice(&half::f16::from_f32(b[0].d).to_le_bytes());
        o[2..].iter_mut().zip(&b[0].qs).for_each(|(o, &q)| *o = q as u8);
    }
}

/// Whether `rows` rows of `width` values, row i starting at i·`stride`, lie within `len` values
/// (no arithmetic overflow; zero rows always fit).
pub(crate) fn rows_fit(rows: usize, stride: usize, width: usize, len: usize) -> bool {
    rows.checked_sub(1).is_none_or(|last| last.checked_mul(stride).and_then(|o| o.checked_add(width)).is_some_and(|e| e <= len))
}

/// One KV head's attention work: the query heads that share it, for consecutive tokens of one
/// sequence, and the cache rows they read.
pub struct AttnHead<'a> {
    /// Query head g of token j: `q[j·q_stride + g·hd ..][..hd]`.
    pub q: &'a [f32],
    pub q_stride: usize,
    /// Query heads per KV head.
    pub group: usize,
    pub hd: usize,
    pub hdv: usize,
    /// This head's cache rows: K row p = elements `p·k_stride ..` (hd of them), V row p =
    /// elements `p·v_stride ..` (hdv).
    pub k: CacheRows<'a>,
    pub k_stride: usize,
    pub v: CacheRows<'a>,
    pub v_stride: usize,
    /// The rows token j attends: `ranges[j].0 .. ranges[j].1`, never empty.
    pub ranges: &'a [(usize, usize)],
    pub scale: f32,
    /// ALiBi (BLOOM): per query head of the group, the slope of a bias of slope × −(distance to
    /// the query's own position), added to the scaled scores (ggml's soft_max with max_bias);
    /// empty for none. The query's position is its last attended row (causal attention).
    pub alibi: &'a [f32],
}

impl AttnHead<'_> {
    /// Panics unless every row, query and output the kernels read or write is in bounds.
    fn check(&self, out: &[f32]) {
        let n = self.ranges.len();
        assert!(self.group > 0 && self.hd > 0 && self.hdv > 0, "empty attention head shape");
        for (rows, stride, width) in [(self.k, self.k_stride, self.hd), (self.v, self.v_stride, self.hdv)] {
            if let CacheRows::Q8_0(_) = rows {
                assert!(stride.is_multiple_of(32) && width.is_multiple_of(32), "q8_0 cache rows must be whole blocks");
            }
        }
        assert!(rows_fit(n, self.q_stride, self.group * self.hd, self.q.len()), "queries shorter than {n} tokens");
        for &(s, e) in self.ranges {
            assert!(s < e, "token attends no keys ({s}..{e})");
            assert!(rows_fit(e, self.k_stride, self.hd, self.k.elems()), "K cache shorter than row {e}");
            assert!(rows_fit(e, self.v_stride, self.hdv, self.v.elems()), "V cache shorter than row {e}");
        }
        assert_eq!(Some(out.len()), n.checked_mul(self.group * self.hdv), "output is not tokens × heads × hdv");
    }
}

/// `out[(j·group + g)·hdv ..][..hdv]` = attention of query head g of token j. `scratch` holds
/// scores between calls (resized as needed). Panics if a shape does not fit.
pub fn attend(isa: Isa, a: &AttnHead, scratch: &mut Vec<f32>, out: &mut [f32]) {
    a.check(out);
    assert!(a.alibi.is_empty() || a.alibi.len() == a.group, "one ALiBi slope per query head");
    #[cfg(target_arch = "x86_64")]
    let exact = matches!(a.k, CacheRows::F32(_)) || matches!(a.v, CacheRows::F32(_));
    if !exact
        && let Some(t) = isa.avx512()
        && crate::simd::x86_attn::attend(t, a, scratch, out)
    {
        return;
    }
    let mut row = Vec::new();
    for (j, &(s, e)) in a.ranges.iter().enumerate() {
        let n_keys = e - s;
        if scratch.len() < n_keys {
            scratch.resize(n_keys, 0.0);
        }
        let sg = &mut scratch[..n_keys];
        for g in 0..a.group {
            let qh = &a.q[j * a.q_stride + g * a.hd..][..a.hd];
            match a.k {
                CacheRows::F16(k) => ops::dots_f16_strided(isa, qh, &k[s * a.k_stride..], a.k_stride, sg),
                k => {
                    row.resize(a.hd, 0.0);
                    for (i, sv) in sg.iter_mut().enumerate() {
                        k.to_f32((s + i) * a.k_stride, &mut row);
                        *sv = qh.iter().zip(&row).map(|(x, y)| x * y).sum();
                    }
                }
            }
            sg.iter_mut().for_each(|v| *v *= a.scale);
            if let Some(&slope) = a.alibi.get(g) {
                let qpos = e - 1;
                sg.iter_mut().enumerate().for_each(|(i, v)| *v += slope * -((qpos - (s + i)) as f32));
            }
            ops::softmax(sg);
            if !matches!(a.v, CacheRows::F32(_)) {
                ops::round_to_f16_inplace(isa, sg);
            }
            let o = &mut out[(j * a.group + g) * a.hdv..][..a.hdv];
            match a.v {
                CacheRows::F16(v) => ops::weighted_sum_f16_strided(isa, o, sg, &v[s * a.v_stride..], a.v_stride),
                v => {
                    o.fill(0.0);
                    row.resize(a.hdv, 0.0);
                    for (i, &p) in sg.iter().enumerate() {
                        v.to_f32((s + i) * a.v_stride, &mut row);
                        o.iter_mut().zip(&row).for_each(|(o, r)| *o += p * r);
                    }
                }
            }
        }
    }
}
