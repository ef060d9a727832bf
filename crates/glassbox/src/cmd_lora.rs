//! `--lora FILE[:SCALE]`: LoRA adapters attached at load (run, serve, eval, perplexity, bench).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glassbox_engine::{Adapter, Engine};
use glassbox_gguf::GgufFile;

/// `FILE[:SCALE]` → (file, scale); SCALE defaults to 1. A colon followed by something that is
/// not a number is part of the file name.
pub fn parse_spec(spec: &str) -> Result<(PathBuf, f32)> {
    let (file, scale) = match spec.rsplit_once(':') {
        Some((f, s)) if !f.is_empty() && s.parse::<f32>().is_ok() => (f, s.parse::<f32>()?),
        _ => (spec, 1.0),
    };
    if file.is_empty() {
        bail!("--lora {spec:?}: no file");
    }
    if !scale.is_finite() {
        bail!("--lora {spec}: scale {scale} is not finite");
    }
    Ok((PathBuf::from(file), scale))
}

/// Open an adapter only after its bytes match a pin under `policy` (as a model is opened).
pub fn open(path: &Path, policy: &glassbox_trust::Policy) -> Result<(Adapter, String)> {
    let (a, v) = glassbox_engine::open_adapter(path, policy).with_context(|| format!("adapter {}", path.display()))?;
    crate::cmd_trust::announce(path, &v.sha256, &v.verdict, policy);
    for t in &a.ignored {
        eprintln!("warning: adapter {}: tensor {t} is not applied (norm vectors are skipped, as llama.cpp skips them)", path.display());
    }
    Ok((a, v.sha256))
}

/// Attach every `--lora` spec to `engine` and make them apply to every sequence.
pub fn attach_all(engine: &mut Engine, specs: &[String], policy: &glassbox_trust::Policy, model: &Path) -> Result<()> {
    let mut ids = Vec::with_capacity(specs.len());
    for spec in specs {
        let (path, scale) = parse_spec(spec)?;
        let (a, sha) = open(&path, policy)?;
        ids.push(engine.attach_adapter(&a, &sha, scale, &model.display().to_string())?);
    }
    engine.set_active_adapters(&ids)?;
    Ok(())
}

/// `glassbox merge`: the adapters merged into the base, written atomically with lineage naming
/// the base and every adapter (SHA-256, name, scale).
pub fn merge(a: crate::cli::MergeArgs) -> Result<()> {
    use std::io::Write;
    crate::cmd_quantize::check_output(&a.output, a.force)?;
    let started = std::time::Instant::now();
    let as_type = a.ty.as_deref().map(|t| crate::cmd_abliterate::tensor_type("--type", t)).transpose()?;
    let f = GgufFile::open(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let sha = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(f.bytes()));
    let mut adapters = Vec::new();
    for spec in &a.lora {
        let (path, scale) = parse_spec(spec)?;
        let af = GgufFile::open(&path).with_context(|| format!("cannot read adapter {}", path.display()))?;
        let ad = Adapter::from_file(&af)?;
        let asha = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(af.bytes()));
        adapters.push((ad, scale, asha));
    }
    let g = f.gguf();
    let base_name = g.get_str("general.name").ok().flatten().map_or_else(|| a.model.display().to_string(), str::to_string);
    let params = adapters.iter().map(|(ad, s, _)| format!("{}:{s}", ad.path.file_name().map_or_else(|| ad.path.display().to_string(), |n| n.to_string_lossy().into_owned()))).collect::<Vec<_>>().join(",");
    let params = format!("adapters={params} type={}", as_type.map_or("F16".into(), |t| t.name().to_string()));
    let mut extra = crate::cmd_quantize::lineage(&sha, &base_name, "merge", &params);
    for (i, (ad, s, asha)) in adapters.iter().enumerate() {
        let name = ad.name.clone().unwrap_or_else(|| ad.path.display().to_string());
        extra.push((format!("glassbox.lineage.adapter.{i}.sha256"), glassbox_gguf::Value::String(asha.clone())));
        extra.push((format!("glassbox.lineage.adapter.{i}.name"), glassbox_gguf::Value::String(name)));
        extra.push((format!("glassbox.lineage.adapter.{i}.scale"), glassbox_gguf::Value::F32(*s)));
    }
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let pairs: Vec<(&Adapter, f32)> = adapters.iter().map(|(ad, s, _)| (ad, *s)).collect();
    let merged = crate::cmd_quantize::write_atomically(&a.output, |w| Ok(glassbox_lora::merge::merge(&f, &pairs, as_type, threads, &extra, w)?))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    if a.json {
        let m: Vec<_> = merged.iter().map(|m| serde_json::json!({"name": m.name, "type": m.ty, "adapters": m.adapters, "max_change": m.max_change, "rms_change": m.rms_change})).collect();
        let ads: Vec<_> = adapters.iter().map(|(ad, s, sha)| serde_json::json!({"path": ad.path.display().to_string(), "sha256": sha, "scale": s, "alpha": ad.alpha, "pairs": ad.pairs.len()})).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::json!({
            "model": {"path": a.model.display().to_string(), "sha256": sha},
            "adapters": ads, "output": a.output.display().to_string(), "method": "merge", "parameters": params,
            "merged": m, "seconds": seconds,
        }))?)?;
    } else {
        writeln!(out, "merged {} adapter(s) into {} tensor(s) of {} -> {} in {seconds:.1} s", adapters.len(), merged.len(), a.model.display(), a.output.display())?;
    }
    Ok(())
}

