use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use glassbox_gguf::{GgmlType, GgufFile, TensorInfo};
use glassbox_kernels::{Isa, MatRef, PackedMatrix, QType, WeightMatrix, dequantize_row};

use crate::{Config, Error, Result, Rope, RopeScaling};

/// A matrix that stays in the memory map: type, shape and byte range.
/// A matrix: type, shape and byte range in the memory map, plus an optional repacked copy for
/// the fastest kernels (built by [`Model::pack`]).
pub(crate) struct Mat {
    pub ty: QType,
    pub rows: usize,
    pub cols: usize,
    pub range: Range<usize>,
    pub packed: Option<std::sync::Arc<PackedMatrix>>,
    /// Bytes held instead of the file's: the exactly dequantized F32 copy made by
    /// [`Model::dequantize_f32`] (then `ty` is F32), or an adapter's matrix (lora.rs).
    pub owned: Option<std::sync::Arc<[u8]>>,
}

impl Mat {
    /// The first `k` rows and the rest, as two views of the same bytes (unpacked, file-backed).
    pub(crate) fn split_rows(self, k: usize) -> (Mat, Mat) {
        let rb = (self.range.len()) / self.rows.max(1);
        let mid = self.range.start + k * rb;
        let a = Mat { rows: k, range: self.range.start..mid, ..self.clone() };
        (a, Mat { rows: self.rows - k, range: mid..self.range.end, ..self })
    }
}

impl Clone for Mat {
    fn clone(&self) -> Self {
        Mat { ty: self.ty, rows: self.rows, cols: self.cols, range: self.range.clone(), packed: self.packed.clone(), owned: self.owned.clone() }
    }
}

pub(crate) struct Layer {
    pub attn_norm: Vec<f32>,
    /// Q, K and V projections. Latent attention (`mla`): `wq` gives the heads' Q (from the
    /// normalised low-rank Q where there is one), `wk` the compressed KV row, and there is no `wv`.
    pub wq: Mat,
    pub wk: Mat,
    pub wv: Option<Mat>,
    pub wo: Mat,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub attn_post_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    /// Layer-norm biases and the output / FFN projection biases (StarCoder2).
    pub attn_norm_b: Option<Vec<f32>>,
    pub ffn_norm_b: Option<Vec<f32>>,
    pub bo: Option<Vec<f32>>,
    pub b_up: Option<Vec<f32>>,
    pub b_down: Option<Vec<f32>>,
    /// The FFN gate (none: up → activation → down).
    pub w_gate: Option<Mat>,
    /// None: no dense FFN (Mixtral's expert layers).
    pub w_up: Option<Mat>,
    pub w_down: Option<Mat>,
    pub ffn_post_norm: Option<Vec<f32>>,
    /// Latent attention's own weights (DeepSeek-2).
    pub mla: Option<Box<crate::deepseek::MlaLayer>>,
    /// Routed experts; the FFN above is then the shared expert, added to theirs.
    pub moe: Option<Box<crate::moe::MoeLayer>>,
}

impl Layer {
    /// Every weight matrix of the layer (the gate where there is one, latent attention's and the
    /// experts').
    pub(crate) fn mats_mut(&mut self) -> impl Iterator<Item = &mut Mat> {
        let mla = self.mla.iter_mut().flat_map(|m| m.mats_mut());
        let moe = self.moe.iter_mut().flat_map(|m| m.mats_mut());
        [&mut self.wq, &mut self.wk, &mut self.wo].into_iter().chain(self.wv.as_mut()).chain(self.w_gate.as_mut()).chain(self.w_up.as_mut()).chain(self.w_down.as_mut()).chain(mla).chain(moe)
    }

    pub(crate) fn mats(&self) -> impl Iterator<Item = &Mat> {
        let mla = self.mla.iter().flat_map(|m| m.mats());
        let moe = self.moe.iter().flat_map(|m| m.mats());
        [&self.wq, &self.wk, &self.wo].into_iter().chain(self.wv.as_ref()).chain(self.w_gate.as_ref()).chain(self.w_up.as_ref()).chain(self.w_down.as_ref()).chain(mla).chain(moe)
    }
}

