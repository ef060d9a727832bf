//! PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`, as PEFT's
//! `save_pretrained` writes them) converted to llama.cpp's GGUF adapter format, tensor for tensor
//! as llama.cpp's `convert_lora_to_gguf.py` writes them: `lora_A` [r, in] → `<target>.lora_a`,
//! `lora_B` [out, r] → `<target>.lora_b`, `adapter.lora.alpha` = `lora_alpha`, the rows of B
//! permuted for llama's attn_q/attn_k exactly as the converter permutes the base weights, values
//! written as F32 (its default), F16, BF16 or Q8_0 (falling back to F16 where a row is not whole
//! blocks, as it does).
//!
//! Where the converter silently gets the scale wrong, this refuses or corrects it, and says so:
//! rsLoRA (`use_rslora`: scale alpha/√r) is written as the alpha that gives that scale, an
//! `alpha_pattern` entry is folded into that module's B; DoRA, `fan_in_fan_out`, trained biases,
//! `modules_to_save`, embedding/output adapters and norm tensors are refused by name. Pickled
//! `adapter_model.bin` files are never opened. Vision-tower tensors of a multimodal adapter are
//! skipped (the converter skips them too) and listed.

use std::collections::BTreeMap;
use std::path::Path;

use glassbox_gguf::{Gguf, GgufWriter, Limits, Value, WriterTensor};
use glassbox_kernels::QType;
use glassbox_safetensors::{SafeTensors, Tensor};

use crate::{Adapter, Error, MAX_RANK, Result};

/// Largest `adapter_config.json` read.
pub const MAX_CONFIG: u64 = 1 << 20;

