//! DeepSeek-2's multi-head latent attention (llama.cpp's `deepseek2`): its hyper-parameters, read
//! and validated as llama.cpp reads them, and its tensors (its experts: moe.rs).
//!
//! MLA as llama.cpp runs current files (`attn_k_b` / `attn_v_b`, written since its converter
//! split `attn_kv_b`): K and V of every head come from one compressed row per token (the
//! normalised `kv_lora_rank` values, plus `n_rot` rotary values shared by all heads), so the
//! cache holds that row only; each head's query is absorbed into the compressed space through
//! its `k_b` slice, attention runs as multi-query over it, and each head's output leaves the
//! compressed space through its `v_b` slice.

use glassbox_gguf::Gguf;

use crate::moe::Keys;
use crate::weights::{Binder, Mat};
use crate::{Config, Error, Result, RopeScaling};

/// Multi-head latent attention sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mla {
    /// Rank of Q's low-rank projection (`attn_q_a` → norm → `attn_q_b`); 0: one `attn_q`.
    pub q_lora_rank: usize,
    /// Width of the compressed KV row.
    pub kv_lora_rank: usize,
    /// Per head: Q/K values without RoPE, and with it (`rope.dimension_count`).
    pub nope: usize,
    pub rope: usize,
    /// Per head: V width after decompression (`attention.value_length_mla`).
    pub v_head: usize,
}

fn keys(g: &Gguf) -> Keys<'_> {
    Keys { g, arch: "deepseek2" }
}

/// llama.cpp's "lite" DeepSeek-2 layouts (DeepSeek-V2-Lite and kin): no Q projection rank is
/// read for them, whatever the file says.
fn is_lite(n_layers: usize, n_vocab: usize) -> bool {
    n_layers == 27 || n_layers == 26 || (n_layers == 48 && n_vocab == 128_256)
}

impl Mla {
    pub(crate) fn from_gguf(g: &Gguf, n_layers: usize, n_vocab: usize, n_head_kv: usize, head_dim: usize, head_dim_v: usize, n_rot: usize) -> Result<Mla> {
        let q_lora_rank = if is_lite(n_layers, n_vocab) { 0 } else { keys(g).req("attention.q_lora_rank")? as usize };
        let kv_lora_rank = keys(g).req("attention.kv_lora_rank")? as usize;
        let (Some(k_mla), Some(v_mla)) = (keys(g).get("attention.key_length_mla")?, keys(g).get("attention.value_length_mla")?) else {
            return Err(Error::Unimplemented {
                what: format!("a deepseek2 file without {:?}", keys(g).key("attention.key_length_mla")),
                why: "files converted before llama.cpp split attn_kv_b into attn_k_b and attn_v_b (2025) run decompressed attention; convert the model again with a current convert_hf_to_gguf.py".into(),
            });
        };
        let (k_mla, v_mla) = (k_mla as usize, v_mla as usize);
        if !(1..=65536).contains(&kv_lora_rank) || q_lora_rank > 65536 {
            return Err(keys(g).bad("attention.kv_lora_rank", format!("{kv_lora_rank} (q rank {q_lora_rank}) is outside [1, 65536]")));
        }
        if k_mla <= n_rot || k_mla > 65536 {
            return Err(keys(g).bad("attention.key_length_mla", format!("{k_mla} must exceed the rotary size {n_rot} (and be at most 65536)")));
        }
        if !(1..=65536).contains(&v_mla) {
            return Err(keys(g).bad("attention.value_length_mla", format!("{v_mla} is outside [1, 65536]")));
        }
        // The compressed cache row: what the converter writes as the key and value lengths.
        if head_dim != kv_lora_rank + n_rot || head_dim_v != kv_lora_rank {
            return Err(keys(g).bad("attention.key_length", format!("key/value lengths {head_dim}/{head_dim_v} are not kv_lora_rank + rope ({}) / kv_lora_rank ({kv_lora_rank})", kv_lora_rank + n_rot)));
        }
        if n_head_kv != 1 {
            return Err(keys(g).bad("attention.head_count_kv", format!("{n_head_kv}: latent attention has one KV head")));
        }
        if g.get_f64(&keys(g).key("attention.temperature_scale"))?.is_some_and(|t| t != 0.0) {
            return Err(keys(g).refuse("attention.temperature_scale", "attention temperature tuning"));
        }
        Ok(Mla { q_lora_rank, kv_lora_rank, nope: k_mla - n_rot, rope: n_rot, v_head: v_mla })
    }

