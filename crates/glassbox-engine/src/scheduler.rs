//! Continuous batching: sequences join and leave the running batch between steps, one forward
//! pass serves every running sequence, and long prompts are prefilled in chunks under a per-step
//! token budget so they never stall running decodes. No async runtime here: requests arrive on
//! a channel and results leave through an [`EventSink`] each request brings.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use std::borrow::BorrowMut;

use glassbox_models::{KvCache, Logits, SeqBatch};

use crate::Engine;

use crate::engine::{FinishReason, GenerateRequest};
use crate::seq::{SeqState, TokenLogprob};

/// What the scheduler tells a request's owner.
#[derive(Debug)]
pub enum SeqEvent {
    Token { token: u32, text: String, logprob: Option<TokenLogprob> },
    /// With `prompt_logprobs`: the log-probability of every prompt token after the first given
    /// the ones before it (and the top alternatives), sent once when the prompt is processed.
    PromptLogprobs(Vec<TokenLogprob>),
    /// Final text that belongs to no token (flushed at the end), if any.
    Text(String),
    /// `eog`: with log-probabilities, the end-of-generation token that stopped the sequence
    /// (it is no part of the text; legacy completions list it, as OpenAI's did).
    Done { finish_reason: FinishReason, prompt_tokens: usize, completion_tokens: usize, eog: Option<TokenLogprob> },
    Error(String),
}

/// Where a sequence's events go. `send` returns false once nobody listens (client gone).
pub trait EventSink: Send {
    fn send(&mut self, ev: SeqEvent) -> bool;
    fn is_closed(&self) -> bool;
}

pub struct SchedRequest {
    pub request: GenerateRequest,
    pub top_logprobs: Option<usize>,
    /// Score the prompt too (`echo` with `logprobs`): `Some(k)` alternatives per token.
    pub prompt_logprobs: Option<usize>,
    pub sink: Box<dyn EventSink>,
    /// The LoRA adapter (an index from `Engine::attach_adapter`) this sequence uses besides the
    /// engine's active ones; sequences with different adapters share batches.
    pub adapter: Option<usize>,
}

/// Changes to a running scheduler's engine, applied between steps (`Scheduler::run_controlled`).
pub enum Control {
    /// Attach an adapter (checked against the model); the reply carries its index.
    Attach { adapter: Box<glassbox_lora::Adapter>, sha256: String, scale: f32, base_name: String, reply: std::sync::mpsc::Sender<crate::Result<usize>> },
    /// Detach an adapter once no sequence (running or waiting) uses it; the reply comes then.
    Detach { id: usize, reply: std::sync::mpsc::Sender<crate::Result<()>> },
}

/// Live counts, readable from other threads (for metrics and admission control).
#[derive(Default, Debug)]
pub struct SchedulerStats {
    pub running: AtomicUsize,
    pub waiting: AtomicUsize,
    /// KV caches of the running sequences: tokens held and bytes allocated (each sized for its
    /// prompt plus max_tokens, within the context size).
    pub kv_tokens: AtomicUsize,
    pub kv_bytes: AtomicUsize,
    pub prompt_tokens: AtomicUsize,
    pub generated_tokens: AtomicUsize,
}

struct Active {
    state: SeqState,
    cache: KvCache,
    prompt: Vec<u32>,
    fed: usize,
    next: Option<u32>,
    sink: Box<dyn EventSink>,
    /// The draft model's cache for this sequence (with a draft model), kept in step with `cache`.
    draft_cache: Option<KvCache>,
    /// Prompt scoring: alternatives per token and the log-probabilities so far.
    prompt_lp: Option<(usize, Vec<TokenLogprob>)>,
}

/// Most prompt tokens per step of a sequence whose prompt is scored: each needs a logits row
/// (n_vocab floats), so this bounds the step's logits memory.
const SCORED_PROMPT_CHUNK: usize = 64;

/// Owns its engine (`Scheduler<Engine>`, a server's) or borrows one for a while
/// (`Scheduler<&mut Engine>`: a batch of generations inside an evaluation).
pub struct Scheduler<E: BorrowMut<Engine> = Engine> {
    eng: E,
    max_running: usize,
    prefill_chunk: usize,
    running: Vec<Active>,
    waiting: VecDeque<SchedRequest>,
    logits: Vec<f32>,
    /// Prompt-lookup speculative decoding: most drafts per sequence per step (0 = off).
    lookup_draft: usize,
    /// A draft model shared by every sequence (each has its own draft cache), and its most
    /// drafts per sequence per step.
    draft: Option<(Box<crate::DraftModel>, usize)>,
    pub stats: Arc<SchedulerStats>,
}

