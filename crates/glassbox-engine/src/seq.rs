//! The per-sequence generation state shared by single-request generation and the batching
//! scheduler: sampling, log-probabilities, end-of-generation tokens, stop strings, streamed
//! UTF-8 text and length limits — everything that happens to one sequence's logits.

use glassbox_tokenizer::{Decoder, Tokenizer};

use crate::constraint::Active;
use crate::engine::{FinishReason, GenerateRequest};
use crate::sampler::Sampler;
use crate::stop::{StopEvent, StopMatcher};
use crate::Result;

/// The log-probability of a chosen token, with the most likely alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// What one step produced for a sequence.
#[derive(Debug, Default)]
pub struct StepOut {
    /// The sampled token, unless it was an end-of-generation token.
    pub token: Option<u32>,
    /// Text that became final this step (may be empty).
    pub text: String,
    pub logprob: Option<TokenLogprob>,
    pub finished: Option<FinishReason>,
}

pub struct SeqState {
    sampler: Sampler,
    decoder: Decoder,
    stops: StopMatcher,
    constraint: Option<Active>,
    /// Time spent in the constraint: checks, masks and advances.
    pub(crate) constraint_time: std::time::Duration,
    pub(crate) history: Vec<u32>,
    max_tokens: usize,
    top_logprobs: Option<usize>,
    pub ids: Vec<u32>,
    pub text: String,
    pub n_prompt: usize,
    pub finish: Option<FinishReason>,
}

/// log-softmax of `logits` at `ids`, and the `k` most likely tokens.
pub(crate) fn logprobs(logits: &[f32], chosen: u32, k: usize) -> TokenLogprob {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let lse = max + logits.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    let lp = |i: usize| (logits[i] as f64 - lse) as f32;
    let mut top: Vec<(u32, f32)> = Vec::new();
    if k > 0 {
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        let k = k.min(idx.len());
        idx.select_nth_unstable_by(k - 1, |&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        idx.truncate(k);
        idx.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        top = idx.into_iter().map(|i| (i, lp(i as usize))).collect();
    }
    TokenLogprob { token: chosen, logprob: lp(chosen as usize), top }
}

impl SeqState {
    pub(crate) fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// `top_logprobs`: `None` for no log-probabilities, `Some(k)` for the chosen token's and the
    /// `k` most likely alternatives'.
    pub fn new(req: &GenerateRequest, top_logprobs: Option<usize>) -> Result<SeqState> {
        Ok(SeqState {
            sampler: Sampler::new(req.sampling.clone())?,
            decoder: Decoder::default(),
            stops: StopMatcher::new(&req.stop),
            constraint: req.constraint.clone().map(Active::new).transpose()?,
            constraint_time: std::time::Duration::ZERO,
            history: req.prompt.clone(),
            max_tokens: req.max_tokens,
            top_logprobs,
            ids: Vec::new(),
            text: String::new(),
            n_prompt: req.prompt.len(),
            finish: if req.max_tokens == 0 { Some(FinishReason::Length) } else { None },
        })
    }

    /// Choose the next token from `logits` (modified in place by penalties). `room` says whether
    /// the KV cache can take one more token after this one.
    pub fn accept(&mut self, tok: &Tokenizer, logits: &mut [f32], room: bool) -> Result<StepOut> {
        debug_assert!(self.finish.is_none(), "accept after finish");
        let mut out = StepOut::default();
        let raw_lp = self.top_logprobs.map(|k| (k, logits.to_vec()));
        self.sampler.prepare(logits, &self.history);
        let mut t = self.sampler.choose(logits);
        if let Some(m) = self.constraint.as_mut().and_then(Active::armed) {
            let t0 = std::time::Instant::now();
            if !m.allows(t) {
                m.apply_mask(logits)?;
                let t1 = std::time::Instant::now();
                t = self.sampler.choose(logits);
                // the second draw is sampling, not the constraint
                self.constraint_time += t1 - t0;
            } else {
                self.constraint_time += t0.elapsed();
            }
        }
        if tok.is_eog(t) {
            if let Some((k, raw)) = &raw_lp {
                out.logprob = Some(logprobs(raw, t, *k));
            }
            self.finish_with(FinishReason::Stop, &mut out);
            return Ok(out);
        }
        out.token = Some(t);
        if let Some((k, raw)) = raw_lp {
            out.logprob = Some(logprobs(&raw, t, k));
        }
        self.ids.push(t);
        self.history.push(t);
        let complete = match &mut self.constraint {
            Some(c) => {
                let t0 = std::time::Instant::now();
                let done = c.after(t)?;
                self.constraint_time += t0.elapsed();
                done
            }
            None => false,
        };
        let piece = self.decoder.push(tok, t)?;
        match self.stops.push(&piece) {
            StopEvent::Emit(s) => out.text.push_str(&s),
            StopEvent::Stop(s) => {
                out.text.push_str(&s);
                self.text.push_str(&out.text);
                self.finish = Some(FinishReason::Stop);
                out.finished = self.finish;
                return Ok(out);
            }
        }
        if complete {
            self.finish_with(FinishReason::Stop, &mut out);
            return Ok(out);
        }
        if self.ids.len() >= self.max_tokens || !room {
            self.finish_with(FinishReason::Length, &mut out);
            return Ok(out);
        }
        self.text.push_str(&out.text);
        Ok(out)
    }

    /// End the sequence: flush bytes of an incomplete character and text held back for a
    /// possible stop string (which may itself complete a stop string).
    fn finish_with(&mut self, reason: FinishReason, out: &mut StepOut) {
        let mut reason = reason;
        let rest = self.decoder.finish();
        match self.stops.push(&rest) {
            StopEvent::Emit(s) => {
                out.text.push_str(&s);
                out.text.push_str(&self.stops.finish());
            }
            StopEvent::Stop(s) => {
                out.text.push_str(&s);
                reason = FinishReason::Stop;
            }
        }
        self.text.push_str(&out.text);
        self.finish = Some(reason);
        out.finished = Some(reason);
    }
}
