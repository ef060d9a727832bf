//! Rotary position embeddings with llama.cpp's scaling: per-pair frequency factors
//! (`rope_freqs.weight`, Llama 3.x), linear scaling, YaRN (ramp between interpolated and
//! extrapolated frequencies, magnitude correction), partial rotary dimensions, and a separate
//! base and scale for sliding-window layers (Gemma 3).
//!
//! The arithmetic follows ggml's CPU kernel operation for operation so F32 results agree to the
//! last bits: the angle starts at the position and is multiplied by `base^(-2/n_rot)` once per
//! pair (not `pos · base^(-2i/n_rot)`), frequency factors divide it, and the YaRN mix, its
//! magnitude use fused multiply-adds where ggml's compiled kernel does.

use crate::{Error, Result};

/// How RoPE is scaled, as read from `{arch}.rope.scaling.*` (see `Config`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeScaling {
    /// 1 / factor (linear and YaRN); 1 for none.
    pub freq_scale: f32,
    /// YaRN's mix of extrapolated frequencies: 1 for YaRN, 0 otherwise.
    pub ext_factor: f32,
    /// Multiplies every cos/sin (`rope.scaling.attn_factor`, and YaRN's normalisation).
    pub attn_factor: f32,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// Context length the model was trained with before scaling (`original_context_length`).
    pub n_ctx_orig: usize,
}

impl RopeScaling {
    pub const NONE: RopeScaling = RopeScaling { freq_scale: 1.0, ext_factor: 0.0, attn_factor: 1.0, beta_fast: 32.0, beta_slow: 1.0, n_ctx_orig: 0 };

    /// llama.cpp's context-time derivation: YaRN's attention factor is recomputed from the
    /// scale factor (then normalised away, the kernel applying the magnitude), and the file's
    /// `rope.scaling.attn_factor` multiplies the result.
    pub(crate) fn new(kind: &str, key: &str, factor: f32, file_attn_factor: f32, n_ctx_orig: usize) -> Result<RopeScaling> {
        let freq_scale = if factor == 0.0 { 1.0 } else { 1.0 / factor };
        let mut s = RopeScaling { freq_scale, n_ctx_orig, ..RopeScaling::NONE };
        match kind {
            "none" => s.freq_scale = 1.0,
            "linear" => {}
            "yarn" => {
                s.ext_factor = 1.0;
                let f = 1.0 / s.freq_scale;
                let a = if f <= 1.0 { 1.0 } else { 0.1f32 * f.ln() + 1.0 };
                let norm = 1.0 / (1.0 + 0.1f32 * f.ln());
                s.attn_factor = a * norm;
            }
            "longrope" => return Err(Error::Unimplemented { what: format!("{key} = \"longrope\""), why: "LongRoPE factor tensors are not implemented".into() }),
            other => return Err(Error::BadKey { key: key.into(), msg: format!("unknown RoPE scaling type {other:?} (known: none, linear, yarn)") }),
        }
        s.attn_factor *= file_attn_factor;
        Ok(s)
    }
}

/// Everything one layer's RoPE needs, precomputed at load.
#[derive(Clone, Debug)]
pub struct Rope {
    n_rot: usize,
    theta_scale: f32,
    scaling: RopeScaling,
    /// YaRN's ramp bounds (in pair indices).
    corr: [f32; 2],
    /// Divides each pair's angle (`rope_freqs.weight`), `n_rot / 2` values.
    freq_factors: Option<Vec<f32>>,
}

impl Rope {
    pub fn new(n_rot: usize, base: f32, scaling: RopeScaling, freq_factors: Option<Vec<f32>>) -> Rope {
        let theta_scale = base.powf(-2.0 / n_rot as f32);
        let corr_dim = |beta: f32| {
            (n_rot as f32 * (scaling.n_ctx_orig as f32 / (beta * 2.0 * std::f32::consts::PI)).ln()) / (2.0 * base.ln())
        };
        let low = corr_dim(scaling.beta_fast).floor().max(0.0);
        let high = corr_dim(scaling.beta_slow).ceil().min(n_rot as f32 - 1.0);
        Rope { n_rot, theta_scale, scaling, corr: [low, high], freq_factors }
    }

    /// cos and sin (magnitude included) of each of the `n_rot / 2` pairs at `pos`.
    pub fn cache(&self, pos: usize, cos: &mut [f32], sin: &mut [f32]) {
        let s = &self.scaling;
        let mut theta = pos as f32;
        let mscale = if s.ext_factor != 0.0 { s.attn_factor * 0.1f32.mul_add((1.0 / s.freq_scale).ln(), 1.0) } else { s.attn_factor };
        for i in 0..self.n_rot / 2 {
            let ff = self.freq_factors.as_ref().map_or(1.0, |f| f[i]);
            let t_ext = theta / ff;
            let t_int = s.freq_scale * t_ext;
            let th = if s.ext_factor != 0.0 {
                let y = (i as f32 - self.corr[0]) / 0.001f32.max(self.corr[1] - self.corr[0]);
                let ramp = 1.0 - 1f32.min(0f32.max(y));
                let rmix = ramp * s.ext_factor;
                t_int.mul_add(1.0 - rmix, t_ext * rmix)
            } else {
                t_int
            };
            cos[i] = th.cos() * mscale;
            sin[i] = th.sin() * mscale;
            theta *= self.theta_scale;
        }
    }

    /// Rotate one head in place. `neox` pairs (i, i + n_rot/2), else (2i, 2i+1); dimensions past
    /// `n_rot` are left as they are (partial rotary).
    pub fn apply(&self, head: &mut [f32], cos: &[f32], sin: &[f32], neox: bool) {
        let half = self.n_rot / 2;
        for i in 0..half {
            let (a, b) = if neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
            let (x0, x1) = (head[a], head[b]);
            // Unfused, as before: fusing (as ggml's AVX chunks do) moved SmolLM2's coarse KLD
            // against llama.cpp from 0.0029 to 0.0032 and Gemma's from 0.0057 to 0.0056, and
            // the F32 KLD not at all (5.1e-7 either way): noise, so the cheaper form stays.
            head[a] = x0 * cos[i] - x1 * sin[i];
            head[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}
