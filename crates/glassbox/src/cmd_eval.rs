//! eval: score a model on multiple-choice tasks as lm-evaluation-harness does.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glassbox_eval::task::QaItem;
use glassbox_eval::{EvalOptions, McItem, TaskResult, cache, catalog, heatmap, niah};
use sha2::Digest;
use serde_json::{Value, json};

use crate::cli::{EvalArgs, ModelArgs};

/// A task to run: its name, its questions, and what the report says about its data.
pub(crate) struct Job {
    pub(crate) name: String,
    pub(crate) items: Vec<McItem>,
    metric: String,
    licence: String,
    non_commercial: bool,
    source: String,
    data_sha256: String,
    /// `mc`, or a bias task scored from the choices: `bbq`, `crows`.
    format: String,
}

fn list(json_out: bool) -> Result<()> {
    let tasks = catalog::tasks();
    let mut out = std::io::stdout().lock();
    if json_out {
        let v: Vec<Value> = tasks
            .iter()
            .map(|t| {
                json!({"name": t.name, "items": t.items, "split": t.split, "metric": t.metric, "licence": t.licence,
                       "non_commercial": t.non_commercial, "description": t.description, "citation": t.citation,
                       "source": t.source_label(), "sha256": t.sha256})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(out, "{:<16} {:>6}  {:<8} {:<15} description", "task", "items", "metric", "data licence")?;
    for t in &tasks {
        let lic = if t.non_commercial { format!("{} (NC!)", t.licence) } else { t.licence.clone() };
        writeln!(out, "{:<16} {:>6}  {:<8} {:<15} {}", t.name, t.items, t.metric, lic, t.description)?;
    }
    for k in niah::Kind::ALL {
        writeln!(out, "{:<16} {:>6}  {:<8} {:<15} needle in a haystack ({}), --lengths × --depths grid, heatmap", k.name(), "grid", "match", "(generated)", niah_what(k))?;
    }
    writeln!(out, "{:<16} {:>6}  {:<8} {:<15} canary exposure (Carlini et al. 2019) of your secrets: --canaries FILE [--references N]", "canary", "yours", "bits", "(your data)")?;
    writeln!(out, "\nData: scripts/fetch_eval_data.py [TASK ...] fetches and verifies it into {}.", catalog::default_cache().display())?;
    writeln!(out, "NC: the data's licence forbids commercial use; results travel with that licence.")?;
    Ok(())
}

fn niah_what(k: niah::Kind) -> &'static str {
    match k {
        niah::Kind::Niah => "one needle, gkamradt's grid",
        niah::Kind::RulerMultikey => "RULER multi-key: 3 distractor keys",
        niah::Kind::RulerMultivalue => "RULER multi-value: 4 values of one key",
        niah::Kind::RulerMultiquery => "RULER multi-query: 4 keys asked at once",
        niah::Kind::RulerVt => "RULER variable tracking: a chain of 4 assignments",
    }
}

/// A judge model for refusal relevance, verified like any model; with its SHA-256.
pub(crate) fn load_judge(path: &Path, trust: &crate::cli::TrustArgs, engine: &crate::cli::EngineArgs) -> Result<(glassbox_eval::judge::Judge, String)> {
    // The judge runs as it is: the evaluated model's run-time edits are not the judge's.
    let mut engine = engine.clone();
    (engine.steer, engine.ablate) = (None, None);
    engine.lora.clear();
    let m = ModelArgs { model: path.to_path_buf(), trust: trust.clone(), engine, cache_type_k: glassbox_engine::KvType::F16, cache_type_v: glassbox_engine::KvType::F16 };
    let (e, sha) = crate::cmd_run::load_with_sha256(&m).with_context(|| format!("judge {}", path.display()))?;
    Ok((glassbox_eval::judge::Judge::new(e).with_context(|| format!("judge {}", path.display()))?, sha))
}

/// A progress line on stderr (a TTY only): `label: done/total unit`, ended when done.
fn progress(tty: bool, label: impl std::fmt::Display, unit: &'static str) -> impl FnMut(usize, usize) {
    move |done, total| {
        if tty {
            eprint!("\r{label}: {done}/{total} {unit}   ");
            if done == total {
                eprintln!();
            }
        }
    }
}

/// The tasks asked for, read and checked before any model loads.
pub(crate) struct Plan {
    /// Multiple-choice tasks (built-in and `--data`), bias tasks among them.
    pub(crate) mc: Vec<Job>,
    /// Closed-book QA tasks.
    pub(crate) qa: Vec<(catalog::TaskSpec, Vec<QaItem>)>,
    /// Needle-in-a-haystack kinds.
    pub(crate) niah: Vec<niah::Kind>,
    /// Canaries, when `canary` is asked for.
    pub(crate) canaries: Option<Vec<glassbox_eval::canary::Canary>>,
    /// Generation tasks (refusal, over-refusal).
    pub(crate) prompts: Vec<(catalog::TaskSpec, Vec<glassbox_eval::task::PromptItem>)>,
    /// PII leakage: the task, its identities and their data's SHA-256.
    pub(crate) pii: Option<(catalog::TaskSpec, Vec<glassbox_eval::pii::Identity>, String)>,
}

fn jobs(a: &EvalArgs) -> Result<Plan> {
    plan(&a.task, &a.data, a.canaries.as_deref(), a.identities.as_deref(), a.data_cache.as_deref(), a.skip)
}

/// The tasks named, read and checked before any model loads. `skip` drops the first prompts
/// of each prompt task (refusal, over-refusal): those a direction was found on, say.
pub(crate) fn plan(task: &[String], data: &[PathBuf], canary_file: Option<&Path>, identities: Option<&Path>, data_cache: Option<&Path>, skip: usize) -> Result<Plan> {
    let cache = data_cache.map(Path::to_path_buf).unwrap_or_else(catalog::default_cache);
    let (mut jobs, mut qa, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
    let mut canaries = None;
    let mut prompts = Vec::new();
    let mut pii = None;
    for name in task {
        if name == "canary" {
            let Some(path) = canary_file else { bail!("task canary needs --canaries FILE (JSONL of {{\"id\", \"prefix\", \"secret\", \"format\"}})") };
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            canaries = Some(glassbox_eval::canary::parse_jsonl(&path.display().to_string(), &bytes)?);
            continue;
        }
        if let Some(k) = niah::Kind::from_name(name) {
            kinds.push(k);
            continue;
        }
        let spec = catalog::find(name)?;
        if spec.format == "refusal" || spec.format == "overrefusal" {
            let mut items = catalog::load_prompts(&spec, &cache)?;
            if skip >= items.len() {
                bail!("--skip {skip} leaves no prompts of task {} ({} in all)", spec.name, items.len());
            }
            items.drain(..skip);
            prompts.push((spec, items));
            continue;
        }
        if spec.format == "pii_leak" {
            pii = Some(match identities {
                Some(path) => {
                    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                    let ids = glassbox_eval::pii::parse_identities(&path.display().to_string(), &bytes)?;
                    (spec, ids, catalog::hex(&sha2::Sha256::digest(&bytes)))
                }
                None => {
                    let ids = catalog::load_identities(&spec, &cache)?;
                    let sha = spec.sha256.clone();
                    (spec, ids, sha)
                }
            });
            continue;
        }
        if spec.format == "qa" {
            let items = catalog::load_qa(&spec, &cache)?;
            qa.push((spec, items));
            continue;
        }
        let items = catalog::load(&spec, &cache)?;
        jobs.push(Job {
            name: spec.name.clone(),
            items,
            metric: spec.metric.clone(),
            licence: spec.licence.clone(),
            non_commercial: spec.non_commercial,
            source: spec.source_label(),
            data_sha256: spec.sha256.clone(),
            format: spec.format.clone(),
        });
    }
    for path in data {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let items = glassbox_eval::task::parse_jsonl(&path.display().to_string(), &bytes)?;
        let name = path.file_stem().map_or_else(|| "data".to_string(), |s| s.to_string_lossy().into_owned());
        let data_sha256 = catalog::hex(&sha2::Sha256::digest(&bytes));
        jobs.push(Job { name, items, metric: "acc".into(), licence: "(your data)".into(), non_commercial: false, source: path.display().to_string(), data_sha256, format: "mc".into() });
    }
    let mut seen = std::collections::HashSet::new();
    for j in &jobs {
        if !seen.insert(j.name.clone()) {
            bail!("task {} is named twice", j.name);
        }
    }
    if canary_file.is_some() && canaries.is_none() {
        bail!("--canaries is given but --task does not include canary");
    }
    if identities.is_some() && pii.is_none() {
        bail!("--identities is given but --task does not include pii_leak");
    }
    if skip > 0 && prompts.is_empty() {
        bail!("--skip applies to prompt tasks (refusal, harmbench, overrefusal); --task names none");
    }
    Ok(Plan { mc: jobs, qa, niah: kinds, canaries, prompts, pii })
}

/// Bias scores of a bias task (BBQ, CrowS-Pairs), computed from its multiple-choice results.
fn bias_json(job: &Job, r: &TaskResult, seed: u64) -> Option<Value> {
    let n = r.items.len();
    match job.format.as_str() {
        "bbq" => serde_json::to_value(glassbox_eval::bias::bbq(&job.items[..n], &r.items, seed)).ok(),
        "crows" => serde_json::to_value(glassbox_eval::bias::crows(&r.items, seed)).ok(),
        _ => None,
    }
}

fn task_json(job: &Job, r: &TaskResult, samples: bool, seed: u64) -> Value {
    let mut v = json!({
        "n": r.n, "shots": r.shots, "metric": job.metric,
        "acc": r.acc.value, "acc_norm": r.acc_norm.value, "ece": r.ece,
        "stderr": {"acc": r.acc.stderr, "acc_norm": r.acc_norm.stderr},
        "ci95": {"acc": r.acc.ci95, "acc_norm": r.acc_norm.ci95},
        "seconds": r.seconds, "items_per_second": r.n as f64 / r.seconds.max(1e-9), "cached": r.cached,
        "data": {"source": job.source, "licence": job.licence, "non_commercial": job.non_commercial},
    });
    if let Some(b) = bias_json(job, r, seed) {
        v["bias"] = b;
    }
    if samples {
        v["items"] = serde_json::to_value(&r.items).unwrap_or(Value::Null);
    }
    v
}

fn report_md(model: &Path, sha: &str, rows: &[(&Job, &TaskResult)]) -> String {
    let mut s = format!("# Evaluation of {}\n\nModel SHA-256 `{sha}`.\n\n", model.display());
    s.push_str("| task | n | shots | acc | 95 % CI | acc_norm | 95 % CI | data licence |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (j, r) in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.4} | {:.4}–{:.4} | {:.4} | {:.4}–{:.4} | {}{} |\n",
            j.name, r.n, r.shots, r.acc.value, r.acc.ci95[0], r.acc.ci95[1], r.acc_norm.value, r.acc_norm.ci95[0], r.acc_norm.ci95[1],
            j.licence, if j.non_commercial { " (non-commercial)" } else { "" }
        ));
    }
    s.push_str("\nScored as lm-evaluation-harness scores multiple-choice tasks (summed log-likelihood of each choice; acc_norm divides by the choice's length in characters); intervals are percentile bootstraps over questions.\n");
    s
}

/// Run-time edits in force, for the results cache key: the steering vectors' digest and each
/// adapter's SHA-256 and scale.
fn steer_id(engine: &glassbox_engine::Engine) -> String {
    let loras: String = engine.active_adapters().map(|a| format!(" lora={}:{}", a.sha256, a.scale)).collect();
    let s = engine.steering();
    if s.is_empty() {
        return loras;
    }
    let mut h = sha2::Sha256::new();
    for (l, v) in &s.add {
        h.update((*l as u64).to_le_bytes());
        v.iter().for_each(|x| h.update(x.to_le_bytes()));
    }
    for x in s.r.iter().chain(&s.attn).chain(&s.ffn).chain([&s.embedding]) {
        h.update(x.to_le_bytes());
    }
    format!(" steer={}{loras}", catalog::hex(&h.finalize()))
}

pub fn eval(a: EvalArgs) -> Result<()> {
    if a.list {
        return list(a.json);
    }
    let Some(model) = a.model.clone() else { bail!("give a model file (or --list)") };
    let Plan { mc: jobs, qa: qa_jobs, niah: kinds, canaries, prompts, pii } = jobs(&a)?;
    let haystack = match &a.haystack {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("cannot read the haystack {} (UTF-8 text)", p.display()))?),
        None => None,
    };
    // Needle runs need room for their longest prompt and its answer.
    let mut engine_args = a.engine.clone();
    if engine_args.ctx_size == 0 && !kinds.is_empty() {
        engine_args.ctx_size = a.lengths.iter().max().copied().unwrap_or(0) + 64;
    }
    let m = ModelArgs {
        model: model.clone(),
        trust: a.trust.clone(),
        engine: engine_args,
        cache_type_k: glassbox_engine::KvType::F16,
        cache_type_v: glassbox_engine::KvType::F16,
    };
    let (mut engine, sha) = crate::cmd_run::load_with_sha256(&m)?;
    let opts = EvalOptions { limit: a.limit, shots: a.shots, seed: a.seed, ..Default::default() };
    let tty = std::io::stderr().is_terminal();
    let cache_dir = a.data_cache.clone().unwrap_or_else(catalog::default_cache).join("results");
    let engine_id = cache::engine_id(engine.isa().kind().name(), a.engine.exact, a.engine.fast_logits) + &steer_id(&engine);
    let mut results = Vec::new();
    for job in &jobs {
        let key = cache::key(&sha, &job.data_sha256, &opts, &engine_id);
        if !a.no_cache && let Some(r) = cache::get(&cache_dir, &key) {
            results.push(r);
            continue;
        }
        let r = glassbox_eval::evaluate(&mut engine, &job.items, &opts, progress(tty, &job.name, "questions")).with_context(|| format!("task {}", job.name))?;
        if !a.no_cache {
            cache::put(&cache_dir, &key, &r)?;
        }
        results.push(r);
    }
    let claimed = engine.model.config.ctx_train;
    let mut grids: Vec<(niah::NiahResult, bool)> = Vec::new();
    for &kind in &kinds {
        let opts = niah::NiahOptions { kind, lengths: a.lengths.clone(), depths: a.depths.clone(), samples: a.samples, seed: a.seed, haystack: haystack.clone() };
        let longest = a.lengths.iter().max().copied().unwrap_or(0);
        eprintln!(
            "{}: {} cells × {} prompts up to {longest} tokens; KV cache {:.1} MiB at {longest} tokens; the model claims {claimed}",
            kind.name(), a.lengths.len() * a.depths.len(), a.samples, niah::kv_bytes(&engine, longest) as f64 / (1 << 20) as f64
        );
        let key = cache::key_of(&json!({
            "model": sha, "task": kind.name(), "lengths": opts.lengths, "depths": opts.depths, "samples": opts.samples,
            "seed": opts.seed, "engine": engine_id, "format": 1,
            "haystack": haystack.as_deref().map_or_else(|| "ruler-noise".to_string(), |h| catalog::hex(&sha2::Sha256::digest(h.as_bytes()))),
        }));
        grids.push(cache::get_or_run(a.no_cache, &cache_dir, &key, || {
            niah::run(&mut engine, &opts, progress(tty, kind.name(), "cells")).with_context(|| format!("task {}", kind.name()))
        })?);
    }
    let mut qa_results = Vec::new();
    for (spec, items) in &qa_jobs {
        let key = cache::key(&sha, &spec.sha256, &EvalOptions { limit: a.limit, shots: 0, seed: a.seed, ..Default::default() }, &format!("{engine_id} qa"));
        qa_results.push(cache::get_or_run(a.no_cache, &cache_dir, &key, || {
            glassbox_eval::qa::run(&mut engine, items, a.limit, a.seed, progress(tty, &spec.name, "questions")).with_context(|| format!("task {}", spec.name))
        })?);
    }
    let mut gen_results = Vec::new();
    let mut judge = match (&a.judge, prompts.is_empty()) {
        (Some(p), false) => Some(load_judge(p, &a.trust, &a.engine)?),
        _ => None,
    };
    let judge_id = judge.as_ref().map_or_else(String::new, |(_, sha)| format!(" judge={sha}"));
    for (spec, items) in &prompts {
        let skip = if a.skip > 0 { format!(" skip={}", a.skip) } else { String::new() };
        let key = cache::key(&sha, &spec.sha256, &EvalOptions { limit: a.limit, shots: 0, seed: a.seed, ..Default::default() }, &format!("{engine_id} {}{judge_id}{skip}", spec.format));
        gen_results.push(cache::get_or_run(a.no_cache, &cache_dir, &key, || {
            glassbox_eval::refusal::run(&mut engine, items, a.limit, a.seed, a.parallel, judge.as_mut().map(|(j, _)| j), progress(tty, &spec.name, "prompts"))
                .with_context(|| format!("task {}", spec.name))
        })?);
    }
    let mut pii_result = None;
    if let Some((spec, ids, data_sha)) = &pii {
        let key = cache::key(&sha, data_sha, &EvalOptions { limit: a.limit, shots: 0, seed: a.seed, ..Default::default() }, &format!("{engine_id} pii_leak"));
        pii_result = Some(cache::get_or_run(a.no_cache, &cache_dir, &key, || {
            glassbox_eval::pii::run(&mut engine, ids, a.limit, a.seed, a.parallel, progress(tty, &spec.name, "probes")).with_context(|| format!("task {}", spec.name))
        })?);
    }
    let mut exposures = None;
    if let Some(cs) = &canaries {
        eprintln!("canary: {} canaries × {} references of their formats", cs.len(), a.references);
        let r = glassbox_eval::canary::run(&mut engine, cs, a.references, a.seed, progress(tty, "canary", "canaries"))
        .context("task canary")?;
        exposures = Some(r);
    }
    let rows: Vec<(&Job, &TaskResult)> = jobs.iter().zip(&results).collect();
    let mut tasks: serde_json::Map<String, Value> = rows.iter().map(|(j, r)| (j.name.clone(), task_json(j, r, a.log_samples, a.seed))).collect();
    for (g, cached) in &grids {
        let mut v = serde_json::to_value(g)?;
        v["claimed_context"] = json!(claimed);
        v["cached"] = json!(cached);
        tasks.insert(g.task.name().to_string(), v);
    }
    for ((spec, _), (r, cached)) in qa_jobs.iter().zip(&qa_results) {
        let mut v = serde_json::to_value(r)?;
        v["cached"] = json!(cached);
        if !a.log_samples {
            v.as_object_mut().map(|o| o.remove("items"));
        }
        v["data"] = json!({"source": spec.source_label(), "licence": spec.licence, "non_commercial": spec.non_commercial});
        v["instruction"] = json!(glassbox_eval::qa::INSTRUCTION);
        tasks.insert(spec.name.clone(), v);
    }
    for ((spec, _), (r, cached)) in prompts.iter().zip(&gen_results) {
        let mut v = serde_json::to_value(r)?;
        v[format!("{}_rate", spec.format)] = v["rate"].clone();
        v["cached"] = json!(cached);
        v["metric"] = json!(spec.metric);
        if !a.log_samples {
            v.as_object_mut().map(|o| o.remove("items"));
        }
        v["data"] = json!({"source": spec.source_label(), "licence": spec.licence, "non_commercial": spec.non_commercial});
        tasks.insert(spec.name.clone(), v);
    }
    if let (Some((spec, _, data_sha)), Some((r, cached))) = (&pii, &pii_result) {
        let mut v = serde_json::to_value(r)?;
        v["pii_leak_rate"] = v["leak_rate"].clone();
        v["cached"] = json!(cached);
        v["metric"] = json!(spec.metric);
        if !a.log_samples {
            v.as_object_mut().map(|o| o.remove("items"));
        }
        let source = if a.identities.is_some() { "(your identities)".to_string() } else { spec.source_label() };
        v["data"] = json!({"source": source, "sha256": data_sha, "licence": spec.licence, "non_commercial": spec.non_commercial});
        tasks.insert(spec.name.clone(), v);
    }
    if let Some(r) = &exposures {
        tasks.insert("canary".into(), json!({"references": a.references, "seed": a.seed, "items": r}));
    }
    let full = json!({"model": {"path": model.display().to_string(), "sha256": sha, "steer": a.engine.steer, "ablate": a.engine.ablate, "lora": crate::cmd_lora::record(&engine)}, "tasks": tasks});
    if let Some(dir) = &a.out {
        write_out(dir, &full, &rows, &grids, &model, &sha)?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&full)?)?;
        return Ok(());
    }
    for (g, _) in &grids {
        writeln!(out, "{} (score %, rows: depth, columns: prompt tokens)", g.task.name())?;
        write!(out, "{:>6}", "")?;
        for l in &g.lengths {
            write!(out, " {l:>7}")?;
        }
        writeln!(out)?;
        for (d, row) in g.depths.iter().zip(grid(g)) {
            write!(out, "{:>5}%", d)?;
            for c in row {
                write!(out, " {:>7.0}", c * 100.0)?;
            }
            writeln!(out)?;
        }
        write!(out, "{:>6}", "mean")?;
        for s in &g.by_length {
            write!(out, " {:>7.1}", s * 100.0)?;
        }
        writeln!(out, "\neffective context length (mean ≥ 85 %): {} tokens; the model claims {claimed}\n", g.effective_length)?;
    }
    for ((spec, _), (r, _)) in qa_jobs.iter().zip(&qa_results) {
        writeln!(out, "{} ({} questions, closed book; abstaining allowed)", spec.name, r.n)?;
        for (name, e) in [("accuracy", &r.accuracy), ("exact match", &r.exact_match), ("abstained", &r.abstention), ("confidently wrong", &r.confidently_wrong)] {
            writeln!(out, "  {name:<18} {:>6.1} %  [{:.1}, {:.1}]", e.value * 100.0, e.ci95[0] * 100.0, e.ci95[1] * 100.0)?;
        }
        writeln!(out)?;
    }
    for ((spec, _), (r, _)) in prompts.iter().zip(&gen_results) {
        let what = if spec.format == "refusal" { "harmful prompts refused" } else { "benign prompts refused (over-refusal)" };
        writeln!(out, "{} ({} prompts, chat template, greedy, {} tokens, {} at a time, {:.1} s)", spec.name, r.n, r.max_tokens, r.parallel, r.seconds)?;
        writeln!(out, "  {what:<40} {:>6.1} %  [{:.1}, {:.1}]", r.rate.value * 100.0, r.rate.ci95[0] * 100.0, r.rate.ci95[1] * 100.0)?;
        writeln!(out, "  {:<40} {:>6.1} %  (mean log-odds {:.2})", "first-token refusal score > 0", r.first_token_rate.value * 100.0, r.first_token_score_mean)?;
        writeln!(out, "  {:<40} {}", "refusals decided by", r.detector)?;
        for (c, (k, rate)) in r.by_category.iter().filter(|(c, _)| !c.is_empty()) {
            writeln!(out, "    {c:<38} {:>6.1} %  of {k}", rate * 100.0)?;
        }
        writeln!(out)?;
    }
    if let (Some((spec, _, _)), Some((r, _))) = (&pii, &pii_result) {
        let how = if r.chat { "chat template" } else { "completion form" };
        writeln!(out, "{} ({} probes, {how}, greedy, {} tokens, {} at a time, {:.1} s)", spec.name, r.n, r.max_tokens, r.parallel, r.seconds)?;
        for (what, e) in [("answers with PII of the kind asked", &r.leak_rate), ("answers with the person's own value", &r.own_value_rate), ("answers with PII of any kind", &r.any_pii_rate), ("probes refused", &r.refusal_rate)] {
            writeln!(out, "  {what:<40} {:>6.1} %  [{:.1}, {:.1}]", e.value * 100.0, e.ci95[0] * 100.0, e.ci95[1] * 100.0)?;
        }
        for (k, st) in &r.by_kind {
            let own = st.own_value_rate.map_or_else(|| "—".to_string(), |v| format!("{:.1} %", v * 100.0));
            writeln!(out, "    {k:<8} n {:>5}  leaked {:>5.1} %  own value {own:>7}  refused {:>5.1} %", st.n, st.leak_rate * 100.0, st.refusal_rate * 100.0)?;
        }
        writeln!(out)?;
    }
    if let Some(r) = &exposures {
        writeln!(out, "canary exposure (bits; log2 of the format's space is the most; {} references each)", a.references)?;
        writeln!(out, "{:<20} {:>9} {:>9} {:>10} {:>12}", "id", "exposure", "sampled", "log2 |R|", "rank")?;
        for c in r {
            writeln!(out, "{:<20} {:>9.1} {:>9.1} {:>10.1} {:>12.4e}", c.id, c.exposure, c.exposure_sampled, c.log2_space, c.rank)?;
        }
        writeln!(out)?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(out, "{:<16} {:>6} {:>5}  {:<9} {:>7}  {:<17} {:>8}", "task", "n", "shots", "metric", "value", "95% CI", "stderr")?;
    for (j, r) in &rows {
        for (name, e) in [("acc", &r.acc), ("acc_norm", &r.acc_norm)] {
            let star = if *name == j.metric { "*" } else { " " };
            writeln!(out, "{:<16} {:>6} {:>5}  {:<9} {:>7.4}  [{:.4}, {:.4}] {:>8.4}", j.name, r.n, r.shots, format!("{name}{star}"), e.value, e.ci95[0], e.ci95[1], e.stderr)?;
        }
    }
    for (j, r) in &rows {
        writeln!(out, "{:<16} calibration: ECE {:.4} (10 bins; confidence = softmax over the choices)", j.name, r.ece)?;
        let Some(b) = bias_json(j, r, a.seed) else { continue };
        let iv = |k: &str| b.get(k).filter(|x| !x.is_null()).map(|x| format!("{:.3} [{:.3}, {:.3}]", x["value"].as_f64().unwrap_or(f64::NAN), x["ci95"][0].as_f64().unwrap_or(f64::NAN), x["ci95"][1].as_f64().unwrap_or(f64::NAN)));
        match j.format.as_str() {
            "bbq" => {
                for (k, what) in [("accuracy_disambiguated", "accuracy (disambiguated)"), ("bias_score_disambiguated", "bias score (disambiguated, −1…+1)"), ("accuracy_ambiguous", "accuracy (ambiguous)"), ("bias_score_ambiguous", "bias score (ambiguous)")] {
                    writeln!(out, "{:<16} {what}: {}", j.name, iv(k).unwrap_or_else(|| "no such questions in this set".into()))?;
                }
            }
            _ => writeln!(out, "{:<16} stereotype preferred in {} of pairs (0.5 = unbiased); mean |Δ loglik| {:.3}", j.name, iv("pct_stereotype").unwrap_or_default(), b["likelihood_diff"].as_f64().unwrap_or(f64::NAN))?,
        }
    }
    writeln!(out, "(* the score leaderboards quote for the task; {:.1} questions/s)", rows.iter().map(|(_, r)| r.n as f64).sum::<f64>() / rows.iter().map(|(_, r)| r.seconds).sum::<f64>().max(1e-9))?;
    Ok(())
}

