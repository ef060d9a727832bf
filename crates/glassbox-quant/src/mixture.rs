//! Which type each tensor gets: llama-quantize's mixtures (`llama_tensor_get_type` in
//! llama.cpp's `llama-quant.cpp`) for the file types we write — the plain ones (Q4_0 … Q8_0,
//! F16, BF16, Q6_K) and the `_S`/`_M`/`_L` K mixtures (not Q2_K_S and the IQ types, which
//! llama-quantize makes only with an importance matrix), which give the tensors that matter most
//! (attention V, FFN down in the first and last eighth of the layers and every third between,
//! the output matrix) more bits. Tensors are visited in llama-quantize's order (non-block
//! tensors by name, then block by block, names sorted), since the attention-V rules count.

use crate::QType;

/// A file type: `general.file_type` as llama.cpp numbers it, and its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    F16,
    Bf16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3KS,
    Q3KM,
    Q3KL,
    Q4KS,
    Q4KM,
    Q5KS,
    Q5KM,
    Q6K,
}

impl FileType {
    pub const ALL: [FileType; 16] = [
        FileType::F16, FileType::Bf16, FileType::Q4_0, FileType::Q4_1, FileType::Q5_0, FileType::Q5_1, FileType::Q8_0,
        FileType::Q2K, FileType::Q3KS, FileType::Q3KM, FileType::Q3KL, FileType::Q4KS, FileType::Q4KM,
        FileType::Q5KS, FileType::Q5KM, FileType::Q6K,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileType::F16 => "F16",
            FileType::Bf16 => "BF16",
            FileType::Q4_0 => "Q4_0",
            FileType::Q4_1 => "Q4_1",
            FileType::Q5_0 => "Q5_0",
            FileType::Q5_1 => "Q5_1",
            FileType::Q8_0 => "Q8_0",
            FileType::Q2K => "Q2_K",
            FileType::Q3KS => "Q3_K_S",
            FileType::Q3KM => "Q3_K_M",
            FileType::Q3KL => "Q3_K_L",
            FileType::Q4KS => "Q4_K_S",
            FileType::Q4KM => "Q4_K_M",
            FileType::Q5KS => "Q5_K_S",
            FileType::Q5KM => "Q5_K_M",
            FileType::Q6K => "Q6_K",
        }
    }

    pub fn from_name(s: &str) -> Option<FileType> {
        Self::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(s))
    }

    /// `general.file_type` (llama.h's `LLAMA_FTYPE_MOSTLY_*`).
    pub fn id(self) -> u32 {
        match self {
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q4_1 => 3,
            FileType::Q8_0 => 7,
            FileType::Q5_0 => 8,
            FileType::Q5_1 => 9,
            FileType::Q2K => 10,
            FileType::Q3KS => 11,
            FileType::Q3KM => 12,
            FileType::Q3KL => 13,
            FileType::Q4KS => 14,
            FileType::Q4KM => 15,
            FileType::Q5KS => 16,
            FileType::Q5KM => 17,
            FileType::Q6K => 18,
            FileType::Bf16 => 32,
        }
    }

    /// The type most tensors get.
    pub fn default_type(self) -> QType {
        match self {
            FileType::F16 => QType::F16,
            FileType::Bf16 => QType::Bf16,
            FileType::Q4_0 => QType::Q4_0,
            FileType::Q4_1 => QType::Q4_1,
            FileType::Q5_0 => QType::Q5_0,
            FileType::Q5_1 => QType::Q5_1,
            FileType::Q8_0 => QType::Q8_0,
            FileType::Q2K => QType::Q2K,
            FileType::Q3KS | FileType::Q3KM | FileType::Q3KL => QType::Q3K,
            FileType::Q4KS | FileType::Q4KM => QType::Q4K,
            FileType::Q5KS | FileType::Q5KM => QType::Q5K,
            FileType::Q6K => QType::Q6K,
        }
    }
}

/// What the rules need to know of the model.
#[derive(Clone, Debug)]
pub struct ModelShape {
    pub arch: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_expert: usize,
}

impl ModelShape {
    fn n_gqa(&self) -> usize {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }
    fn is_70b(&self) -> bool {
        self.arch == "llama" && self.n_layer == 80 && self.n_head != self.n_head_kv
    }
}

/// A tensor as the rules see it: name, number of dimensions, first dimension (the row length),
/// and its type in the source file.
#[derive(Clone, Debug)]
pub struct TensorDesc {
    pub name: String,
    pub n_dims: usize,
    pub ne0: u64,
    /// `None`: a type we cannot read (copied unchanged when it is not quantised).
    pub ty: Option<QType>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        return Category::Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return Category::TokenEmbd;
    }
    for (pat, c) in [
        ("attn_qkv.weight", Category::AttnQkv),
        ("attn_kv_b.weight", Category::AttnKvB),
        ("attn_v.weight", Category::AttnV),
        ("attn_k.weight", Category::AttnK),
        ("attn_q.weight", Category::AttnQ),
        ("attn_output.weight", Category::AttnOutput),
        ("ffn_up", Category::FfnUp),
        ("ffn_gate", Category::FfnGate),
        ("ffn_down", Category::FfnDown),
    ] {
        if name.contains(pat) {
            return c;
        }
    }
    Category::Other
}

