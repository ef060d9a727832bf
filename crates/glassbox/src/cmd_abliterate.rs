//! Edits along a direction from `glassbox direction` (glassbox-edit):
//! - `abliterate MODEL --direction dir.gguf [--kernel …] -o OUT`: the weights that write to the
//!   residual stream orthogonalised against it, with per-layer weights;
//! - `steer MODEL --direction dir.gguf --scale S -o OUT`: its component scaled to S×;
//! - `--steer FILE[:ALPHA][@LAYER]` / `--ablate FILE[:WEIGHT][@LAYER]` on run, eval and serve:
//!   the same edits at run time (`run_edits`).
//!
//! Files are re-quantised to their own types, everything else byte-identical, written
//! atomically with their lineage.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use glassbox_edit::ablate::Kernel;
use glassbox_engine::Steering;
use glassbox_gguf::{GgufFile, Value};
use glassbox_quant::QType;
use serde_json::json;

use crate::cli::{AbliterateArgs, EditArgs, SteerArgs};

/// One direction taken from a direction file for a given model.
pub struct Picked {
    /// The difference of means as stored (not unit length).
    pub v: Vec<f32>,
    pub layer: usize,
    pub position: usize,
    /// Its tensor's name, `direction.LAYER.POSITION`.
    pub name: String,
    pub sha256: String,
    pub n_layer: usize,
}

/// The direction of `layer`/`position` in `dir` (default: the one `direction --select` chose),
/// checked to come from a model of `model`'s architecture and width.
pub fn pick(model: &GgufFile, model_path: &Path, dir: &Path, layer: Option<usize>, position: Option<usize>) -> Result<Picked> {
    let d = GgufFile::open(dir).with_context(|| format!("cannot read the direction file {}", dir.display()))?;
    let (g, dg) = (model.gguf(), d.gguf());
    let arch = g.get_str("general.architecture").ok().flatten().unwrap_or_default().to_string();
    let n_embd = g.get_u64(&format!("{arch}.embedding_length")).ok().flatten();
    let n_layer = g.get_u64(&format!("{arch}.block_count")).ok().flatten().unwrap_or(0) as usize;
    let d_arch = dg.get_str("glassbox.direction.model.architecture").ok().flatten();
    let d_embd = dg.get_u64("glassbox.direction.n_embd").ok().flatten();
    if d_arch.is_none() || d_embd.is_none() {
        bail!("{} is not a direction file (no glassbox.direction.* metadata)", dir.display());
    }
    if d_arch != Some(arch.as_str()) || d_embd != n_embd {
        bail!("the direction was found on a {} model of width {}; {} is {arch} of width {}", d_arch.unwrap_or("?"), d_embd.unwrap_or(0), model_path.display(), n_embd.unwrap_or(0));
    }
    let selected = |k: &str| dg.get_u64(&format!("glassbox.direction.selected.{k}")).ok().flatten().map(|v| v as usize);
    let Some(layer) = layer.or_else(|| selected("layer")) else {
        bail!("give a layer (--layer, or FILE@LAYER for --steer): {} records no chosen direction (make it with `glassbox direction --select K`)", dir.display());
    };
    if layer >= n_layer {
        bail!("layer {layer}: {} has layers 0..{}", model_path.display(), n_layer.saturating_sub(1));
    }
    let position = position.or_else(|| selected("position")).unwrap_or(0);
    let name = format!("direction.{layer}.{position}");
    let t = dg.tensor(&name).ok_or_else(|| {
        anyhow::anyhow!("{} has no {name} (layers 0..{}, positions 0..{})", dir.display(), dg.get_u64("glassbox.direction.n_layer").ok().flatten().unwrap_or(0), dg.get_u64("glassbox.direction.positions").ok().flatten().unwrap_or(0))
    })?;
    if t.ggml_type.name() != "F32" || t.dims.iter().product::<u64>() != n_embd.unwrap_or(0) {
        bail!("{name} in {} is {} of {:?}, not F32 of {} values", dir.display(), t.ggml_type.name(), t.dims, n_embd.unwrap_or(0));
    }
    let v: Vec<f32> = d.tensor_data(t).chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if v.iter().any(|x| !x.is_finite()) {
        bail!("{name} in {} has non-finite values", dir.display());
    }
    let sha256 = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(d.bytes()));
    Ok(Picked { v, layer, position, name, sha256, n_layer })
}

/// The type edited tensors are written as: `--edited-type` (any type the quantisers write),
/// F16 with `--keep-f16`, else None (each keeps its own).
fn edited_type(e: &EditArgs) -> Result<Option<QType>> {
    if e.keep_f16 {
        return Ok(Some(QType::F16));
    }
    e.edited_type.as_deref().map(|n| tensor_type("--edited-type", n)).transpose()
}

