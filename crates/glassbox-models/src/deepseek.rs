//! DeepSeek-2's hyper-parameters (llama.cpp's `deepseek2`): multi-head latent attention and
//! mixture-of-experts layers, read and validated as llama.cpp reads them.
//!
//! MLA as llama.cpp runs current files (`attn_k_b` / `attn_v_b`, written since its converter
//! split `attn_kv_b`): K and V of every head come from one compressed row per token (the
//! normalised `kv_lora_rank` values, plus `n_rot` rotary values shared by all heads), so the
//! cache holds that row only; each head's query is absorbed into the compressed space through
//! its `k_b` slice, attention runs as multi-query over it, and each head's output leaves the
//! compressed space through its `v_b` slice.

use glassbox_gguf::Gguf;

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

/// How a token's router logits become expert weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gating {
    Softmax,
    Sigmoid,
}

/// Mixture-of-experts layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moe {
    pub n_expert: usize,
    /// Experts each token is routed to.
    pub n_used: usize,
    /// Shared experts (one FFN of `n_shared × n_ff_exp` run for every token).
    pub n_shared: usize,
    pub n_ff_exp: usize,
    /// Layers before this one have a dense FFN (`feed_forward_length` wide).
    pub dense_lead: usize,
    pub gating: Gating,
    /// Divide the chosen experts' weights by their sum.
    pub norm_w: bool,
    /// Multiply them by this (1: none).
    pub w_scale: f32,
    /// Group-limited routing (DeepSeek-V3): experts in `groups` groups, only the best
    /// `groups_used` groups (by the sum of their two best scores) eligible. 0: none.
    pub groups: usize,
    pub groups_used: usize,
}

const MAX_EXPERTS: u64 = 512;

fn key(s: &str) -> String {
    format!("deepseek2.{s}")
}

fn get(g: &Gguf, s: &str) -> Result<Option<u64>> {
    if matches!(g.get(&key(s)), Some(glassbox_gguf::Value::Array(_))) {
        return Err(Error::Unimplemented { what: format!("metadata {:?}", key(s)), why: "per-layer sizes".into() });
    }
    Ok(g.get_u64(&key(s))?)
}

fn req(g: &Gguf, s: &str) -> Result<u64> {
    get(g, s)?.ok_or_else(|| Error::MissingKey(key(s)))
}

fn bad(s: &str, msg: String) -> Error {
    Error::BadKey { key: key(s), msg }
}

/// llama.cpp's "lite" DeepSeek-2 layouts (DeepSeek-V2-Lite and kin): no Q projection rank is
/// read for them, whatever the file says.
fn is_lite(n_layers: usize, n_vocab: usize) -> bool {
    n_layers == 27 || n_layers == 26 || (n_layers == 48 && n_vocab == 128_256)
}

impl Mla {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_gguf(g: &Gguf, n_layers: usize, n_vocab: usize, n_head: usize, n_head_kv: usize, head_dim: usize, head_dim_v: usize, n_rot: usize) -> Result<Mla> {
        let q_lora_rank = if is_lite(n_layers, n_vocab) { 0 } else { req(g, "attention.q_lora_rank")? as usize };
        let kv_lora_rank = req(g, "attention.kv_lora_rank")? as usize;
        let (Some(k_mla), Some(v_mla)) = (get(g, "attention.key_length_mla")?, get(g, "attention.value_length_mla")?) else {
            return Err(Error::Unimplemented {
                what: format!("a {} file without {:?}", "deepseek2", key("attention.key_length_mla")),
                why: "files converted before llama.cpp split attn_kv_b into attn_k_b and attn_v_b (2025) run decompressed attention; convert the model again with a current convert_hf_to_gguf.py".into(),
            });
        };
        let (k_mla, v_mla) = (k_mla as usize, v_mla as usize);
        if !(1..=65536).contains(&kv_lora_rank) || q_lora_rank > 65536 {
            return Err(bad("attention.kv_lora_rank", format!("{kv_lora_rank} (q rank {q_lora_rank}) is outside [1, 65536]")));
        }
        if k_mla <= n_rot || k_mla > 65536 {
            return Err(bad("attention.key_length_mla", format!("{k_mla} must exceed the rotary size {n_rot} (and be at most 65536)")));
        }
        if !(1..=65536).contains(&v_mla) {
            return Err(bad("attention.value_length_mla", format!("{v_mla} is outside [1, 65536]")));
        }
        // The compressed cache row: what the converter writes as the key and value lengths.
        if head_dim != kv_lora_rank + n_rot || head_dim_v != kv_lora_rank {
            return Err(bad("attention.key_length", format!("key/value lengths {head_dim}/{head_dim_v} are not kv_lora_rank + rope ({}) / kv_lora_rank ({kv_lora_rank})", kv_lora_rank + n_rot)));
        }
        if n_head_kv != 1 {
            return Err(bad("attention.head_count_kv", format!("{n_head_kv}: latent attention has one KV head")));
        }
        let _ = n_head;
        if g.get_f64(&key("attention.temperature_scale"))?.is_some_and(|t| t != 0.0) {
            return Err(Error::Unimplemented { what: format!("metadata {:?}", key("attention.temperature_scale")), why: "attention temperature tuning".into() });
        }
        Ok(Mla { q_lora_rank, kv_lora_rank, nope: k_mla - n_rot, rope: n_rot, v_head: v_mla })
    }

