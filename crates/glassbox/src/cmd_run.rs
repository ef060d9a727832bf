//! run, chat, tokenize, bench: convert arguments into engine requests and print results.

use std::io::{BufRead, Write};

use anyhow::{Context, Result, bail};
use glassbox_engine::{Engine, EngineOptions, GenerateRequest, SamplingParams};
use glassbox_template::Message;
use serde_json::json;

use crate::cli::{BenchArgs, ChatArgs, ModelArgs, RunArgs, SamplingArgs, TokenizeArgs};

/// Engine options from `--ctx-size` / `--threads` (default: physical cores).
pub fn engine_options(ctx_size: usize, threads: Option<usize>) -> Result<EngineOptions> {
    let mut opts = EngineOptions { ctx_size, ..EngineOptions::default() };
    if let Some(t) = threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        opts.threads = t;
    }
    Ok(opts)
}

pub fn load(m: &ModelArgs) -> Result<Engine> {
    load_with_sha256(m).map(|(e, _)| e)
}

/// Load and verify a model; also returns the SHA-256 of the bytes that were verified.
pub fn load_with_sha256(m: &ModelArgs) -> Result<(Engine, String)> {
    let mut opts = engine_options(m.engine.ctx_size, m.engine.threads)?;
    opts.exact = m.engine.exact;
    opts.fast_logits = m.engine.fast_logits;
    opts.cache_types = (m.cache_type_k, m.cache_type_v);
    let policy = crate::cmd_trust::policy(&m.trust)?;
    let (mut engine, v) = Engine::load_verified(&m.model, &opts, &policy).with_context(|| format!("cannot load model {}", m.model.display()))?;
    crate::cmd_trust::announce(&m.model, &v.sha256, &v.verdict, &policy);
    if m.engine.steer.is_some() || m.engine.ablate.is_some() {
        let (s, what) = crate::cmd_abliterate::run_edits(&m.model, m.engine.steer.as_deref(), m.engine.ablate.as_deref())?;
        engine.set_steering(s).context("--steer/--ablate")?;
        what.iter().for_each(|w| eprintln!("{w}"));
    }
    if !m.engine.lora.is_empty() {
        crate::cmd_lora::attach_all(&mut engine, &m.engine.lora, &policy, &m.model)?;
    }
    // The file is verified; now the organisation's policy, before a single token.
    if let Some(p) = &m.engine.policy {
        crate::cmd_audit::gate(&m.model, p)?;
    }
    Ok((engine, v.sha256))
}

fn sampling(s: &SamplingArgs) -> SamplingParams {
    let seed = s.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
    });
    SamplingParams {
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_penalty: s.repeat_penalty,
        repeat_last_n: s.repeat_last_n,
        presence_penalty: s.presence_penalty,
        frequency_penalty: s.frequency_penalty,
        seed,
        logit_bias: Vec::new(),
    }
}

fn messages(system: &Option<String>, user: &str) -> Vec<Message> {
    let mut m = Vec::new();
    if let Some(s) = system {
        m.push(Message::new("system", s));
    }
    m.push(Message::new("user", user));
    m
}

/// A JSON schema file as a constraint on the model's output.
fn schema_constraint(file: &std::path::Path, engine: &Engine) -> Result<glassbox_engine::Constraint> {
    const MAX: u64 = 1 << 20;
    let len = std::fs::metadata(file).with_context(|| format!("cannot read JSON schema {}", file.display()))?.len();
    if len > MAX {
        bail!("JSON schema {} is {len} bytes; the limit is {MAX}", file.display());
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read JSON schema {}", file.display()))?;
    let schema: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("JSON schema {} is not valid JSON", file.display()))?;
    let grammar = glassbox_constrain::compile_schema(&schema, &glassbox_constrain::Limits::default()).with_context(|| format!("JSON schema {}", file.display()))?;
    Ok(glassbox_engine::Constraint { grammar: std::sync::Arc::new(grammar), vocab: std::sync::Arc::new(glassbox_engine::vocab_index(&engine.tokenizer)), trigger: None })
}