    /// The attention scale llama.cpp's DeepSeek-2 graph uses, adjusting the YaRN attention
    /// factor as its context does for this architecture: with a log multiplier (the converter
    /// writes 0.1 · `mscale_all_dim`) the rotation keeps unit magnitude and the scale carries
    /// `mscale²`.
    pub(crate) fn kq_scale(&self, g: &Gguf, rope: &mut RopeScaling) -> Result<f32> {
        let file_mul = g.get_f64(&keys(g).key("rope.scaling.yarn_log_multiplier"))?.unwrap_or(0.0);
        if !(file_mul.is_finite() && (0.0..=10.0).contains(&file_mul)) {
            return Err(keys(g).bad("rope.scaling.yarn_log_multiplier", format!("{file_mul} is outside [0, 10]")));
        }
        let log_mul = file_mul as f32 / 0.1;
        let factor = 1.0 / rope.freq_scale;
        if rope.ext_factor != 0.0 && log_mul != 0.0 {
            // llama.cpp: get_mscale(f, m) / get_mscale(f, m) = 1, then its normalisation, then
            // the file's attention factor (which `RopeScaling::new` already multiplied in).
            let file_attn = g.get_f64(&keys(g).key("rope.scaling.attn_factor"))?.unwrap_or(1.0) as f32;
            rope.attn_factor = 1.0 / (1.0 + 0.1f32 * factor.ln()) * file_attn;
        }
        let attn_factor_org = rope.attn_factor * (1.0 + 0.1f32 * factor.ln());
        let mscale = attn_factor_org * (1.0 + 0.1f32 * log_mul * factor.ln());
        Ok(mscale * mscale / ((self.nope + self.rope) as f32).sqrt())
    }
}

/// One layer's latent-attention weights besides `wq` / `wk` / `wo` (see `Layer`).
pub(crate) struct MlaLayer {
    /// Low-rank Q: `attn_q_a` and the norm of its output (absent with `q_lora_rank` 0).
    pub wq_a: Option<Mat>,
    pub q_a_norm: Option<Vec<f32>>,
    /// Norm of the compressed KV values.
    pub kv_a_norm: Vec<f32>,
    /// Per head: compressed width × nope (absorbs Q's nope part) and v_head × compressed width.
    pub k_b: Vec<Mat>,
    pub v_b: Vec<Mat>,
}

impl MlaLayer {
    pub(crate) fn bind(b: &Binder, c: &Config, il: usize) -> Result<Option<Box<MlaLayer>>> {
        let Some(m) = c.mla else { return Ok(None) };
        let n = |s: &str| format!("blk.{il}.{s}");
        let (wq_a, q_a_norm) = if m.q_lora_rank > 0 {
            (Some(b.mat(&n("attn_q_a.weight"), c.n_embd, m.q_lora_rank)?), Some(b.vec(&n("attn_q_a_norm.weight"), m.q_lora_rank)?))
        } else {
            (None, None)
        };
        Ok(Some(Box::new(MlaLayer {
            wq_a,
            q_a_norm,
            kv_a_norm: b.vec(&n("attn_kv_a_norm.weight"), m.kv_lora_rank)?,
            k_b: b.mats3(&n("attn_k_b.weight"), m.nope, m.kv_lora_rank, c.n_head)?,
            v_b: b.mats3(&n("attn_v_b.weight"), m.kv_lora_rank, m.v_head, c.n_head)?,
        })))
    }

    pub(crate) fn mats(&self) -> impl Iterator<Item = &Mat> {
        self.wq_a.iter().chain(&self.k_b).chain(&self.v_b)
    }

    pub(crate) fn mats_mut(&mut self) -> impl Iterator<Item = &mut Mat> {
        self.wq_a.iter_mut().chain(&mut self.k_b).chain(&mut self.v_b)
    }
}
