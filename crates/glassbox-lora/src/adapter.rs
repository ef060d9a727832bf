//! Reading and checking one adapter file.

use std::path::{Path, PathBuf};

use glassbox_gguf::{Gguf, GgufFile, TensorInfo};
use glassbox_kernels::QType;

use crate::{Error, Result};

/// The matrices an adapter may target, as the engine applies them: per block the attention
/// projections and the feed-forward ones (the targets of PEFT's usual `target_modules`). An
/// adapter for the embedding or the output layer is refused by name.
const TARGETS: [&str; 7] = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

/// Largest rank accepted (LoRA ranks in use are 4–256; this only bounds memory).
pub const MAX_RANK: usize = 4096;

/// One matrix of a pair, as stored: `rows` × `cols` of type `ty` (ggml order: `cols` is the
/// contiguous dimension).
#[derive(Clone, Debug)]
pub struct Part {
    pub ty: QType,
    pub rows: usize,
    pub cols: usize,
    pub bytes: Vec<u8>,
}

/// A low-rank update of one base matrix W (`rows` × `cols`): ΔW = B·A with A `rank` × `cols`
/// and B `rows` × `rank`.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The base tensor it updates, e.g. `blk.3.attn_q.weight`.
    pub target: String,
    pub rank: usize,
    pub a: Part,
    pub b: Part,
}

/// A LoRA adapter read from GGUF.
#[derive(Clone, Debug)]
pub struct Adapter {
    pub path: PathBuf,
    /// `general.architecture`: must equal the base's.
    pub arch: String,
    /// `adapter.lora.alpha` (0 when absent: the scale is then the user's scale alone).
    pub alpha: f32,
    /// `general.name`, `general.license` where the file has them.
    pub name: Option<String>,
    pub license: Option<String>,
    /// Sorted by target.
    pub pairs: Vec<Pair>,
    /// Tensors present but not applied: norm vectors (`*_norm.weight`), which llama.cpp also
    /// skips. Reported, never silently dropped.
    pub ignored: Vec<String>,
}

fn qtype(t: &TensorInfo) -> Option<QType> {
    QType::from_name(&t.ggml_type.name())
}

/// Whether `target` is a matrix the engine can adapt (see [`TARGETS`]).
pub fn is_target(target: &str) -> bool {
    let Some(rest) = target.strip_prefix("blk.") else { return false };
    let Some((layer, tail)) = rest.split_once('.') else { return false };
    !layer.is_empty() && layer.bytes().all(|b| b.is_ascii_digit()) && TARGETS.iter().any(|t| tail.strip_prefix(t) == Some(".weight"))
}

impl Adapter {
    /// Open, parse and check `path` (see [`Adapter::from_file`]).
    pub fn open(path: &Path) -> Result<Adapter> {
        let f = GgufFile::open(path)?;
        Adapter::from_file(&f)
    }

    /// Read an adapter from a parsed file, refusing — with the key or tensor at fault — a file
    /// that is not a LoRA adapter, an activated LoRA (not supported), an incomplete or
    /// mis-shaped pair, a tensor it cannot apply, and any non-finite value.
    pub fn from_file(f: &GgufFile) -> Result<Adapter> {
        Adapter::from_gguf(f.path(), f.gguf(), f.bytes())
    }

