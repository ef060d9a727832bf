//! perplexity: score a text as llama-perplexity does, write a KL-divergence base file, or
//! compare against one.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use glassbox_perplexity::base::{BaseReader, BaseWriter, Header, row_len};
use glassbox_perplexity::stats::nll;
use glassbox_perplexity::{KldAccumulator, PplAccumulator, scored_per_chunk};
use serde_json::json;

use crate::cli::PerplexityArgs;

const DEFAULT_CTX: usize = 512;

/// A progress line on stderr when it is a terminal; `what` (which may sort every KLD so far) is
/// only computed then.
fn progress(done: usize, total: usize, what: impl FnOnce() -> String) {
    if std::io::stderr().is_terminal() {
        eprint!("\r[{done}/{total}] {}   ", what());
        if done == total {
            eprintln!();
        }
    }
}

fn read_text(a: &PerplexityArgs) -> Result<Option<String>> {
    match &a.file {
        None => Ok(None),
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            Ok(Some(String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", p.display()))?))
        }
    }
}

pub fn perplexity(a: PerplexityArgs) -> Result<()> {
    if a.chunks == Some(0) {
        bail!("--chunks must be at least 1");
    }
    if a.kl_divergence {
        return kl_divergence(&a);
    }
    let Some(text) = read_text(&a)? else { bail!("give the text to score with -f FILE") };
    let n_ctx = if a.model.engine.ctx_size == 0 { DEFAULT_CTX } else { a.model.engine.ctx_size };
    let mut m = a.model.clone();
    m.engine.ctx_size = n_ctx;
    let mut engine = crate::cmd_run::load(&m)?;
    let tokens = engine.perplexity_tokens(&text);
    if n_ctx < 4 || tokens.len() < 2 * n_ctx {
        bail!("perplexity with a context of {n_ctx} needs at least {} tokens; {} has {}", 2 * n_ctx, a.file.as_ref().map_or(String::new(), |p| p.display().to_string()), tokens.len());
    }
    let n_chunk = (tokens.len() / n_ctx).min(a.chunks.unwrap_or(usize::MAX));
    let n_vocab = engine.model.config.n_vocab;
    let first = n_ctx / 2;
    let mut acc = PplAccumulator::default();
    let mut writer = match &a.kl_divergence_base {
        Some(p) => Some(BaseWriter::create(p, &Header { n_ctx, n_vocab, n_chunk, tokens: tokens[..n_ctx * n_chunk].to_vec() })?),
        None => None,
    };
    engine.score_chunks(&tokens, n_ctx, n_chunk, |c, rows| {
        for (r, row) in rows.chunks_exact(n_vocab).enumerate() {
            let next = tokens[c * n_ctx + first + 1 + r] as usize;
            let v = match writer.as_mut() {
                Some(w) => w.write_row(row, next).map_err(|e| glassbox_engine::Error::Other(format!("cannot write the base file: {e}")))?,
                None => nll(row, next),
            };
            acc.add(v);
        }
        progress(c + 1, n_chunk, || format!("ppl {:.4}", acc.summary().ppl));
        Ok(())
    })?;
    if let (Some(w), Some(p)) = (writer, &a.kl_divergence_base) {
        w.finish().with_context(|| format!("cannot write {}", p.display()))?;
    }
    let s = acc.summary();
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json!({
            "model": a.model.model.display().to_string(), "n_ctx": n_ctx, "chunks": n_chunk, "tokens": s.tokens,
            "ppl": s.ppl, "ppl_unc": s.ppl_unc,
            "kl_divergence_base": a.kl_divergence_base.as_ref().map(|p| p.display().to_string()),
            "isa": format!("{:?}", engine.isa()), "threads": engine.threads(),
        }))?;
    } else {
        writeln!(out, "PPL {:.4} ± {:.4} over {} tokens ({n_chunk} chunks of {n_ctx})", s.ppl, s.ppl_unc, s.tokens)?;
        if let Some(p) = &a.kl_divergence_base {
            writeln!(out, "log-probabilities written to {}", p.display())?;
        }
    }
    Ok(())
}

