//! info: what a GGUF file contains, without running it.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};
use glassbox_gguf::{GgufFile, Value};
use serde_json::json;

use crate::cli::InfoArgs;

pub fn info(a: InfoArgs) -> Result<()> {
    let f = GgufFile::open(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let g = f.gguf();
    let arch = g.get_str("general.architecture")?.unwrap_or("unknown").to_owned();
    let n_params: u64 = g.tensors().iter().map(|t| t.n_elements()).sum();
    let mut types: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for t in g.tensors() {
        let e = types.entry(t.ggml_type.name()).or_default();
        e.0 += 1;
        e.1 += t.size;
    }
    let ctx = g.get_u64(&format!("{arch}.context_length"))?;
    let template = g.get_str("tokenizer.chat_template")?;
    let n_vocab = g.get_array("tokenizer.ggml.tokens")?.map(|a| a.len());
    let tok_model = g.get_str("tokenizer.ggml.model")?;
    let tok_pre = g.get_str("tokenizer.ggml.pre")?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let meta: serde_json::Map<String, serde_json::Value> = g
            .metadata()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "tokenizer.ggml.tokens" | "tokenizer.ggml.merges" | "tokenizer.ggml.scores" | "tokenizer.ggml.token_type"))
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect();
        let v = json!({
            "path": a.model.display().to_string(), "gguf_version": g.version, "architecture": arch,
            "parameters": n_params, "file_bytes": f.bytes().len(), "context_length": ctx,
            "tensor_types": types.iter().map(|(k, (n, b))| (k.clone(), json!({"tensors": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
            "tokenizer": {"model": tok_model, "pre": tok_pre, "vocab_size": n_vocab},
            "chat_template": template, "metadata": meta,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "file          {} ({} bytes, gguf v{})", a.model.display(), f.bytes().len(), g.version)?;
    writeln!(out, "architecture  {arch}")?;
    writeln!(out, "parameters    {} ({:.1} M)", n_params, n_params as f64 / 1e6)?;
    if let Some(c) = ctx {
        writeln!(out, "context       {c}")?;
    }
    let ty: Vec<String> = types.iter().map(|(k, (n, b))| format!("{k} ×{n} ({:.1} MiB)", *b as f64 / 1048576.0)).collect();
    writeln!(out, "tensor types  {}", ty.join(", "))?;
    writeln!(out, "tokenizer     {} pre={} vocab={}", tok_model.unwrap_or("none"), tok_pre.unwrap_or("-"), n_vocab.map_or("-".into(), |n| n.to_string()))?;
    writeln!(out, "chat template {}", template.map_or("none (base model: use --raw)".into(), |t| format!("{} bytes", t.len())))?;
    writeln!(out, "metadata:")?;
    for (k, v) in g.metadata() {
        writeln!(out, "  {k} = {}", v.display_short(100))?;
    }
    Ok(())
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::String(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::F32(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Array(a) => match a {
            glassbox_gguf::Array::String(v) if v.len() <= 64 => json!(v),
            _ => match a.as_i64s() {
                Some(v) if v.len() <= 64 => json!(v),
                _ => json!(format!("[{:?}; {}]", a.elem_type(), a.len())),
            },
        },
        other => other.as_u64().map(|u| json!(u)).unwrap_or_else(|| json!(format!("{other:?}"))),
    }
}
