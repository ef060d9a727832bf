use glassbox_gguf::Gguf;

use crate::{Error, Result, RopeScaling};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    /// IBM Granite (3.x dense): Llama's layer with four multipliers (embedding, residual,
    /// attention, logits).
    Granite,
    /// Microsoft Phi-3 (dense): fused QKV and gate/up projections, Q scaled before attention.
    Phi3,
    /// Shanghai AI Lab's InternLM2: Llama's layer (its fused `wqkv` is split by the converter, or
    /// kept as `attn_qkv`, which any architecture here may carry).
    InternLm2,
    /// BigCode's StarCoder2: layer norms with biases, biased projections, a GELU MLP without gate.
    Starcoder2,
    /// EleutherAI's GPT-NeoX (Pythia, GPT-NeoX-20B): StarCoder2's layer with a fused biased QKV,
    /// partial rotary dimensions and (per file) parallel residual.
    GptNeox,
    /// TII's Falcon (7B, 40B/180B layout): attention and a GELU MLP in parallel on one layer
    /// norm (40B: a second norm for attention), fused QKV, multi-query, no biases.
    Falcon,
    /// BigScience's BLOOM: ALiBi instead of RoPE, a layer norm on the embeddings, StarCoder2's
    /// biased layer with a fused QKV.
    Bloom,
    /// DeepSeek-V2/V3 (and files converted as them): multi-head latent attention (low-rank Q and
    /// KV projections, attention in the compressed space) and mixture-of-experts layers with
    /// shared experts after leading dense layers.
    DeepSeek2,
}

impl Arch {
    /// Every architecture glassbox runs.
    pub const ALL: [Arch; 12] = [
        Arch::Llama,
        Arch::Qwen2,
        Arch::Qwen3,
        Arch::Gemma3,
        Arch::Granite,
        Arch::Phi3,
        Arch::InternLm2,
        Arch::Starcoder2,
        Arch::GptNeox,
        Arch::Falcon,
        Arch::Bloom,
        Arch::DeepSeek2,
    ];

    /// The architecture with this GGUF `general.architecture` name.
    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
            Arch::Granite => "granite",
            Arch::Phi3 => "phi3",
            Arch::InternLm2 => "internlm2",
            Arch::Starcoder2 => "starcoder2",
            Arch::GptNeox => "gptneox",
            Arch::Falcon => "falcon",
            Arch::Bloom => "bloom",
            Arch::DeepSeek2 => "deepseek2",
        }
    }
}

/// How a parallel-residual layer adds its two branches (f32 addition is not associative:
/// llama.cpp's order, per architecture).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallel {
    /// GPT-NeoX: (ffn + x) + attn.
    NeoX,
    /// Falcon: (ffn + attn) + x.
    Falcon,
}

/// What distinguishes one architecture's decoder layer from another's.
#[derive(Clone, Copy, Debug)]
pub struct ArchSpec {
    /// RoPE pairs (i, i + n_rot/2) instead of (2i, 2i+1).
    pub rope_neox: bool,
    /// Per-head RMS norm of Q and K before RoPE.
    pub qk_norm: bool,
    /// Q/K/V projections carry biases.
    pub qkv_bias: bool,
    /// RMS norms after attention and after the FFN (before the residual add).
    pub post_norms: bool,
    /// GELU (tanh) gate instead of SiLU.
    pub gelu: bool,
    /// Scale token embeddings by sqrt(n_embd).
    pub embed_scale: bool,
    /// Layer norms with a bias (mean and variance) instead of RMS norms; the attention output
    /// and FFN projections carry biases; the FFN is up → GELU → down, without a gate.
    pub layer_norm: bool,
    /// No RoPE: positions enter through ALiBi (BLOOM).
    pub alibi: bool,
}

