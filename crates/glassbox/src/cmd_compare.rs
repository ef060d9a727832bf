//! `glassbox eval compare BASE DERIVED`: the same tasks and prompts through both models, one
//! after the other (one model in memory at a time), then paired differences and a verdict.

use std::io::Write;

use anyhow::{Context, Result, bail};
use glassbox_engine::{Engine, Message};
use glassbox_eval::compare::{self, Harm, MetricDiff, Thresholds, Verdict};
use glassbox_eval::{EvalOptions, refusal};
use serde_json::json;

use crate::cli::{CompareArgs, ModelArgs};
use crate::cmd_eval::{Plan, plan};

/// What one model gave: per task and metric, per-item values; and first-token distributions.
struct Side {
    path: String,
    sha256: String,
    values: Vec<(String, String, Harm, Vec<f64>)>,
    /// Per canary: id and exposure (bits).
    exposures: Vec<(String, f64)>,
    first_tokens: Vec<Vec<f32>>,
    lora: serde_json::Value,
}

fn run_side(a: &CompareArgs, model: &std::path::Path, derived: bool, p: &Plan, judge: &mut Option<(glassbox_eval::judge::Judge, String)>) -> Result<Side> {
    let mut engine = a.engine.clone();
    if !derived {
        // --steer, --ablate and --lora make the derived side.
        engine.steer = None;
        engine.ablate = None;
        engine.lora.clear();
    }
    let m = ModelArgs {
        model: model.to_path_buf(),
        trust: a.trust.clone(),
        engine,
        cache_type_k: glassbox_engine::KvType::F16,
        cache_type_v: glassbox_engine::KvType::F16,
    };
    let (mut engine, sha256) = crate::cmd_run::load_with_sha256(&m)?;
    let name = model.display().to_string();
    eprintln!("{name}: running {} task(s)", p.mc.len() + p.prompts.len() + usize::from(p.pii.is_some()));
    let mut values = Vec::new();
    let opts = EvalOptions { limit: Some(a.limit), shots: 0, seed: a.seed, ..Default::default() };
    for job in &p.mc {
        let r = glassbox_eval::evaluate(&mut engine, &job.items, &opts, |_, _| {}).with_context(|| format!("{name}: task {}", job.name))?;
        let flag = |b: bool| f64::from(u8::from(b));
        values.push((job.name.clone(), "acc".to_string(), Harm::Drop, r.items.iter().map(|i| flag(i.pred == i.gold)).collect()));
        values.push((job.name.clone(), "acc_norm".to_string(), Harm::Drop, r.items.iter().map(|i| flag(i.pred_norm == i.gold)).collect()));
    }
    for (spec, items) in &p.prompts {
        let r = refusal::run(&mut engine, items, Some(a.limit), a.seed, a.parallel, judge.as_mut().map(|(j, _)| j), |_, _| {}).with_context(|| format!("{name}: task {}", spec.name))?;
        let harm = if spec.format == "refusal" { Harm::Drop } else { Harm::Rise };
        values.push((spec.name.clone(), format!("{}_rate", spec.format), harm, r.items.iter().map(|i| f64::from(u8::from(i.refused))).collect()));
    }
    if let Some((spec, ids, _)) = &p.pii {
        let r = glassbox_eval::pii::run(&mut engine, ids, Some(a.limit), a.seed, a.parallel, |_, _| {}).with_context(|| format!("{name}: task {}", spec.name))?;
        values.push((spec.name.clone(), "pii_leak_rate".to_string(), Harm::Rise, r.items.iter().map(|i| f64::from(u8::from(i.leaked))).collect()));
    }
    let mut exposures = Vec::new();
    if let Some(cs) = &p.canaries {
        let r = glassbox_eval::canary::run(&mut engine, cs, a.references, a.seed, |_, _| {}).with_context(|| format!("{name}: task canary"))?;
        exposures = r.into_iter().map(|c| (c.id, c.exposure)).collect();
    }
    let first_tokens = harmless(&mut engine, p, a.limit).with_context(|| format!("{name}: first-token distributions"))?;
    let lora = crate::cmd_lora::record(&engine);
    Ok(Side { path: name, sha256, values, exposures, first_tokens, lora })
}

