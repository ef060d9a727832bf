//! Score a multiple-choice task through the engine.

use glassbox_engine::{Engine, LoglikRequest};
use serde::{Deserialize, Serialize};

use crate::metrics::{Estimate, estimate, predict};
use crate::prompt::{build_context, encode_pair};
use crate::{Error, McItem, Result};

#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Score only the first `limit` questions (lm-eval's `--limit`).
    pub limit: Option<usize>,
    /// Solved examples before each question.
    pub shots: usize,
    /// Seeds the choice of examples and the bootstrap.
    pub seed: u64,
    /// Questions handed to the engine at once (it batches their contexts and choices).
    pub batch_questions: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { limit: None, shots: 0, seed: 1234, batch_questions: 32 }
    }
}

/// One question's outcome (`--log-samples`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ItemResult {
    pub id: String,
    pub loglik: Vec<f64>,
    /// Whether greedy decoding would produce each choice.
    pub greedy: Vec<bool>,
    pub pred: usize,
    pub pred_norm: usize,
    pub gold: usize,
    /// Tokens of the context (with examples) and of each choice.
    pub context_tokens: usize,
    pub choice_tokens: Vec<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskResult {
    pub n: usize,
    pub acc: Estimate,
    pub acc_norm: Estimate,
    pub shots: usize,
    /// Expected calibration error of `acc`'s answers (10 bins).
    #[serde(default)]
    pub ece: f64,
    pub seconds: f64,
    pub items: Vec<ItemResult>,
    /// Read from the results cache rather than computed now.
    #[serde(default)]
    pub cached: bool,
}

/// Score `items` (all, or the first `limit`). `progress(done, total)` is called after each
/// engine batch. A question whose tokens do not fit the engine's context is refused before
/// anything runs, naming it and the numbers.
pub fn evaluate(engine: &mut Engine, items: &[McItem], opts: &EvalOptions, mut progress: impl FnMut(usize, usize)) -> Result<TaskResult> {
    let n = opts.limit.map_or(items.len(), |l| l.min(items.len()));
    if n == 0 {
        return Err(Error::Usage("no questions to score (--limit 0?)".into()));
    }
    let started = std::time::Instant::now();
    let tok = std::sync::Arc::clone(&engine.tokenizer);
    let ctx_size = engine.ctx_size();
    let mut reqs = Vec::with_capacity(n);
    for i in 0..n {
        let context = build_context(items, i, opts.shots, opts.seed).map_err(Error::Usage)?;
        let mut ctx_enc = Vec::new();
        let mut conts = Vec::with_capacity(items[i].choices.len());
        for (j, choice) in items[i].choices.iter().enumerate() {
            let (c, k) = encode_pair(&tok, &context, choice);
            if k.is_empty() {
                return Err(Error::Usage(format!("question {}: choice {j} ({choice:?}) adds no tokens to its context", items[i].id)));
            }
            if c.len() + k.len() - 1 > ctx_size {
                return Err(Error::Usage(format!(
                    "question {}: context ({} tokens) + choice {j} ({} tokens) need {} positions; the context size is {ctx_size} (raise it with -c, up to the model's own)",
                    items[i].id, c.len(), k.len(), c.len() + k.len() - 1
                )));
            }
            // The context's tokens do not depend on the choice.
            ctx_enc = c;
            conts.push(k);
        }
        reqs.push(LoglikRequest { context: ctx_enc, continuations: conts });
    }
    let mut results = Vec::with_capacity(n);
    let step = opts.batch_questions.max(1);
    for start in (0..n).step_by(step) {
        let end = (start + step).min(n);
        let scores = engine.loglikelihood(&reqs[start..end])?;
        for (k, s) in scores.into_iter().enumerate() {
            let i = start + k;
            let it = &items[i];
            let loglik: Vec<f64> = s.iter().map(|c| c.loglik).collect();
            let (pred, pred_norm) = predict(&loglik, &it.choices);
            results.push(ItemResult {
                id: it.id.clone(),
                greedy: s.iter().map(|c| c.greedy).collect(),
                loglik,
                pred,
                pred_norm,
                gold: it.gold,
                context_tokens: reqs[i].context.len(),
                choice_tokens: reqs[i].continuations.iter().map(Vec::len).collect(),
            });
        }
        progress(end, n);
    }
    let acc: Vec<f64> = results.iter().map(|r| f64::from(u8::from(r.pred == r.gold))).collect();
    let acc_norm: Vec<f64> = results.iter().map(|r| f64::from(u8::from(r.pred_norm == r.gold))).collect();
    Ok(TaskResult {
        n,
        acc: estimate(&acc, opts.seed),
        acc_norm: estimate(&acc_norm, opts.seed.wrapping_add(1)),
        shots: opts.shots,
        ece: crate::metrics::ece(&results.iter().map(|r| r.loglik.clone()).collect::<Vec<_>>(), &results.iter().map(|r| r.gold).collect::<Vec<_>>(), 10),
        seconds: started.elapsed().as_secs_f64(),
        items: results,
        cached: false,
    })
}
