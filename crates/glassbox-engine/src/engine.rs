use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use glassbox_gguf::GgufFile;
use glassbox_kernels::{Isa, ThreadPool};
use glassbox_models::{KvCache, KvType, Logits, Model, Scratch, SeqBatch, Steering};
use glassbox_template::{ChatTemplate, Message, RenderOptions};
use glassbox_tokenizer::Tokenizer;

use crate::constraint::Constraint;
use crate::sampler::SamplingParams;
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub threads: usize,
    /// Context size (tokens) of each sequence's KV cache; 0 = the model's training context,
    /// capped at 4096.
    pub ctx_size: usize,
    /// Tokens per prefill chunk.
    pub batch_size: usize,
    /// Exact mode: dequantize every weight to F32 at load and compute every product in F32 —
    /// what the exactly dequantized F32 file computes (KLD ~1e-6 against it instead of ~1e-3),
    /// at F32 memory and speed.
    pub exact: bool,
    /// How KV caches store K and V (llama.cpp's `--cache-type-k/-v`): f16 or q8_0.
    pub cache_types: (KvType, KvType),
    /// Round the output layer's activations to 8 bits once, as llama.cpp does, instead of
    /// carrying each row's rounding error in a second pass (faster when many logits rows are
    /// scored; about twice the KL divergence from the exact model; decode speed is the same).
    pub fast_logits: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { threads: physical_cores(), ctx_size: 0, batch_size: 512, exact: false, cache_types: (KvType::F16, KvType::F16), fast_logits: false }
    }
}

