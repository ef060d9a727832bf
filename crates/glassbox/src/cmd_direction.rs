//! `glassbox direction MODEL --positive P --negative N -o dir.gguf`: difference-of-means
//! directions per layer (glassbox-edit), from prompt files or pinned prompt tasks, through the
//! model's chat template; written atomically with the model's and the data's digests.

use std::io::Write;

use anyhow::{Context, Result, bail};
use glassbox_eval::catalog;
use glassbox_gguf::Value;
use glassbox_engine::Message;
use serde_json::json;
use sha2::Digest;

use crate::cli::{DirectionArgs, ModelArgs};

/// Prompts from a JSONL file (`{"id", "prompt"}` per line) or a pinned prompt task by name;
/// with their data's SHA-256.
fn prompts(arg: &str, cache: &std::path::Path) -> Result<(Vec<String>, String)> {
    let path = std::path::Path::new(arg);
    if path.exists() {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {arg}"))?;
        let items = glassbox_eval::task::parse_prompt_jsonl(arg, &bytes)?;
        return Ok((items.into_iter().map(|i| i.prompt).collect(), catalog::hex(&sha2::Sha256::digest(&bytes))));
    }
    let spec = catalog::find(arg).with_context(|| format!("{arg} is neither a file nor a pinned task"))?;
    if !["refusal", "overrefusal"].contains(&spec.format.as_str()) {
        bail!("task {arg} is not a prompt set (refusal, overrefusal and harmbench are)");
    }
    let items = catalog::load_prompts(&spec, cache)?;
    Ok((items.into_iter().map(|i| i.prompt).collect(), spec.sha256.clone()))
}

