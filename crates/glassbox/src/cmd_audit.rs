//! audit, bom, and the policy gate that run/serve apply.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use glassbox_audit::Policy;

use crate::cli::{AuditArgs, AuditFormat, BomArgs};

fn load_policy(p: &Option<std::path::PathBuf>) -> Result<Option<Policy>> {
    p.as_ref().map(|p| Policy::load(p)).transpose().map_err(Into::into)
}

fn run_audit(a: &AuditArgs) -> Result<i32> {
    let policy = load_policy(&a.policy)?;
    let report = glassbox_audit::audit(&a.path, policy.as_ref()).with_context(|| format!("cannot audit {}", a.path.display()))?;
    let format = if a.json { AuditFormat::Json } else { a.format };
    let mut out = std::io::stdout().lock();
    match format {
        AuditFormat::Text => write!(out, "{}", glassbox_audit::render::human(&report, std::io::stdout().is_terminal()))?,
        AuditFormat::Markdown => write!(out, "{}", glassbox_audit::render::markdown(&report))?,
        AuditFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        AuditFormat::Sarif => writeln!(out, "{}", serde_json::to_string_pretty(&glassbox_audit::sarif::to_sarif(&report))?)?,
        AuditFormat::Cyclonedx => writeln!(out, "{}", serde_json::to_string_pretty(&glassbox_audit::bom::to_cyclonedx(&report))?)?,
    }
    Ok(if policy.is_some() && !report.policy_pass { 1 } else { 0 })
}

/// Exit codes: 0 no policy violation, 1 violation (only with --policy), 2 usage/IO error.
pub fn audit(a: AuditArgs) -> Result<()> {
    crate::exit_with(run_audit(&a))
}

pub fn bom(a: BomArgs) -> Result<()> {
    if a.eval.is_empty() {
        return audit(AuditArgs { path: a.path, policy: a.policy, format: AuditFormat::Cyclonedx, json: false });
    }
    crate::exit_with(bom_with_eval(&a).map(|()| 0))
}

/// Largest evaluation result read (with --log-samples a result holds every question).
const MAX_EVAL_BYTES: u64 = 512 << 20;

fn bom_with_eval(a: &BomArgs) -> Result<()> {
    let policy = load_policy(&a.policy)?;
    let report = glassbox_audit::audit(&a.path, policy.as_ref()).with_context(|| format!("cannot audit {}", a.path.display()))?;
    let mut doc = glassbox_audit::bom::to_cyclonedx(&report);
    for p in &a.eval {
        let size = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?.len();
        if size > MAX_EVAL_BYTES {
            bail!("{}: {size} bytes, more than the {MAX_EVAL_BYTES} an evaluation result may have", p.display());
        }
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        let results: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?;
        glassbox_audit::bom_eval::attach_more(&mut doc, &results).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}

/// Refuse `model` unless it meets the policy in `policy_file`; print why either way on stderr.
pub fn gate(model: &Path, policy_file: &Path) -> Result<()> {
    let policy = Policy::load(policy_file)?;
    let report = glassbox_audit::audit_model_file(model, Some(&policy)).with_context(|| format!("cannot audit {}", model.display()))?;
    let failures: Vec<String> = report.failures().map(|c| format!("  {}: {}", c.rule, c.reason)).collect();
    if !failures.is_empty() {
        bail!("{} fails policy {}:\n{}", model.display(), policy_file.display(), failures.join("\n"));
    }
    eprintln!("policy  {} meets {} ({} checks)", model.display(), policy_file.display(), report.policy.len());
    Ok(())
}