/// A tensor type the quantisers write, by name (case-insensitive); `flag` names the option in
/// the error.
pub(crate) fn tensor_type(flag: &str, name: &str) -> Result<QType> {
    let known = || glassbox_quant::SUPPORTED.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
    match QType::from_name(&name.to_ascii_uppercase()) {
        Some(ty) if glassbox_quant::SUPPORTED.contains(&ty) => Ok(ty),
        _ => bail!("{flag} {name}: not a tensor type glassbox writes ({})", known()),
    }
}

/// How the edited tensors are written, for the lineage record.
fn edited_text(as_type: Option<QType>) -> &'static str {
    as_type.map_or("own", QType::name)
}

/// Write `s` into the model's weights at `e.output` (edited tensors as `as_type`, see
/// [`edited_type`]), with lineage `method`/`params`; prints the summary (or JSON).
#[allow(clippy::too_many_arguments)]
fn write_edit(e: &EditArgs, f: &GgufFile, p: &Picked, s: &Steering, as_type: Option<QType>, method: &str, params: &str, started: std::time::Instant) -> Result<()> {
    let (model, dir, output) = (&e.model, &e.direction, &e.output);
    let g = f.gguf();
    let sha = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(f.bytes()));
    let base_name = g.get_str("general.name").ok().flatten().map_or_else(|| model.display().to_string(), str::to_string);
    let mut extra = crate::cmd_quantize::lineage(&sha, &base_name, method, params);
    extra.push(("glassbox.lineage.direction.sha256".into(), Value::String(p.sha256.clone())));
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let edited = crate::cmd_quantize::write_atomically(output, |w| Ok(glassbox_edit::ablate::orthogonalize(f, s, as_type, threads, &extra, w)?))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    if e.json {
        let ed: Vec<_> = edited.iter().map(|e| json!({"name": e.name, "type": e.ty, "max_change": e.max_change, "residual": e.residual, "rounds": e.rounds})).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json!({
            "model": {"path": model.display().to_string(), "sha256": sha},
            "direction": {"path": dir.display().to_string(), "sha256": p.sha256, "tensor": p.name},
            "output": output.display().to_string(), "method": method, "parameters": params,
            "weights": {"embedding": s.embedding, "attn_output": s.attn, "ffn_down": s.ffn},
            "edited": ed, "seconds": seconds}))?)?;
    } else {
        let worst = edited.iter().map(|e| e.residual).fold(0f64, f64::max);
        writeln!(out, "{} → {}: {} tensors edited along {} ({params}), re-quantised to their types; {:.1} s", model.display(), output.display(), edited.len(), p.name, seconds)?;
        writeln!(out, "after quantising, each tensor writes the component asked for within {:.1} % of the original (worst tensor)", worst * 100.0)?;
        writeln!(out, "measure what changed: glassbox eval compare {} {}", model.display(), output.display())?;
    }
    Ok(())
}

/// Per-layer weights as `x` when all are equal, else the list.
fn weights_text(w: &[f32]) -> String {
    match w.first() {
        Some(&x) if w.iter().all(|&y| y == x) => format!("{x}"),
        _ => format!("[{}]", w.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(",")),
    }
}

/// Check the output, open the model and take the direction: what both edits start with.
fn start(e: &EditArgs) -> Result<(GgufFile, Picked, std::time::Instant)> {
    crate::cmd_quantize::check_output(&e.output, e.force)?;
    let started = std::time::Instant::now();
    let f = GgufFile::open(&e.model).with_context(|| format!("cannot read {}", e.model.display()))?;
    let p = pick(&f, &e.model, &e.direction, e.layer, e.position)?;
    Ok((f, p, started))
}

pub fn abliterate(a: AbliterateArgs) -> Result<()> {
    let as_type = edited_type(&a.edit)?;
    let (f, p, started) = start(&a.edit)?;
    let attn = match &a.kernel {
        Some(k) => Kernel::parse(k)?,
        None => Kernel::flat(a.scale),
    };
    let ffn = match &a.ffn_kernel {
        Some(k) => Kernel::parse(k)?,
        None => attn,
    };
    let (wa, wf) = (attn.weights(p.n_layer), ffn.weights(p.n_layer));
    let top = wa.iter().chain(&wf).copied().fold(0f32, |m, w| if w.abs() > m.abs() { w } else { m });
    let s = Steering { r: glassbox_edit::ablate::unit(&p.v)?, embedding: if a.embedding { top } else { 0.0 }, attn: wa, ffn: wf, add: Vec::new() };
    let params = format!(
        "layer={} position={} attn_output={} ffn_down={} embedding={} edited_type={}",
        p.layer, p.position, weights_text(&s.attn), weights_text(&s.ffn), s.embedding, edited_text(as_type)
    );
    write_edit(&a.edit, &f, &p, &s, as_type, "abliterate", &params, started)
}