/// A loaded model: its config, and weights referencing the memory-mapped file.
pub struct Model {
    pub(crate) file: Arc<GgufFile>,
    pub config: Config,
    pub(crate) tok_embd: Mat,
    pub(crate) output: Mat,
    pub(crate) output_norm: Vec<f32>,
    pub(crate) output_norm_b: Option<Vec<f32>>,
    /// BLOOM: a layer norm (weight, bias) on the token embeddings.
    pub(crate) tok_norm: Option<(Vec<f32>, Vec<f32>)>,
    /// ALiBi slopes, one per query head (empty without ALiBi).
    pub(crate) alibi: Vec<f32>,
    pub(crate) layers: Vec<Layer>,
    /// RoPE of global layers and of sliding-window layers.
    pub(crate) rope: Rope,
    pub(crate) rope_swa: Rope,
    /// Output layer with a second 8-bit pass over each row's rounding error (on by default;
    /// see `forward.rs`): half the divergence from the exact model, no decode cost.
    pub(crate) precise_output: bool,
    /// Attached LoRA adapters (lora.rs) and the ones every sequence uses.
    pub(crate) adapters: Vec<crate::lora::AdapterWeights>,
    pub(crate) active: Vec<usize>,
}

pub(crate) fn qtype(t: &TensorInfo) -> Result<QType> {
    let q = match t.ggml_type {
        GgmlType::F32 => QType::F32,
        GgmlType::F16 => QType::F16,
        GgmlType::Bf16 => QType::Bf16,
        GgmlType::Q4_0 => QType::Q4_0,
        GgmlType::Q4_1 => QType::Q4_1,
        GgmlType::Q5_0 => QType::Q5_0,
        GgmlType::Q5_1 => QType::Q5_1,
        GgmlType::Q8_0 => QType::Q8_0,
        GgmlType::Q2K => QType::Q2K,
        GgmlType::Q3K => QType::Q3K,
        GgmlType::Q4K => QType::Q4K,
        GgmlType::Q5K => QType::Q5K,
        GgmlType::Q6K => QType::Q6K,
        other => return Err(Error::UnsupportedType { name: t.name.clone(), ty: other.name() }),
    };
    Ok(q)
}

pub(crate) struct Binder<'a> {
    file: &'a GgufFile,
    /// Names of the tensors bound so far: a file tensor never bound is refused.
    used: std::cell::RefCell<std::collections::HashSet<String>>,
}