impl<E: BorrowMut<Engine>> Scheduler<E> {
    pub(crate) fn new(eng: E, max_running: usize, prefill_chunk: usize) -> Scheduler<E> {
        Scheduler {
            eng,
            max_running: max_running.max(1),
            prefill_chunk: prefill_chunk.max(1),
            running: Vec::new(),
            waiting: VecDeque::new(),
            logits: Vec::new(),
            lookup_draft: 0,
            draft: None,
            stats: Arc::new(SchedulerStats::default()),
        }
    }

    /// The engine back (sequences still running or waiting are dropped unanswered).
    pub fn into_engine(self) -> E {
        self.eng
    }

    /// Decode with prompt-lookup drafts, at most `max_draft` per sequence per step: the same
    /// tokens (see `spec.rs`), fewer steps when output repeats its context.
    pub fn with_lookup(mut self, max_draft: usize) -> Scheduler<E> {
        self.lookup_draft = max_draft;
        self
    }

    /// Decode with drafts from `draft` (a smaller model with the same vocabulary, checked by
    /// [`crate::DraftModel::new`]), at most `max_draft` per sequence per step: the same output,
    /// fewer passes over the target's weights. Every sequence gets its own draft cache.
    pub fn with_draft(mut self, draft: crate::DraftModel, max_draft: usize) -> Scheduler<E> {
        self.draft = (max_draft > 0).then(|| (Box::new(draft), max_draft));
        self
    }