pub fn run(a: RunArgs) -> Result<()> {
    let mut engine = load(&a.model)?;
    let prompt = if a.raw {
        if a.system.is_some() {
            bail!("--system needs the chat template; it cannot be combined with --raw");
        }
        engine.tokenizer.encode(&a.prompt)
    } else {
        if !engine.has_chat_template() {
            bail!("{} has no chat template (it is probably a base model); use --raw to send the prompt as plain text", a.model.model.display());
        }
        let rendered = engine.render_chat(&messages(&a.system, &a.prompt))?;
        engine.tokenize_chat(&rendered)
    };
    let constraint = a.json_schema.as_deref().map(|f| schema_constraint(f, &engine)).transpose()?;
    let req = GenerateRequest { constraint, prompt, max_tokens: a.sampling.max_tokens, sampling: sampling(&a.sampling), stop: a.sampling.stop.clone() };
    let mut spec = speculation(&a.spec, &a.model, &engine)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut io_err = None;
    let start = std::time::Instant::now();
    let mut first_piece: Option<std::time::Instant> = None;
    let on_text = |piece: &str| {
        first_piece.get_or_insert_with(std::time::Instant::now);
        if !a.json
            && io_err.is_none()
            && let Err(e) = out.write_all(piece.as_bytes()).and_then(|_| out.flush())
        {
            io_err = Some(e);
        }
    };
    let (g, stats) = match spec.as_mut() {
        Some(s) => {
            let (g, st) = engine.generate_speculative(&req, s, on_text)?;
            (g, Some(st))
        }
        None => (engine.generate(&req, on_text)?, None),
    };
    let end = std::time::Instant::now();
    if let Some(e) = io_err {
        return Err(e.into());
    }
    if a.json {
        let decode_tok_s = decode_rate(&g, first_piece, end);
        let mut v = json!({
            "text": g.text, "ids": g.ids, "prompt_tokens": g.prompt_tokens,
            "completion_tokens": g.completion_tokens, "finish_reason": g.finish_reason.as_str(),
            "elapsed_s": (end - start).as_secs_f64(), "decode_tok_s": decode_tok_s,
        });
        if a.json_schema.is_some() {
            v["constraint_s"] = json!(g.constraint_s);
        }
        if let Some(st) = stats {
            v["speculative"] = json!({
                "drafter": if a.spec.lookup { "lookup" } else { "model" }, "draft_max": a.spec.draft_max,
                "passes": st.passes, "drafted": st.drafted, "accepted": st.accepted, "acceptance": st.acceptance(),
            });
        }
        writeln!(out, "{v}")?;
    } else {
        writeln!(out)?;
    }
    Ok(())
}

/// Decode speed: tokens after the first over the time from the first piece of text to `end`
/// (0 when there is no second token to time).
fn decode_rate(g: &glassbox_engine::Generation, first: Option<std::time::Instant>, end: std::time::Instant) -> f64 {
    let s = first.map_or(0.0, |t| (end - t).as_secs_f64());
    if s > 0.0 && g.completion_tokens > 1 { (g.completion_tokens - 1) as f64 / s } else { 0.0 }
}

/// Greedy decode of `--gen-tokens` after a real prompt, timed plainly and with drafts, in
/// alternation: decode tok/s of each (median), the speed-up, the acceptance, and whether the
/// two outputs are identical (they must be: speculative decoding is lossless).
fn bench_speculative(a: &BenchArgs) -> Result<()> {
    let Some(path) = &a.prompt_file else { bail!("--lookup/--draft benchmarks need a real prompt: --prompt-file FILE") };
    if a.repetitions == 0 || a.gen_tokens == 0 {
        bail!("--repetitions and --gen-tokens must be at least 1");
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {} (UTF-8 text)", path.display()))?;
    let mut engine = load(&a.model)?;
    let prompt = if engine.has_chat_template() {
        let rendered = engine.render_chat(&messages(&None, &text))?;
        engine.tokenize_chat(&rendered)
    } else {
        engine.tokenizer.encode(&text)
    };
    let Some(mut spec) = speculation(&a.spec, &a.model, &engine)? else { bail!("no drafter") };
    let req = GenerateRequest { constraint: None, prompt, max_tokens: a.gen_tokens, sampling: SamplingParams { temperature: 0.0, ..Default::default() }, stop: vec![] };
    let (mut plain, mut fast, mut stats, mut same, mut n_out) = (Vec::new(), Vec::new(), None, true, 0);
    let warm = GenerateRequest { constraint: None, prompt: req.prompt.clone(), max_tokens: 2, sampling: req.sampling.clone(), stop: vec![] };
    engine.generate(&warm, |_| {})?;
    for _ in 0..a.repetitions {
        let mut first = None;
        let g = engine.generate(&req, |_| {
            first.get_or_insert_with(std::time::Instant::now);
        })?;
        plain.push(decode_rate(&g, first, std::time::Instant::now()));
        let mut first = None;
        let (gs, st) = engine.generate_speculative(&req, &mut spec, |_| {
            first.get_or_insert_with(std::time::Instant::now);
        })?;
        fast.push(decode_rate(&gs, first, std::time::Instant::now()));
        same &= g.ids == gs.ids;
        n_out = g.completion_tokens;
        stats = Some(st);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (p, f) = (med(&mut plain), med(&mut fast));
    let st = stats.unwrap_or_default();
    let drafter = if a.spec.lookup { "lookup".to_string() } else { a.spec.draft.as_ref().map_or(String::new(), |d| d.display().to_string()) };
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json!({
            "model": a.model.model.display().to_string(), "threads": engine.threads(), "isa": format!("{:?}", engine.isa()),
            "prompt_tokens": req.prompt.len(), "gen_tokens": n_out, "repetitions": a.repetitions,
            "drafter": drafter, "draft_max": a.spec.draft_max,
            "plain_decode_tok_s": p, "speculative_decode_tok_s": f, "speedup": f / p.max(1e-9),
            "passes": st.passes, "drafted": st.drafted, "accepted": st.accepted, "acceptance": st.acceptance(),
            "identical_output": same,
        }))?;
    } else {
        writeln!(out, "decode {p:.1} tok/s plain, {f:.1} tok/s with {drafter} (×{:.2}); {} of {} drafts accepted ({:.0} %), {} passes for {n_out} tokens; outputs identical: {same}",
            f / p.max(1e-9), st.accepted, st.drafted, 100.0 * st.acceptance(), st.passes)?;
    }
    if !same {
        bail!("speculative output differed from plain decoding: a bug, please report it");
    }
    Ok(())
}