impl ArchSpec {
    pub fn for_arch(arch: Arch) -> ArchSpec {
        let base = ArchSpec {
            rope_neox: false,
            qk_norm: false,
            qkv_bias: false,
            post_norms: false,
            gelu: false,
            embed_scale: false,
            layer_norm: false,
            alibi: false,
        };
        match arch {
            Arch::Llama | Arch::Granite | Arch::InternLm2 | Arch::DeepSeek2 => base,
            Arch::Phi3 => ArchSpec { rope_neox: true, ..base },
            Arch::Starcoder2 | Arch::GptNeox | Arch::Falcon => ArchSpec { rope_neox: true, gelu: true, layer_norm: true, ..base },
            Arch::Bloom => ArchSpec { gelu: true, layer_norm: true, alibi: true, ..base },
            Arch::Qwen2 => ArchSpec { rope_neox: true, qkv_bias: true, ..base },
            Arch::Qwen3 => ArchSpec { rope_neox: true, qk_norm: true, ..base },
            Arch::Gemma3 => ArchSpec {
                rope_neox: true,
                qk_norm: true,
                post_norms: true,
                gelu: true,
                embed_scale: true,
                ..base
            },
        }
    }
}

/// Hyper-parameters read from GGUF metadata, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub arch: Arch,
    pub spec: ArchSpec,
    pub n_layers: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
    pub n_rot: usize,
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (Gemma 3: `rope.freq_base_swa`, default 10 000).
    pub rope_base_swa: f32,
    /// RoPE scaling of the global (non-sliding-window) layers; sliding-window layers are never
    /// frequency-scaled (as llama.cpp runs Gemma 3).
    pub rope_scaling: RopeScaling,
    /// Gemma: logits ← cap · tanh(logits / cap).
    pub final_logit_softcap: Option<f32>,
    /// Attention and FFN both read the layer's input, their outputs added to it together
    /// (GPT-NeoX's `use_parallel_residual`; Falcon always), in the architecture's order.
    pub parallel_residual: Option<Parallel>,
    /// Epsilon of the RMS norms (or of the layer norms, where the spec says so).
    pub rms_eps: f32,
    pub ctx_train: usize,
    pub n_vocab: usize,
    /// Sliding window size and which layers use it.
    pub sliding_window: Option<usize>,
    pub swa_layers: Vec<bool>,
    /// Scale applied to attention scores.
    pub attn_scale: f32,
    /// Token embeddings × this (Granite's `embedding_scale`; Gemma's √n_embd comes from its spec).
    pub embd_mult: f32,
    /// Q × this after RoPE, before attention (Phi-3 scales Q by 1/√head_dim there and its
    /// attention by 1; elsewhere 1 and the scale is `attn_scale`).
    pub q_mult: f32,
    /// Attention and FFN outputs × this before each residual add (Granite's `residual_scale`).
    pub residual_mult: f32,
    /// Logits × this (Granite: 1 / `logit_scale`, as llama.cpp scales them).
    pub logit_mult: f32,
    /// How new KV caches store K and V: a runtime choice (`--cache-type-k/-v`), not read from
    /// the file; f16 unless [`crate::Model::set_cache_types`] says otherwise.
    pub cache_k: crate::KvType,
    pub cache_v: crate::KvType,
    /// Multi-head latent attention (DeepSeek-2): then `head_dim` is the compressed KV width plus
    /// the rotary part, `n_head_kv` is 1, and V is read from the first `head_dim_v` values of
    /// each cached K row (no V cache).
    pub mla: Option<crate::deepseek::Mla>,
    /// Mixture-of-experts layers (from `dense_lead` on): DeepSeek-2, Mixtral (`llama`).
    pub moe: Option<crate::moe::Moe>,
}

impl Config {
    /// Values per token a layer's K and V caches hold: latent attention keeps one compressed
    /// row and reads V from it (no V cache).
    pub fn kv_widths(&self) -> (usize, usize) {
        let k = self.n_head_kv * self.head_dim;
        (k, if self.mla.is_some() { 0 } else { self.n_head_kv * self.head_dim_v })
    }
}

const MAX_LAYERS: u64 = 1024;
const MAX_DIM: u64 = 1 << 20;

fn req(g: &Gguf, key: &str) -> Result<u64> {
    let v = g.get_u64(key)?.ok_or_else(|| Error::MissingKey(key.into()))?;
    Ok(v)
}