impl Binder<'_> {
    pub(crate) fn has(&self, name: &str) -> bool {
        self.file.gguf().tensor(name).is_some()
    }

    pub(crate) fn info(&self, name: &str) -> Result<&TensorInfo> {
        let t = self.file.gguf().tensor(name).ok_or_else(|| Error::MissingTensor(name.into()))?;
        self.used.borrow_mut().insert(name.to_owned());
        Ok(t)
    }

    /// Every tensor in the file must have been bound: one that is not (a bias, a scale, a fused
    /// projection, an extra head) would change the computation if llama.cpp used it.
    fn refuse_unused(&self) -> Result<()> {
        let used = self.used.borrow();
        match self.file.gguf().tensors().iter().find(|t| !used.contains(&t.name)) {
            None => Ok(()),
            Some(t) => Err(Error::Unimplemented {
                what: format!("tensor {:?}", t.name),
                why: "this architecture's decoder as implemented has no use for it".into(),
            }),
        }
    }

    fn range(&self, t: &TensorInfo) -> Range<usize> {
        let start = (self.file.gguf().data_offset + t.offset) as usize;
        start..start + t.size as usize
    }

    /// A matrix with `cols` inputs and `rows` outputs (GGUF dims `[cols, rows]`).
    pub(crate) fn mat(&self, name: &str, cols: usize, rows: usize) -> Result<Mat> {
        let t = self.info(name)?;
        let dims: Vec<u64> = t.dims.to_vec();
        if dims != [cols as u64, rows as u64] {
            return Err(Error::BadTensor {
                name: name.into(),
                msg: format!("shape {dims:?}, expected [{cols}, {rows}]"),
            });
        }
        let ty = qtype(t)?;
        let range = self.range(t);
        // Validates block divisibility and byte size.
        WeightMatrix::new(ty, rows, cols, &self.file.bytes()[range.clone()])
            .map_err(|e| Error::BadTensor { name: name.into(), msg: e.to_string() })?;
        Ok(Mat { ty, rows, cols, range, packed: None, owned: None })
    }

    /// A stack of `n` matrices with `cols` inputs and `rows` outputs each (GGUF dims `[cols, rows,
    /// n]`: per-head or per-expert weights), one view of the same bytes per matrix.
    pub(crate) fn mats3(&self, name: &str, cols: usize, rows: usize, n: usize) -> Result<Vec<Mat>> {
        let t = self.info(name)?;
        let dims: Vec<u64> = t.dims.to_vec();
        if dims != [cols as u64, rows as u64, n as u64] {
            return Err(Error::BadTensor { name: name.into(), msg: format!("shape {dims:?}, expected [{cols}, {rows}, {n}]") });
        }
        let ty = qtype(t)?;
        let range = self.range(t);
        let all = rows.checked_mul(n).ok_or_else(|| Error::BadTensor { name: name.into(), msg: "too many rows".into() })?;
        WeightMatrix::new(ty, all, cols, &self.file.bytes()[range.clone()]).map_err(|e| Error::BadTensor { name: name.into(), msg: e.to_string() })?;
        let rb = ty.row_bytes(cols).ok_or_else(|| Error::BadTensor { name: name.into(), msg: "row size".into() })?;
        Ok((0..n).map(|i| {
            let start = range.start + i * rows * rb;
            Mat { ty, rows, cols, range: start..start + rows * rb, packed: None, owned: None }
        }).collect())
    }

    /// Rows `r` of a matrix with `cols` inputs and `rows` outputs: one part of a fused projection
    /// (Phi-3's QKV and gate/up), a view of the same bytes.
    fn mat_rows(&self, name: &str, cols: usize, rows: usize, r: Range<usize>) -> Result<Mat> {
        let whole = self.mat(name, cols, rows)?;
        let rb = whole.ty.row_bytes(cols).ok_or_else(|| Error::BadTensor { name: name.into(), msg: "row size".into() })?;
        let start = whole.range.start + r.start * rb;
        Ok(Mat { rows: r.len(), range: start..start + r.len() * rb, ..whole })
    }

    /// A vector of `n` values, dequantised to f32.
    pub(crate) fn vec(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        let t = self.info(name)?;
        if t.dims.iter().product::<u64>() != n as u64 || t.dims.first() != Some(&(n as u64)) {
            return Err(Error::BadTensor { name: name.into(), msg: format!("shape {:?}, expected [{n}]", t.dims) });
        }
        let ty = qtype(t)?;
        if ty.row_bytes(n) != Some(t.size as usize) {
            return Err(Error::BadTensor { name: name.into(), msg: "size does not match its type".into() });
        }
        let mut out = vec![0f32; n];
        dequantize_row(ty, &self.file.bytes()[self.range(t)], &mut out);
        Ok(out)
    }

    pub(crate) fn opt_vec(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
        if self.file.gguf().tensor(name).is_some() { self.vec(name, n).map(Some) } else { Ok(None) }
    }
}

/// ggml's ALiBi slopes (`ggml_soft_max_ext` with `max_bias`; llama.cpp fixes 8 for BLOOM): heads
/// below the largest power of two n get m0^(h+1), m0 = 2^(−max_bias/n); the rest m1^(2(h−n)+1),
/// m1 = 2^(−max_bias/2/n) — in f32, as ggml computes them.
fn alibi_slopes(n_head: usize, max_bias: f32) -> Vec<f32> {
    let n_log2 = 1usize << (n_head as f64).log2().floor() as u32;
    let m0 = 2f32.powf(-max_bias / n_log2 as f32);
    let m1 = 2f32.powf(-(max_bias / 2.0) / n_log2 as f32);
    (0..n_head).map(|h| if h < n_log2 { m0.powf((h + 1) as f32) } else { m1.powf((2 * (h - n_log2) + 1) as f32) }).collect()
}

impl Model {
    pub fn load(path: &Path) -> Result<Model> {
        Self::from_file(Arc::new(GgufFile::open(path)?))
    }

