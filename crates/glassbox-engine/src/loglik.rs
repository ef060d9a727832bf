//! Log-likelihood of continuations given a context, as lm-evaluation-harness asks a model for
//! them: the context is computed once, every continuation continues from a copy of its cache,
//! and contexts and continuations of many requests go through each forward pass together.

use glassbox_models::{KvCache, Logits, SeqBatch};

use crate::{Engine, Error, Result};

/// One question: a context and the continuations to score after it (token ids; the context
/// already carries BOS when the model adds one).
#[derive(Clone, Debug)]
pub struct LoglikRequest {
    pub context: Vec<u32>,
    pub continuations: Vec<Vec<u32>>,
}

/// `log P(continuation | context)` summed over its tokens, and whether greedy decoding from the
/// context would have produced exactly this continuation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContinuationScore {
    pub loglik: f64,
    pub greedy: bool,
}

/// Log-probability of `tok` under `row` and whether it is the argmax: f32 max and exponentials
/// (vectorized), f64 sum, as llama-perplexity computes it.
pub fn token_logprob(isa: glassbox_kernels::Isa, row: &[f32], tok: usize) -> (f64, bool) {
    let (max, sum) = glassbox_kernels::max_exp_sum(isa, row);
    let lp = (row[tok] - max) as f64 - sum.ln();
    // Ties count as greedy only for the first maximal index, as argmax does; only a token that
    // reaches the maximum needs the entries before it looked at.
    let first_max = row[tok] == max && !row[..tok].contains(&max);
    (lp, first_max)
}

/// Buffers kept between calls: fresh multi-megabyte buffers cost page clearing every time.
#[derive(Default)]
pub(crate) struct LoglikScratch {
    logits: Vec<f32>,
    first: Vec<f32>,
    ctx: Vec<KvCache>,
    cont: Vec<KvCache>,
}

/// A cache from `pool[i]` with room for `need` positions, emptied.
fn cache_slot<'a>(pool: &'a mut Vec<KvCache>, i: usize, cfg: &glassbox_models::Config, need: usize) -> &'a mut KvCache {
    while pool.len() <= i {
        pool.push(KvCache::new(cfg, 1));
    }
    if pool[i].capacity() < need {
        pool[i] = KvCache::new(cfg, need.next_power_of_two());
    }
    pool[i].clear();
    &mut pool[i]
}

/// Most logits rows held at once while scoring (each is `n_vocab` floats).
const MAX_LOGIT_BYTES: usize = 256 << 20;

impl Engine {
    /// Score every continuation of every request. Errors name the request (by index) that does
    /// not fit: an empty context or continuation, or context + continuation longer than the
    /// context size — nothing is truncated.
    pub fn loglikelihood(&mut self, reqs: &[LoglikRequest]) -> Result<Vec<Vec<ContinuationScore>>> {
        let n_ctx = self.ctx_size();
        let n_vocab = self.model.config.n_vocab;
        for (i, r) in reqs.iter().enumerate() {
            if r.context.is_empty() {
                return Err(Error::Other(format!("request {i}: the context has no tokens (lm-eval puts BOS or EOS there)")));
            }
            if r.continuations.is_empty() {
                return Err(Error::Other(format!("request {i}: no continuations to score")));
            }
            for (j, c) in r.continuations.iter().enumerate() {
                if c.is_empty() {
                    return Err(Error::Other(format!("request {i}: continuation {j} has no tokens")));
                }
                let need = r.context.len() + c.len() - 1;
                if need > n_ctx {
                    return Err(Error::Other(format!(
                        "request {i}: context ({} tokens) + continuation {j} ({} tokens) needs {need} positions, the context size is {n_ctx}",
                        r.context.len(), c.len()
                    )));
                }
            }
            if let Some(&id) = r.context.iter().chain(r.continuations.iter().flatten()).find(|&&id| id as usize >= n_vocab) {
                return Err(Error::Other(format!("request {i}: token {id} is outside the vocabulary ({n_vocab})")));
            }
        }
        let budget = self.batch_size;
        let max_rows = (MAX_LOGIT_BYTES / (n_vocab * 4)).max(8);
        let mut out: Vec<Vec<ContinuationScore>> = reqs.iter().map(|r| Vec::with_capacity(r.continuations.len())).collect();
        let mut start = 0;
        while start < reqs.len() {
            // A group of requests whose contexts fill about one batch.
            let mut end = start;
            let mut toks = 0;
            while end < reqs.len() && (end == start || toks + reqs[end].context.len() <= budget) {
                toks += reqs[end].context.len();
                end += 1;
            }
            self.score_group(&reqs[start..end], &mut out[start..end], budget, max_rows)?;
            start = end;
        }
        Ok(out)
    }

    /// `token_logprob` of every row, the rows shared out over the engine's threads (a row of a
    /// large vocabulary costs as much as a small matmul).
    fn row_logprobs(&self, rows: &[(&[f32], u32)]) -> Vec<(f64, bool)> {
        let nt = self.pool.n_threads().max(1);
        let parts: Vec<std::sync::Mutex<Vec<(f64, bool)>>> = (0..nt).map(|_| std::sync::Mutex::new(Vec::new())).collect();
        let isa = self.isa;
        self.pool.run(&|tid| {
            let mine: Vec<(f64, bool)> = rows.iter().skip(tid).step_by(nt).map(|&(r, t)| token_logprob(isa, r, t as usize)).collect();
            if let Ok(mut p) = parts[tid].lock() {
                *p = mine;
            }
        });
        let parts: Vec<Vec<(f64, bool)>> = parts.into_iter().map(|m| m.into_inner().unwrap_or_default()).collect();
        (0..rows.len()).map(|k| parts[k % nt][k / nt]).collect()
    }

