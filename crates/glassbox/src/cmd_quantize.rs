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

/// An output path may be written: it does not exist, or `--force` was given.
pub(crate) fn check_output(path: &std::path::Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{} exists; give --force to replace it", path.display());
    }
    Ok(())
}

/// Write `path` through `write` into a temporary file beside it, synced and renamed into place:
/// a failure (of `write` or of the file system) leaves nothing under `path`.
pub(crate) fn write_atomically<T>(path: &std::path::Path, write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<T>) -> Result<T> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(".{}.partial-{}", path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned()), std::process::id()));
    let r = (|| -> Result<T> {
        let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(file);
        let v = write(&mut w)?;
        w.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
        Ok(v)
    })();
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
    check_output(&a.output, a.force)?;
    let started = std::time::Instant::now();
    let f = GgufFile::open(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let sha = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(f.bytes()));
    let name = f.gguf().get_str("general.name").ok().flatten().map_or_else(|| a.input.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()), str::to_string);
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let extra = lineage(&sha, &name, "quantize", &format!("type={}", ftype.name()));
    let plan = write_atomically(&a.output, |w| {
        glassbox_quant::quantize_file(&f, ftype, threads, a.allow_requantize, &extra, w).with_context(|| format!("quantising {}", a.input.display()))
    })?;
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