    pub fn from_file(file: Arc<GgufFile>) -> Result<Model> {
        let config = Config::from_gguf(file.gguf())?;
        let c = &config;
        let b = Binder { file: &file, used: Default::default() };
        let q_dim = c.n_head * c.head_dim;
        let kv_dim = c.n_head_kv * c.head_dim;
        let v_dim = c.n_head_kv * c.head_dim_v;
        let o_in = match c.mla {
            Some(m) => c.n_head * m.v_head,
            None => c.n_head * c.head_dim_v,
        };
        let tok_embd = b.mat("token_embd.weight", c.n_embd, c.n_vocab)?;
        // GPT-NeoX's output layer is its own (llama.cpp requires it); elsewhere it may be tied.
        let output = if file.gguf().tensor("output.weight").is_some() || c.arch == crate::Arch::GptNeox {
            b.mat("output.weight", c.n_embd, c.n_vocab)?
        } else {
            tok_embd.clone()
        };
        let output_norm = b.vec("output_norm.weight", c.n_embd)?;
        let ln = c.spec.layer_norm;
        let output_norm_b = if ln { Some(b.vec("output_norm.bias", c.n_embd)?) } else { None };
        let tok_norm = if c.spec.alibi { Some((b.vec("token_embd_norm.weight", c.n_embd)?, b.vec("token_embd_norm.bias", c.n_embd)?)) } else { None };
        let alibi = if c.spec.alibi { alibi_slopes(c.n_head, 8.0) } else { Vec::new() };
        let mut layers = Vec::with_capacity(c.n_layers);
        for il in 0..c.n_layers {
            let n = |s: &str| format!("blk.{il}.{s}");
            // Fused QKV (Phi-3, InternLM2; llama.cpp takes one where any of these architectures'
            // files has it): Q, K, V rows in order, and its bias split the same way.
            let fused = file.gguf().tensor(&n("attn_qkv.weight")).is_some();
            let (mla, moe) = (crate::deepseek::MlaLayer::bind(&b, c, il)?, crate::moe::MoeLayer::bind(&b, c, il)?);
            let (wq, wk, wv) = if let Some(m) = c.mla {
                // Q of every head (nope + rope values), from the low-rank Q where there is one;
                // the compressed KV row and the shared rotary K.
                let q_in = if m.q_lora_rank > 0 { m.q_lora_rank } else { c.n_embd };
                let wq = b.mat(&n(if m.q_lora_rank > 0 { "attn_q_b.weight" } else { "attn_q.weight" }), q_in, c.n_head * (m.nope + m.rope))?;
                (wq, b.mat(&n("attn_kv_a_mqa.weight"), c.n_embd, m.kv_lora_rank + m.rope)?, None)
            } else if fused {
                let (name, all) = (n("attn_qkv.weight"), q_dim + kv_dim + v_dim);
                (b.mat_rows(&name, c.n_embd, all, 0..q_dim)?, b.mat_rows(&name, c.n_embd, all, q_dim..q_dim + kv_dim)?, Some(b.mat_rows(&name, c.n_embd, all, q_dim + kv_dim..all)?))
            } else {
                (b.mat(&n("attn_q.weight"), c.n_embd, q_dim)?, b.mat(&n("attn_k.weight"), c.n_embd, kv_dim)?, Some(b.mat(&n("attn_v.weight"), c.n_embd, v_dim)?))
            };
            let fused_bias = if fused { b.opt_vec(&n("attn_qkv.bias"), q_dim + kv_dim + v_dim)? } else { None };
            let s = c.spec;
            let (bq, bk, bv) = match fused_bias {
                Some(all) => (Some(all[..q_dim].to_vec()), Some(all[q_dim..q_dim + kv_dim].to_vec()), Some(all[q_dim + kv_dim..].to_vec())),
                None => {
                    // Required where the architecture has them, else taken when present.
                    let bias = |name: &str, len: usize| if s.qkv_bias { b.vec(&n(name), len).map(Some) } else { b.opt_vec(&n(name), len) };
                    (bias("attn_q.bias", q_dim)?, bias("attn_k.bias", kv_dim)?, bias("attn_v.bias", v_dim)?)
                }
            };
            // Phi-3: one up projection of 2 × n_ff rows, the gate first (ggml's SwiGLU split).
            let moe_layer = c.moe.filter(|e| e.is_moe_layer(il));
            let (w_gate, w_up) = if c.arch == crate::Arch::Phi3 {
                let name = n("ffn_up.weight");
                (Some(b.mat_rows(&name, c.n_embd, 2 * c.n_ff, 0..c.n_ff)?), Some(b.mat_rows(&name, c.n_embd, 2 * c.n_ff, c.n_ff..2 * c.n_ff)?))
            } else if ln {
                (None, Some(b.mat(&n("ffn_up.weight"), c.n_embd, c.n_ff)?))
            } else if let Some(e) = moe_layer {
                // The shared expert, where there is one, is the layer's dense FFN.
                let ff = e.n_ff_exp * e.n_shared;
                if ff > 0 { (Some(b.mat(&n("ffn_gate_shexp.weight"), c.n_embd, ff)?), Some(b.mat(&n("ffn_up_shexp.weight"), c.n_embd, ff)?)) } else { (None, None) }
            } else {
                (Some(b.mat(&n("ffn_gate.weight"), c.n_embd, c.n_ff)?), Some(b.mat(&n("ffn_up.weight"), c.n_embd, c.n_ff)?))
            };
            // Falcon's projections have no biases; the other layer-norm architectures' do.
            let falcon = c.arch == crate::Arch::Falcon;
            let req = |name: &str, len: usize| -> Result<Option<Vec<f32>>> { if ln && !falcon { b.vec(&n(name), len).map(Some) } else { Ok(None) } };
            // Falcon: one layer norm feeds both branches (the FFN's is the attention's); 40B and
            // larger give attention a second one (`attn_norm_2`).
            let (attn_norm, attn_norm_b, ffn_norm, ffn_norm_b) = if falcon {
                let (w1, b1) = (b.vec(&n("attn_norm.weight"), c.n_embd)?, b.vec(&n("attn_norm.bias"), c.n_embd)?);
                match b.opt_vec(&n("attn_norm_2.weight"), c.n_embd)? {
                    Some(w2) => (w2, Some(b.vec(&n("attn_norm_2.bias"), c.n_embd)?), w1, Some(b1)),
                    None => (w1.clone(), Some(b1.clone()), w1, Some(b1)),
                }
            } else {
                let w1 = b.vec(&n("attn_norm.weight"), c.n_embd)?;
                let w2 = b.vec(&n("ffn_norm.weight"), c.n_embd)?;
                let (b1, b2) = if ln { (Some(b.vec(&n("attn_norm.bias"), c.n_embd)?), Some(b.vec(&n("ffn_norm.bias"), c.n_embd)?)) } else { (None, None) };
                (w1, b1, w2, b2)
            };
            layers.push(Layer {
                attn_norm,
                wq,
                wk,
                wv,
                wo: b.mat(&n("attn_output.weight"), o_in, c.n_embd)?,
                bq,
                bk,
                bv,
                q_norm: if s.qk_norm { Some(b.vec(&n("attn_q_norm.weight"), c.head_dim)?) } else { None },
                k_norm: if s.qk_norm { Some(b.vec(&n("attn_k_norm.weight"), c.head_dim)?) } else { None },
                attn_post_norm: if s.post_norms { Some(b.vec(&n("post_attention_norm.weight"), c.n_embd)?) } else { None },
                ffn_norm,
                attn_norm_b,
                ffn_norm_b,
                bo: req("attn_output.bias", c.n_embd)?,
                b_up: req("ffn_up.bias", c.n_ff)?,
                b_down: req("ffn_down.bias", c.n_embd)?,
                w_gate,
                w_up,
                w_down: match moe_layer {
                    Some(e) if e.n_shared > 0 => Some(b.mat(&n("ffn_down_shexp.weight"), e.n_ff_exp * e.n_shared, c.n_embd)?),
                    Some(_) => None,
                    None => Some(b.mat(&n("ffn_down.weight"), c.n_ff, c.n_embd)?),
                },
                ffn_post_norm: if s.post_norms { Some(b.vec(&n("post_ffw_norm.weight"), c.n_embd)?) } else { None },
                mla,
                moe,
            });
        }
        // Llama 3.x: per-pair frequency divisors, shared by every layer (llama.cpp reads them for
        // the llama architecture only; anywhere else the tensor is refused as unused).
        let freq_factors = if matches!(c.arch, crate::Arch::Llama | crate::Arch::Granite) { b.opt_vec("rope_freqs.weight", c.n_rot / 2)? } else { None };
        if let Some(f) = &freq_factors
            && let Some(bad) = f.iter().find(|v| !(v.is_finite() && **v > 0.0))
        {
            return Err(Error::BadTensor { name: "rope_freqs.weight".into(), msg: format!("factor {bad} is not a positive number") });
        }
        b.refuse_unused()?;
        drop(b);
        let rope = Rope::new(c.n_rot, c.rope_base, c.rope_scaling, freq_factors.clone());
        // Sliding-window layers: their own base, never frequency-scaled.
        let swa_scaling = RopeScaling { freq_scale: 1.0, ..c.rope_scaling };
        let rope_swa = Rope::new(c.n_rot, c.rope_base_swa, swa_scaling, freq_factors);
        Ok(Model { file, config, tok_embd, output, output_norm, output_norm_b, tok_norm, alibi, layers, rope, rope_swa, precise_output: true, adapters: Vec::new(), active: Vec::new() })
    }