fn bounded(key: &str, v: u64, lo: u64, hi: u64) -> Result<usize> {
    if v < lo || v > hi {
        return Err(Error::BadKey { key: key.into(), msg: format!("{v} is outside [{lo}, {hi}]") });
    }
    Ok(v as usize)
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let arch_name = g
            .get_str("general.architecture")?
            .ok_or_else(|| Error::MissingKey("general.architecture".into()))?;
        let arch = match (Arch::from_name(arch_name), arch_name) {
            (Some(a), _) => a,
            (None, neo @ ("gpt_neo" | "gpt-neo" | "gptneo")) => return Err(Error::GptNeo(neo.into())),
            (None, other) => return Err(Error::UnsupportedArch(other.into())),
        };
        let spec = ArchSpec::for_arch(arch);
        let a = arch.name();
        let k = |s: &str| format!("{a}.{s}");
        let n_layers = bounded(&k("block_count"), req(g, &k("block_count"))?, 1, MAX_LAYERS)?;
        let n_embd = bounded(&k("embedding_length"), req(g, &k("embedding_length"))?, 1, MAX_DIM)?;
        let n_ff = bounded(&k("feed_forward_length"), req(g, &k("feed_forward_length"))?, 1, MAX_DIM)?;
        let n_head = bounded(&k("attention.head_count"), req(g, &k("attention.head_count"))?, 1, 4096)?;
        let n_head_kv = match g.get_u64(&k("attention.head_count_kv"))? {
            Some(v) => bounded(&k("attention.head_count_kv"), v, 1, n_head as u64)?,
            None => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(Error::BadKey {
                key: k("attention.head_count_kv"),
                msg: format!("{n_head_kv} does not divide the head count {n_head}"),
            });
        }
        let head_dim = match g.get_u64(&k("attention.key_length"))? {
            Some(v) => bounded(&k("attention.key_length"), v, 2, 65536)?,
            None => {
                if n_embd % n_head != 0 {
                    return Err(Error::BadKey {
                        key: k("embedding_length"),
                        msg: format!("{n_embd} is not divisible by the head count {n_head}"),
                    });
                }
                n_embd / n_head
            }
        };
        let head_dim_v = match g.get_u64(&k("attention.value_length"))? {
            Some(v) => bounded(&k("attention.value_length"), v, 1, 65536)?,
            None => head_dim,
        };
        let n_rot = match g.get_u64(&k("rope.dimension_count"))? {
            Some(v) => bounded(&k("rope.dimension_count"), v, 2, head_dim as u64)?,
            None => head_dim,
        };
        if n_rot % 2 != 0 {
            return Err(Error::BadKey { key: k("rope.dimension_count"), msg: format!("{n_rot} is odd") });
        }
        if n_rot != head_dim && !matches!(arch, Arch::Gemma3 | Arch::GptNeox | Arch::DeepSeek2) {
            // llama.cpp refuses this for llama and asserts it for qwen2/qwen3.
            return Err(Error::BadKey { key: k("rope.dimension_count"), msg: format!("{n_rot} differs from the head size {head_dim}, which {a} does not allow") });
        }
        let rope_base = g.get_f64(&k("rope.freq_base"))?.unwrap_or(10_000.0) as f32;
        if !(rope_base.is_finite() && rope_base > 1.0) {
            return Err(Error::BadKey { key: k("rope.freq_base"), msg: format!("{rope_base} is not > 1") });
        }
        // Layer-norm architectures name their epsilon differently (llama.cpp requires it).
        let eps_key = if spec.layer_norm { k("attention.layer_norm_epsilon") } else { k("attention.layer_norm_rms_epsilon") };
        let rms_eps = match g.get_f64(&eps_key)? {
            Some(v) => v as f32,
            None if spec.layer_norm => return Err(Error::MissingKey(eps_key)),
            None => 1e-5,
        };
        if !(rms_eps.is_finite() && rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(Error::BadKey { key: eps_key, msg: format!("{rms_eps}") });
        }
        let ctx_train = bounded(&k("context_length"), g.get_u64(&k("context_length"))?.unwrap_or(4096), 1, 1 << 24)?;
        let n_vocab = match g.get_array("tokenizer.ggml.tokens")? {
            Some(t) => t.len(),
            None => req(g, &k("vocab_size"))? as usize,
        };
        let (sliding_window, swa_layers, rope_base_swa) = match (arch, g.get_u64(&k("attention.sliding_window"))?) {
            (Arch::Gemma3, Some(w)) if w > 0 => {
                let w = bounded(&k("attention.sliding_window"), w, 1, 1 << 24)?;
                let base_swa = g.get_f64(&k("rope.freq_base_swa"))?.unwrap_or(10_000.0) as f32;
                if !(base_swa.is_finite() && base_swa > 1.0) {
                    return Err(Error::BadKey { key: k("rope.freq_base_swa"), msg: format!("{base_swa} is not > 1") });
                }
                (Some(w), swa_pattern(g, &k("attention.sliding_window_pattern"), n_layers)?, base_swa)
            }
            // Without a window every layer is global (llama.cpp ignores the key for the others).
            _ => (None, vec![false; n_layers], rope_base),
        };
        let attn_scale = if arch == Arch::Gemma3 && n_layers == 62 {
            // llama.cpp's Gemma 3 27B: query_pre_attn_scalar = n_embd / n_head.
            1.0 / ((n_embd / n_head) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        };
        // Granite's multipliers (llama.cpp: a scale of 0 or none means no scaling, except the
        // logit scale, which it requires).
        let (mut attn_scale, mut embd_mult, mut residual_mult, mut logit_mult) = (attn_scale, 1.0f32, 1.0f32, 1.0f32);
        if arch == Arch::Granite {
            let positive = |key: &str, required: bool| -> Result<Option<f32>> {
                match g.get_f64(&k(key))? {
                    None if required => Err(Error::MissingKey(k(key))),
                    None => Ok(None),
                    Some(v) if v == 0.0 && !required => Ok(None),
                    Some(v) if v.is_finite() && v > 0.0 => Ok(Some(v as f32)),
                    Some(v) => Err(Error::BadKey { key: k(key), msg: format!("{v} is not a positive number") }),
                }
            };
            logit_mult = 1.0 / positive("logit_scale", true)?.unwrap_or(1.0);
            embd_mult = positive("embedding_scale", false)?.unwrap_or(1.0);
            residual_mult = positive("residual_scale", false)?.unwrap_or(1.0);
            if let Some(s) = positive("attention.scale", false)? {
                attn_scale = s;
            }
            if g.get_bool(&k("rope.scaling.finetuned"))? == Some(false) {
                return Err(Error::Unimplemented { what: format!("metadata {:?}", k("rope.scaling.finetuned")), why: "layers without RoPE".into() });
            }
        }
        let parallel_residual = match arch {
            Arch::GptNeox => g.get_bool(&k("use_parallel_residual"))?.ok_or_else(|| Error::MissingKey(k("use_parallel_residual")))?.then_some(Parallel::NeoX),
            Arch::Falcon => Some(Parallel::Falcon),
            _ => None,
        };
        // Phi-3: Q × 1/√head_dim in f32 after RoPE, attention scale 1 (llama.cpp's order).
        let q_mult = if arch == Arch::Phi3 {
            let q = 1.0 / (head_dim as f32).sqrt();
            attn_scale = 1.0;
            q
        } else {
            1.0
        };
        let mut rope_scaling = rope_scaling(g, a, ctx_train)?;
        let (mla, moe) = if arch == Arch::DeepSeek2 {
            let mla = crate::deepseek::Mla::from_gguf(g, n_layers, n_vocab, n_head_kv, head_dim, head_dim_v, n_rot)?;
            attn_scale = mla.kq_scale(g, &mut rope_scaling)?;
            (Some(mla), crate::moe::Moe::from_gguf(g, arch, n_layers, n_vocab, n_ff)?)
        } else if arch == Arch::Llama {
            (None, crate::moe::Moe::from_gguf(g, arch, n_layers, n_vocab, n_ff)?)
        } else {
            (None, None)
        };
        let final_logit_softcap = match g.get_f64(&k("final_logit_softcapping"))? {
            Some(c) if c != 0.0 && arch == Arch::Gemma3 => {
                if !(c.is_finite() && c > 0.0) {
                    return Err(Error::BadKey { key: k("final_logit_softcapping"), msg: format!("{c} is not positive") });
                }
                Some(c as f32)
            }
            _ => None,
        };
        refuse_unimplemented(g, arch, head_dim, head_dim_v, n_rot, attn_scale * q_mult)?;
        Ok(Config {
            arch,
            spec,
            n_layers,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            n_rot,
            rope_base,
            rope_base_swa,
            rope_scaling,
            final_logit_softcap,
            parallel_residual,
            rms_eps,
            ctx_train,
            n_vocab,
            sliding_window,
            swa_layers,
            attn_scale,
            embd_mult,
            q_mult,
            residual_mult,
            logit_mult,
            cache_k: crate::KvType::F16,
            cache_v: crate::KvType::F16,
            mla,
            moe,
        })
    }
}