    /// [`Adapter::from_file`] over a parsed header `g` and the file's bytes (`path` names it in
    /// errors).
    pub fn from_gguf(path: &Path, g: &Gguf, file: &[u8]) -> Result<Adapter> {
        let path = path.to_path_buf();
        let bad = |msg: String| Error::Adapter { path: path.display().to_string(), msg };
        let text = |key: &str| -> Result<Option<String>> { Ok(g.get_str(key).map_err(|e| bad(format!("{key}: {e}")))?.map(str::to_string)) };
        match text("general.type")?.as_deref() {
            Some("adapter") => {}
            Some(other) => return Err(bad(format!("general.type is {other:?}; a LoRA adapter has \"adapter\" (is this a model rather than an adapter?)"))),
            None => return Err(bad("general.type is missing; a LoRA adapter has \"adapter\" (is this a model rather than an adapter?)".into())),
        }
        match text("adapter.type")?.as_deref() {
            Some("lora") => {}
            other => return Err(bad(format!("adapter.type is {other:?}; only \"lora\" adapters are supported"))),
        }
        if g.get("adapter.alora.invocation_tokens").is_some() {
            return Err(bad("adapter.alora.invocation_tokens: activated LoRA (applied only after an invocation sequence) is not supported".into()));
        }
        let arch = text("general.architecture")?.ok_or_else(|| bad("general.architecture is missing".into()))?;
        let alpha = match g.get_f64("adapter.lora.alpha").map_err(|e| bad(format!("adapter.lora.alpha: {e}")))? {
            None => 0.0,
            Some(a) if a.is_finite() && (a as f32).is_finite() => a as f32,
            Some(a) => return Err(bad(format!("adapter.lora.alpha is {a}; it must be finite"))),
        };
        let mut halves: std::collections::BTreeMap<String, (Option<&TensorInfo>, Option<&TensorInfo>)> = Default::default();
        let mut ignored = Vec::new();
        for t in g.tensors() {
            if let Some(base) = t.name.strip_suffix(".lora_a") {
                let e = halves.entry(base.to_string()).or_default();
                if e.0.replace(t).is_some() {
                    return Err(bad(format!("tensor {} appears twice", t.name)));
                }
            } else if let Some(base) = t.name.strip_suffix(".lora_b") {
                let e = halves.entry(base.to_string()).or_default();
                if e.1.replace(t).is_some() {
                    return Err(bad(format!("tensor {} appears twice", t.name)));
                }
            } else if t.name.ends_with("_norm.weight") {
                ignored.push(t.name.clone());
            } else {
                return Err(bad(format!("tensor {} is neither a .lora_a nor a .lora_b half", t.name)));
            }
        }
        if halves.is_empty() {
            return Err(bad("no .lora_a/.lora_b tensor pairs".into()));
        }
        let mut pairs = Vec::with_capacity(halves.len());
        for (target, (a, b)) in halves {
            let (Some(a), Some(b)) = (a, b) else {
                let missing = if a.is_none() { "lora_a" } else { "lora_b" };
                return Err(bad(format!("{target}: the pair has no .{missing} half")));
            };
            if !is_target(&target) {
                return Err(bad(format!("{target}: an adapter for this tensor cannot be applied (supported: blk.N.{{{}}}.weight)", TARGETS.join(","))));
            }
            let part = |t: &TensorInfo| -> Result<Part> {
                let ty = qtype(t).ok_or_else(|| bad(format!("tensor {} has type {}, which glassbox cannot read", t.name, t.ggml_type.name())))?;
                if t.dims.len() != 2 {
                    return Err(bad(format!("tensor {} has {} dimensions; 2 expected", t.name, t.dims.len())));
                }
                let (cols, rows) = (usize::try_from(t.dims[0]).unwrap_or(usize::MAX), usize::try_from(t.dims[1]).unwrap_or(usize::MAX));
                let rb = ty.row_bytes(cols).ok_or_else(|| bad(format!("tensor {}: rows of {cols} do not fit {}", t.name, ty.name())))?;
                let n = rb.checked_mul(rows).ok_or_else(|| bad(format!("tensor {}: {rows} rows of {rb} bytes overflow", t.name)))?;
                let bytes = g.tensor_data(file, t);
                if bytes.len() != n || rows == 0 || cols == 0 {
                    return Err(bad(format!("tensor {}: {} bytes for {rows} × {cols} {} ({n} expected)", t.name, bytes.len(), ty.name())));
                }
                let mut row = vec![0f32; cols];
                for (r, src) in bytes.chunks_exact(rb).enumerate() {
                    glassbox_kernels::dequantize_row(ty, src, &mut row);
                    if let Some(c) = row.iter().position(|v| !v.is_finite()) {
                        return Err(bad(format!("tensor {} holds a non-finite value ({}) at row {r}, column {c}", t.name, row[c])));
                    }
                }
                Ok(Part { ty, rows, cols, bytes: bytes.to_vec() })
            };
            let (pa, pb) = (part(a)?, part(b)?);
            // A: rank × cols(in); B: rows(out) × rank.
            if pa.rows != pb.cols {
                return Err(bad(format!(
                    "{target}: lora_a has rank {} (ggml shape [{}, {}]) but lora_b expects {} (shape [{}, {}]); is lora_a transposed? (adapters from llama.cpp's old finetune example are not supported)",
                    pa.rows, pa.cols, pa.rows, pb.cols, pb.cols, pb.rows
                )));
            }
            if pa.rows > MAX_RANK {
                return Err(bad(format!("{target}: rank {} exceeds the limit of {MAX_RANK}", pa.rows)));
            }
            pairs.push(Pair { target, rank: pa.rows, a: pa, b: pb });
        }
        let (name, license) = (text("general.name")?, text("general.license")?);
        Ok(Adapter { path: path.clone(), arch, alpha, name, license, pairs, ignored })
    }

    /// The factor B·A is multiplied by: `user × alpha / rank` (`user` alone when alpha is 0),
    /// as llama.cpp's `get_scale`.
    pub fn scale(&self, pair: &Pair, user: f32) -> f32 {
        if self.alpha != 0.0 { user * self.alpha / pair.rank as f32 } else { user }
    }