    pub(crate) fn raw<'a>(&'a self, m: &'a Mat) -> WeightMatrix<'a> {
        let bytes = match &m.owned {
            Some(b) => &b[..],
            None => &self.file.bytes()[m.range.clone()],
        };
        WeightMatrix::new(m.ty, m.rows, m.cols, bytes).expect("matrix shape checked at load")
    }

    /// Replace every quantised matrix by its exact F32 dequantisation, so every product is
    /// computed in F32 against F32 activations: the model computes what the exactly dequantized
    /// F32 file computes (no activation quantisation), at the memory and speed cost of F32
    /// weights. Call before [`Model::pack`] (F32 is never packed). Returns the bytes allocated.
    pub fn dequantize_f32(&mut self) -> usize {
        let file = &self.file;
        let mut total = 0;
        let mut one = |m: &mut Mat| {
            if m.ty == QType::F32 || m.owned.is_some() {
                return;
            }
            let src = &file.bytes()[m.range.clone()];
            let rb = m.ty.row_bytes(m.cols).expect("shape checked at load");
            let mut row = vec![0f32; m.cols];
            let mut out = Vec::with_capacity(m.rows * m.cols * 4);
            for r in 0..m.rows {
                dequantize_row(m.ty, &src[r * rb..(r + 1) * rb], &mut row);
                out.extend(row.iter().flat_map(|v| v.to_le_bytes()));
            }
            total += out.len();
            m.owned = Some(out.into());
            m.ty = QType::F32;
            m.packed = None;
        };
        let tied = self.output.range == self.tok_embd.range;
        for l in &mut self.layers {
            for m in l.mats_mut() {
                one(m);
            }
        }
        one(&mut self.output);
        // An untied embedding stays quantised: its rows are dequantized exactly when read.
        if tied {
            self.tok_embd = self.output.clone();
        }
        total
    }