const MODULES: [(&str, &str); 7] = [
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Name parts of multimodal towers that a text model's adapter conversion skips.
const OTHER_TOWERS: [&str; 6] = ["vision_tower", "vision_model", "multi_modal_projector", "audio_tower", "visual.", "vision."];

/// What the conversion did.
#[derive(Clone, Debug)]
pub struct Conversion {
    /// The GGUF adapter file.
    pub bytes: Vec<u8>,
    pub arch: String,
    /// `adapter.lora.alpha` as written.
    pub alpha: f32,
    /// `r` and `lora_alpha` of adapter_config.json.
    pub config_rank: usize,
    pub config_alpha: f64,
    pub rslora: bool,
    /// Base model named in adapter_config.json (`base_model_name_or_path`), if any.
    pub base_model: Option<String>,
    /// Pairs written, by target.
    pub pairs: usize,
    /// Types written (lora_a, lora_b) per target.
    pub types: Vec<(String, &'static str, &'static str)>,
    /// Tensors skipped (other towers of a multimodal adapter; base-layer copies).
    pub skipped: Vec<String>,
    /// Targets whose B was multiplied to carry a per-module scale (alpha_pattern, rsLoRA with
    /// another rank), with the factor.
    pub rescaled: Vec<(String, f64)>,
}

struct Config {
    rank: usize,
    alpha: f64,
    rslora: bool,
    alpha_pattern: Vec<(String, f64)>,
    base_model: Option<String>,
}

fn read_config(text: &[u8], bad: &dyn Fn(String) -> Error) -> Result<Config> {
    if text.len() as u64 > MAX_CONFIG {
        return Err(bad(format!("adapter_config.json is {} bytes, over the limit of {MAX_CONFIG}", text.len())));
    }
    let v: serde_json::Value = serde_json::from_slice(text).map_err(|e| bad(format!("adapter_config.json is not JSON: {e}")))?;
    let Some(o) = v.as_object() else { return Err(bad("adapter_config.json is not a JSON object".into())) };
    let flag = |k: &str| -> Result<bool> {
        match o.get(k) {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(x) => Err(bad(format!("adapter_config.json: {k} is {x}, not true or false"))),
        }
    };
    match o.get("peft_type").and_then(|p| p.as_str()) {
        None | Some("LORA") => {}
        Some(other) => return Err(bad(format!("adapter_config.json: peft_type is {other:?}; only LORA adapters convert to llama.cpp's format"))),
    }
    if flag("use_dora")? {
        return Err(bad("adapter_config.json: use_dora is true; DoRA's magnitude vectors have no place in llama.cpp's adapter format (merge it with PEFT first)".into()));
    }
    if flag("fan_in_fan_out")? {
        return Err(bad("adapter_config.json: fan_in_fan_out is true (GPT-2-style Conv1D layers); no architecture glassbox runs stores weights that way".into()));
    }
    match o.get("bias").and_then(|b| b.as_str()) {
        None | Some("none") => {}
        Some(b) => return Err(bad(format!("adapter_config.json: bias is {b:?}; trained biases have no place in llama.cpp's adapter format"))),
    }
    if let Some(m) = o.get("modules_to_save").and_then(|m| m.as_array()).filter(|m| !m.is_empty()) {
        return Err(bad(format!("adapter_config.json: modules_to_save {m:?} holds whole trained layers, not a low-rank update; merge the adapter with PEFT instead")));
    }
    let rank = o.get("r").and_then(serde_json::Value::as_u64).filter(|&r| r > 0 && r <= MAX_RANK as u64);
    let Some(rank) = rank else { return Err(bad(format!("adapter_config.json: r is {:?}; a rank from 1 to {MAX_RANK} is needed", o.get("r")))) };
    let alpha = o.get("lora_alpha").and_then(serde_json::Value::as_f64).filter(|a| a.is_finite() && *a > 0.0 && (*a as f32).is_finite());
    let Some(alpha) = alpha else { return Err(bad(format!("adapter_config.json: lora_alpha is {:?}; a positive finite number is needed", o.get("lora_alpha")))) };
    let mut alpha_pattern = Vec::new();
    if let Some(p) = o.get("alpha_pattern").filter(|p| !p.is_null()) {
        let Some(p) = p.as_object() else { return Err(bad("adapter_config.json: alpha_pattern is not an object".into())) };
        for (k, v) in p {
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
                return Err(bad(format!("adapter_config.json: alpha_pattern key {k:?} is a regular expression; only plain module names are supported")));
            }
            let a = v.as_f64().filter(|a| a.is_finite() && *a > 0.0);
            let Some(a) = a else { return Err(bad(format!("adapter_config.json: alpha_pattern[{k:?}] is {v}; a positive finite number is needed"))) };
            alpha_pattern.push((k.clone(), a));
        }
    }
    let base_model = o.get("base_model_name_or_path").and_then(|b| b.as_str()).map(str::to_string);
    Ok(Config { rank: rank as usize, alpha, rslora: flag("use_rslora")?, alpha_pattern, base_model })
}

/// `model.layers.N.self_attn.q_proj` → `blk.N.attn_q.weight`.
fn target_of(module: &str) -> Option<String> {
    let rest = module.strip_prefix("model.layers.")?;
    let (layer, tail) = rest.split_once('.')?;
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) || layer.len() > 6 {
        return None;
    }
    MODULES.iter().find(|(hf, _)| *hf == tail).map(|(_, g)| format!("blk.{layer}.{g}.weight"))
}

/// Whether PEFT's pattern `key` selects `module` (the whole name, or its last dotted parts).
fn pattern_matches(key: &str, module: &str) -> bool {
    module == key || module.strip_suffix(key).is_some_and(|head| head.ends_with('.'))
}

/// The llama converter's q/k row order: within each of `heads` heads, the two rotary halves
/// interleaved (row h·d + 2i + j ← h·d + j·d/2 + i). Applied to B's rows.
fn permute_rows(b: &[f32], rows: usize, rank: usize, heads: usize) -> Option<Vec<f32>> {
    if heads.checked_mul(2).is_none_or(|h2| h2 == 0 || !rows.is_multiple_of(h2)) {
        return None;
    }
    let (d, half) = (rows / heads, rows / heads / 2);
    let mut out = vec![0f32; b.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let (new, old) = (h * d + 2 * i + j, h * d + j * half + i);
                out[new * rank..(new + 1) * rank].copy_from_slice(&b[old * rank..(old + 1) * rank]);
            }
        }
    }
    Some(out)
}