/// `{arch}.attention.sliding_window_pattern`: an array of per-layer flags (1 = sliding window;
/// missing trailing layers are global) or a period n (layer il slides unless il % n == n - 1);
/// default period 6 (Gemma 3: five sliding-window layers, then one global).
fn swa_pattern(g: &Gguf, key: &str, n_layers: usize) -> Result<Vec<bool>> {
    use glassbox_gguf::{Array, Value};
    let period = |n: u64| -> Vec<bool> { (0..n_layers as u64).map(|il| n == 0 || il % n < n - 1).collect() };
    Ok(match g.get(key) {
        None => period(6),
        Some(Value::Array(arr)) => {
            let flags: Vec<bool> = match arr {
                Array::Bool(v) => v.clone(),
                Array::I32(v) => v.iter().map(|&x| x != 0).collect(),
                Array::U32(v) => v.iter().map(|&x| x != 0).collect(),
                _ => return Err(Error::BadKey { key: key.into(), msg: "must be an array of bools or integers".into() }),
            };
            if flags.len() > n_layers {
                return Err(Error::BadKey { key: key.into(), msg: format!("{} flags for {n_layers} layers", flags.len()) });
            }
            (0..n_layers).map(|il| flags.get(il).copied().unwrap_or(false)).collect()
        }
        Some(v) => match v.as_u64() {
            Some(n) if n <= n_layers as u64 => period(n),
            _ => return Err(Error::BadKey { key: key.into(), msg: "must be a layer period or per-layer flags".into() }),
        },
    })
}