    /// The attention scale llama.cpp's DeepSeek-2 graph uses, adjusting the YaRN attention
    /// factor as its context does for this architecture: with a log multiplier (the converter
    /// writes 0.1 · `mscale_all_dim`) the rotation keeps unit magnitude and the scale carries
    /// `mscale²`.
    pub(crate) fn kq_scale(&self, g: &Gguf, rope: &mut RopeScaling) -> Result<f32> {
        let file_mul = g.get_f64(&key("rope.scaling.yarn_log_multiplier"))?.unwrap_or(0.0);
        if !(file_mul.is_finite() && (0.0..=10.0).contains(&file_mul)) {
            return Err(bad("rope.scaling.yarn_log_multiplier", format!("{file_mul} is outside [0, 10]")));
        }
        let log_mul = file_mul as f32 / 0.1;
        let factor = 1.0 / rope.freq_scale;
        if rope.ext_factor != 0.0 && log_mul != 0.0 {
            // llama.cpp: get_mscale(f, m) / get_mscale(f, m) = 1, then its normalisation, then
            // the file's attention factor (which `RopeScaling::new` already multiplied in).
            let file_attn = g.get_f64(&key("rope.scaling.attn_factor"))?.unwrap_or(1.0) as f32;
            rope.attn_factor = 1.0 / (1.0 + 0.1f32 * factor.ln()) * file_attn;
        }
        let attn_factor_org = rope.attn_factor * (1.0 + 0.1f32 * factor.ln());
        let mscale = attn_factor_org * (1.0 + 0.1f32 * log_mul * factor.ln());
        Ok(mscale * mscale / ((self.nope + self.rope) as f32).sqrt())
    }
}

impl Moe {
    /// `None` where no layer has experts (every layer dense).
    pub(crate) fn from_gguf(g: &Gguf, n_layers: usize, n_vocab: usize) -> Result<Option<Moe>> {
        let dense_lead = get(g, "leading_dense_block_count")?.unwrap_or(0) as usize;
        let n_expert = get(g, "expert_count")?.unwrap_or(0);
        if dense_lead >= n_layers && n_expert == 0 {
            return Ok(None);
        }
        if !(1..=MAX_EXPERTS).contains(&n_expert) {
            return Err(bad("expert_count", format!("{n_expert} is outside [1, {MAX_EXPERTS}] while layers {dense_lead}.. have experts")));
        }
        let n_used = req(g, "expert_used_count")?;
        if !(1..=n_expert).contains(&n_used) {
            return Err(bad("expert_used_count", format!("{n_used} is outside [1, {n_expert}]")));
        }
        let n_shared = req(g, "expert_shared_count")?;
        if !(1..=64).contains(&n_shared) {
            // llama.cpp requires the shared expert's tensors in every expert layer.
            return Err(bad("expert_shared_count", format!("{n_shared} is outside [1, 64]")));
        }
        let n_ff_exp = req(g, "expert_feed_forward_length")?;
        if !(1..=1 << 20).contains(&n_ff_exp) {
            return Err(bad("expert_feed_forward_length", format!("{n_ff_exp} is outside [1, 1048576]")));
        }
        let gating = match get(g, "expert_gating_func")?.unwrap_or(0) {
            // Unset: softmax, except GLM-4.7-Lite's layout, which llama.cpp gives sigmoid.
            0 if (n_layers == 47 || n_layers == 48) && n_vocab == 154_880 => Gating::Sigmoid,
            0 | 1 => Gating::Softmax,
            2 => Gating::Sigmoid,
            other => return Err(Error::Unimplemented { what: format!("metadata {:?} = {other}", key("expert_gating_func")), why: "expert gating other than softmax or sigmoid".into() }),
        };
        let norm_w = g.get_bool(&key("expert_weights_norm"))?.unwrap_or(false);
        let w_scale = match g.get_f64(&key("expert_weights_scale"))? {
            None => 1.0,
            Some(0.0) => 1.0,
            Some(s) if s.is_finite() && s > 0.0 && s <= 1000.0 => s as f32,
            Some(s) => return Err(bad("expert_weights_scale", format!("{s} is not in (0, 1000]"))),
        };
        let groups = get(g, "expert_group_count")?.unwrap_or(0);
        let groups_used = get(g, "expert_group_used_count")?.unwrap_or(0);
        if groups > 1 && !(n_expert % groups == 0 && groups < n_expert && (1..groups).contains(&groups_used) && n_expert / groups >= 2) {
            return Err(bad("expert_group_count", format!("{groups} groups ({groups_used} used) do not split {n_expert} experts into groups of two or more")));
        }
        for (s, why) in [("swiglu_clamp_exp", "clamped SwiGLU experts"), ("expert_shared_feed_forward_length", "shared experts of another width")] {
            if g.get(&key(s)).is_some() {
                return Err(Error::Unimplemented { what: format!("metadata {:?}", key(s)), why: why.into() });
            }
        }
        Ok(Some(Moe {
            n_expert: n_expert as usize,
            n_used: n_used as usize,
            n_shared: n_shared as usize,
            n_ff_exp: n_ff_exp as usize,
            dense_lead: dense_lead.min(n_layers),
            gating,
            norm_w,
            w_scale,
            groups: if groups > 1 { groups as usize } else { 0 },
            groups_used: groups_used as usize,
        }))
    }