    /// Greedy drafts from the draft model for every decoding sequence with room, batched: one
    /// forward pass catches each draft cache up with its sequence's history, then one pass per
    /// further draft token. Index = position in `running`; empty where nothing is drafted (and
    /// everywhere if the draft model fails: drafts are only guesses).
    fn model_drafts(&mut self) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); self.running.len()];
        let Some((d, max_draft)) = self.draft.as_mut() else { return out };
        let (mut idx, mut items) = (Vec::new(), Vec::new());
        for (i, a) in self.running.iter_mut().enumerate() {
            let Active { state, cache, draft_cache, prompt, fed, next, .. } = a;
            let Some(dc) = draft_cache.as_mut() else { continue };
            if *fed < prompt.len() || next.is_none() {
                continue;
            }
            let m = crate::spec::draft_room(*max_draft, state, cache);
            idx.push(i);
            items.push((dc, &state.history[..], m));
        }
        let crate::DraftModel { model, scratch, .. } = &mut **d;
        let e = self.eng.borrow();
        if let Ok(drafts) = crate::spec::draft_greedy(model, scratch, &e.pool, e.isa, &mut items) {
            for (i, dr) in idx.into_iter().zip(drafts) {
                out[i] = dr;
            }
        }
        out
    }

    pub fn submit(&mut self, r: SchedRequest) {
        self.waiting.push_back(r);
        self.publish();
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    fn publish(&self) {
        self.stats.running.store(self.running.len(), Ordering::Relaxed);
        self.stats.waiting.store(self.waiting.len(), Ordering::Relaxed);
        self.stats.kv_tokens.store(self.running.iter().map(|a| a.cache.len()).sum(), Ordering::Relaxed);
        self.stats.kv_bytes.store(self.running.iter().map(|a| a.cache.bytes()).sum(), Ordering::Relaxed);
    }

    fn admit(&mut self, mut r: SchedRequest) {
        let n = r.request.prompt.len();
        let ctx_size = self.eng.borrow().ctx_size();
        if n == 0 || n + 1 > ctx_size {
            r.sink.send(SeqEvent::Error(format!(
                "prompt is {n} tokens; the context size is {ctx_size} (at least one token must be generated)"
            )));
            return;
        }
        let state = match SeqState::new(&r.request, r.top_logprobs) {
            Ok(s) => s,
            Err(e) => {
                r.sink.send(SeqEvent::Error(e.to_string()));
                return;
            }
        };
        if state.finish.is_some() {
            r.sink.send(SeqEvent::Done { finish_reason: FinishReason::Length, prompt_tokens: n, completion_tokens: 0, eog: None });
            return;
        }
        // The cache holds what this request can use: prompt + max_tokens, capped by the context.
        let capacity = (n + r.request.max_tokens).min(ctx_size);
        let mut cache = KvCache::new(&self.eng.borrow().model.config, capacity);
        cache.set_adapter(r.adapter);
        let draft_cache = self.draft.as_ref().map(|(d, _)| KvCache::new(&d.model.config, capacity));
        self.stats.prompt_tokens.fetch_add(n, Ordering::Relaxed);
        let prompt_lp = r.prompt_logprobs.map(|k| (k, Vec::with_capacity(n)));
        self.running.push(Active { state, cache, prompt: r.request.prompt, fed: 0, next: None, sink: r.sink, draft_cache, prompt_lp });
    }

    /// One step: admit waiting requests, run one forward pass over every running sequence
    /// (decodes plus prefill chunks within the budget), sample, emit, retire. Returns whether
    /// any work was done.
    pub fn step(&mut self) -> bool {
        self.running.retain(|a| !a.sink.is_closed());
        while self.running.len() < self.max_running {
            let Some(r) = self.waiting.pop_front() else { break };
            self.admit(r);
        }
        self.publish();
        if self.running.is_empty() {
            return false;
        }
        // Plan: per running sequence, the tokens it feeds this step.
        let mut model_drafts = self.model_drafts();
        let mut budget = self.prefill_chunk;
        // (index, tokens, wants logits, draft tokens at the end of `tokens`, a row per token
        // because the prompt is scored)
        let mut feeds: Vec<(usize, Vec<u32>, bool, usize, bool)> = Vec::new();
        for (i, a) in self.running.iter().enumerate() {
            if a.fed < a.prompt.len() {
                if budget == 0 {
                    continue;
                }
                let scored = a.prompt_lp.is_some();
                let cap = if scored { budget.min(SCORED_PROMPT_CHUNK) } else { budget };
                let n = (a.prompt.len() - a.fed).min(cap);
                budget -= n;
                let last = a.fed + n == a.prompt.len();
                feeds.push((i, a.prompt[a.fed..a.fed + n].to_vec(), last || scored, 0, scored));
            } else if let Some(t) = a.next {
                let drafts = if self.draft.is_some() {
                    std::mem::take(&mut model_drafts[i])
                } else {
                    let m = crate::spec::draft_room(self.lookup_draft, &a.state, &a.cache);
                    let (max_n, min_n) = crate::spec::LOOKUP_NGRAM;
                    crate::spec::lookup(&a.state.history, max_n, min_n, m)
                };
                let mut toks = Vec::with_capacity(1 + drafts.len());
                toks.push(t);
                toks.extend_from_slice(&drafts);
                feeds.push((i, toks, true, drafts.len(), false));
            }
        }
        if feeds.is_empty() {
            return false;
        }
        self.logits.clear();
        let result = {
            let mut fi = feeds.iter().peekable();
            let mut batch: Vec<SeqBatch> = Vec::with_capacity(feeds.len());
            // A scored prompt's rows are read at the prompt token after each.
            let mut targets: Vec<&[u32]> = Vec::new();
            for (i, a) in self.running.iter_mut().enumerate() {
                if let Some((_, toks, want, drafts, scored)) = fi.next_if(|f| f.0 == i) {
                    let logits = match (*want, *drafts, *scored) {
                        (false, _, _) => Logits::None,
                        (true, 0, false) => Logits::Last,
                        (true, _, _) => Logits::All,
                    };
                    match logits {
                        Logits::Last => targets.push(&[]),
                        Logits::All if *scored => {
                            let next = &a.prompt[(a.fed + 1).min(a.prompt.len())..];
                            targets.extend((0..toks.len()).map(|r| next.get(r..r + 1).unwrap_or(&[])));
                        }
                        Logits::All => targets.extend((0..toks.len()).map(|_| &[][..])),
                        _ => {}
                    }
                    batch.push(SeqBatch { tokens: toks, cache: &mut a.cache, logits });
                }
            }
            let e = self.eng.borrow_mut();
            e.model.forward_scored(&e.pool, e.isa, &mut batch, &mut e.scratch, &mut self.logits, &targets)
        };
        let n_vocab = self.eng.borrow().model.config.n_vocab;
        let mut done = vec![false; self.running.len()];
        if let Err(e) = result {
            for (i, _, _, _, _) in &feeds {
                self.running[*i].sink.send(SeqEvent::Error(format!("inference failed: {e}")));
                done[*i] = true;
            }
        } else {
            let mut row = 0;
            for (i, toks, want, drafts, scored) in &feeds {
                let a = &mut self.running[*i];
                let fed_before = a.fed;
                if a.fed < a.prompt.len() {
                    a.fed += toks.len();
                }
                if !*want {
                    continue;
                }
                let (first_row, rows) = if *scored {
                    // A row per prompt token: each but the last scores the prompt token after it.
                    let first = row;
                    row += toks.len();
                    if let Some((k, lps)) = a.prompt_lp.as_mut() {
                        for r in 0..toks.len() {
                            if let Some(&next) = a.prompt.get(fed_before + r + 1) {
                                lps.push(crate::seq::logprobs(&self.logits[(first + r) * n_vocab..(first + r + 1) * n_vocab], next, *k));
                            }
                        }
                    }
                    if a.fed < a.prompt.len() {
                        continue;
                    }
                    let lps = a.prompt_lp.as_mut().map(|(_, l)| std::mem::take(l)).unwrap_or_default();
                    if !a.sink.send(SeqEvent::PromptLogprobs(lps)) {
                        done[*i] = true;
                        continue;
                    }
                    // The last row predicts the first generated token.
                    (first + toks.len() - 1, 1)
                } else {
                    // One row per fed token when drafting (the first predicts after the fed
                    // token, each next one after a draft), else one row.
                    let first = row;
                    row += 1 + drafts;
                    (first, 1 + drafts)
                };
                let base = a.cache.len() - rows; // tokens cached before this step
                let mut accepted = 0;
                for r in 0..rows {
                    let logits = &mut self.logits[(first_row + r) * n_vocab..(first_row + r + 1) * n_vocab];
                    let room = base + r + 1 < a.cache.capacity();
                    let mut out = match a.state.accept(&self.eng.borrow().tokenizer, logits, room) {
                        Ok(o) => o,
                        Err(e) => {
                            a.sink.send(SeqEvent::Error(e.to_string()));
                            done[*i] = true;
                            break;
                        }
                    };
                    let mut alive = true;
                    let eog = if out.token.is_none() { out.logprob.take() } else { None };
                    if let Some(t) = out.token {
                        self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
                        alive = a.sink.send(SeqEvent::Token { token: t, text: out.text, logprob: out.logprob });
                    } else if !out.text.is_empty() {
                        alive = a.sink.send(SeqEvent::Text(out.text));
                    }
                    if let Some(reason) = out.finished {
                        a.sink.send(SeqEvent::Done {
                            finish_reason: reason,
                            prompt_tokens: a.state.n_prompt,
                            completion_tokens: a.state.ids.len(),
                            eog,
                        });
                        done[*i] = true;
                        break;
                    } else if !alive {
                        done[*i] = true; // client gone: free the slot now
                        break;
                    }
                    // A draft the sampler also chose: its row's successor is valid; go on.
                    if r < *drafts && out.token == Some(toks[r + 1]) {
                        accepted += 1;
                        continue;
                    }
                    a.next = out.token;
                    break;
                }
                // Drop the cache entries of refused drafts; the draft cache holds at most what
                // the target's holds.
                a.cache.truncate(base + 1 + accepted);
                if let Some(dc) = a.draft_cache.as_mut() {
                    dc.truncate(a.cache.len());
                }
            }
        }
        let mut k = 0;
        self.running.retain(|_| {
            let keep = !done[k];
            k += 1;
            keep
        });
        self.publish();
        true
    }

    /// Serve requests from `rx` until it closes or `shutdown` is set; then finish (or, after
    /// `shutdown`, cancel) what is running. Blocks the calling thread.
    pub fn run(self, rx: Receiver<SchedRequest>, shutdown: Arc<AtomicBool>) {
        let (_keep, control) = std::sync::mpsc::channel();
        self.run_controlled(rx, control, shutdown);
    }

    /// [`Scheduler::run`], also applying [`Control`] messages between steps.
    pub fn run_controlled(mut self, rx: Receiver<SchedRequest>, control: Receiver<Control>, shutdown: Arc<AtomicBool>) {
        let mut detaching: Vec<(usize, std::sync::mpsc::Sender<crate::Result<()>>)> = Vec::new();
        loop {
            if shutdown.load(Ordering::Relaxed) {
                for a in self.running.drain(..) {
                    let mut s = a.sink;
                    s.send(SeqEvent::Error("server shutting down".into()));
                }
                for mut r in self.waiting.drain(..) {
                    r.sink.send(SeqEvent::Error("server shutting down".into()));
                }
                for (_, reply) in detaching.drain(..) {
                    let _ = reply.send(Err(crate::Error::Other("server shutting down".into())));
                }
                self.publish();
                return;
            }
            while let Ok(c) = control.try_recv() {
                match c {
                    Control::Attach { adapter, sha256, scale, base_name, reply } => {
                        let _ = reply.send(self.eng.borrow_mut().attach_adapter(&adapter, &sha256, scale, &base_name));
                    }
                    Control::Detach { id, reply } => detaching.push((id, reply)),
                }
            }
            detaching.retain(|(id, reply)| {
                let in_use = self.running.iter().any(|a| a.cache.adapter() == Some(*id)) || self.waiting.iter().any(|r| r.adapter == Some(*id));
                if in_use {
                    return true;
                }
                let _ = reply.send(self.eng.borrow_mut().detach_adapter(*id));
                false
            });
            if self.is_idle() {
                match rx.recv_timeout(Duration::from_millis(if detaching.is_empty() { 100 } else { 10 })) {
                    Ok(r) => self.submit(r),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            while let Ok(r) = rx.try_recv() {
                self.submit(r);
            }
            self.step();
        }
    }
}
