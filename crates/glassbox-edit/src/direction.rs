//! Difference-of-means directions. For each layer ℓ and each of the last `positions` prompt
//! positions p, the residual stream after layer ℓ is averaged over the positive prompts and over
//! the negative ones; the direction is their difference. Each candidate is reported with its
//! norm and how well it separates the two sets (the gap between the sets' mean projections onto
//! the unit direction, in pooled standard deviations), so the layer worth ablating can be chosen;
//! choosing by ablated refusal score and first-token KL (Arditi et al.'s selection) is the next
//! step, on top of these candidates.

use glassbox_engine::Engine;
use glassbox_gguf::{GgmlType, GgufWriter, Value, WriterTensor};

use crate::{Error, Result};

/// Directions for every (layer, position) of one model.
#[derive(Clone, Debug)]
pub struct Directions {
    pub n_layer: usize,
    pub n_embd: usize,
    /// Positions counted from the end of each prompt (index 0 = the last token).
    pub positions: usize,
    /// `n_layer × positions × n_embd`: mean(positive) − mean(negative).
    pub diff: Vec<f32>,
    pub stats: Vec<Candidate>,
    pub n_positive: usize,
    pub n_negative: usize,
}

/// One candidate direction's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub layer: usize,
    /// Counted from the end (0 = the last prompt token).
    pub position: usize,
    pub norm: f64,
    /// (mean projection of positives − of negatives) / pooled standard deviation.
    pub separation: f64,
}

impl Directions {
    /// The direction of `layer` at `position` (from the end).
    pub fn get(&self, layer: usize, position: usize) -> &[f32] {
        assert!(layer < self.n_layer && position < self.positions, "direction ({layer}, {position}) of {} layers × {} positions", self.n_layer, self.positions);
        let i = (layer * self.positions + (self.positions - 1 - position)) * self.n_embd;
        &self.diff[i..i + self.n_embd]
    }
}

/// Residual streams of every prompt's last `positions` tokens (`n_layer × positions × n_embd`
/// each).
fn capture(engine: &mut Engine, prompts: &[Vec<u32>], positions: usize, progress: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(prompts.len());
    for p in prompts {
        if p.len() < positions {
            return Err(Error::Usage(format!("a prompt of {} tokens is shorter than --positions {positions}", p.len())));
        }
        out.push(engine.residuals(p, positions)?);
        progress(1);
    }
    Ok(out)
}

/// Difference-of-means directions of `positive` against `negative` (token lists, e.g. chat
/// prompts as the model's template renders them).
pub fn find(engine: &mut Engine, positive: &[Vec<u32>], negative: &[Vec<u32>], positions: usize, mut progress: impl FnMut(usize, usize)) -> Result<Directions> {
    if positive.len() < 2 || negative.len() < 2 {
        return Err(Error::Usage(format!("{} positive and {} negative prompts; each set needs at least 2", positive.len(), negative.len())));
    }
    if positions == 0 {
        return Err(Error::Usage("--positions must be at least 1".into()));
    }
    let total = positive.len() + negative.len();
    let mut done = 0;
    let mut tick = |k: usize| {
        done += k;
        progress(done, total);
    };
    let pos = capture(engine, positive, positions, &mut tick)?;
    let neg = capture(engine, negative, positions, &mut tick)?;
    let n_embd = engine.model.config.n_embd;
    let len = pos[0].len();
    let n_layer = len / (positions * n_embd);
    let mean = |set: &[Vec<f32>]| -> Vec<f64> {
        let mut m = vec![0f64; len];
        for s in set {
            m.iter_mut().zip(s).for_each(|(a, &b)| *a += f64::from(b));
        }
        m.iter_mut().for_each(|a| *a /= set.len() as f64);
        m
    };
    let (mp, mn) = (mean(&pos), mean(&neg));
    let diff: Vec<f32> = mp.iter().zip(&mn).map(|(a, b)| (a - b) as f32).collect();
    let mut stats = Vec::with_capacity(n_layer * positions);
    for layer in 0..n_layer {
        for slot in 0..positions {
            let off = (layer * positions + slot) * n_embd;
            let d = &diff[off..off + n_embd];
            let norm = d.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
            let proj = |s: &Vec<f32>| -> f64 { s[off..off + n_embd].iter().zip(d).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>() / norm.max(1e-30) };
            let (pp, pn): (Vec<f64>, Vec<f64>) = (pos.iter().map(proj).collect(), neg.iter().map(proj).collect());
            let mv = |v: &[f64]| {
                let m = v.iter().sum::<f64>() / v.len() as f64;
                (m, v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64)
            };
            let ((m1, v1), (m2, v2)) = (mv(&pp), mv(&pn));
            let pooled = (((pp.len() - 1) as f64 * v1 + (pn.len() - 1) as f64 * v2) / (pp.len() + pn.len() - 2) as f64).sqrt();
            stats.push(Candidate { layer, position: positions - 1 - slot, norm, separation: (m1 - m2) / pooled.max(1e-30) });
        }
    }
    Ok(Directions { n_layer, n_embd, positions, diff, stats, n_positive: positive.len(), n_negative: negative.len() })
}