/// `glassbox lora convert`: a PEFT adapter to llama.cpp's GGUF adapter format, checked against
/// the base, written atomically, with the digests of what it was converted from.
pub fn convert(a: crate::cli::LoraConvertArgs) -> Result<()> {
    use std::io::Write;
    crate::cmd_quantize::check_output(&a.output, a.force)?;
    let ty = match a.ty.to_ascii_uppercase().as_str() {
        "F32" => glassbox_quant::QType::F32,
        "F16" => glassbox_quant::QType::F16,
        "BF16" => glassbox_quant::QType::Bf16,
        "Q8_0" => glassbox_quant::QType::Q8_0,
        other => bail!("--type {other}: a converted adapter is written as F32, F16, BF16 or Q8_0"),
    };
    let base = GgufFile::open(&a.base).with_context(|| format!("cannot read base model {}", a.base.display()))?;
    let digest = |name: &str| -> Result<String> {
        let p = a.peft_dir.join(name);
        let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        Ok(glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(&bytes)))
    };
    // Digests first: a pickle or a missing file is refused by the converter with its reason.
    let sources = ["adapter_config.json", "adapter_model.safetensors"].map(|n| (n, a.peft_dir.join(n).is_file().then(|| digest(n)).transpose()));
    let mut extra = vec![("glassbox.lineage.method".to_string(), glassbox_gguf::Value::String("lora-convert (PEFT)".into()))];
    for (n, d) in &sources {
        if let Ok(Some(d)) = d {
            extra.push((format!("glassbox.lineage.peft.{}.sha256", n.replace('.', "_")), glassbox_gguf::Value::String(d.clone())));
        }
    }
    let c = glassbox_lora::peft::convert(&a.peft_dir, base.gguf(), &a.base.display().to_string(), ty, &extra)?;
    crate::cmd_quantize::write_atomically(&a.output, |w| Ok(w.write_all(&c.bytes)?))?;
    let sha = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(&c.bytes));
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::json!({
            "source": a.peft_dir.display().to_string(), "base": a.base.display().to_string(),
            "output": a.output.display().to_string(), "sha256": sha, "architecture": c.arch,
            "rank": c.config_rank, "lora_alpha": c.config_alpha, "use_rslora": c.rslora, "alpha_written": c.alpha,
            "base_model_name_or_path": c.base_model, "pairs": c.pairs,
            "types": c.types.iter().map(|(t, a, b)| serde_json::json!({"target": t, "lora_a": a, "lora_b": b})).collect::<Vec<_>>(),
            "rescaled": c.rescaled.iter().map(|(t, f)| serde_json::json!({"target": t, "factor": f})).collect::<Vec<_>>(),
            "skipped": c.skipped,
        }))?)?;
    } else {
        for t in &c.skipped {
            eprintln!("note: {t} skipped (not part of the text model)");
        }
        for (t, f) in &c.rescaled {
            eprintln!("note: {t}: B multiplied by {f} to keep PEFT's per-module scale (alpha_pattern or rsLoRA at another rank)");
        }
        writeln!(out, "converted {} pairs ({} architecture, rank {}, alpha {}{}) -> {} (sha256 {sha})", c.pairs, c.arch, c.config_rank, c.alpha, if c.rslora { ", rsLoRA" } else { "" }, a.output.display())?;
    }
    Ok(())
}

/// The adapters every sequence of `engine` uses, for JSON records.
pub fn record(engine: &Engine) -> serde_json::Value {
    engine
        .active_adapters()
        .map(|a| serde_json::json!({"path": a.path.display().to_string(), "sha256": a.sha256, "scale": a.scale, "alpha": a.alpha, "pairs": a.pairs}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_a_file_and_an_optional_scale() {
        assert_eq!(parse_spec("a.gguf").unwrap(), (PathBuf::from("a.gguf"), 1.0));
        assert_eq!(parse_spec("a.gguf:0.5").unwrap(), (PathBuf::from("a.gguf"), 0.5));
        assert_eq!(parse_spec("dir:x/a.gguf:-1").unwrap(), (PathBuf::from("dir:x/a.gguf"), -1.0));
        assert_eq!(parse_spec("c:odd").unwrap(), (PathBuf::from("c:odd"), 1.0));
        assert!(parse_spec(":0.5").is_err() || parse_spec(":0.5").unwrap().0 == std::path::Path::new(":0.5"));
        assert!(parse_spec("a.gguf:inf").is_err());
        assert!(parse_spec("").is_err());
    }
}