fn kl_divergence(a: &PerplexityArgs) -> Result<()> {
    let base_path = a.kl_divergence_base.as_ref().expect("clap requires the base with --kl-divergence");
    let mut base = BaseReader::open(base_path)?;
    let h = base.header.clone();
    if a.model.engine.ctx_size != 0 && a.model.engine.ctx_size != h.n_ctx {
        bail!("{} was computed with chunks of {} tokens; drop -c or pass -c {}", base_path.display(), h.n_ctx, h.n_ctx);
    }
    let mut m = a.model.clone();
    m.engine.ctx_size = h.n_ctx;
    let mut engine = crate::cmd_run::load(&m)?;
    let n_vocab = engine.model.config.n_vocab;
    if n_vocab != h.n_vocab {
        bail!("{} has a vocabulary of {} tokens, the model {}: they cannot be compared", base_path.display(), h.n_vocab, n_vocab);
    }
    // The text comes from the base file; a text given too must be the same one.
    if let Some(text) = read_text(a)? {
        let t = engine.perplexity_tokens(&text);
        if t.len() < h.tokens.len() || t[..h.tokens.len()] != h.tokens[..] {
            bail!("{} does not tokenize to the tokens stored in {}: the base was computed on another text or tokenizer", a.file.as_ref().expect("read").display(), base_path.display());
        }
    }
    let n_chunk = h.n_chunk.min(a.chunks.unwrap_or(usize::MAX));
    let first = h.n_ctx / 2;
    let mut acc = KldAccumulator::default();
    let mut row = vec![0u16; row_len(n_vocab)];
    let tokens = &h.tokens;
    engine.score_chunks(tokens, h.n_ctx, n_chunk, |c, rows| {
        for (r, logits) in rows.chunks_exact(n_vocab).enumerate() {
            base.read_row(&mut row)?;
            acc.add(logits, &row, tokens[c * h.n_ctx + first + 1 + r] as usize);
        }
        progress(c + 1, n_chunk, || {
            let s = acc.summary();
            format!("KLD {:.6} same top {:.2} %", s.kld_mean, s.same_top)
        });
        Ok(())
    })?;
    debug_assert_eq!(acc.count(), n_chunk * scored_per_chunk(h.n_ctx));
    let s = acc.summary();
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json!({
            "model": a.model.model.display().to_string(), "base": base_path.display().to_string(),
            "n_ctx": h.n_ctx, "chunks": n_chunk, "tokens": s.tokens,
            "ppl": s.ppl, "ppl_unc": s.ppl_unc, "ppl_base": s.ppl_base, "ppl_base_unc": s.ppl_base_unc,
            "ppl_ratio": s.ppl_ratio, "ppl_ratio_unc": s.ppl_ratio_unc,
            "kld_mean": s.kld_mean, "kld_mean_unc": s.kld_mean_unc, "kld_median": s.kld_median,
            "kld_p99": s.kld_p99, "kld_p999": s.kld_p999, "kld_max": s.kld_max,
            "same_top": s.same_top, "same_top_unc": s.same_top_unc,
            "rms_dp": s.rms_dp, "rms_dp_unc": s.rms_dp_unc, "mean_dp": s.mean_dp, "max_abs_dp": s.max_abs_dp,
            "isa": format!("{:?}", engine.isa()), "threads": engine.threads(),
        }))?;
    } else {
        writeln!(out, "{} vs {} — {} tokens ({n_chunk} chunks of {})", a.model.model.display(), base_path.display(), s.tokens, h.n_ctx)?;
        writeln!(out, "Mean PPL(Q)           : {:>12.6} ± {:.6}", s.ppl, s.ppl_unc)?;
        writeln!(out, "Mean PPL(base)        : {:>12.6} ± {:.6}", s.ppl_base, s.ppl_base_unc)?;
        writeln!(out, "Mean PPL(Q)/PPL(base) : {:>12.6} ± {:.6}", s.ppl_ratio, s.ppl_ratio_unc)?;
        writeln!(out, "Mean    KLD           : {:>12.6} ± {:.6}", s.kld_mean, s.kld_mean_unc)?;
        writeln!(out, "Maximum KLD           : {:>12.6}", s.kld_max)?;
        writeln!(out, "99.9%   KLD           : {:>12.6}", s.kld_p999)?;
        writeln!(out, "99.0%   KLD           : {:>12.6}", s.kld_p99)?;
        writeln!(out, "Median  KLD           : {:>12.6}", s.kld_median)?;
        writeln!(out, "RMS Δp                : {:>11.3} % ± {:.3} %", s.rms_dp, s.rms_dp_unc)?;
        writeln!(out, "Same top p            : {:>11.3} % ± {:.3} %", s.same_top, s.same_top_unc)?;
    }
    Ok(())
}
