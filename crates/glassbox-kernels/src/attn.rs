//! Attention for one KV head over an f16 cache, for a tile of query tokens that share it:
//! softmax(scale · q·Kᵀ), rounded to f16 as llama.cpp does before its f16 V product, times V.

use crate::isa::Isa;
use crate::ops;

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
    /// This head's cache rows: K row p at `k[p·k_stride ..][..hd]`, V row p at `v[p·v_stride ..][..hdv]`.
    pub k: &'a [u16],
    pub k_stride: usize,
    pub v: &'a [u16],
    pub v_stride: usize,
    /// The rows token j attends: `ranges[j].0 .. ranges[j].1`, never empty.
    pub ranges: &'a [(usize, usize)],
    pub scale: f32,
}

impl AttnHead<'_> {
    /// Panics unless every row, query and output the kernels read or write is in bounds.
    fn check(&self, out: &[f32]) {
        let n = self.ranges.len();
        let fits = |rows: usize, stride: usize, width: usize, len: usize| {
            rows.checked_sub(1).is_none_or(|last| last.checked_mul(stride).and_then(|o| o.checked_add(width)).is_some_and(|e| e <= len))
        };
        assert!(self.group > 0 && self.hd > 0 && self.hdv > 0, "empty attention head shape");
        assert!(fits(n, self.q_stride, self.group * self.hd, self.q.len()), "queries shorter than {n} tokens");
        for &(s, e) in self.ranges {
            assert!(s < e, "token attends no keys ({s}..{e})");
            assert!(fits(e, self.k_stride, self.hd, self.k.len()), "K cache shorter than row {e}");
            assert!(fits(e, self.v_stride, self.hdv, self.v.len()), "V cache shorter than row {e}");
        }
        assert_eq!(Some(out.len()), n.checked_mul(self.group * self.hdv), "output is not tokens × heads × hdv");
    }
}

/// `out[(j·group + g)·hdv ..][..hdv]` = attention of query head g of token j. `scratch` holds
/// scores between calls (resized as needed). Panics if a shape does not fit.
pub fn attend(isa: Isa, a: &AttnHead, scratch: &mut Vec<f32>, out: &mut [f32]) {
    a.check(out);
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = isa.avx512()
        && crate::simd::x86_attn::attend(t, a, scratch, out)
    {
        return;
    }
    for (j, &(s, e)) in a.ranges.iter().enumerate() {
        let n_keys = e - s;
        if scratch.len() < n_keys {
            scratch.resize(n_keys, 0.0);
        }
        let sg = &mut scratch[..n_keys];
        for g in 0..a.group {
            let qh = &a.q[j * a.q_stride + g * a.hd..][..a.hd];
            ops::dots_f16_strided(isa, qh, &a.k[s * a.k_stride..], a.k_stride, sg);
            sg.iter_mut().for_each(|v| *v *= a.scale);
            ops::softmax(sg);
            ops::round_to_f16_inplace(isa, sg);
            let o = &mut out[(j * a.group + g) * a.hdv..][..a.hdv];
            ops::weighted_sum_f16_strided(isa, o, sg, &a.v[s * a.v_stride..], a.v_stride);
        }
    }
}