/// Encode rows of `cols` values as `ty` as the converter does (Q8_0 rows that are not whole
/// blocks fall back to F16).
fn encode(ty: QType, values: &[f32], cols: usize) -> std::result::Result<(QType, Vec<u8>), String> {
    let ty = if ty == QType::Q8_0 && !cols.is_multiple_of(32) { QType::F16 } else { ty };
    glassbox_quant::quantize_rows(ty, values, cols, 1).map(|b| (ty, b)).map_err(|e| e.to_string())
}

/// Convert the PEFT adapter in `dir` for `base` (a parsed GGUF model, named `base_name` in
/// errors), writing tensors as `out_type` (F32, F16, BF16 or Q8_0) and `extra` metadata after
/// the adapter keys. The result is read back and checked against the base before it is returned.
pub fn convert(dir: &Path, base: &Gguf, base_name: &str, out_type: QType, extra: &[(String, Value)]) -> Result<Conversion> {
    let bad = |msg: String| Error::Adapter { path: dir.display().to_string(), msg };
    check_type(out_type, &bad)?;
    let st_path = dir.join("adapter_model.safetensors");
    if !st_path.is_file() {
        if dir.join("adapter_model.bin").exists() {
            return Err(bad("adapter_model.bin is a pickle, which glassbox never loads (unpickling runs code); check it with `glassbox scan` and save the adapter as safetensors (PEFT: save_pretrained(..., safe_serialization=True))".into()));
        }
        return Err(bad("adapter_model.safetensors not found".into()));
    }
    let cfg_path = dir.join("adapter_config.json");
    let size = std::fs::metadata(&cfg_path).map_err(|e| bad(format!("adapter_config.json: {e}")))?.len();
    if size > MAX_CONFIG {
        return Err(bad(format!("adapter_config.json is {size} bytes, over the limit of {MAX_CONFIG}")));
    }
    let config = std::fs::read(&cfg_path).map_err(|e| bad(format!("adapter_config.json: {e}")))?;
    let data = std::fs::read(&st_path).map_err(|e| bad(format!("adapter_model.safetensors: {e}")))?;
    convert_bytes(dir, &config, &data, base, base_name, out_type, extra)
}

fn check_type(out_type: QType, bad: &dyn Fn(String) -> Error) -> Result<()> {
    if !matches!(out_type, QType::F32 | QType::F16 | QType::Bf16 | QType::Q8_0) {
        return Err(bad(format!("output type {} is not one the converter writes (F32, F16, BF16, Q8_0)", out_type.name())));
    }
    Ok(())
}

