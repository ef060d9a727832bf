use glassbox_gguf::Gguf;

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
    }
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
        };
        match arch {
            Arch::Llama => base,
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
    /// RoPE base of sliding-window layers (Gemma 3 uses 10 000 there).
    pub rope_base_swa: f32,
    pub rms_eps: f32,
    pub ctx_train: usize,
    pub n_vocab: usize,
    /// Sliding window size and which layers use it.
    pub sliding_window: Option<usize>,
    pub swa_layers: Vec<bool>,
    /// Scale applied to attention scores.
    pub attn_scale: f32,
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
        let arch = match arch_name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            other => return Err(Error::UnsupportedArch(other.into())),
        };
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
        let default_base = if arch == Arch::Gemma3 { 1_000_000.0 } else { 10_000.0 };
        let rope_base = g.get_f64(&k("rope.freq_base"))?.unwrap_or(default_base) as f32;
        if !(rope_base.is_finite() && rope_base > 1.0) {
            return Err(Error::BadKey { key: k("rope.freq_base"), msg: format!("{rope_base} is not > 1") });
        }
        let rms_eps = g.get_f64(&k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5) as f32;
        if !(rms_eps.is_finite() && rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(Error::BadKey { key: k("attention.layer_norm_rms_epsilon"), msg: format!("{rms_eps}") });
        }
        let ctx_train = bounded(&k("context_length"), g.get_u64(&k("context_length"))?.unwrap_or(4096), 1, 1 << 24)?;
        let n_vocab = match g.get_array("tokenizer.ggml.tokens")? {
            Some(t) => t.len(),
            None => req(g, &k("vocab_size"))? as usize,
        };
        let (sliding_window, swa_layers, rope_base_swa) = if arch == Arch::Gemma3 {
            let w = g.get_u64(&k("attention.sliding_window"))?.unwrap_or(512);
            let w = bounded(&k("attention.sliding_window"), w, 1, 1 << 24)?;
            // Gemma 3: five sliding-window layers, then one global layer.
            (Some(w), (0..n_layers).map(|il| il % 6 < 5).collect(), 10_000.0)
        } else {
            (None, vec![false; n_layers], rope_base)
        };
        let attn_scale = 1.0 / (head_dim as f32).sqrt();
        Ok(Config {
            arch,
            spec: ArchSpec::for_arch(arch),
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
            rms_eps,
            ctx_train,
            n_vocab,
            sliding_window,
            swa_layers,
            attn_scale,
        })
    }
}
