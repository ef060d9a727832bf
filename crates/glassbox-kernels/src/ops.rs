//! Element-wise and reduction ops on f32 slices, following ggml's reference semantics.

use half::f16;

use crate::Isa;

/// 1 / sqrt(mean(x²) + eps), the sum taken in f64 like ggml.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// RMS norm in place-free form: out = x / sqrt(mean(x²) + eps) · w.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let scale = rms_scale(x, eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// RMS norm of `x` in place, then multiply by `w`.
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for (v, &g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// Layer norm as ggml computes it (`ggml_norm`, then the weight and the bias as separate ops):
/// mean from an f64 sum, variance of the centred values from an f64 sum, out = (x - mean) ·
/// 1/sqrt(var + eps) · w + b.
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f64;
    let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / n) as f32;
    let mut sum2 = 0f64;
    for (o, &v) in out.iter_mut().zip(x) {
        let c = v - mean;
        *o = c;
        sum2 += (c * c) as f64;
    }
    let scale = 1.0 / ((sum2 / n) as f32 + eps).sqrt();
    for ((o, &g), &bb) in out.iter_mut().zip(w).zip(b) {
        *o = *o * scale * g + bb;
    }
}

/// Softmax in place over `x` (max-subtracted).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
}

#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[inline(always)]
fn swiglu_body(g: &mut [f32], u: &[f32]) {
    for (g, &u) in g.iter_mut().zip(u) {
        *g = *g / (1.0 + crate::lse::exp_poly(-*g)) * u;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn swiglu_avx2(g: &mut [f32], u: &[f32]) {
    swiglu_body(g, u)
}

/// `g ← silu(g) · u` (SwiGLU), in a loop the compiler vectorizes: `exp` is the polynomial the
/// log-sum-exp uses (relative error < 3e-7; ggml's vectorized SiLU approximates too), so it
/// is [`silu`] within a few ulps, on every path alike.
pub fn swiglu_inplace(isa: Isa, g: &mut [f32], u: &[f32]) {
    assert_eq!(g.len(), u.len(), "gate and up differ in length");
    #[cfg(target_arch = "x86_64")]
    if isa.avx2().is_some() {
        // SAFETY: an `Avx2` token exists only once detection found avx2 and fma (isa.rs).
        return unsafe { swiglu_avx2(g, u) };
    }
    let _ = isa;
    swiglu_body(g, u)
}

/// GELU, tanh approximation (ggml_gelu).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const C: f32 = 0.044715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + C * x * x)).tanh())
}

/// Dot of f32 `a` with f16 `b` (bits).
pub fn dot_f32_f16(isa: Isa, a: &[f32], b: &[u16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = isa.avx2() {
        return crate::simd::x86::dot_f32_f16(t, a, b);
    }
    let _ = isa;
    a.iter().zip(b).map(|(&x, &y)| x * f16::from_bits(y).to_f32()).sum()
}

/// out += a · b (b in f16 bits).
pub fn axpy_f16(isa: Isa, out: &mut [f32], a: f32, b: &[u16]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = isa.avx2() {
        return crate::simd::x86::axpy_f16(t, out, a, b);
    }
    let _ = isa;
    for (o, &y) in out.iter_mut().zip(b) {
        *o += a * f16::from_bits(y).to_f32();
    }
}

/// `out[i] = a · b[i·stride .. i·stride + a.len()]` (rows of f16 bits; attention scores against a
/// KV cache). Panics if a row runs past `b`.
pub fn dots_f16_strided(isa: Isa, a: &[f32], b: &[u16], stride: usize, out: &mut [f32]) {
    let n = a.len();
    assert!(crate::attn::rows_fit(out.len(), stride, n, b.len()), "{} rows of {n} at stride {stride} exceed {} values", out.len(), b.len());
    for (i, o) in out.iter_mut().enumerate() {
        *o = dot_f32_f16(isa, a, &b[i * stride..i * stride + n]);
    }
}

/// `out = Σᵢ w[i] · b[i·stride .. i·stride + out.len()]` (rows of f16 bits; attention's
/// probability-weighted sum of V rows). Panics if a row runs past `b`.
pub fn weighted_sum_f16_strided(isa: Isa, out: &mut [f32], w: &[f32], b: &[u16], stride: usize) {
    let n = out.len();
    assert!(crate::attn::rows_fit(w.len(), stride, n, b.len()), "{} rows of {n} at stride {stride} exceed {} values", w.len(), b.len());
    out.fill(0.0);
    for (i, &wi) in w.iter().enumerate() {
        axpy_f16(isa, out, wi, &b[i * stride..i * stride + n]);
    }
}

/// f32 → f16 bits (round to nearest even).
pub fn f32_to_f16(isa: Isa, src: &[f32], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = isa.avx2() {
        return crate::simd::x86::f32_to_f16(t, src, dst);
    }
    let _ = isa;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(s).to_bits();
    }
}

/// GELU(tanh) evaluated as ggml does: input rounded to f16, output looked up in an f16 table
/// (65 536 entries, built once). Inputs outside ±10 follow ggml: 0 below, identity above.
pub fn gelu_f16_table() -> &'static [u16] {
    static TABLE: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX).map(|bits| f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())).to_bits()).collect()
    })
}

/// g[i] = gelu(g[i]) · u[i], with ggml's f16-table GELU.
pub fn geglu_inplace(isa: Isa, g: &mut [f32], u: &[f32]) {
    let table = gelu_f16_table();
    let mut bits = [0u16; 64];
    for (gc, uc) in g.chunks_mut(64).zip(u.chunks(64)) {
        let n = gc.len();
        f32_to_f16(isa, gc, &mut bits[..n]);
        for i in 0..n {
            let x = gc[i];
            gc[i] = if x <= -10.0 {
                0.0
            } else if x >= 10.0 {
                x * uc[i]
            } else {
                f16::from_bits(table[bits[i] as usize]).to_f32() * uc[i]
            };
        }
    }
}

/// x[i] = gelu(x[i]) with ggml's f16-table GELU (`ggml_vec_gelu_f32`).
pub fn gelu_inplace(isa: Isa, x: &mut [f32]) {
    let table = gelu_f16_table();
    let mut bits = [0u16; 64];
    for c in x.chunks_mut(64) {
        let n = c.len();
        f32_to_f16(isa, c, &mut bits[..n]);
        for i in 0..n {
            let v = c[i];
            c[i] = if v <= -10.0 {
                0.0
            } else if v >= 10.0 {
                v
            } else {
                f16::from_bits(table[bits[i] as usize]).to_f32()
            };
        }
    }
}

/// Round every value to the nearest f16 (as f32), in place.
pub fn round_to_f16_inplace(isa: Isa, x: &mut [f32]) {
    let mut bits = [0u16; 64];
    for c in x.chunks_mut(64) {
        let n = c.len();
        f32_to_f16(isa, c, &mut bits[..n]);
        f16_to_f32(isa, &bits[..n], c);
    }
}

/// f16 bits → f32.
pub fn f16_to_f32(isa: Isa, src: &[u16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = isa.avx2() {
        return crate::simd::x86::f16_to_f32(t, src, dst);
    }
    let _ = isa;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16::from_bits(s).to_f32();
    }
}