/// The prompts for the first-token KL: the `harmless` task's when it is compared, else the
/// over-refusal prompts', else (None) the first multiple-choice task's contexts.
fn kl_prompt_set(p: &Plan) -> Option<&(glassbox_eval::catalog::TaskSpec, Vec<glassbox_eval::task::PromptItem>)> {
    p.prompts.iter().find(|(s, _)| s.name == "harmless").or_else(|| p.prompts.iter().find(|(s, _)| s.format == "overrefusal"))
}

/// What the first-token KL is measured on, for the report.
fn kl_label(p: &Plan) -> String {
    match kl_prompt_set(p) {
        Some((s, _)) => format!("{} prompts", s.name),
        None => p.mc.first().map_or_else(|| "harmless prompts".into(), |j| format!("{} contexts", j.name)),
    }
}

/// First-token distributions on [`kl_prompt_set`]'s prompts through the chat template, or on the
/// multiple-choice contexts as they are.
fn harmless(engine: &mut Engine, p: &Plan, limit: usize) -> Result<Vec<Vec<f32>>> {
    let mut prompts: Vec<Vec<u32>> = Vec::new();
    if let Some((_, items)) = kl_prompt_set(p) {
        for it in items.iter().take(limit) {
            let text = engine.render_chat(&[Message::new("user", &it.prompt)])?;
            prompts.push(engine.tokenize_chat(&text));
        }
    } else if let Some(job) = p.mc.first() {
        let tok = std::sync::Arc::clone(&engine.tokenizer);
        for it in job.items.iter().take(limit) {
            prompts.push(tok.encode_with(&it.context, tok.add_bos, false, false));
        }
    }
    prompts.iter().filter(|t| !t.is_empty()).map(|t| engine.next_token_logprobs(t).map_err(Into::into)).collect()
}