/// The directions as a GGUF file: one F32 tensor `direction.LAYER.POSITION` of `n_embd` values
/// each, and metadata naming the model (architecture, width, layers, SHA-256) and everything in
/// `provenance` (data digests, lineage).
pub fn to_gguf(d: &Directions, arch: &str, model_sha256: &str, provenance: &[(String, Value)], out: &mut impl std::io::Write) -> Result<()> {
    let bytes: Vec<Vec<u8>> = (0..d.n_layer)
        .flat_map(|l| (0..d.positions).map(move |p| (l, p)))
        .map(|(l, p)| d.get(l, p).iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let mut metadata = vec![
        ("general.architecture".to_string(), Value::String("glassbox-direction".into())),
        ("general.type".to_string(), Value::String("direction".into())),
        ("glassbox.direction.model.architecture".to_string(), Value::String(arch.into())),
        ("glassbox.direction.model.sha256".to_string(), Value::String(model_sha256.into())),
        ("glassbox.direction.n_embd".to_string(), Value::U64(d.n_embd as u64)),
        ("glassbox.direction.n_layer".to_string(), Value::U64(d.n_layer as u64)),
        ("glassbox.direction.positions".to_string(), Value::U64(d.positions as u64)),
        ("glassbox.direction.method".to_string(), Value::String("difference of means (positive − negative), residual stream after each layer".into())),
        ("glassbox.direction.n_positive".to_string(), Value::U64(d.n_positive as u64)),
        ("glassbox.direction.n_negative".to_string(), Value::U64(d.n_negative as u64)),
    ];
    metadata.extend(provenance.iter().cloned());
    let tensors: Vec<WriterTensor> = (0..d.n_layer)
        .flat_map(|l| (0..d.positions).map(move |p| (l, p)))
        .zip(&bytes)
        .map(|((l, p), b)| WriterTensor { name: format!("direction.{l}.{p}"), dims: vec![d.n_embd as u64], ggml_type: GgmlType::from_id(0), data: b })
        .collect();
    GgufWriter { version: 3, metadata, tensors }.write(out).map_err(|e| Error::File { path: "(output)".into(), msg: e.to_string() })
}

/// One candidate's effect when ablated at run time (Arditi et al.'s selection).
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    pub layer: usize,
    pub position: usize,
    /// Mean first-token refusal log-odds on held-out harmful prompts, ablated.
    pub refusal_score: f64,
    /// Mean KL(unablated ‖ ablated) of the first-token distribution on harmless prompts (nats).
    pub kl: f64,
}

fn refusal_log_odds(lp: &[f32], refusal_tokens: &[u32]) -> f64 {
    glassbox_eval::refusal::log_odds(refusal_tokens.iter().map(|&t| f64::from(lp[t as usize]).exp()).sum())
}

/// Ablate each candidate of the first `max_layer` layers in turn and measure its refusal
/// score on `harmful` and its first-token KL on `harmless` (both held out from the prompts the
/// directions came from). Returns the unablated refusal score and the scores, sorted best first
/// (lowest refusal score). The engine's ablation is off again afterwards, also on error.
pub fn score_candidates(engine: &mut Engine, d: &Directions, harmful: &[Vec<u32>], harmless: &[Vec<u32>], refusal_tokens: &[u32], max_layer: usize, mut progress: impl FnMut(usize, usize)) -> Result<(f64, Vec<Score>)> {
    if harmful.is_empty() || harmless.is_empty() || refusal_tokens.is_empty() {
        return Err(Error::Usage("selection needs held-out harmful and harmless prompts and refusal tokens".into()));
    }
    let base_harmless: Vec<Vec<f32>> = harmless.iter().map(|p| engine.next_token_logprobs(p)).collect::<Result<_, _>>()?;
    let mean_refusal = |e: &mut Engine| -> Result<f64> {
        let mut s = 0.0;
        for p in harmful {
            s += refusal_log_odds(&e.next_token_logprobs(p)?, refusal_tokens);
        }
        Ok(s / harmful.len() as f64)
    };
    let baseline = mean_refusal(engine)?;
    let cands: Vec<(usize, usize)> = (0..max_layer.min(d.n_layer)).flat_map(|l| (0..d.positions).map(move |p| (l, p))).collect();
    let mut out = Vec::with_capacity(cands.len());
    let result = (|| -> Result<()> {
        for (i, &(layer, position)) in cands.iter().enumerate() {
            engine.set_ablation(Some(d.get(layer, position)))?;
            let refusal_score = mean_refusal(engine)?;
            let mut k = 0.0;
            for (p, base) in harmless.iter().zip(&base_harmless) {
                k += glassbox_eval::compare::kl(base, &engine.next_token_logprobs(p)?);
            }
            out.push(Score { layer, position, refusal_score, kl: k / harmless.len() as f64 });
            progress(i + 1, cands.len());
        }
        Ok(())
    })();
    engine.set_ablation(None)?;
    result?;
    out.sort_by(|a, b| a.refusal_score.total_cmp(&b.refusal_score));
    Ok((baseline, out))
}

/// Arditi et al.'s choice: the lowest refusal score among candidates whose harmless KL is at
/// most `max_kl` (they use 0.1).
pub fn pick(scores: &[Score], max_kl: f64) -> Option<&Score> {
    scores.iter().filter(|s| s.kl <= max_kl).min_by(|a, b| a.refusal_score.total_cmp(&b.refusal_score))
}