pub fn direction(a: DirectionArgs) -> Result<()> {
    crate::cmd_quantize::check_output(&a.output, a.force)?;
    let cache = a.data_cache.clone().unwrap_or_else(catalog::default_cache);
    let (pos, pos_sha) = prompts(&a.positive, &cache)?;
    let (neg, neg_sha) = prompts(&a.negative, &cache)?;
    if a.select > 0 && (pos.len() < a.limit + a.select || neg.len() < a.limit + a.select) {
        bail!("--select {} needs {} prompts in each set after the first {}; they have {} and {}", a.select, a.select, a.limit, pos.len(), neg.len());
    }
    if !a.engine.lora.is_empty() {
        bail!("--lora: a direction file records the model file it came from, not adapters; merge the adapter into a file first");
    }
    let m = ModelArgs { model: a.model.clone(), trust: a.trust.clone(), engine: a.engine.clone(), cache_type_k: glassbox_engine::KvType::F16, cache_type_v: glassbox_engine::KvType::F16 };
    let (mut engine, sha) = crate::cmd_run::load_with_sha256(&m)?;
    if !engine.has_chat_template() {
        bail!("{} has no chat template: directions are found on chat prompts", a.model.display());
    }
    // Each prompt as one user message through the model's chat template.
    let render = |e: &glassbox_engine::Engine, set: &[String]| -> Result<Vec<Vec<u32>>> {
        set.iter().map(|p| Ok(e.tokenize_chat(&e.render_chat(&[Message::new("user", p)])?))).collect()
    };
    let (p, n) = (render(&engine, &pos[..a.limit.min(pos.len())])?, render(&engine, &neg[..a.limit.min(neg.len())])?);
    let started = std::time::Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let d = glassbox_edit::direction::find(&mut engine, &p, &n, a.positions, |done, total| {
        if tty {
            eprint!("\rdirection: {done}/{total} prompts   ");
            if done == total {
                eprintln!();
            }
        }
    })?;
    let mut selection = None;
    if a.select > 0 {
        let held = a.limit..a.limit + a.select;
        let (hp, hn) = (render(&engine, &pos[held.clone()])?, render(&engine, &neg[held])?);
        let toks = glassbox_eval::refusal::refusal_tokens(&engine.tokenizer);
        let max_layer = d.n_layer * 4 / 5;
        let (baseline, scores) = glassbox_edit::direction::score_candidates(&mut engine, &d, &hp, &hn, &toks, max_layer, |done, total| {
            if tty {
                eprint!("\rselection: {done}/{total} candidates   ");
                if done == total {
                    eprintln!();
                }
            }
        })?;
        let chosen = glassbox_edit::direction::pick(&scores, a.max_kl).cloned();
        selection = Some((baseline, scores, chosen));
    }
    let seconds = started.elapsed().as_secs_f64();
    let arch = engine.model.config.arch.name();
    let name = a.model.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let mut prov = crate::cmd_quantize::lineage(&sha, &name, "direction", &format!("positions={} limit={}", a.positions, a.limit));
    prov.push(("glassbox.direction.positive.sha256".into(), Value::String(pos_sha)));
    prov.push(("glassbox.direction.negative.sha256".into(), Value::String(neg_sha)));
    prov.push(("glassbox.direction.positive.source".into(), Value::String(a.positive.clone())));
    prov.push(("glassbox.direction.negative.source".into(), Value::String(a.negative.clone())));
    if let Some((baseline, _, Some(c))) = &selection {
        prov.push(("glassbox.direction.selected.layer".into(), Value::U64(c.layer as u64)));
        prov.push(("glassbox.direction.selected.position".into(), Value::U64(c.position as u64)));
        prov.push(("glassbox.direction.selected.refusal_score".into(), Value::F64(c.refusal_score)));
        prov.push(("glassbox.direction.selected.kl".into(), Value::F64(c.kl)));
        prov.push(("glassbox.direction.selected.baseline_refusal_score".into(), Value::F64(*baseline)));
        prov.push(("glassbox.direction.selected.held_out".into(), Value::U64(a.select as u64)));
    }
    crate::cmd_quantize::write_atomically(&a.output, |w| Ok(glassbox_edit::direction::to_gguf(&d, arch, &sha, &prov, w)?))?;
    let mut best: Vec<&glassbox_edit::direction::Candidate> = d.stats.iter().collect();
    best.sort_by(|x, y| y.separation.total_cmp(&x.separation));
    let mut out = std::io::stdout().lock();
    if a.json {
        let c: Vec<_> = d.stats.iter().map(|c| json!({"layer": c.layer, "position": c.position, "norm": c.norm, "separation": c.separation})).collect();
        let sel = selection.as_ref().map(|(b, s, c)| {
            json!({"baseline_refusal_score": b, "max_kl": a.max_kl, "held_out": a.select,
                   "chosen": c.as_ref().map(|c| json!({"layer": c.layer, "position": c.position, "refusal_score": c.refusal_score, "kl": c.kl})),
                   "scores": s.iter().map(|c| json!({"layer": c.layer, "position": c.position, "refusal_score": c.refusal_score, "kl": c.kl})).collect::<Vec<_>>()})
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json!({"model": {"path": a.model.display().to_string(), "sha256": sha}, "output": a.output.display().to_string(), "positive": d.n_positive, "negative": d.n_negative, "positions": d.positions, "seconds": seconds, "candidates": c, "selection": sel}))?)?;
    } else {
        writeln!(out, "{}: {} positive × {} negative prompts, {} layers × {} positions, {:.1} s → {}", a.model.display(), d.n_positive, d.n_negative, d.n_layer, d.positions, seconds, a.output.display())?;
        writeln!(out, "best separated (gap between the sets' projections, in pooled standard deviations):")?;
        for c in best.iter().take(5) {
            writeln!(out, "  layer {:>3}  position −{}  separation {:>6.2}  norm {:>8.3}", c.layer, c.position + 1, c.separation, c.norm)?;
        }
        if let Some((baseline, scores, chosen)) = &selection {
            writeln!(out, "selection on {} held-out prompts per set (refusal log-odds unablated {baseline:+.2}; lower is fewer refusals):", a.select)?;
            for s in scores.iter().take(8) {
                writeln!(out, "  layer {:>3}  position −{}  refusal score {:>+7.2}  first-token KL {:.3}", s.layer, s.position + 1, s.refusal_score, s.kl)?;
            }
            match chosen {
                Some(c) => writeln!(out, "chosen: layer {} position −{} (KL ≤ {}); `glassbox abliterate` uses it unless --layer is given", c.layer, c.position + 1, a.max_kl)?,
                None => writeln!(out, "no candidate keeps the first-token KL ≤ {}: none chosen", a.max_kl)?,
            }
        }
    }
    Ok(())
}