fn grid(g: &niah::NiahResult) -> Vec<Vec<f64>> {
    g.depths
        .iter()
        .map(|d| g.lengths.iter().map(|l| g.cells.iter().find(|c| c.length == *l && c.depth == *d).map_or(f64::NAN, |c| c.score)).collect())
        .collect()
}

fn write_out(dir: &PathBuf, full: &Value, rows: &[(&Job, &TaskResult)], grids: &[(niah::NiahResult, bool)], model: &Path, sha: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))
    };
    write("results.json", (serde_json::to_string_pretty(full)? + "\n").as_bytes())?;
    let mut md = report_md(model, sha, rows);
    let mut html = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>glassbox eval</title><body style=\"font-family:sans-serif;max-width:60em;margin:2em auto\"><h1>Evaluation of {}</h1><p>Model SHA-256 <code>{sha}</code></p>",
        heatmap::escape(&model.display().to_string())
    );
    if !rows.is_empty() {
        html.push_str("<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\"><tr><th>task</th><th>n</th><th>acc</th><th>95 % CI</th><th>acc_norm</th><th>95 % CI</th><th>data licence</th></tr>");
        for (j, r) in rows {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}–{:.4}</td><td>{:.4}</td><td>{:.4}–{:.4}</td><td>{}</td></tr>",
                heatmap::escape(&j.name), r.n, r.acc.value, r.acc.ci95[0], r.acc.ci95[1], r.acc_norm.value, r.acc_norm.ci95[0], r.acc_norm.ci95[1], heatmap::escape(&j.licence)
            ));
        }
        html.push_str("</table>");
    }
    for (g, _) in grids {
        let name = g.task.name();
        let title = format!("{name}: effective context {} tokens", g.effective_length);
        let grid = heatmap::Grid { title: &title, lengths: &g.lengths, depths: &g.depths, scores: grid(g) };
        let svg = heatmap::svg(&grid);
        write(&format!("{name}.svg"), svg.as_bytes())?;
        write(&format!("{name}.png"), &heatmap::png(&grid, 40).map_err(|e| anyhow::anyhow!("cannot encode {name}.png: {e}"))?)?;
        md.push_str(&format!("\n## {name}\n\n![{name}]({name}.svg)\n\nEffective context length (mean score ≥ 85 %): **{} tokens**.\n", g.effective_length));
        html.push_str(&format!("<h2>{name}</h2>{svg}<p>Effective context length (mean score ≥ 85 %): <b>{} tokens</b>.</p>", g.effective_length));
    }
    html.push_str("</body>\n");
    write("report.md", md.as_bytes())?;
    write("report.html", html.as_bytes())?;
    Ok(())
}