fn is_attn_v(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// llama-quantize's rule for which tensors are quantised at all (2-D and up, named `*weight`,
/// not norms, expert gates, positional or token-type embeddings, and the other small tables it
/// lists); the rest keep their type.
pub fn allows_quantization(t: &TensorDesc) -> bool {
    let n = t.name.as_str();
    if t.n_dims < 2 || !n.ends_with("weight") || n.contains("_norm.weight") || n.contains("ffn_gate_inp.weight") {
        return false;
    }
    const SKIP: &[&str] = &[
        "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight",
        "indexer.k_proj.weight", "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
        "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
        "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
        "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    ];
    !(SKIP.iter().any(|s| n.contains(s)) || n == "position_embd.weight" || n == "token_types.weight")
}

/// llama-quantize's tensor order: tensors outside blocks first, then block by block; names sorted
/// within each.
pub fn order_key(name: &str) -> (i64, String) {
    (layer_of(name).map_or(-1, |l| l as i64), name.to_string())
}

fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.").and_then(|r| r.split('.').next()).and_then(|n| n.parse().ok())
}

fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// When a row length does not fit the chosen type's block: llama-quantize's fallbacks.
fn fallback(t: &TensorDesc, ty: QType) -> QType {
    let block = ty.block().0 as u64;
    if t.ne0.is_multiple_of(block) {
        return ty;
    }
    let f = match ty {
        QType::Q2K | QType::Q3K => QType::Q4_0,
        QType::Q4K => QType::Q5_0,
        QType::Q5K => QType::Q5_1,
        QType::Q6K => QType::Q8_0,
        other => other,
    };
    if !t.ne0.is_multiple_of(f.block().0 as u64) { QType::F16 } else { f }
}

/// The type of every tensor, in the given order (use [`order_key`] to sort first); a tensor
/// that is not quantised keeps its own type.
pub fn plan(tensors: &[TensorDesc], shape: &ModelShape, ftype: FileType) -> Vec<Option<QType>> {
    let default = ftype.default_type();
    let quantized_default = !matches!(default, QType::F16 | QType::Bf16 | QType::F32);
    let n_attention_wv = tensors.iter().filter(|t| is_attn_v(category(&t.name))).count();
    let tied = !tensors.iter().any(|t| category(&t.name) == Category::Output);
    let falcon = shape.arch == "falcon";
    let mut i_attention_wv = 0usize;
    let n_layer = shape.n_layer;
    use FileType as F;
    use QType as T;
    tensors
        .iter()
        .map(|t| {
            if !allows_quantization(t) {
                return t.ty;
            }
            if !quantized_default {
                return Some(default);
            }
            let c = category(&t.name);
            let mut ty = default;
            if c == Category::Output || (tied && c == Category::TokenEmbd) {
                let block = ty.block().0 as u64;
                if falcon || t.ne0 % block != 0 {
                    ty = T::Q8_0;
                } else if ty != T::Q8_0 {
                    ty = T::Q6K;
                }
            } else if c == Category::TokenEmbd {
                // Only the IQ/TQ mixtures change the token embedding.
            } else if is_attn_v(c) {
                match ftype {
                    F::Q2K => ty = if shape.n_gqa() >= 4 { T::Q4K } else { T::Q3K },
                    F::Q3KM => ty = if i_attention_wv < 2 { T::Q5K } else { T::Q4K },
                    F::Q3KL => ty = T::Q5K,
                    F::Q4KM | F::Q5KM if use_more_bits(i_attention_wv, n_attention_wv) => ty = T::Q6K,
                    F::Q4KS if i_attention_wv < 4 => ty = T::Q5K,
                    _ => {}
                }
                if shape.is_70b() && matches!(ty, T::Q3K | T::Q4K) {
                    ty = T::Q5K;
                }
                if shape.n_expert == 8 {
                    ty = T::Q8_0;
                }
                i_attention_wv += 1;
            } else if c == Category::AttnK {
                if shape.n_expert == 8 {
                    ty = T::Q8_0;
                }
            } else if c == Category::FfnDown {
                let i = layer_of(&t.name).unwrap_or(0);
                match ftype {
                    F::Q2K => ty = T::Q3K,
                    F::Q3KM => ty = if i < n_layer / 16 { T::Q5K } else if !falcon || use_more_bits(i, n_layer) { T::Q4K } else { T::Q3K },
                    F::Q3KL => ty = if falcon { T::Q4K } else { T::Q5K },
                    F::Q4KM => {
                        if falcon {
                            ty = if i < n_layer / 16 { T::Q6K } else if use_more_bits(i, n_layer) { T::Q5K } else { T::Q4K };
                        } else if use_more_bits(i, n_layer) {
                            ty = T::Q6K;
                        }
                    }
                    F::Q5KM if use_more_bits(i, n_layer) => ty = T::Q6K,
                    F::Q4KS if !falcon && i < n_layer / 8 => ty = T::Q5K,
                    _ => {}
                }
            } else if c == Category::AttnOutput {
                if !falcon {
                    if shape.n_expert == 8 {
                        if matches!(ftype, F::Q2K | F::Q3KS | F::Q3KM | F::Q4KS | F::Q4KM) {
                            ty = T::Q5K;
                        }
                    } else {
                        match ftype {
                            F::Q2K => ty = T::Q3K,
                            F::Q3KM => ty = T::Q4K,
                            F::Q3KL => ty = T::Q5K,
                            _ => {}
                        }
                    }
                } else if ftype == F::Q3KL {
                    ty = T::Q4K;
                }
            } else if c == Category::AttnQkv {
                match ftype {
                    F::Q3KM | F::Q3KL => ty = T::Q4K,
                    F::Q4KM => ty = T::Q5K,
                    F::Q5KM => ty = T::Q6K,
                    _ => {}
                }
            }
            Some(fallback(t, ty))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_in_the_first_and_last_eighth_and_every_third() {
        // llama.cpp: i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (C's % of a non-negative value here).
        let n = 24;
        let got: Vec<usize> = (0..n).filter(|&i| use_more_bits(i, n)).collect();
        assert_eq!(got, [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]);
    }
}