pub fn steer(a: SteerArgs) -> Result<()> {
    if !a.scale.is_finite() {
        bail!("--scale {} is not finite", a.scale);
    }
    if a.scale == 1.0 {
        bail!("--scale 1 changes nothing; 0 removes the direction, > 1 enhances it, < 0 reverses it");
    }
    let as_type = edited_type(&a.edit)?;
    let (f, p, started) = start(&a.edit)?;
    // The component along r becomes scale × itself: orthogonalisation weight 1 − scale.
    let w = 1.0 - a.scale;
    let s = Steering { r: glassbox_edit::ablate::unit(&p.v)?, embedding: if a.embedding { w } else { 0.0 }, attn: vec![w; p.n_layer], ffn: vec![w; p.n_layer], add: Vec::new() };
    let params = format!("layer={} position={} scale={} embedding={} edited_type={}", p.layer, p.position, a.scale, a.embedding, edited_text(as_type));
    write_edit(&a.edit, &f, &p, &s, as_type, "steer", &params, started)
}

/// `FILE[:ALPHA][@LAYER]` → (file, alpha, layer). ALPHA defaults to 1.
pub fn parse_steer(spec: &str) -> Result<(std::path::PathBuf, f32, Option<usize>)> {
    let (rest, layer) = match spec.rsplit_once('@') {
        Some((r, l)) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => (r, Some(l.parse::<usize>().with_context(|| format!("--steer {spec}: layer {l}"))?)),
        _ => (spec, None),
    };
    let (file, alpha) = match rest.rsplit_once(':').map(|(f, x)| (f, x.parse::<f32>())) {
        Some((f, Ok(x))) => (f, x),
        _ => (rest, 1.0),
    };
    if !alpha.is_finite() || alpha == 0.0 {
        bail!("--steer {spec}: ALPHA must be finite and non-zero");
    }
    if file.is_empty() {
        bail!("--steer {spec}: no direction file");
    }
    Ok((file.into(), alpha, layer))
}

/// The run-time edits `--steer FILE[:ALPHA][@LAYER]` (ALPHA × the stored difference of means,
/// added after its layer) and `--ablate FILE[:WEIGHT][@LAYER]` (WEIGHT × the unit direction's
/// component taken from every attention and FFN output) ask of `model` — either may be absent —
/// with a one-line description of each.
pub fn run_edits(model: &Path, steer: Option<&str>, ablate: Option<&str>) -> Result<(Steering, Vec<String>)> {
    let f = GgufFile::open(model).with_context(|| format!("cannot read {}", model.display()))?;
    let mut s = Steering::default();
    let mut what = Vec::new();
    if let Some(spec) = steer {
        let (file, alpha, layer) = parse_steer(spec)?;
        let p = pick(&f, model, &file, layer, None)?;
        let v: Vec<f32> = p.v.iter().map(|x| x * alpha).collect();
        if v.iter().any(|x| !x.is_finite()) {
            bail!("--steer {spec}: ALPHA × the direction is not finite");
        }
        let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
        what.push(format!("steering: {alpha} × {} of {} (norm {norm:.2}, sha256 {}) added after layer {}", p.name, file.display(), &p.sha256[..12], p.layer));
        s.add = vec![(p.layer, v)];
    }
    if let Some(spec) = ablate {
        let (file, weight, layer) = parse_steer(spec)?;
        let p = pick(&f, model, &file, layer, None)?;
        s.r = glassbox_edit::ablate::unit(&p.v)?;
        s.attn = vec![weight; p.n_layer];
        s.ffn = vec![weight; p.n_layer];
        what.push(format!("ablation: {weight} × the component along {} of {} (sha256 {}) removed from every attention and FFN output", p.name, file.display(), &p.sha256[..12]));
    }
    Ok((s, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steer_specs_parse() {
        assert_eq!(parse_steer("d.gguf").unwrap(), ("d.gguf".into(), 1.0, None));
        assert_eq!(parse_steer("d.gguf:-1.5").unwrap(), ("d.gguf".into(), -1.5, None));
        assert_eq!(parse_steer("d.gguf:2@12").unwrap(), ("d.gguf".into(), 2.0, Some(12)));
        assert_eq!(parse_steer("c:/x/d.gguf@3").unwrap(), ("c:/x/d.gguf".into(), 1.0, Some(3)));
        assert!(parse_steer("d.gguf:0").is_err());
        assert!(parse_steer("d.gguf:nan").is_err());
        assert!(parse_steer(":2").is_err());
    }
}