/// [`convert`] on the two files' bytes (`dir` only names them in errors).
pub fn convert_bytes(dir: &Path, config: &[u8], safetensors: &[u8], base: &Gguf, base_name: &str, out_type: QType, extra: &[(String, Value)]) -> Result<Conversion> {
    let bad = |msg: String| Error::Adapter { path: dir.display().to_string(), msg };
    check_type(out_type, &bad)?;
    let config = read_config(config, &bad)?;
    let arch = base.get_str("general.architecture").ok().flatten().ok_or_else(|| Error::Base { path: dir.display().to_string(), base: base_name.into(), msg: "general.architecture is missing".into() })?.to_string();
    let heads = |key: &str| base.get_u64(&format!("{arch}.attention.{key}")).ok().flatten().map(|h| h as usize);
    let n_head = heads("head_count");
    let n_head_kv = heads("head_count_kv").or(n_head);
    let st = glassbox_safetensors::parse(safetensors).map_err(|e| bad(format!("adapter_model.safetensors: {e}")))?;
    let (halves, skipped) = collect(&st, &bad)?;

    let file_alpha = if config.rslora { config.alpha * (config.rank as f64).sqrt() } else { config.alpha };
    let mut out_tensors: Vec<(String, Vec<u64>, QType, Vec<u8>)> = Vec::new();
    let mut types = Vec::new();
    let mut rescaled = Vec::new();
    for (module, (a, b)) in &halves {
        let target = target_of(module).expect("collected modules have targets");
        let (Some(a), Some(b)) = (a, b) else {
            let missing = if a.is_none() { "lora_A" } else { "lora_B" };
            return Err(bad(format!("{module}: the pair has no {missing} half")));
        };
        let (&[r, n_in], &[n_out, rb]) = (a.shape.as_slice(), b.shape.as_slice()) else {
            return Err(bad(format!("{module}: lora_A has shape {:?} and lora_B {:?}; both must be 2-D", a.shape, b.shape)));
        };
        if r != rb || r == 0 || r > MAX_RANK as u64 || n_in == 0 || n_out == 0 {
            return Err(bad(format!("{module}: lora_A has shape {:?} ([r, in]) and lora_B {:?} ([out, r]); the ranks must agree and lie in 1..={MAX_RANK}", a.shape, b.shape)));
        }
        let (r, n_in, n_out) = (r as usize, n_in as usize, n_out as usize);
        let finite = |t: &Tensor, v: &[f32]| -> Result<()> {
            match v.iter().position(|x| !x.is_finite()) {
                Some(i) => Err(bad(format!("{}: non-finite value {} at element {i}", t.name, v[i]))),
                None => Ok(()),
            }
        };
        let av = a.to_f32().map_err(|e| bad(e.to_string()))?;
        let mut bv = b.to_f32().map_err(|e| bad(e.to_string()))?;
        finite(a, &av)?;
        finite(b, &bv)?;
        // The scale PEFT applies to this module, and what llama.cpp will apply: alpha_file / r.
        let alpha_t = config.alpha_pattern.iter().find(|(k, _)| pattern_matches(k, module)).map(|(_, a)| *a);
        let fold = match (config.rslora, alpha_t) {
            (false, None) => 1.0,
            (false, Some(at)) => at / config.alpha,
            (true, at) if at.is_none() && r == config.rank => 1.0,
            (true, at) => at.unwrap_or(config.alpha) / (r as f64).sqrt() * r as f64 / file_alpha,
        };
        if fold != 1.0 {
            bv.iter_mut().for_each(|x| *x = (f64::from(*x) * fold) as f32);
            rescaled.push((target.clone(), fold));
        }
        if arch == "llama" && (target.ends_with(".attn_q.weight") || target.ends_with(".attn_k.weight")) {
            let h = if target.ends_with(".attn_q.weight") { n_head } else { n_head_kv };
            let h = h.ok_or_else(|| Error::Base { path: dir.display().to_string(), base: base_name.into(), msg: format!("{arch}.attention.head_count is missing") })?;
            bv = permute_rows(&bv, n_out, r, h).ok_or_else(|| bad(format!("{module}: {n_out} output rows do not split into {h} heads of two rotary halves")))?;
        }
        let (ta, ba) = encode(out_type, &av, n_in).map_err(|e| bad(format!("{module}: {e}")))?;
        let (tb, bb) = encode(out_type, &bv, r).map_err(|e| bad(format!("{module}: {e}")))?;
        types.push((target.clone(), ta.name(), tb.name()));
        out_tensors.push((format!("{target}.lora_a"), vec![n_in as u64, r as u64], ta, ba));
        out_tensors.push((format!("{target}.lora_b"), vec![r as u64, n_out as u64], tb, bb));
    }
    let alpha = file_alpha as f32;
    let mut metadata = vec![
        ("general.architecture".to_string(), Value::String(arch.clone())),
        ("general.type".to_string(), Value::String("adapter".into())),
        ("adapter.type".to_string(), Value::String("lora".into())),
        ("adapter.lora.alpha".to_string(), Value::F32(alpha)),
        ("general.quantization_version".to_string(), Value::U32(2)),
    ];
    if let Some(b) = &config.base_model {
        metadata.insert(2, ("general.name".to_string(), Value::String(format!("LoRA adapter for {b}"))));
    }
    metadata.extend(extra.iter().cloned());
    let writer = GgufWriter {
        version: 3,
        metadata,
        tensors: out_tensors.iter().map(|(n, dims, ty, data)| WriterTensor { name: n.clone(), dims: dims.clone(), ggml_type: glassbox_quant::ggml_type(*ty), data }).collect(),
    };
    let mut bytes = Vec::new();
    writer.write(&mut bytes).map_err(|e| bad(format!("writing the GGUF adapter: {e}")))?;
    // Read back through the same checks every adapter goes through, then against the base.
    let g = Gguf::parse(&bytes, &Limits::default())?;
    let adapter = Adapter::from_gguf(dir, &g, &bytes)?;
    adapter.check_base(base, base_name)?;
    Ok(Conversion {
        pairs: adapter.pairs.len(),
        bytes,
        arch,
        alpha,
        config_rank: config.rank,
        config_alpha: config.alpha,
        rslora: config.rslora,
        base_model: config.base_model,
        types,
        skipped,
        rescaled,
    })
}

