//! Speculative decoding: cheap guesses of the next tokens, checked by the model in one batched
//! forward pass, so one pass over the weights can yield several tokens.
//!
//! Lossless by construction. Every emitted token is chosen by the same [`SeqState::accept`] call,
//! with the same sampler and RNG draws, from the same logits as plain decoding: the forward pass
//! computes each row independently of the others in the batch (bit for bit), so the logits after
//! an accepted draft are exactly the ones plain decoding would have computed. A draft is kept
//! while the token the sampler picks equals it; at the first difference the sampler's pick is
//! kept instead and the rest is dropped (the KV cache truncated). Greedy output is therefore
//! identical to plain decoding, and sampled output too (same seed, same tokens) — a one-hot
//! draft accepted with probability p(draft) is exactly speculative sampling's rule.
//!
//! Drafters: prompt lookup (the most recent earlier occurrence of the last n tokens proposes what
//! followed it: strong when output copies from the prompt, as code edits do) and a small draft
//! model sharing the vocabulary (greedy, its own KV cache kept in step).

use glassbox_kernels::{Isa, ThreadPool};
use glassbox_models::{KvCache, Logits, Model, Scratch, SeqBatch};

use crate::engine::{Engine, FinishReason, Generation, GenerateRequest};
use crate::seq::SeqState;
use crate::{Error, Result};

/// Where draft tokens come from.
pub enum Drafter {
    /// n-gram prompt lookup over the prompt and the output so far, longest n first.
    Lookup { ngram_max: usize, ngram_min: usize },
    /// A smaller model with the same vocabulary, decoding greedily.
    Model(Box<DraftModel>),
}

/// The n-gram lengths `run --lookup` and `serve --lookup` look up, longest first.
pub const LOOKUP_NGRAM: (usize, usize) = (3, 1);

impl Drafter {
    /// Prompt lookup with [`LOOKUP_NGRAM`].
    pub const LOOKUP: Drafter = Drafter::Lookup { ngram_max: LOOKUP_NGRAM.0, ngram_min: LOOKUP_NGRAM.1 };
}

/// A draft model and its own cache and buffers.
pub struct DraftModel {
    pub(crate) model: Model,
    pub(crate) cache: KvCache,
    pub(crate) scratch: Scratch,
}

impl DraftModel {
    /// Load a draft model file only after its bytes match a pin under `policy`, as the target's.
    pub fn load_verified(path: &std::path::Path, policy: &glassbox_trust::Policy, target: &Engine, ctx_size: usize) -> Result<(DraftModel, crate::Verification)> {
        let v = glassbox_trust::open_verified(path, policy)?;
        let info = crate::Verification { sha256: v.sha256.clone(), size: v.size, verdict: v.verdict.clone() };
        let file = glassbox_gguf::GgufFile::from_map(path, v.map, &Default::default())?;
        let model = Model::from_file(std::sync::Arc::new(file))?;
        Ok((DraftModel::new(model, target, ctx_size)?, info))
    }

    /// Check `model` can draft for `target` (same vocabulary, token for token) and size its cache.
    pub fn new(mut model: Model, target: &Engine, ctx_size: usize) -> Result<DraftModel> {
        let (dv, tv) = (model.config.n_vocab, target.model.config.n_vocab);
        if dv != tv {
            return Err(Error::Other(format!("draft model has {dv} tokens, the target {tv}: vocabularies must match")));
        }
        // Same vocabulary means the same token for every id, not just the same count.
        let vocab = glassbox_tokenizer::Tokenizer::from_gguf(model.file().gguf())?;
        if let Some(id) = (0..tv as u32).find(|&id| vocab.token_text(id) != target.tokenizer.token_text(id)) {
            return Err(Error::Other(format!(
                "draft model has token {id} = {:?}, the target {:?}: vocabularies must match",
                vocab.token_text(id),
                target.tokenizer.token_text(id)
            )));
        }
        model.pack(target.isa);
        let cache = KvCache::new(&model.config, ctx_size);
        Ok(DraftModel { model, cache, scratch: Scratch::default() })
    }
}

