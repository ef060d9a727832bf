//! Activation quantisation: the right-hand side of every quantised dot product.
//!
//! ggml quantises activations before multiplying them by quantised weights, and the rounding
//! there changes results in the last bits. To produce the same tokens as llama.cpp we quantise
//! the same way as its x86 build: `Q8_0`/`Q8_1` use `127/amax` and round-half-even with the
//! scale stored as f16; `Q8_K` uses the signed extreme (`-127/max`) with an f32 scale.

use half::f16;

use crate::isa::Isa;
use crate::quant::{QK, QK_K, QType};

/// A 32-element activation block serving both Q8_0 and Q8_1 dot products.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(16))]
pub struct Q8Block {
    pub qs: [i8; 32],
    /// Scale, rounded through f16 as ggml stores it.
    pub d: f32,
    /// `d · Σqs`, rounded through f16 (Q8_1's `s`).
    pub s: f32,
    /// `Σqs` as an integer (for offset corrections of unsigned weight nibbles).
    pub isum: i32,
}

/// A 256-element activation block for K-quant dot products (ggml's `block_q8_K`).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
pub struct Q8KBlock {
    pub qs: [i8; 256],
    pub d: f32,
    pub bsums: [i32; 16],
    /// `bsums` as i16 pairs for `pmaddwd` (low half first): pairs (2p, 2p+1) of the 16-element
    /// sums for p < 8, then pairs of the 32-element sums (bsums[4p] + bsums[4p+1],
    /// bsums[4p+2] + bsums[4p+3]) for p < 4. Every sum fits i16 (|Σ| ≤ 32 · 128).
    pub bsum_pairs: [i32; 12],
}

impl Q8KBlock {
    /// Derive [`Q8KBlock::bsum_pairs`] from `bsums`.
    pub(crate) fn set_pairs(&mut self) {
        let pair = |lo: i32, hi: i32| (lo as i16 as u16 as u32 | ((hi as i16 as u16 as u32) << 16)) as i32;
        let b = self.bsums;
        for p in 0..8 {
            self.bsum_pairs[p] = pair(b[2 * p], b[2 * p + 1]);
        }
        for p in 0..4 {
            self.bsum_pairs[8 + p] = pair(b[4 * p] + b[4 * p + 1], b[4 * p + 2] + b[4 * p + 3]);
        }
    }
}

impl Default for Q8KBlock {
    fn default() -> Self {
        Q8KBlock { qs: [0; 256], d: 0.0, bsums: [0; 16], bsum_pairs: [0; 12] }
    }
}

/// Which activation form a weight type's dot product consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActFormat {
    /// f32 activations (F32 and BF16 weights).
    F32,
    /// f32 activations rounded through f16 (F16 weights, like ggml's vec_dot_f16).
    F16,
    Q8,
    Q8K,
}

impl QType {
    pub fn act_format(self) -> ActFormat {
        match self {
            QType::F32 | QType::Bf16 => ActFormat::F32,
            QType::F16 => ActFormat::F16,
            QType::Q4_0 | QType::Q4_1 | QType::Q5_0 | QType::Q5_1 | QType::Q8_0 => ActFormat::Q8,
            QType::Q2K | QType::Q3K | QType::Q4K | QType::Q5K | QType::Q6K => ActFormat::Q8K,
        }
    }
}

#[inline]
fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

pub fn quantize_q8(x: &[f32], out: &mut [Q8Block]) {
    debug_assert_eq!(x.len(), out.len() * QK);
    for (xb, ob) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in ob.qs.iter_mut().zip(xb) {
            let r = (v * id).round_ties_even() as i32;
            *q = r as i8;
            sum += r;
        }
        ob.d = f16_round(d);
        ob.s = f16_round(d * sum as f32);
        ob.isum = sum;
    }
}

#[inline]
fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

pub fn quantize_q8k(x: &[f32], out: &mut [Q8KBlock]) {
    debug_assert_eq!(x.len(), out.len() * QK_K);
    for (xb, ob) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *ob = Q8KBlock::default();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in ob.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (j, s) in ob.bsums.iter_mut().enumerate() {
            *s = ob.qs[j * 16..j * 16 + 16].iter().map(|&q| q as i32).sum();
        }
        ob.set_pairs();
        ob.d = 1.0 / iscale;
    }
}