/// Physical cores (not hyper-threads), from /proc/cpuinfo where available.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else { return logical };
    let mut cores = std::collections::HashSet::new();
    let (mut phys, mut core) = (None, None);
    for line in info.lines() {
        if let Some(v) = line.strip_prefix("physical id") {
            phys = v.split(':').nth(1).map(|s| s.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("core id") {
            core = v.split(':').nth(1).map(|s| s.trim().to_owned());
        } else if line.trim().is_empty()
            && let (Some(p), Some(c)) = (phys.take(), core.take()) {
                cores.insert((p, c));
            }
    }
    if cores.is_empty() { logical } else { cores.len().min(logical) }
}

#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// Output held to a grammar (structured output, tool calls).
    pub constraint: Option<Constraint>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Generation {
    pub text: String,
    pub ids: Vec<u32>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish_reason: FinishReason,
    /// Seconds spent holding the output to its grammar (checks, masks, advances); `None` where
    /// not measured (batched generation through the scheduler).
    pub constraint_s: Option<f64>,
}

/// How a loaded file was verified.
#[derive(Clone, Debug)]
pub struct Verification {
    pub sha256: String,
    pub size: u64,
    pub verdict: glassbox_trust::Verdict,
}

#[derive(Clone, Debug)]
pub struct BenchResult {
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub prefill_s: f64,
    pub decode_s: f64,
}

/// What request preparation needs (tokenizer, chat template, context size), shareable across
/// threads while the model itself stays with whoever runs it.
#[derive(Clone)]
pub struct Frontend {
    pub tokenizer: Arc<Tokenizer>,
    template: Option<Arc<ChatTemplate>>,
    pub ctx_size: usize,
}

impl Frontend {
    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// Render messages with the model's chat template (generation prompt appended).
    pub fn render_chat(&self, messages: &[Message]) -> Result<String> {
        self.render_chat_with_tools(messages, None)
    }

    /// The chat template's source, if the model has one.
    pub fn template_source(&self) -> Option<&str> {
        self.template.as_ref().map(|t| t.source())
    }

    /// Render messages with tool definitions in the template's `tools` variable.
    pub fn render_chat_with_tools(&self, messages: &[Message], tools: Option<&serde_json::Value>) -> Result<String> {
        let t = self.template.as_ref().ok_or(Error::NoChatTemplate)?;
        let tok = &self.tokenizer;
        let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_owned();
        let opts = RenderOptions {
            add_generation_prompt: true,
            bos_token: text(tok.bos),
            eos_token: text(tok.eos),
            now: None,
            tools: tools.cloned(),
        };
        Ok(t.render(messages, &opts)?)
    }

    /// Tokenize a rendered chat prompt. The template already wrote any BOS text, so BOS is
    /// added only if the rendered text does not begin with it (as llama.cpp does).
    pub fn tokenize_chat(&self, rendered: &str) -> Vec<u32> {
        let tok = &self.tokenizer;
        let bos_text = tok.bos.and_then(|b| tok.token_text(b)).unwrap_or("");
        let add_bos = tok.add_bos && !(bos_text.is_empty() || rendered.starts_with(bos_text));
        tok.encode_with(rendered, add_bos, false, true)
    }
}

pub struct Engine {
    pub model: Model,
    pub tokenizer: Arc<Tokenizer>,
    template: Option<Arc<ChatTemplate>>,
    pub(crate) pool: ThreadPool,
    pub(crate) isa: Isa,
    pub(crate) scratch: Scratch,
    ctx_size: usize,
    pub(crate) batch_size: usize,
    pub(crate) ll: crate::loglik::LoglikScratch,
    /// LoRA adapters attached (adapters.rs), in index order (which of them every sequence uses
    /// is the model's to say).
    pub(crate) adapters: Vec<crate::adapters::Attached>,
}

impl Engine {
    pub fn load(path: &Path, opts: &EngineOptions) -> Result<Engine> {
        let file = Arc::new(GgufFile::open(path)?);
        Self::from_file(file, opts)
    }

    /// Load a model only after its bytes match a pin under `policy` (SHA-256 over the very
    /// mapping that is then parsed). Nothing of the file is parsed before that.
    pub fn load_verified(path: &Path, opts: &EngineOptions, policy: &glassbox_trust::Policy) -> Result<(Engine, Verification)> {
        let v = glassbox_trust::open_verified(path, policy)?;
        let info = Verification { sha256: v.sha256.clone(), size: v.size, verdict: v.verdict.clone() };
        let file = GgufFile::from_map(path, v.map, &Default::default())?;
        Ok((Self::from_file(Arc::new(file), opts)?, info))
    }

    pub fn from_file(file: Arc<GgufFile>, opts: &EngineOptions) -> Result<Engine> {
        let tokenizer = Tokenizer::from_gguf(file.gguf())?;
        let template = match file.gguf().get_str("tokenizer.chat_template")? {
            Some(src) => Some(Arc::new(ChatTemplate::new(src, Default::default())?)),
            None => None,
        };
        let mut model = Model::from_file(file)?;
        let isa = Isa::detect();
        if opts.exact {
            model.dequantize_f32();
        }
        model.pack(isa);
        model.set_cache_types(opts.cache_types.0, opts.cache_types.1)?;
        model.set_precise_output(!opts.fast_logits);
        if tokenizer.n_vocab() != model.config.n_vocab {
            return Err(Error::Other(format!(
                "tokenizer has {} tokens but the model's embedding has {}",
                tokenizer.n_vocab(), model.config.n_vocab
            )));
        }
        let ctx_size = if opts.ctx_size == 0 { model.config.ctx_train.min(4096) } else { opts.ctx_size };
        Ok(Engine {
            model,
            tokenizer: Arc::new(tokenizer),
            template,
            pool: ThreadPool::new(opts.threads.max(1)),
            isa,
            scratch: Scratch::default(),
            ctx_size,
            batch_size: opts.batch_size.max(1),
            ll: Default::default(),
            adapters: Vec::new(),
        })
    }

    pub fn ctx_size(&self) -> usize {
        self.ctx_size
    }
    pub fn isa(&self) -> Isa {
        self.isa
    }
    pub fn threads(&self) -> usize {
        self.pool.n_threads()
    }
    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    pub fn frontend(&self) -> Frontend {
        Frontend { tokenizer: Arc::clone(&self.tokenizer), template: self.template.clone(), ctx_size: self.ctx_size }
    }

    pub fn render_chat(&self, messages: &[Message]) -> Result<String> {
        self.frontend().render_chat(messages)
    }

    pub fn tokenize_chat(&self, rendered: &str) -> Vec<u32> {
        self.frontend().tokenize_chat(rendered)
    }

    /// Turn this engine into a continuous-batching scheduler running up to `max_running`
    /// sequences at once, prefilling at most `prefill_chunk` prompt tokens per step.
    pub fn into_scheduler(self, max_running: usize, prefill_chunk: usize) -> (crate::Scheduler, Frontend) {
        let fe = self.frontend();
        (crate::Scheduler::new(self, max_running, prefill_chunk), fe)
    }

    /// A continuous-batching scheduler over this engine for a while (e.g. a batch of
    /// generations in an evaluation); the engine is usable again once it is dropped.
    pub fn scheduler(&mut self, max_running: usize, prefill_chunk: usize) -> crate::Scheduler<&mut Engine> {
        crate::Scheduler::new(self, max_running, prefill_chunk)
    }

    pub(crate) fn new_cache(&self) -> KvCache {
        KvCache::new(&self.model.config, self.ctx_size)
    }

    /// Feed `tokens` into `cache` in chunks; returns the last token's logits if asked.
    pub(crate) fn prefill(&mut self, cache: &mut KvCache, tokens: &[u32], want: bool, out: &mut Vec<f32>) -> Result<()> {
        let chunks: Vec<&[u32]> = tokens.chunks(self.batch_size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let logits = if last && want { Logits::Last } else { Logits::None };
            let mut b = [SeqBatch { tokens: chunk, cache: &mut *cache, logits }];
            self.model.forward(&self.pool, self.isa, &mut b, &mut self.scratch, out)?;
        }
        Ok(())
    }

    /// The log-probabilities of the token after `prompt`, over the whole vocabulary (what a
    /// first-token divergence between two models compares). Errors name a prompt that is empty
    /// or longer than the context.
    pub fn next_token_logprobs(&mut self, prompt: &[u32]) -> Result<Vec<f32>> {
        if prompt.is_empty() || prompt.len() > self.ctx_size {
            return Err(Error::Other(format!("a prompt of {} tokens; the context size is {}", prompt.len(), self.ctx_size)));
        }
        let mut cache = KvCache::new(&self.model.config, prompt.len());
        let mut out = Vec::new();
        self.prefill(&mut cache, prompt, true, &mut out)?;
        let (max, sum) = glassbox_kernels::max_exp_sum(self.isa, &out);
        let lse = max + sum.ln() as f32;
        out.iter_mut().for_each(|v| *v -= lse);
        Ok(out)
    }

    /// Ablate a direction from the residual stream at run time (`None`: stop): its component
    /// removed from the embedding and from every block's output. The vector is made unit
    /// length; a zero or non-finite one, or one of another width, is refused.
    pub fn set_ablation(&mut self, direction: Option<&[f32]>) -> Result<()> {
        match direction {
            None => self.set_steering(Steering::default()),
            Some(r) => {
                if r.len() != self.model.config.n_embd {
                    return Err(Error::Other(format!("an ablation direction of {} values; the model's width is {}", r.len(), self.model.config.n_embd)));
                }
                let s = Steering::ablate_everywhere(r, self.model.config.n_layers, 1.0).map_err(|e| Error::Other(e.to_string()))?;
                self.set_steering(s)
            }
        }
    }

    /// Edit the residual stream at run time: directional ablation with per-layer weights and
    /// activation addition (`Steering::default()`: off). Checked against the model here.
    pub fn set_steering(&mut self, s: Steering) -> Result<()> {
        s.check(self.model.config.n_layers, self.model.config.n_embd).map_err(|e| Error::Other(e.to_string()))?;
        self.scratch.steer = s;
        Ok(())
    }

    /// The run-time residual-stream edits in force.
    pub fn steering(&self) -> &Steering {
        &self.scratch.steer
    }

    /// The residual stream after every layer at the last `last` positions of `prompt` (a fresh
    /// sequence): `n_layer × last × n_embd` values, layer-major. The forward pass computes
    /// exactly what it computes without the capture.
    pub fn residuals(&mut self, prompt: &[u32], last: usize) -> Result<Vec<f32>> {
        if prompt.is_empty() || prompt.len() > self.ctx_size {
            return Err(Error::Other(format!("a prompt of {} tokens; the context size is {}", prompt.len(), self.ctx_size)));
        }
        let chunks: Vec<&[u32]> = prompt.chunks(self.batch_size).collect();
        let tail = chunks.last().map_or(0, |c| c.len());
        if last == 0 || last > tail {
            return Err(Error::Other(format!("{last} positions from the end; the prompt's last chunk has {tail} tokens")));
        }
        let mut cache = KvCache::new(&self.model.config, prompt.len());
        let mut out = Vec::new();
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i + 1 == n {
                self.scratch.capture_rows = (chunk.len() - last..chunk.len()).collect();
            }
            let mut b = [SeqBatch { tokens: chunk, cache: &mut cache, logits: Logits::None }];
            let r = self.model.forward(&self.pool, self.isa, &mut b, &mut self.scratch, &mut out);
            if r.is_err() {
                self.scratch.capture_rows.clear();
            }
            r?;
        }
        self.scratch.capture_rows.clear();
        Ok(std::mem::take(&mut self.scratch.captured))
    }

    /// Generate, streaming text pieces to `on_text` as they become final.
    pub fn generate(&mut self, req: &GenerateRequest, on_text: impl FnMut(&str)) -> Result<Generation> {
        // The decode loop of speculative decoding with no drafts: one token per pass.
        self.decode(req, None, on_text).map(|(g, _)| g)
    }

    /// Tokens of a text for perplexity, as llama-perplexity tokenizes it (BOS when the model
    /// adds one, special-token text not parsed).
    pub fn perplexity_tokens(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode_with(text, self.tokenizer.add_bos, false, false)
    }

    /// Run `tokens` in chunks of `n_ctx` as llama-perplexity does (the first token of each chunk
    /// replaced by BOS when the model adds one, a fresh cache per chunk) and hand `on_chunk` the
    /// chunk index and the logits of positions `n_ctx / 2 ..= n_ctx - 2`, each row predicting
    /// the token after it: `tokens[chunk * n_ctx + n_ctx / 2 + 1 + row]`.
    pub fn score_chunks(
        &mut self,
        tokens: &[u32],
        n_ctx: usize,
        n_chunk: usize,
        mut on_chunk: impl FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        if n_ctx < 4 {
            return Err(Error::Other(format!("perplexity needs a context of at least 4 tokens, not {n_ctx}")));
        }
        let need = n_ctx.checked_mul(n_chunk).ok_or_else(|| Error::Other("n_ctx × chunks overflows".into()))?;
        if n_chunk == 0 || tokens.len() < need {
            return Err(Error::Other(format!("{n_chunk} chunks of {n_ctx} tokens need {need} tokens, the text has {}", tokens.len())));
        }
        if n_ctx > self.ctx_size {
            return Err(Error::Other(format!("chunks of {n_ctx} tokens exceed the context size {}", self.ctx_size)));
        }
        let first = n_ctx / 2;
        let n_vocab = self.model.config.n_vocab;
        let scored = glassbox_perplexity::scored_per_chunk(n_ctx);
        let mut cache = KvCache::new(&self.model.config, n_ctx);
        let mut logits = Vec::new();
        let mut chunk = Vec::with_capacity(n_ctx);
        for i in 0..n_chunk {
            chunk.clear();
            chunk.extend_from_slice(&tokens[i * n_ctx..(i + 1) * n_ctx]);
            if self.tokenizer.add_bos && let Some(b) = self.tokenizer.bos {
                chunk[0] = b;
            }
            cache.clear();
            logits.clear();
            // Row r is scored against token first + 1 + r.
            let targets: Vec<&[u32]> = chunk[first + 1..].iter().map(std::slice::from_ref).collect();
            let mut b = [SeqBatch { tokens: &chunk, cache: &mut cache, logits: Logits::From(first) }];
            self.model.forward_scored(&self.pool, self.isa, &mut b, &mut self.scratch, &mut logits, &targets)?;
            on_chunk(i, &logits[..scored * n_vocab])?;
        }
        Ok(())
    }

    /// Perplexity of `text` as llama-perplexity computes it: `(ppl, chunks)`.
    pub fn perplexity(&mut self, text: &str, n_ctx: usize, max_chunks: usize) -> Result<(f64, usize)> {
        let tokens = self.perplexity_tokens(text);
        if n_ctx < 4 || tokens.len() < 2 * n_ctx {
            return Err(Error::Other(format!("perplexity needs at least {} tokens, the text has {}", 2 * n_ctx, tokens.len())));
        }
        let n_chunk = (tokens.len() / n_ctx).min(max_chunks);
        let n_vocab = self.model.config.n_vocab;
        let first = n_ctx / 2;
        let mut acc = glassbox_perplexity::PplAccumulator::default();
        self.score_chunks(&tokens, n_ctx, n_chunk, |c, rows| {
            for (r, row) in rows.chunks_exact(n_vocab).enumerate() {
                acc.add(glassbox_perplexity::stats::nll(row, tokens[c * n_ctx + first + 1 + r] as usize));
            }
            Ok(())
        })?;
        Ok((acc.summary().ppl, n_chunk))
    }

    /// Read bandwidth of this machine with this engine's threads, in bytes per second: the best
    /// of three passes summing a `bytes`-long buffer (make it larger than the caches), each
    /// thread reading its own contiguous share, as the matmul threads read their rows.
    pub fn read_bandwidth(&self, bytes: usize) -> f64 {
        let words = (bytes / 8).max(1 << 16);
        let buf: Vec<u64> = (0..words as u64).collect();
        let nt = self.pool.n_threads();
        let sink = std::sync::atomic::AtomicU64::new(0);
        let mut best = 0f64;
        for _ in 0..3 {
            let t = Instant::now();
            self.pool.run(&|tid| {
                let per = words.div_ceil(nt);
                let part = &buf[(tid * per).min(words)..((tid + 1) * per).min(words)];
                // Eight independent sums keep the loads in flight.
                let mut acc = [0u64; 8];
                for c in part.chunks_exact(8) {
                    for i in 0..8 {
                        acc[i] = acc[i].wrapping_add(c[i]);
                    }
                }
                sink.fetch_add(acc.iter().fold(0, |a, &b| a.wrapping_add(b)), std::sync::atomic::Ordering::Relaxed);
            });
            best = best.max((words * 8) as f64 / t.elapsed().as_secs_f64());
        }
        std::hint::black_box(sink.load(std::sync::atomic::Ordering::Relaxed));
        best
    }

    /// Prefill `n_prompt` tokens, then decode `n_gen` tokens one at a time (greedy on a fixed
    /// token, like llama-bench), reporting tokens per second for each phase.
    pub fn bench(&mut self, n_prompt: usize, n_gen: usize) -> Result<BenchResult> {
        if n_prompt + n_gen > self.ctx_size {
            return Err(Error::PromptTooLong { prompt: n_prompt + n_gen, needed: n_prompt + n_gen, ctx: self.ctx_size });
        }
        let vocab = self.model.config.n_vocab as u32;
        let tokens: Vec<u32> = (0..n_prompt as u32).map(|i| (i * 7919 + 13) % vocab).collect();
        let mut cache = self.new_cache();
        let mut out = Vec::new();
        let mut prefill_s = 0.0;
        if n_prompt > 0 {
            let t = Instant::now();
            let mut b = [SeqBatch { tokens: &tokens, cache: &mut cache, logits: Logits::Last }];
            self.model.forward(&self.pool, self.isa, &mut b, &mut self.scratch, &mut out)?;
            prefill_s = t.elapsed().as_secs_f64();
        }
        let mut gen_cache = self.new_cache();
        let t = Instant::now();
        for i in 0..n_gen {
            out.clear();
            let tok = [(i as u32 * 31 + 7) % vocab];
            let mut b = [SeqBatch { tokens: &tok, cache: &mut gen_cache, logits: Logits::Last }];
            self.model.forward(&self.pool, self.isa, &mut b, &mut self.scratch, &mut out)?;
        }
        let decode_s = t.elapsed().as_secs_f64();
        Ok(BenchResult {
            prompt_tokens: n_prompt,
            gen_tokens: n_gen,
            prefill_tok_s: if prefill_s > 0.0 { n_prompt as f64 / prefill_s } else { 0.0 },
            decode_tok_s: if decode_s > 0.0 { n_gen as f64 / decode_s } else { 0.0 },
            prefill_s,
            decode_s,
        })
    }
}