type Halves<'s, 'a> = BTreeMap<String, (Option<&'s Tensor<'a>>, Option<&'s Tensor<'a>>)>;

/// Group the file's tensors into A/B halves per module (HF names), refusing what cannot be
/// converted and listing what is skipped.
fn collect<'s, 'a>(st: &'s SafeTensors<'a>, bad: &dyn Fn(String) -> Error) -> Result<(Halves<'s, 'a>, Vec<String>)> {
    let mut halves: Halves = BTreeMap::new();
    let mut skipped = Vec::new();
    for t in &st.tensors {
        let name = t.name.strip_prefix("base_model.model.").unwrap_or(&t.name);
        if OTHER_TOWERS.iter().any(|p| name.contains(p)) {
            skipped.push(t.name.clone());
            continue;
        }
        // As the converter reads multimodal and SmolVLM-style names.
        let name = name.replace("language_model.", "").replace("text_model.", "");
        if name.ends_with(".base_layer.weight") {
            skipped.push(t.name.clone());
            continue;
        }
        let (module, is_a) = match (name.strip_suffix(".lora_A.weight"), name.strip_suffix(".lora_B.weight")) {
            (Some(m), _) => (m, true),
            (_, Some(m)) => (m, false),
            _ => {
                let why = if name.contains("lora_embedding_") || name.contains("embed_tokens") || name.contains("lm_head") {
                    "an adapter of the embeddings or the output layer (tokens added in fine-tuning?), which glassbox does not apply"
                } else if name.contains("norm") {
                    "a norm vector (mergekit-extract-lora writes them), which glassbox does not apply"
                } else if name.contains("lora_magnitude_vector") {
                    "a DoRA magnitude vector"
                } else {
                    "not a lora_A or lora_B weight"
                };
                return Err(bad(format!("adapter_model.safetensors: tensor {}: {why}", t.name)));
            }
        };
        if target_of(module).is_none() {
            return Err(bad(format!(
                "adapter_model.safetensors: tensor {}: module {module} is not one glassbox adapts (model.layers.N.{{{}}})",
                t.name,
                MODULES.iter().map(|(hf, _)| *hf).collect::<Vec<_>>().join(",")
            )));
        }
        if !matches!(t.dtype, glassbox_safetensors::Dtype::F32 | glassbox_safetensors::Dtype::F16 | glassbox_safetensors::Dtype::BF16) {
            return Err(bad(format!("adapter_model.safetensors: tensor {} has dtype {}; F32, F16 or BF16 expected", t.name, t.dtype)));
        }
        let e = halves.entry(module.to_string()).or_default();
        let slot = if is_a { &mut e.0 } else { &mut e.1 };
        if slot.replace(t).is_some() {
            return Err(bad(format!("adapter_model.safetensors: module {module} has two lora_{} tensors", if is_a { "A" } else { "B" })));
        }
    }
    if halves.is_empty() {
        return Err(bad("adapter_model.safetensors holds no lora_A/lora_B pairs".into()));
    }
    Ok((halves, skipped))
}

#[cfg(test)]
#[path = "peft_tests.rs"]
mod tests;