/// Activations for `n` tokens of `cols` features, in the form a weight type needs.
///
/// The fields are private so the kernels can rely on what [`ActBuf::fill`] establishes: for
/// the current format, `f32s` holds `n × cols` values, `q8` `n × cols / 32` blocks or `q8k`
/// `n × cols / 256` blocks.
#[derive(Default)]
pub struct ActBuf {
    format: Option<ActFormat>,
    cols: usize,
    n: usize,
    f32s: Vec<f32>,
    q8: Vec<Q8Block>,
    q8k: Vec<Q8KBlock>,
}

impl ActBuf {
    /// Quantise `x` (`n` rows of `cols`) for `format`, reusing this buffer's memory. `isa`
    /// picks the quantiser; every path produces bit-identical blocks.
    ///
    /// Panics if `cols` is 0, `x` is not whole rows, or `cols` is not a multiple of the
    /// format's block size.
    pub fn fill(&mut self, isa: Isa, format: ActFormat, x: &[f32], cols: usize) {
        assert!(cols > 0 && x.len().is_multiple_of(cols), "{} values are not rows of {cols}", x.len());
        self.format = None; // until the new contents are complete
        match format {
            ActFormat::F32 => {
                self.f32s.clear();
                self.f32s.extend_from_slice(x);
            }
            ActFormat::F16 => {
                self.f32s.clear();
                self.f32s.extend(x.iter().map(|&v| f16_round(v)));
            }
            ActFormat::Q8 => {
                assert_eq!(cols % QK, 0, "Q8 activations need whole blocks of {QK}");
                self.q8.resize(x.len() / QK, Q8Block::default());
                #[cfg(target_arch = "x86_64")]
                if let Some(t) = isa.avx2() {
                    crate::simd::x86::quantize_q8(t, x, &mut self.q8);
                    return self.set(format, x.len(), cols);
                }
                quantize_q8(x, &mut self.q8);
            }
            ActFormat::Q8K => {
                assert_eq!(cols % QK_K, 0, "Q8_K activations need whole blocks of {QK_K}");
                self.q8k.resize(x.len() / QK_K, Q8KBlock::default());
                #[cfg(target_arch = "x86_64")]
                if let Some(t) = isa.avx2() {
                    crate::simd::x86::quantize_q8k(t, x, &mut self.q8k);
                    return self.set(format, x.len(), cols);
                }
                quantize_q8k(x, &mut self.q8k);
            }
        }
        let _ = isa;
        self.set(format, x.len(), cols);
    }

    fn set(&mut self, format: ActFormat, len: usize, cols: usize) {
        self.format = Some(format);
        self.cols = cols;
        self.n = len / cols;
    }

    /// The format of the last [`ActBuf::fill`], `None` before the first.
    pub fn format(&self) -> Option<ActFormat> {
        self.format
    }
    /// Features per token.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Number of tokens.
    pub fn n(&self) -> usize {
        self.n
    }
    /// F32/F16 activations (`n × cols` values; F16 rounded), valid for those formats.
    pub fn f32s(&self) -> &[f32] {
        &self.f32s
    }
    /// Q8 blocks (`n × cols / 32`), valid for [`ActFormat::Q8`].
    pub fn q8(&self) -> &[Q8Block] {
        &self.q8
    }
    /// Q8_K blocks (`n × cols / 256`), valid for [`ActFormat::Q8K`].
    pub fn q8k(&self) -> &[Q8KBlock] {
        &self.q8k
    }
    /// The values these activations stand for (`n × cols`): what the integer dot products
    /// multiply, so `x − dequantize(quantize(x))` is the rounding a second pass can carry.
    pub fn dequantize_into(&self, out: &mut Vec<f32>) {
        out.clear();
        match self.format {
            Some(ActFormat::Q8) => out.extend(self.q8.iter().flat_map(|b| b.qs.iter().map(move |&q| b.d * f32::from(q)))),
            Some(ActFormat::Q8K) => out.extend(self.q8k.iter().flat_map(|b| b.qs.iter().map(move |&q| b.d * f32::from(q)))),
            Some(ActFormat::F32 | ActFormat::F16) => out.extend_from_slice(&self.f32s),
            None => {}
        }
    }
}