/// The drafter `--lookup` / `--draft FILE` ask for (a draft file is verified like the model).
fn speculation(s: &crate::cli::SpecArgs, m: &ModelArgs, engine: &Engine) -> Result<Option<glassbox_engine::SpecOptions>> {
    use glassbox_engine::{DraftModel, Drafter, SpecOptions};
    let max_draft = s.draft_max as usize;
    if s.lookup {
        return Ok(Some(SpecOptions { drafter: Drafter::LOOKUP, max_draft }));
    }
    let Some(path) = &s.draft else { return Ok(None) };
    // The lockfile, trust store and --locked apply to the draft as to the model; --sha256 names
    // the model's digest only.
    let mut policy = crate::cmd_trust::policy(&m.trust)?;
    policy.sha256 = None;
    let (d, v) = DraftModel::load_verified(path, &policy, engine, engine.ctx_size())
        .with_context(|| format!("cannot load draft model {}", path.display()))?;
    crate::cmd_trust::announce(path, &v.sha256, &v.verdict, &policy);
    Ok(Some(SpecOptions { drafter: Drafter::Model(Box::new(d)), max_draft }))
}

pub fn chat(a: ChatArgs) -> Result<()> {
    let mut engine = load(&a.model)?;
    if !engine.has_chat_template() {
        bail!("{} has no chat template (it is probably a base model); use `glassbox run --raw`", a.model.model.display());
    }
    let mut history: Vec<Message> = Vec::new();
    if let Some(s) = &a.system {
        history.push(Message::new("system", s));
    }
    eprintln!("chatting with {} (ctx {}); /exit or Ctrl-D to quit, /reset to clear history", a.model.model.display(), engine.ctx_size());
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut params = sampling(&a.sampling);
    loop {
        eprint!("> ");
        let Some(line) = lines.next() else { break };
        let line = line?;
        let text = line.trim();
        match text {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.retain(|m| m.role == "system");
                eprintln!("(history cleared)");
                continue;
            }
            _ => {}
        }
        history.push(Message::new("user", text));
        let rendered = engine.render_chat(&history)?;
        let prompt = engine.tokenize_chat(&rendered);
        if prompt.len() + 1 > engine.ctx_size() {
            history.pop();
            eprintln!("error: the conversation ({} tokens) no longer fits the context ({}); /reset to start over", prompt.len(), engine.ctx_size());
            continue;
        }
        let req = GenerateRequest { constraint: None, prompt, max_tokens: a.sampling.max_tokens, sampling: params.clone(), stop: a.sampling.stop.clone() };
        let mut out = std::io::stdout().lock();
        let g = engine.generate(&req, |piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        })?;
        writeln!(out)?;
        history.push(Message::new("assistant", &g.text));
        params.seed = params.seed.wrapping_add(1);
    }
    Ok(())
}

pub fn tokenize(a: TokenizeArgs) -> Result<()> {
    let file = glassbox_gguf::GgufFile::open(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let tok = glassbox_engine_tokenizer(&file)?;
    let ids = if a.no_special { tok.encode_with(&a.text, false, false, true) } else { tok.encode(&a.text) };
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json!({ "ids": ids }))?;
    } else {
        for id in ids {
            let piece = tok.token_bytes(id, true)?;
            writeln!(out, "{id:>8} -> {:?}", String::from_utf8_lossy(&piece))?;
        }
    }
    Ok(())
}