pub struct SpecOptions {
    pub drafter: Drafter,
    /// Most draft tokens checked per forward pass.
    pub max_draft: usize,
}

/// How well the drafts did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecStats {
    /// Target forward passes after the prompt.
    pub passes: usize,
    pub drafted: usize,
    pub accepted: usize,
}

impl SpecStats {
    pub fn acceptance(&self) -> f64 {
        if self.drafted == 0 { 0.0 } else { self.accepted as f64 / self.drafted as f64 }
    }
}

/// How many drafts a sequence may check this pass: at most `max_draft`, leaving room for the
/// token the sampler adds after them (within `max_tokens`) and in the KV cache.
pub(crate) fn draft_room(max_draft: usize, seq: &SeqState, cache: &KvCache) -> usize {
    let remaining = seq.max_tokens().saturating_sub(seq.ids.len());
    max_draft.min(remaining.saturating_sub(1)).min(cache.capacity().saturating_sub(cache.len() + 1))
}

/// The continuation after the most recent earlier occurrence of the last `n` tokens of
/// `history`, longest `n` first; at most `k` tokens.
pub fn lookup(history: &[u32], ngram_max: usize, ngram_min: usize, k: usize) -> Vec<u32> {
    if k == 0 {
        return Vec::new();
    }
    for n in (ngram_min.max(1)..=ngram_max).rev() {
        if history.len() <= n {
            continue;
        }
        let pat = &history[history.len() - n..];
        // Occurrences that end before the pattern itself, most recent first.
        for start in (0..history.len() - n).rev() {
            if &history[start..start + n] == pat {
                let from = start + n;
                let to = (from + k).min(history.len());
                if from < to {
                    return history[from..to].to_vec();
                }
            }
        }
    }
    Vec::new()
}

impl Engine {
    /// [`Engine::generate`] with speculative decoding: the same tokens, fewer passes.
    pub fn generate_speculative(
        &mut self,
        req: &GenerateRequest,
        spec: &mut SpecOptions,
        on_text: impl FnMut(&str),
    ) -> Result<(Generation, SpecStats)> {
        self.decode(req, Some(spec), on_text)
    }

    /// The one decode loop: prefill, then per pass feed the pending token and any drafts, and
    /// keep the sampler's choices while they match the drafts. Without `spec` every pass feeds
    /// one token (plain decoding).
    pub(crate) fn decode(
        &mut self,
        req: &GenerateRequest,
        mut spec: Option<&mut SpecOptions>,
        mut on_text: impl FnMut(&str),
    ) -> Result<(Generation, SpecStats)> {
        let mut seq = SeqState::new(req, None)?;
        let n_prompt = req.prompt.len();
        if n_prompt == 0 {
            return Err(Error::Other("prompt is empty".into()));
        }
        if n_prompt + 1 > self.ctx_size() {
            return Err(Error::PromptTooLong { prompt: n_prompt, needed: n_prompt + 1, ctx: self.ctx_size() });
        }
        if let Some(SpecOptions { drafter: Drafter::Model(d), .. }) = spec.as_deref_mut() {
            d.cache.clear();
        }
        let mut stats = SpecStats::default();
        let mut cache = self.new_cache();
        let mut logits = Vec::new();
        self.prefill(&mut cache, &req.prompt, true, &mut logits)?;
        let room = cache.len() < cache.capacity();
        let step = seq.accept(&self.tokenizer, &mut logits, room)?;
        if !step.text.is_empty() {
            on_text(&step.text);
        }
        let mut pending = match step.token.filter(|_| seq.finish.is_none()) {
            Some(t) => t,
            None => return Ok((finish(seq, n_prompt), stats)),
        };
        let n_vocab = self.model.config.n_vocab;
        let mut batch = Vec::new();
        loop {
            let base = cache.len();
            let drafts = match spec.as_deref_mut() {
                Some(s) => {
                    let m = draft_room(s.max_draft, &seq, &cache);
                    self.draft(&mut s.drafter, &seq.history, m)?
                }
                None => Vec::new(),
            };
            batch.clear();
            batch.push(pending);
            batch.extend_from_slice(&drafts);
            logits.clear();
            let mut b = [SeqBatch { tokens: &batch, cache: &mut cache, logits: Logits::All }];
            self.model.forward(&self.pool, self.isa, &mut b, &mut self.scratch, &mut logits)?;
            stats.passes += 1;
            stats.drafted += drafts.len();
            let mut accepted = 0;
            let mut next = None;
            for (i, row) in logits.chunks_exact_mut(n_vocab).enumerate() {
                let room = base + 1 + i < cache.capacity();
                let step = seq.accept(&self.tokenizer, row, room)?;
                if !step.text.is_empty() {
                    on_text(&step.text);
                }
                let Some(y) = step.token.filter(|_| seq.finish.is_none()) else { break };
                if i < drafts.len() && y == drafts[i] {
                    accepted += 1;
                    continue;
                }
                next = Some(y);
                break;
            }
            stats.accepted += accepted;
            cache.truncate(base + 1 + accepted);
            if let Some(SpecOptions { drafter: Drafter::Model(d), .. }) = spec.as_deref_mut() {
                // The draft cache holds at most what the target now holds.
                d.cache.truncate(cache.len());
            }
            match next {
                Some(y) => pending = y,
                None => break,
            }
        }
        Ok((finish(seq, n_prompt), stats))
    }