    pub(crate) fn w<'a>(&'a self, m: &'a Mat) -> MatRef<'a> {
        match &m.packed {
            Some(p) => MatRef::Packed(p),
            None => MatRef::Raw(self.raw(m)),
        }
    }

    /// Repack every matrix that has a faster packed kernel on `isa` (8-row interleaved blocks). Costs about one pass over the weights; memory moves from the file mapping to
    /// an owned copy of the same size. Returns the number of bytes repacked.
    pub fn pack(&mut self, isa: Isa) -> usize {
        let file = &self.file;
        let bytes = file.bytes();
        let mut total = 0;
        // An output matrix tied to the token embedding: once packed, embedding rows are read
        // from the packed copy (bit-identical), so the file's bytes can go.
        let tied = self.output.range == self.tok_embd.range;
        // Raw bytes still read after packing: the token embedding, unless tied.
        let embd = if tied { 0..0 } else { self.tok_embd.range.clone() };
        // Bytes are released only when this model is the file's sole holder: anyone else holding
        // the `Arc` (a second model, `Model::file()`'s caller) could still read them.
        let sole_holder = Arc::strong_count(&self.file) == 1;
        let mut pack_one = |m: &mut Mat| {
            // The packed copy replaces the file's bytes, which are dropped from memory as they
            // are consumed — unless something still reads them raw.
            let start = m.range.start;
            let shared = !sole_holder || (m.range.start < embd.end && embd.start < m.range.end);
            let mut release = |r: std::ops::Range<usize>| {
                if !shared {
                    // From the matrix's start, not the chunk's: `release` frees only whole pages
                    // inside the range, so a page straddling two consumed chunks is freed too.
                    // SAFETY: this model is the file's only holder (checked above), and the range
                    // lies within this matrix's own bytes, which no raw reader overlaps (the embedding, checked above; a tied embedding switches to the
                    // packed copy below, before any forward pass), and which are read only
                    // through the packed copy from now on.
                    unsafe { file.release(start..start + r.end) }
                }
            };
            if m.packed.is_none()
                && isa.packs(m.ty)
                && let Some(p) = PackedMatrix::pack_releasing(isa, m.ty, m.rows, m.cols, &bytes[m.range.clone()], &mut release)
            {
                total += m.range.len();
                m.packed = Some(std::sync::Arc::new(p));
            }
        };
        for l in &mut self.layers {
            for m in l.mats_mut() {
                pack_one(m);
            }
        }
        pack_one(&mut self.output);
        if tied {
            self.tok_embd.packed = self.output.packed.clone();
        }
        total
    }