pub fn compare(a: CompareArgs) -> Result<i32> {
    let tasks = if a.task.is_empty() && a.data.is_empty() { ["refusal", "overrefusal", "pii_leak"].map(String::from).to_vec() } else { a.task.clone() };
    let p = plan(&tasks, &a.data, a.canaries.as_deref(), a.identities.as_deref(), a.data_cache.as_deref(), a.skip)?;
    if !p.qa.is_empty() || !p.niah.is_empty() {
        bail!("eval compare takes refusal, overrefusal, pii_leak, canary and multiple-choice tasks (closed-book QA and needle grids: run `eval` on each model)");
    }
    if p.mc.is_empty() && p.prompts.is_empty() && p.pii.is_none() && p.canaries.is_none() {
        bail!("nothing to compare: give --task or --data");
    }
    if a.limit == 0 {
        bail!("--limit must be at least 1");
    }
    let th = match &a.policy {
        Some(path) => {
            let pol = glassbox_audit::policy::Policy::load(path)?;
            let Some(r) = pol.require_eval else { bail!("{}: no [require_eval] section to take the limits from", path.display()) };
            Thresholds {
                max_refusal_drop_points: r.max_refusal_drop,
                max_overrefusal_rise_points: r.max_overrefusal_rise,
                max_accuracy_drop_points: r.max_accuracy_drop,
                max_pii_leak_rise_points: r.max_pii_leak_rise,
                max_first_token_kl: r.max_first_token_kl,
                max_exposure_rise_bits: r.max_exposure_rise,
            }
        }
        None => Thresholds {
            max_refusal_drop_points: a.max_refusal_drop,
            max_overrefusal_rise_points: a.max_overrefusal_rise,
            max_accuracy_drop_points: a.max_accuracy_drop,
            max_pii_leak_rise_points: a.max_pii_leak_rise,
            max_first_token_kl: a.max_first_token_kl,
            max_exposure_rise_bits: a.max_exposure_rise,
        },
    };
    // One judge for both sides, so the same rule decides every refusal.
    let mut judge = match (&a.judge, p.prompts.is_empty()) {
        (Some(path), false) => Some(crate::cmd_eval::load_judge(path, &a.trust, &a.engine)?),
        _ => None,
    };
    let base = run_side(&a, &a.base, false, &p, &mut judge)?;
    let derived = run_side(&a, &a.derived, true, &p, &mut judge)?;
    let mut metrics: Vec<MetricDiff> = Vec::new();
    for ((task, metric, harm, b), (_, _, _, d)) in base.values.iter().zip(&derived.values) {
        let points = match metric.as_str() {
            "refusal_rate" => th.max_refusal_drop_points,
            "overrefusal_rate" => th.max_overrefusal_rise_points,
            "pii_leak_rate" => th.max_pii_leak_rise_points,
            _ => th.max_accuracy_drop_points,
        };
        metrics.push(compare::paired(task, metric, b, d, *harm, points / 100.0, a.seed)?);
    }
    for ((id, b), (_, d)) in base.exposures.iter().zip(&derived.exposures) {
        metrics.push(compare::exposure(id, *b, *d, th.max_exposure_rise_bits));
    }
    let mut kl_note = None;
    if !base.first_tokens.is_empty() {
        match compare::first_token_kl(&kl_label(&p), &base.first_tokens, &derived.first_tokens, th.max_first_token_kl, a.seed) {
            Ok(m) => metrics.push(m),
            Err(e) => kl_note = Some(e.to_string()),
        }
    }
    let fail = metrics.iter().any(|m| m.verdict == Verdict::Fail);
    let verdict = if fail { "fail" } else { "pass" };
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = json!({
            "base": {"path": base.path, "sha256": base.sha256},
            "derived": {"path": derived.path, "sha256": derived.sha256, "steer": a.engine.steer, "ablate": a.engine.ablate, "lora": derived.lora},
            "limit": a.limit, "skip": a.skip, "seed": a.seed, "thresholds": th, "metrics": metrics,
            "kl_first_token_note": kl_note, "verdict": verdict,
            "refusal_detector": if judge.is_some() { "markers+relevance" } else { "markers" },
            "judge_sha256": judge.as_ref().map(|(_, sha)| sha),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let mut steer = a.engine.steer.as_ref().map_or_else(String::new, |s| format!(", steered at run time: --steer {s}"));
        if let Some(s) = &a.engine.ablate {
            steer += &format!(", ablated at run time: --ablate {s}");
        }
        for l in &a.engine.lora {
            steer += &format!(", adapter --lora {l}");
        }
        writeln!(out, "base    {} (sha256 {})\nderived {} (sha256 {}{steer})\n", base.path, base.sha256, derived.path, derived.sha256)?;
        writeln!(out, "{:<18} {:<18} {:>5} {:>9} {:>9} {:>9}  {:<19} {:>9}  verdict", "task", "metric", "n", "base", "derived", "Δ", "95% CI", "allowed")?;
        for m in &metrics {
            let allowed = match m.harm {
                Harm::Drop => format!("≥ −{:.3}", m.threshold),
                Harm::Rise => format!("≤ +{:.3}", m.threshold),
            };
            let v = if m.verdict == Verdict::Fail { "FAIL" } else { "pass" };
            writeln!(out, "{:<18} {:<18} {:>5} {:>9.3} {:>9.3} {:>+9.3}  [{:+.3}, {:+.3}]  {:>9}  {v}", m.task, m.metric, m.n, m.base, m.derived, m.diff.value, m.diff.ci95[0], m.diff.ci95[1], allowed)?;
        }
        if let Some(n) = &kl_note {
            writeln!(out, "first-token KL: not computed: {n}")?;
        }
        writeln!(out, "\nverdict: {verdict} (rates and accuracies as shares; Δ = derived − base, paired over the same items)")?;
    }
    Ok(i32::from(fail))
}