fn glassbox_engine_tokenizer(file: &glassbox_gguf::GgufFile) -> Result<glassbox_engine::Tokenizer> {
    Ok(glassbox_engine::Tokenizer::from_gguf(file.gguf())?)
}

/// Drop the file's pages from the page cache (clean pages only; no privileges needed).
fn evict(path: &std::path::Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: plain syscall on a valid descriptor.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    anyhow::ensure!(rc == 0, "posix_fadvise failed on {}: {rc}", path.display());
    Ok(())
}

fn first_token(engine: &mut Engine) -> Result<()> {
    let prompt = engine.tokenizer.encode("Hello");
    let req = GenerateRequest { constraint: None, prompt, max_tokens: 1, sampling: SamplingParams { temperature: 0.0, ..Default::default() }, stop: vec![] };
    engine.generate(&req, |_| {})?;
    Ok(())
}

fn cold_start(a: &BenchArgs) -> Result<()> {
    let m = &a.model;
    let opts = engine_options(64, m.engine.threads)?;
    let policy = crate::cmd_trust::policy(&m.trust)?;
    if let Some(p) = &m.engine.policy {
        glassbox_trust::open_verified(&m.model, &policy)?;
        crate::cmd_audit::gate(&m.model, p)?;
    }
    let (mut verified, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..a.repetitions.max(1) {
        evict(&m.model)?;
        let t = std::time::Instant::now();
        let (mut e, _) = Engine::load_verified(&m.model, &opts, &policy)?;
        first_token(&mut e)?;
        verified.push(t.elapsed().as_secs_f64());
        drop(e);
        evict(&m.model)?;
        let t = std::time::Instant::now();
        let mut e = Engine::load(&m.model, &opts)?;
        first_token(&mut e)?;
        plain.push(t.elapsed().as_secs_f64());
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (v, p) = (med(&mut verified), med(&mut plain));
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json!({"model": m.model.display().to_string(), "cold_start_verified_s": v, "cold_start_unverified_s": p, "ratio": v / p}))?;
    } else {
        writeln!(out, "cold start to first token: verified {:.3} s, unverified {:.3} s, ratio {:.2}", v, p, v / p)?;
    }
    Ok(())
}

pub fn bench(a: BenchArgs) -> Result<()> {
    if a.cold_start {
        return cold_start(&a);
    }
    if a.spec.lookup || a.spec.draft.is_some() {
        return bench_speculative(&a);
    }
    let mut m = a.model.clone();
    if m.engine.ctx_size == 0 {
        m.engine.ctx_size = a.prompt_tokens.max(a.gen_tokens).max(16);
    }
    let mut engine = load(&m)?;
    if a.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    // Warm-up: touch every weight once (page cache, CPU frequency).
    engine.bench(a.prompt_tokens.min(16), 2)?;
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for _ in 0..a.repetitions {
        if a.prompt_tokens > 0 {
            pp.push(engine.bench(a.prompt_tokens, 0)?.prefill_tok_s);
        }
        if a.gen_tokens > 0 {
            tg.push(engine.bench(0, a.gen_tokens)?.decode_tok_s);
        }
    }
    let med = |v: &mut Vec<f64>| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (pps, tgs) = (med(&mut pp), med(&mut tg));
    // Decode of a memory-bound model is limited by bandwidth: bytes read per token over the
    // read bandwidth measured here, now, with the same threads.
    let per_token = engine.model.bytes_per_token();
    let bw = engine.read_bandwidth((1usize << 30).max(2 * per_token));
    let limit = bw / per_token as f64;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", json!({
            "model": a.model.model.display().to_string(), "threads": engine.threads(), "isa": format!("{:?}", engine.isa()),
            "prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens, "repetitions": a.repetitions,
            "prefill_tok_s": pps, "decode_tok_s": tgs,
            "bytes_per_token": per_token, "read_bandwidth_gb_s": bw / 1e9, "decode_limit_tok_s": limit,
            "decode_of_limit": if limit > 0.0 { tgs / limit } else { 0.0 },
        }))?;
    } else {
        writeln!(out, "model {} | threads {} | isa {:?}", a.model.model.display(), engine.threads(), engine.isa())?;
        writeln!(out, "prefill pp{:<5} {pps:>9.2} tok/s", a.prompt_tokens)?;
        writeln!(out, "decode  tg{:<5} {tgs:>9.2} tok/s", a.gen_tokens)?;
        writeln!(out, "weights read per token {:.1} MB; read bandwidth {:.1} GB/s → decode limit {limit:.1} tok/s ({:.0} % reached)",
            per_token as f64 / 1e6, bw / 1e9, 100.0 * tgs / limit)?;
    }
    Ok(())
}