fn rope_scaling(g: &Gguf, a: &str, ctx_train: usize) -> Result<RopeScaling> {
    let k = |s: &str| format!("{a}.{s}");
    let kind = g.get_str(&k("rope.scaling.type"))?.unwrap_or("linear");
    let factor = match g.get_f64(&k("rope.scaling.factor"))? {
        Some(f) => (k("rope.scaling.factor"), f),
        None => (k("rope.scale_linear"), g.get_f64(&k("rope.scale_linear"))?.unwrap_or(0.0)),
    };
    if !(factor.1.is_finite() && factor.1 >= 0.0 && factor.1 <= 1024.0) {
        return Err(Error::BadKey { key: factor.0, msg: format!("{} is outside [0, 1024]", factor.1) });
    }
    let attn = g.get_f64(&k("rope.scaling.attn_factor"))?.unwrap_or(1.0);
    if !(attn.is_finite() && attn > 0.0 && attn <= 100.0) {
        return Err(Error::BadKey { key: k("rope.scaling.attn_factor"), msg: format!("{attn} is outside (0, 100]") });
    }
    let n_ctx_orig = match g.get_u64(&k("rope.scaling.original_context_length"))? {
        Some(n) => bounded(&k("rope.scaling.original_context_length"), n, 1, 1 << 24)?,
        None => ctx_train,
    };
    RopeScaling::new(kind, &k("rope.scaling.type"), factor.1 as f32, attn as f32, n_ctx_orig)
}

