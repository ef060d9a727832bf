//! `glassbox quantize IN.gguf OUT.gguf --type Q4_K_M`: llama-quantize's mixtures with ggml's
//! own rounding (glassbox-quant), the result written atomically and carrying its lineage.

use std::io::Write;

use anyhow::{Context, Result, bail};
use glassbox_gguf::{GgufFile, Value};
use glassbox_quant::FileType;
use serde_json::json;

use crate::cli::QuantizeArgs;

/// The lineage keys every file we write carries.
pub(crate) fn lineage(base_sha256: &str, base_name: &str, method: &str, parameters: &str) -> Vec<(String, Value)> {
    // SOURCE_DATE_EPOCH (the reproducible-builds convention) fixes the time when set.
    let time = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    [
        ("glassbox.lineage.base.sha256", Value::String(base_sha256.into())),
        ("glassbox.lineage.base.name", Value::String(base_name.into())),
        ("glassbox.lineage.method", Value::String(method.into())),
        ("glassbox.lineage.parameters", Value::String(parameters.into())),
        ("glassbox.lineage.tool", Value::String(format!("glassbox {}", env!("CARGO_PKG_VERSION")))),
        ("glassbox.lineage.time_unix", Value::U64(time)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Write `bytes` to `path` through a temporary file beside it, renamed into place: a failure
/// leaves nothing under `path`.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(".{}.partial-{}", path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned()), std::process::id()));
    let r = std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

pub fn quantize(a: QuantizeArgs) -> Result<()> {
    let Some(ftype) = FileType::from_name(&a.r#type) else {
        let names: Vec<&str> = FileType::ALL.iter().map(|f| f.name()).collect();
        bail!("unknown type {:?}; glassbox writes {}", a.r#type, names.join(", "));
    };
    if a.output.exists() && !a.force {
        bail!("{} exists; give --force to replace it", a.output.display());
    }
    let started = std::time::Instant::now();
    let f = GgufFile::open(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let sha = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(f.bytes()));
    let name = f.gguf().get_str("general.name").ok().flatten().map_or_else(|| a.input.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()), str::to_string);
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let extra = lineage(&sha, &name, "quantize", &format!("type={}", ftype.name()));
    // Written next to the output and renamed into place: no half-written model on failure.
    let dir = a.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(".{}.partial-{}", a.output.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned()), std::process::id()));
    let result = (|| -> Result<Vec<glassbox_quant::TensorPlan>> {
        let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(file);
        let plan = glassbox_quant::quantize_file(&f, ftype, threads, a.allow_requantize, &extra, &mut w).with_context(|| format!("quantising {}", a.input.display()))?;
        w.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &a.output).with_context(|| format!("cannot move {} to {}", tmp.display(), a.output.display()))?;
        Ok(plan)
    })();
    let plan = match result {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let bytes: u64 = plan.iter().map(|t| t.bytes).sum();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    plan.iter().for_each(|t| *counts.entry(t.to.as_str()).or_default() += 1);
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = json!({
            "input": {"path": a.input.display().to_string(), "sha256": sha},
            "output": a.output.display().to_string(), "type": ftype.name(), "file_type": ftype.id(),
            "tensor_bytes": bytes, "seconds": seconds, "threads": threads,
            "tensors": plan.iter().map(|t| json!({"name": t.name, "from": t.from, "to": t.to, "bytes": t.bytes})).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let mix: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        writeln!(out, "{} → {} ({}): {} tensors ({}), {:.1} MiB of tensor data, {:.1} s on {threads} threads", a.input.display(), a.output.display(), ftype.name(), plan.len(), mix.join(", "), bytes as f64 / (1 << 20) as f64, seconds)?;
    }
    Ok(())
}