    fn score_group(&mut self, reqs: &[LoglikRequest], out: &mut [Vec<ContinuationScore>], budget: usize, max_rows: usize) -> Result<()> {
        let mut s = std::mem::take(&mut self.ll);
        let r = self.score_group_in(&mut s, reqs, out, budget, max_rows);
        self.ll = s;
        r
    }

    fn score_group_in(&mut self, s: &mut LoglikScratch, reqs: &[LoglikRequest], out: &mut [Vec<ContinuationScore>], budget: usize, max_rows: usize) -> Result<()> {
        let cfg = &self.model.config;
        let n_vocab = cfg.n_vocab;
        // 1. Contexts, in chunks of at most `budget` tokens per pass; the last logits row of
        //    each context predicts every continuation's first token.
        for (i, r) in reqs.iter().enumerate() {
            cache_slot(&mut s.ctx, i, cfg, r.context.len());
        }
        let caches = &mut s.ctx[..reqs.len()];
        s.first.resize(reqs.len() * n_vocab, 0.0);
        let first_rows = &mut s.first;
        let mut done = vec![0usize; reqs.len()];
        let logits = &mut s.logits;
        loop {
            let mut take: Vec<(usize, usize)> = Vec::new(); // (request, tokens this pass)
            let mut room = budget;
            for (i, r) in reqs.iter().enumerate() {
                let left = r.context.len() - done[i];
                if left == 0 || room == 0 {
                    continue;
                }
                let n = left.min(room);
                take.push((i, n));
                room -= n;
            }
            if take.is_empty() {
                break;
            }
            let mut batch: Vec<SeqBatch> = Vec::with_capacity(take.len());
            let mut last: Vec<usize> = Vec::new();
            for (cache, (i, r)) in caches.iter_mut().zip(reqs.iter().enumerate()) {
                let Some(&(_, n)) = take.iter().find(|t| t.0 == i) else { continue };
                let ends = done[i] + n == r.context.len();
                if ends {
                    last.push(i);
                }
                batch.push(SeqBatch {
                    tokens: &r.context[done[i]..done[i] + n],
                    cache,
                    logits: if ends { Logits::Last } else { Logits::None },
                });
            }
            // The last row of a context is scored against every continuation's first token.
            let firsts: Vec<Vec<u32>> = last.iter().map(|&i| reqs[i].continuations.iter().map(|c| c[0]).collect()).collect();
            let targets: Vec<&[u32]> = firsts.iter().map(Vec::as_slice).collect();
            logits.clear();
            self.model.forward_scored(&self.pool, self.isa, &mut batch, &mut self.scratch, logits, &targets)?;
            for (k, &i) in last.iter().enumerate() {
                first_rows[i * n_vocab..(i + 1) * n_vocab].copy_from_slice(&logits[k * n_vocab..(k + 1) * n_vocab]);
            }
            for (i, n) in take {
                done[i] += n;
            }
        }
        // 2. Continuations: each from a copy of its context's cache, several per pass.
        let mut jobs: Vec<(usize, usize)> = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            for j in 0..r.continuations.len() {
                jobs.push((i, j));
            }
        }
        let pool = &mut s.cont;
        let mut k = 0;
        while k < jobs.len() {
            let mut end = k;
            let mut rows = 0;
            while end < jobs.len() {
                let (i, j) = jobs[end];
                let n = reqs[i].continuations[j].len() - 1;
                if end > k && (rows + n > max_rows || rows + n > budget) {
                    break;
                }
                rows += n;
                end += 1;
            }
            let group = &jobs[k..end];
            for (g, &(i, j)) in group.iter().enumerate() {
                let need = reqs[i].context.len() + reqs[i].continuations[j].len() - 1;
                cache_slot(pool, g, cfg, need).copy_prefix_from(&caches[i], reqs[i].context.len())?;
            }
            logits.clear();
            let mut batch: Vec<SeqBatch> = Vec::with_capacity(group.len());
            let mut targets: Vec<&[u32]> = Vec::new();
            for (slot, &(i, j)) in pool.iter_mut().zip(group) {
                let c = &reqs[i].continuations[j];
                if c.len() > 1 {
                    batch.push(SeqBatch { tokens: &c[..c.len() - 1], cache: slot, logits: Logits::All });
                    // Row t predicts token t + 1.
                    targets.extend(c[1..].iter().map(std::slice::from_ref));
                }
            }
            if !batch.is_empty() {
                self.model.forward_scored(&self.pool, self.isa, &mut batch, &mut self.scratch, logits, &targets)?;
            }
            // Every scored row: (logits, target token); first rows come from the context pass.
            let mut rows: Vec<(&[f32], u32)> = Vec::new();
            let mut row = 0;
            for &(i, j) in group {
                let c = &reqs[i].continuations[j];
                rows.push((&first_rows[i * n_vocab..(i + 1) * n_vocab], c[0]));
                for &t in &c[1..] {
                    rows.push((&logits[row * n_vocab..(row + 1) * n_vocab], t));
                    row += 1;
                }
            }
            let lps = self.row_logprobs(&rows);
            let mut at = 0;
            for &(i, j) in group {
                let n = reqs[i].continuations[j].len();
                let (ll, greedy) = lps[at..at + n].iter().fold((0.0, true), |(l, g), &(lp, gr)| (l + lp, g && gr));
                at += n;
                out[i].push(ContinuationScore { loglik: ll, greedy });
            }
            k = end;
        }
        Ok(())
    }
}