/// Keys and values that change what a model computes and that this engine does not implement:
/// the file is refused with the key named. Keys llama.cpp ignores for these architectures are
/// accepted only at the value llama.cpp's computation implies (else glassbox would silently
/// run the model differently from how its author meant it).
fn refuse_unimplemented(g: &Gguf, arch: Arch, head_dim: usize, head_dim_v: usize, n_rot: usize, attn_scale: f32) -> Result<()> {
    let a = arch.name();
    let k = |s: &str| format!("{a}.{s}");
    let refuse = |key: String, why: &str| Err(Error::Unimplemented { what: format!("metadata {key:?}"), why: why.into() });
    let num = |s: &str| g.get_f64(&k(s));
    if g.get_bool(&k("attention.causal"))? == Some(false) {
        return refuse(k("attention.causal"), "non-causal attention");
    }
    for (key, why) in [("expert_count", "mixture-of-experts layers"), ("nextn_predict_layers", "multi-token-prediction layers")] {
        if g.get_u64(&k(key))?.is_some_and(|n| n > 0) && !(matches!(arch, Arch::DeepSeek2 | Arch::Llama) && key == "expert_count") {
            return refuse(k(key), why);
        }
    }
    for key in ["attention.head_count", "attention.head_count_kv", "feed_forward_length"] {
        if matches!(g.get(&k(key)), Some(glassbox_gguf::Value::Array(_))) {
            return refuse(k(key), "per-layer sizes");
        }
    }
    for (key, full) in [("rope.dimension_count_swa", n_rot), ("attention.key_length_swa", head_dim), ("attention.value_length_swa", head_dim_v)] {
        if g.get_u64(&k(key))?.is_some_and(|v| v as usize != full) {
            return refuse(k(key), "sliding-window layers with other head or rotary sizes");
        }
    }
    if num("attn_logit_softcapping")?.is_some_and(|c| c != 0.0) {
        return refuse(k("attn_logit_softcapping"), "attention logit soft-capping");
    }
    if arch != Arch::Gemma3 && num("final_logit_softcapping")?.is_some_and(|c| c != 0.0) {
        return refuse(k("final_logit_softcapping"), "final logit soft-capping outside Gemma");
    }
    if let Some(s) = num("attention.scale")?
        && ((s as f32) - attn_scale).abs() > attn_scale * 1e-6
    {
        return refuse(k("attention.scale"), &format!("an attention scale of {s} instead of {attn_scale}"));
    }
    let yarn = g.get_str(&k("rope.scaling.type"))? == Some("yarn");
    // What llama.cpp uses regardless of these keys.
    let implied: [(&str, f64); 4] = [
        ("rope.scaling.yarn_ext_factor", if yarn { 1.0 } else { 0.0 }),
        ("rope.scaling.yarn_beta_fast", 32.0),
        ("rope.scaling.yarn_beta_slow", 1.0),
        ("rope.scaling.yarn_log_multiplier", 0.0),
    ];
    // DeepSeek-2 computes with its log multiplier (deepseek.rs).
    for (key, v) in implied.into_iter().filter(|(key, _)| !(arch == Arch::DeepSeek2 && key.ends_with("log_multiplier"))) {
        if let Some(x) = num(key)?
            && (x - v).abs() > 1e-6
        {
            return refuse(k(key), &format!("a value of {x}; llama.cpp computes with {v}"));
        }
    }
    if let Some(x) = num("rope.scaling.yarn_attn_factor")? {
        let f = num("rope.scaling.factor")?.unwrap_or(1.0);
        let v = if f > 1.0 { 0.1 * f.ln() + 1.0 } else { 1.0 };
        if (x - v).abs() > 1e-4 {
            return refuse(k("rope.scaling.yarn_attn_factor"), &format!("a value of {x}; llama.cpp computes with {v:.6}"));
        }
    }
    Ok(())
}