    /// Whether layer `il` has experts.
    pub fn is_moe_layer(&self, il: usize) -> bool {
        il >= self.dense_lead
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

/// One layer's routed experts (the shared expert is the layer's ordinary FFN).
pub(crate) struct MoeLayer {
    /// Router: `n_expert` logits per token.
    pub router: Mat,
    /// Selection bias (DeepSeek-V3's `e_score_correction_bias`): added to choose experts, not
    /// to weigh them.
    pub probs_b: Option<Vec<f32>>,
    pub gate: Vec<Mat>,
    pub up: Vec<Mat>,
    pub down: Vec<Mat>,
}

impl MoeLayer {
    pub(crate) fn bind(b: &Binder, c: &Config, il: usize) -> Result<Option<Box<MoeLayer>>> {
        let Some(e) = c.moe.filter(|e| e.is_moe_layer(il)) else { return Ok(None) };
        let n = |s: &str| format!("blk.{il}.{s}");
        let (d, ff, ne) = (c.n_embd, e.n_ff_exp, e.n_expert);
        // Gate and up of each expert in one matrix (gate rows first), or apart.
        let (gate, up) = if b.has(&n("ffn_gate_up_exps.weight")) {
            let both = b.mats3(&n("ffn_gate_up_exps.weight"), d, 2 * ff, ne)?;
            both.into_iter().map(|m| m.split_rows(ff)).unzip()
        } else {
            (b.mats3(&n("ffn_gate_exps.weight"), d, ff, ne)?, b.mats3(&n("ffn_up_exps.weight"), d, ff, ne)?)
        };
        let probs_b = b.opt_vec(&n("exp_probs_b.bias"), ne)?;
        if let Some(bad) = probs_b.iter().flatten().find(|v| !v.is_finite()) {
            return Err(Error::BadTensor { name: n("exp_probs_b.bias"), msg: format!("value {bad} is not finite") });
        }
        Ok(Some(Box::new(MoeLayer {
            router: b.mat(&n("ffn_gate_inp.weight"), d, ne)?,
            probs_b,
            gate,
            up,
            down: b.mats3(&n("ffn_down_exps.weight"), ff, d, ne)?,
        })))
    }

    /// The routed experts' matrices.
    pub(crate) fn experts(&self) -> impl Iterator<Item = &Mat> {
        self.gate.iter().chain(&self.up).chain(&self.down)
    }

    pub(crate) fn mats(&self) -> impl Iterator<Item = &Mat> {
        std::iter::once(&self.router).chain(self.experts())
    }

    pub(crate) fn mats_mut(&mut self) -> impl Iterator<Item = &mut Mat> {
        std::iter::once(&mut self.router).chain(&mut self.gate).chain(&mut self.up).chain(&mut self.down)
    }
}