    fn draft(&mut self, drafter: &mut Drafter, history: &[u32], m: usize) -> Result<Vec<u32>> {
        if m == 0 {
            return Ok(Vec::new());
        }
        match drafter {
            Drafter::Lookup { ngram_max, ngram_min } => Ok(lookup(history, *ngram_max, *ngram_min, m)),
            Drafter::Model(d) => {
                let DraftModel { model, cache, scratch } = &mut **d;
                Ok(draft_greedy(model, scratch, &self.pool, self.isa, &mut [(cache, history, m)])?.pop().unwrap_or_default())
            }
        }
    }
}

/// Greedy drafts from a draft model for several sequences at once; item k is (its draft cache,
/// its history, drafts wanted). One batched pass catches every draft cache up with its history
/// (the pending last token included), then one pass per further draft. An item whose cache
/// cannot hold its drafts, or that has nothing to catch up, drafts nothing.
pub(crate) fn draft_greedy(
    model: &Model,
    scratch: &mut Scratch,
    pool: &ThreadPool,
    isa: Isa,
    items: &mut [(&mut KvCache, &[u32], usize)],
) -> Result<Vec<Vec<u32>>> {
    let want: Vec<usize> = items.iter().map(|(c, h, m)| if *m > 0 && h.len() + m <= c.capacity() && c.len() < h.len() { *m } else { 0 }).collect();
    let mut out = vec![Vec::new(); items.len()];
    let n_vocab = model.config.n_vocab;
    let mut logits = Vec::new();
    for j in 0..want.iter().copied().max().unwrap_or(0) {
        let last: Vec<[u32; 1]> = out.iter().map(|o: &Vec<u32>| [o.last().copied().unwrap_or(0)]).collect();
        let mut who = Vec::with_capacity(items.len());
        let mut batch = Vec::with_capacity(items.len());
        for (k, (cache, history, _)) in items.iter_mut().enumerate() {
            if j >= want[k] {
                continue;
            }
            let have = cache.len();
            let tokens: &[u32] = if j == 0 { &history[have..] } else { &last[k] };
            batch.push(SeqBatch { tokens, cache, logits: Logits::Last });
            who.push(k);
        }
        logits.clear();
        model.forward(pool, isa, &mut batch, scratch, &mut logits)?;
        for (r, &k) in who.iter().enumerate() {
            out[k].push(crate::argmax(&logits[r * n_vocab..(r + 1) * n_vocab]));
        }
    }
    Ok(out)
}

fn finish(seq: SeqState, n_prompt: usize) -> Generation {
    Generation {
        completion_tokens: seq.ids.len(),
        text: seq.text,
        ids: seq.ids,
        prompt_tokens: n_prompt,
        finish_reason: seq.finish.unwrap_or(FinishReason::Length),
        constraint_s: Some(seq.constraint_time.as_secs_f64()),
    }
}