    /// Store K and V of caches made from now on as `k` / `v`. q8_0 needs head sizes that are
    /// whole 32-value blocks.
    /// `false`: round the output layer's activations to 8 bits once, as llama.cpp does (less
    /// output-layer compute when many rows of logits are scored; about twice the KL divergence
    /// from the exact model).
    pub fn set_precise_output(&mut self, on: bool) {
        self.precise_output = on;
    }

    pub fn set_cache_types(&mut self, k: crate::KvType, v: crate::KvType) -> Result<()> {
        let c = &mut self.config;
        // Latent attention reads V from the K cache: its width must suit K's storage.
        let v_check = if c.mla.is_some() { (k, c.head_dim_v, "K") } else { (v, c.head_dim_v, "V") };
        for (ty, dim, which) in [(k, c.head_dim, "K"), v_check] {
            if ty == crate::KvType::Q8_0 && !dim.is_multiple_of(32) {
                return Err(Error::BadCacheType { which, ty: ty.name(), msg: format!("needs a head size that is a multiple of 32; this model's is {dim}") });
            }
        }
        (c.cache_k, c.cache_v) = (k, v);
        Ok(())
    }

    /// Bytes of weights one decoded token reads: every layer matrix and the output matrix once
    /// (as packed, F32 or file bytes, whichever the kernels read), plus one embedding row; of a
    /// mixture-of-experts layer's routed experts, the share one token uses (`n_used / n_expert`
    /// of them). What bounds single-stream decode when memory bandwidth is the limit.
    pub fn bytes_per_token(&self) -> usize {
        let m = |x: &Mat| match (&x.packed, &x.owned) {
            (Some(p), _) => p.bytes(),
            (None, Some(b)) => b.len(),
            (None, None) => x.range.len(),
        };
        let row = |x: &Mat| match &x.packed {
            Some(p) => p.bytes() / p.rows().max(1),
            None => m(x) / x.rows.max(1),
        };
        let layers: usize = self.layers.iter().flat_map(Layer::mats).map(m).sum();
        let experts: usize = self.layers.iter().flat_map(|l| l.moe.iter().flat_map(|e| e.experts())).map(m).sum();
        let used = self.config.moe.map_or(0, |e| experts * e.n_used / e.n_expert);
        layers - experts + used + m(&self.output) + row(&self.tok_embd)
    }

    /// The parsed file. After [`Model::pack`], the bytes of packed tensors may have been released
    /// (read back as zeros): read tensors through the model, not through this.
    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    /// ggml's slopes: 8 heads (a power of two) 2^-1 … 2^-8; 12 heads: 8 from m0 = 2^-1, then 4
    /// from m1 = 2^-0.5 at odd powers (BLOOM-560m has 16, BLOOM-7b1 32, BLOOM 112).
    #[test]
    fn alibi_slopes_are_ggmls() {
        let s8 = super::alibi_slopes(8, 8.0);
        for (h, v) in s8.iter().enumerate() {
            assert_eq!(*v, 2f32.powf(-1.0).powf((h + 1) as f32), "head {h}");
        }
        let s12 = super::alibi_slopes(12, 8.0);
        assert_eq!(s12[..8], s8[..]);
        for (h, &v) in s12.iter().enumerate().skip(8) {
            assert_eq!(v, 2f32.powf(-0.5).powf((2 * (h - 8) + 1) as f32), "head {h}");
        }
    }
}