    /// Refuse this adapter for `base` (named `base_name` in errors) unless the architectures
    /// match and every pair's target exists there with the pair's shape.
    pub fn check_base(&self, base: &Gguf, base_name: &str) -> Result<()> {
        let bad = |msg: String| Error::Base { path: self.path.display().to_string(), base: base_name.to_string(), msg };
        let arch = base.get_str("general.architecture").ok().flatten().unwrap_or("");
        if arch != self.arch {
            return Err(bad(format!("the adapter is for architecture {:?}, the base is {arch:?}", self.arch)));
        }
        for p in &self.pairs {
            let t = base.tensor(&p.target).ok_or_else(|| bad(format!("{}: the base has no such tensor (an adapter for another model?)", p.target)))?;
            let (cols, rows) = (t.dims.first().copied().unwrap_or(0), t.dims.get(1).copied().unwrap_or(1));
            if t.dims.len() != 2 || cols != p.a.cols as u64 || rows != p.b.rows as u64 {
                return Err(bad(format!(
                    "{}: the base tensor has shape {:?}; the pair updates [{}, {}] (an adapter for another model size?)",
                    p.target, t.dims, p.a.cols, p.b.rows
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glassbox_gguf::{GgmlType, GgufWriter, Limits, Value, WriterTensor};

    #[test]
    fn targets_are_the_matrices_the_engine_adapts() {
        for ok in ["blk.0.attn_q.weight", "blk.27.ffn_down.weight", "blk.3.attn_output.weight"] {
            assert!(is_target(ok), "{ok}");
        }
        for no in ["token_embd.weight", "output.weight", "blk.x.attn_q.weight", "blk.1.attn_qkv.weight", "blk..attn_q.weight", "blk.1.attn_q.bias", "blk.1.attn_norm.weight"] {
            assert!(!is_target(no), "{no}");
        }
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// A GGUF with `meta` and F32 tensors (name, ggml dims, values).
    fn gguf(meta: &[(&str, Value)], tensors: &[(&str, Vec<u64>, Vec<f32>)]) -> Vec<u8> {
        let data: Vec<Vec<u8>> = tensors.iter().map(|t| f32s(&t.2)).collect();
        let w = GgufWriter {
            version: 3,
            metadata: meta.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            tensors: tensors.iter().zip(&data).map(|(t, d)| WriterTensor { name: t.0.into(), dims: t.1.clone(), ggml_type: GgmlType::F32, data: d }).collect(),
        };
        let mut out = Vec::new();
        w.write(&mut out).unwrap();
        out
    }

    fn meta() -> Vec<(&'static str, Value)> {
        vec![
            ("general.architecture", Value::String("llama".into())),
            ("general.type", Value::String("adapter".into())),
            ("adapter.type", Value::String("lora".into())),
            ("adapter.lora.alpha", Value::F32(8.0)),
        ]
    }

    /// A rank-2 pair for a 4-in, 3-out blk.0.attn_q.
    fn pair() -> Vec<(&'static str, Vec<u64>, Vec<f32>)> {
        vec![("blk.0.attn_q.weight.lora_a", vec![4, 2], vec![0.1; 8]), ("blk.0.attn_q.weight.lora_b", vec![2, 3], vec![0.2; 6])]
    }

    fn read(bytes: &[u8]) -> Result<Adapter> {
        let g = Gguf::parse(bytes, &Limits::default())?;
        Adapter::from_gguf(Path::new("a.gguf"), &g, bytes)
    }

    fn err(bytes: &[u8]) -> String {
        read(bytes).unwrap_err().to_string()
    }

    #[test]
    fn a_well_formed_adapter_is_read_with_its_scale() {
        let a = read(&gguf(&meta(), &pair())).unwrap();
        assert_eq!((a.arch.as_str(), a.alpha, a.pairs.len()), ("llama", 8.0, 1));
        let p = &a.pairs[0];
        assert_eq!((p.target.as_str(), p.rank, p.a.rows, p.a.cols, p.b.rows, p.b.cols), ("blk.0.attn_q.weight", 2, 2, 4, 3, 2));
        assert_eq!(a.scale(p, 0.5), 0.5 * 8.0 / 2.0);
        // No alpha: the user's scale alone, as llama.cpp.
        let no_alpha: Vec<_> = meta().into_iter().filter(|(k, _)| *k != "adapter.lora.alpha").collect();
        let a = read(&gguf(&no_alpha, &pair())).unwrap();
        assert_eq!(a.scale(&a.pairs[0], 0.5), 0.5);
        // Norm vectors are reported, not applied.
        let mut t = pair();
        t.push(("blk.0.attn_norm.weight", vec![4], vec![1.0; 4]));
        assert_eq!(read(&gguf(&meta(), &t)).unwrap().ignored, vec!["blk.0.attn_norm.weight".to_string()]);
    }

    #[test]
    fn bad_adapters_are_refused_by_name() {
        let with = |k: &'static str, v: Value| {
            let mut m = meta();
            m.retain(|(key, _)| *key != k);
            m.push((k, v));
            m
        };
        let e = err(&gguf(&with("general.type", Value::String("model".into())), &pair()));
        assert!(e.contains("general.type") && e.contains("model"), "{e}");
        let e = err(&gguf(&with("adapter.type", Value::String("control_vector".into())), &pair()));
        assert!(e.contains("adapter.type"), "{e}");
        let e = err(&gguf(&with("adapter.lora.alpha", Value::F32(f32::NAN)), &pair()));
        assert!(e.contains("adapter.lora.alpha"), "{e}");
        let e = err(&gguf(&with("adapter.alora.invocation_tokens", Value::U32(1)), &pair()));
        assert!(e.contains("activated LoRA"), "{e}");
        // A missing half, a transposed A, a tensor it cannot apply, a stray tensor.
        let e = err(&gguf(&meta(), &pair()[..1]));
        assert!(e.contains("blk.0.attn_q.weight") && e.contains("lora_b"), "{e}");
        let e = err(&gguf(&meta(), &[("blk.0.attn_q.weight.lora_a", vec![2, 4], vec![0.1; 8]), pair()[1].clone()]));
        assert!(e.contains("rank") && e.contains("transposed"), "{e}");
        let e = err(&gguf(&meta(), &[("token_embd.weight.lora_a", vec![4, 2], vec![0.1; 8]), ("token_embd.weight.lora_b", vec![2, 3], vec![0.2; 6])]));
        assert!(e.contains("token_embd.weight") && e.contains("cannot be applied"), "{e}");
        let mut t = pair();
        t.push(("blk.0.attn_q.weight", vec![4, 3], vec![0.0; 12]));
        assert!(err(&gguf(&meta(), &t)).contains("neither"));
        assert!(err(&gguf(&meta(), &[])).contains("no .lora_a"));
        // NaN and infinity anywhere in A or B.
        for bad in [f32::NAN, f32::INFINITY] {
            let mut t = pair();
            t[1].2[4] = bad;
            let e = err(&gguf(&meta(), &t));
            assert!(e.contains("blk.0.attn_q.weight.lora_b") && e.contains("non-finite") && e.contains("row 2"), "{e}");
        }
    }

    #[test]
    fn the_base_must_have_each_target_with_its_shape() {
        let a = read(&gguf(&meta(), &pair())).unwrap();
        let base = |arch: &str, dims: Vec<u64>| {
            let n = (dims[0] * dims[1]) as usize;
            let b = gguf(&[("general.architecture", Value::String(arch.into()))], &[("blk.0.attn_q.weight", dims, vec![0.0; n])]);
            Gguf::parse(&b, &Limits::default()).unwrap()
        };
        a.check_base(&base("llama", vec![4, 3]), "base.gguf").unwrap();
        let e = a.check_base(&base("qwen2", vec![4, 3]), "base.gguf").unwrap_err().to_string();
        assert!(e.contains("qwen2") && e.contains("llama") && e.contains("base.gguf"), "{e}");
        let e = a.check_base(&base("llama", vec![4, 5]), "base.gguf").unwrap_err().to_string();
        assert!(e.contains("blk.0.attn_q.weight") && e.contains("shape"), "{e}");
        let other = gguf(&[("general.architecture", Value::String("llama".into()))], &[("blk.0.attn_k.weight", vec![4, 3], vec![0.0; 12])]);
        let e = a.check_base(&Gguf::parse(&other, &Limits::default()).unwrap(), "base.gguf").unwrap_err().to_string();
        assert!(e.contains("blk.0.attn_q.weight") && e.contains("no such tensor"), "{e}");
    }

    proptest::proptest! {
        /// Any corruption of a valid adapter is read or refused, never a panic; whatever is
        /// read keeps the invariants the engine relies on.
        #[test]
        fn corrupted_adapters_are_read_or_refused(flips in proptest::collection::vec((0usize..4096, proptest::num::u8::ANY), 1..8), cut in 0usize..4096) {
            let mut b = gguf(&meta(), &pair());
            for (i, v) in flips {
                let n = b.len();
                b[i % n] ^= v;
            }
            b.truncate(b.len().min(cut.max(16)));
            if let Ok(g) = Gguf::parse(&b, &Limits::default())
                && let Ok(a) = Adapter::from_gguf(Path::new("x.gguf"), &g, &b) {
                    for p in &a.pairs {
                        proptest::prop_assert!(p.rank > 0 && p.rank == p.a.rows && p.rank == p.b.cols);
                        proptest::prop_assert!(a.scale(p, 1.0).is_finite());
                    }
                }
        }
    }
}
