//! `glassbox abliterate MODEL --direction dir.gguf --layer L -o OUT.gguf`: the weights that
//! write to the residual stream orthogonalised against one direction (glassbox-edit), re-quantised
//! to their own types, everything else byte-identical, written atomically with its lineage.

use std::io::Write;

use anyhow::{Context, Result, bail};
use glassbox_gguf::{GgufFile, Value};
use serde_json::json;

use crate::cli::AbliterateArgs;

pub fn abliterate(a: AbliterateArgs) -> Result<()> {
    crate::cmd_quantize::check_output(&a.output, a.force)?;
    let started = std::time::Instant::now();
    let f = GgufFile::open(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let dir = GgufFile::open(&a.direction).with_context(|| format!("cannot read the direction file {}", a.direction.display()))?;
    let (g, dg) = (f.gguf(), dir.gguf());
    let arch = g.get_str("general.architecture").ok().flatten().unwrap_or_default().to_string();
    let n_embd = g.get_u64(&format!("{arch}.embedding_length")).ok().flatten();
    let d_arch = dg.get_str("glassbox.direction.model.architecture").ok().flatten();
    let d_embd = dg.get_u64("glassbox.direction.n_embd").ok().flatten();
    if d_arch.is_none() || d_embd.is_none() {
        bail!("{} is not a direction file (no glassbox.direction.* metadata)", a.direction.display());
    }
    if d_arch != Some(arch.as_str()) || d_embd != n_embd {
        bail!("the direction was found on a {} model of width {}; {} is {arch} of width {}", d_arch.unwrap_or("?"), d_embd.unwrap_or(0), a.model.display(), n_embd.unwrap_or(0));
    }
    let selected = |k: &str| dg.get_u64(&format!("glassbox.direction.selected.{k}")).ok().flatten().map(|v| v as usize);
    let Some(layer) = a.layer.or_else(|| selected("layer")) else {
        bail!("give --layer: {} records no chosen direction (make it with `glassbox direction --select K`)", a.direction.display());
    };
    let position = a.position.or_else(|| a.layer.is_none().then(|| selected("position")).flatten()).unwrap_or(0);
    let name = format!("direction.{layer}.{position}");
    let t = dg.tensor(&name).ok_or_else(|| anyhow::anyhow!("{} has no {name} (layers 0..{}, positions 0..{})", a.direction.display(), dg.get_u64("glassbox.direction.n_layer").ok().flatten().unwrap_or(0), dg.get_u64("glassbox.direction.positions").ok().flatten().unwrap_or(0)))?;
    if t.ggml_type.name() != "F32" {
        bail!("{name} in {} is {}, not F32", a.direction.display(), t.ggml_type.name());
    }
    let v: Vec<f32> = dir.tensor_data(t).chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let sha = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(f.bytes()));
    let dsha = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(dir.bytes()));
    let base_name = g.get_str("general.name").ok().flatten().map_or_else(|| a.model.display().to_string(), str::to_string);
    let params = format!("layer={layer} position={position} scale={} embedding={} keep_f16={}", a.scale, a.embedding, a.keep_f16);
    let mut extra = crate::cmd_quantize::lineage(&sha, &base_name, "abliterate", &params);
    extra.push(("glassbox.lineage.direction.sha256".into(), Value::String(dsha.clone())));
    let edited = crate::cmd_quantize::write_atomically(&a.output, |w| Ok(glassbox_edit::ablate::orthogonalize(&f, &v, a.scale, a.embedding, a.keep_f16, &extra, w)?))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    if a.json {
        let e: Vec<_> = edited.iter().map(|e| json!({"name": e.name, "type": e.ty, "max_change": e.max_change})).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json!({"model": {"path": a.model.display().to_string(), "sha256": sha}, "direction": {"path": a.direction.display().to_string(), "sha256": dsha, "tensor": name}, "output": a.output.display().to_string(), "scale": a.scale, "edited": e, "seconds": seconds}))?)?;
    } else {
        writeln!(out, "{} → {}: {} tensors orthogonalised against {name} (scale {}), re-quantised to their types; {:.1} s", a.model.display(), a.output.display(), edited.len(), a.scale, seconds)?;
        writeln!(out, "measure what changed: glassbox eval compare {} {}", a.model.display(), a.output.display())?;
    }
    Ok(())
}
