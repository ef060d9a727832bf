//! eval: score a model on multiple-choice tasks as lm-evaluation-harness does.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glassbox_eval::{EvalOptions, McItem, TaskResult, cache, catalog};
use sha2::Digest;
use serde_json::{Value, json};

use crate::cli::{EvalArgs, ModelArgs};

/// A task to run: its name, its questions, and what the report says about its data.
struct Job {
    name: String,
    items: Vec<McItem>,
    metric: String,
    licence: String,
    non_commercial: bool,
    source: String,
    data_sha256: String,
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
                       "source": format!("{}=={} {}", t.source.package, t.source.version, t.source.member), "sha256": t.sha256})
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
    writeln!(out, "\nData: scripts/fetch_eval_data.py [TASK ...] fetches and verifies it into {}.", catalog::default_cache().display())?;
    writeln!(out, "NC: the data's licence forbids commercial use; results travel with that licence.")?;
    Ok(())
}

fn jobs(a: &EvalArgs) -> Result<Vec<Job>> {
    let cache = a.data_cache.clone().unwrap_or_else(catalog::default_cache);
    let mut jobs = Vec::new();
    for name in &a.task {
        let spec = catalog::find(name)?;
        let items = catalog::load(&spec, &cache)?;
        jobs.push(Job {
            name: spec.name.clone(),
            items,
            metric: spec.metric.clone(),
            licence: spec.licence.clone(),
            non_commercial: spec.non_commercial,
            source: format!("{}=={} {}", spec.source.package, spec.source.version, spec.source.member),
            data_sha256: spec.sha256.clone(),
        });
    }
    for path in &a.data {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let items = glassbox_eval::task::parse_jsonl(&path.display().to_string(), &bytes)?;
        let name = path.file_stem().map_or_else(|| "data".to_string(), |s| s.to_string_lossy().into_owned());
        let data_sha256 = catalog::hex(&sha2::Sha256::digest(&bytes));
        jobs.push(Job { name, items, metric: "acc".into(), licence: "(your data)".into(), non_commercial: false, source: path.display().to_string(), data_sha256 });
    }
    let mut seen = std::collections::HashSet::new();
    for j in &jobs {
        if !seen.insert(j.name.clone()) {
            bail!("task {} is named twice", j.name);
        }
    }
    Ok(jobs)
}

fn task_json(job: &Job, r: &TaskResult, samples: bool) -> Value {
    let mut v = json!({
        "n": r.n, "shots": r.shots, "metric": job.metric,
        "acc": r.acc.value, "acc_norm": r.acc_norm.value,
        "stderr": {"acc": r.acc.stderr, "acc_norm": r.acc_norm.stderr},
        "ci95": {"acc": r.acc.ci95, "acc_norm": r.acc_norm.ci95},
        "seconds": r.seconds, "items_per_second": r.n as f64 / r.seconds.max(1e-9), "cached": r.cached,
        "data": {"source": job.source, "licence": job.licence, "non_commercial": job.non_commercial},
    });
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

pub fn eval(a: EvalArgs) -> Result<()> {
    if a.list {
        return list(a.json);
    }
    let Some(model) = a.model.clone() else { bail!("give a model file (or --list)") };
    let jobs = jobs(&a)?;
    let m = ModelArgs {
        model: model.clone(),
        trust: a.trust.clone(),
        policy: a.policy.clone(),
        threads: a.threads,
        ctx_size: a.ctx_size,
        exact: a.exact,
        cache_type_k: glassbox_engine::KvType::F16,
        cache_type_v: glassbox_engine::KvType::F16,
    };
    let (mut engine, sha) = crate::cmd_run::load_with_sha256(&m)?;
    let opts = EvalOptions { limit: a.limit, shots: a.shots, seed: a.seed, ..Default::default() };
    let tty = std::io::stderr().is_terminal();
    let cache_dir = a.data_cache.clone().unwrap_or_else(catalog::default_cache).join("results");
    let engine_id = cache::engine_id(engine.isa().kind().name(), a.exact);
    let mut results = Vec::new();
    for job in &jobs {
        let key = cache::key(&sha, &job.data_sha256, &opts, &engine_id);
        if !a.no_cache && let Some(r) = cache::get(&cache_dir, &key) {
            results.push(r);
            continue;
        }
        let r = glassbox_eval::evaluate(&mut engine, &job.items, &opts, |done, total| {
            if tty {
                eprint!("\r{}: {done}/{total} questions   ", job.name);
                if done == total {
                    eprintln!();
                }
            }
        })
        .with_context(|| format!("task {}", job.name))?;
        if !a.no_cache {
            cache::put(&cache_dir, &key, &r)?;
        }
        results.push(r);
    }
    let rows: Vec<(&Job, &TaskResult)> = jobs.iter().zip(&results).collect();
    let full = json!({
        "model": {"path": model.display().to_string(), "sha256": sha},
        "tasks": rows.iter().map(|(j, r)| (j.name.clone(), task_json(j, r, a.log_samples))).collect::<serde_json::Map<_, _>>(),
    });
    if let Some(dir) = &a.out {
        write_out(dir, &full, &rows, &model, &sha)?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&full)?)?;
        return Ok(());
    }
    writeln!(out, "{:<16} {:>6} {:>5}  {:<9} {:>7}  {:<17} {:>8}", "task", "n", "shots", "metric", "value", "95% CI", "stderr")?;
    for (j, r) in &rows {
        for (name, e) in [("acc", &r.acc), ("acc_norm", &r.acc_norm)] {
            let star = if *name == j.metric { "*" } else { " " };
            writeln!(out, "{:<16} {:>6} {:>5}  {:<9} {:>7.4}  [{:.4}, {:.4}] {:>8.4}", j.name, r.n, r.shots, format!("{name}{star}"), e.value, e.ci95[0], e.ci95[1], e.stderr)?;
        }
    }
    writeln!(out, "(* the score leaderboards quote for the task; {:.1} questions/s)", rows.iter().map(|(_, r)| r.n as f64).sum::<f64>() / rows.iter().map(|(_, r)| r.seconds).sum::<f64>().max(1e-9))?;
    Ok(())
}

fn write_out(dir: &PathBuf, full: &Value, rows: &[(&Job, &TaskResult)], model: &Path, sha: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let p = dir.join("results.json");
    std::fs::write(&p, serde_json::to_string_pretty(full)? + "\n").with_context(|| format!("cannot write {}", p.display()))?;
    let p = dir.join("report.md");
    std::fs::write(&p, report_md(model, sha, rows)).with_context(|| format!("cannot write {}", p.display()))?;
    Ok(())
}
