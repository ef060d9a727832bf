//! Token sampling, in llama.cpp's order: logit bias → penalties → top-k → top-p → min-p →
//! temperature → draw. `temperature == 0` is greedy (penalties still apply). Seeded and reproducible.

use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct SamplingParams {
    pub temperature: f32,
    /// 0 = disabled.
    pub top_k: usize,
    /// 1.0 = disabled.
    pub top_p: f32,
    /// 0.0 = disabled.
    pub min_p: f32,
    /// 1.0 = disabled.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub repeat_last_n: usize,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub seed: u64,
    /// Added to these tokens' logits before anything else (OpenAI's `logit_bias`, llama.cpp's
    /// first sampler): −100 all but bans a token, +100 all but forces it.
    pub logit_bias: Vec<(u32, f32)>,
}

impl Default for SamplingParams {
    /// llama.cpp's defaults.
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
            logit_bias: Vec::new(),
        }
    }
}

impl SamplingParams {
    pub fn validate(&self) -> Result<()> {
        let bad = |name, msg: String| Err(Error::BadParam { name, msg });
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature", format!("{} must be a finite number ≥ 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("{} must be in (0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", format!("{} must be in [0, 1]", self.min_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat_penalty", format!("{} must be > 0", self.repeat_penalty));
        }
        for (name, v) in [("presence_penalty", self.presence_penalty), ("frequency_penalty", self.frequency_penalty)] {
            if !(v.is_finite() && (-2.0..=2.0).contains(&v)) {
                return bad(name, format!("{v} must be in [-2, 2]"));
            }
        }
        if let Some(&(t, b)) = self.logit_bias.iter().find(|(_, b)| !(b.is_finite() && (-100.0..=100.0).contains(b))) {
            return bad("logit_bias", format!("the bias {b} of token {t} must be in [-100, 100]"));
        }
        Ok(())
    }
}

/// xoshiro256** seeded by splitmix64: small, fast, reproducible across platforms.
#[derive(Clone, Debug)]
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let r = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }
    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    cand: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Sampler> {
        params.validate()?;
        let rng = Rng::new(params.seed);
        Ok(Sampler { params, rng, cand: Vec::new() })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Apply penalties from `history` to `logits` in place.
    fn penalize(&self, logits: &mut [f32], history: &[u32]) {
        let p = &self.params;
        if p.repeat_penalty == 1.0 && p.presence_penalty == 0.0 && p.frequency_penalty == 0.0 {
            return;
        }
        let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
        let mut counts: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        for &t in recent {
            *counts.entry(t).or_default() += 1;
        }
        for (&t, &c) in &counts {
            let Some(l) = logits.get_mut(t as usize) else { continue };
            if *l > 0.0 {
                *l /= p.repeat_penalty;
            } else {
                *l *= p.repeat_penalty;
            }
            *l -= c as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }

    /// Choose the next token. `logits` is modified (biases, penalties).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        self.prepare(logits, history);
        self.choose(logits)
    }

    /// Apply `logit_bias` and the penalties from `history` to `logits` in place.
    pub fn prepare(&self, logits: &mut [f32], history: &[u32]) {
        for &(t, b) in &self.params.logit_bias {
            if let Some(l) = logits.get_mut(t as usize) {
                *l += b;
            }
        }
        self.penalize(logits, history);
    }

    /// Draw a token from prepared `logits` (truncation, temperature; −∞ never drawn).
    pub fn choose(&mut self, logits: &[f32]) -> u32 {
        let p = self.params.clone();
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        let c = &mut self.cand;
        c.clear();
        c.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        // top-k (llama.cpp: k ≤ 0 disables)
        let k = if p.top_k == 0 { c.len() } else { p.top_k.min(c.len()) };
        if k < c.len() {
            c.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            c.truncate(k);
        }
        c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // softmax over the candidates
        let softmax = |c: &[(u32, f32)]| -> Vec<f64> {
            let max = c[0].1 as f64;
            let e: Vec<f64> = c.iter().map(|&(_, l)| (l as f64 - max).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|x| x / s).collect()
        };
        // top-p: smallest prefix with cumulative probability ≥ p (at least one)
        if p.top_p < 1.0 {
            let probs = softmax(c);
            let mut cum = 0.0;
            let mut keep = c.len();
            for (i, pr) in probs.iter().enumerate() {
                cum += pr;
                if cum >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep.max(1));
        }
        // min-p: drop tokens whose probability is below min_p × the top one's
        if p.min_p > 0.0 {
            let max = c[0].1;
            let thr = max + (p.min_p).ln();
            let keep = c.iter().take_while(|&&(_, l)| l >= thr).count().max(1);
            c.truncate(keep);
        }
        // temperature, then draw
        for x in c.iter_mut() {
            x.1 /= p.temperature;
        }
        let probs = softmax(c);
        let r = self.rng.next_f64();
        let mut cum = 0.0;
        for (i, pr) in probs.iter().enumerate() {
            cum += pr;
            if r < cum {
                return c[i].0;
            }
        }
        // Rounding left r past the sum: the last candidate that can be drawn (never a masked one).
        probs.iter().rposition(|&p| p > 0.0).map_or(c[0].0, |i| c[i].0)
    }
}

pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for i in 1..x.len() {
        if x[i] > x[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greedy_with(p: SamplingParams, logits: &[f32], history: &[u32]) -> u32 {
        let mut l = logits.to_vec();
        Sampler::new(p).unwrap().sample(&mut l, history)
    }

    #[test]
    fn penalties_follow_llama_cpp() {
        let logits = [2.0, 1.9, -1.0];
        let base = SamplingParams { temperature: 0.0, ..Default::default() };
        assert_eq!(greedy_with(base.clone(), &logits, &[0, 0]), 0);
        // repeat penalty divides positive logits: 2.0 / 1.1 < 1.9
        assert_eq!(greedy_with(SamplingParams { repeat_penalty: 1.1, ..base.clone() }, &logits, &[0]), 1);
        // frequency penalty scales with count; presence is flat
        assert_eq!(greedy_with(SamplingParams { frequency_penalty: 0.06, ..base.clone() }, &logits, &[0, 0]), 1);
        assert_eq!(greedy_with(SamplingParams { frequency_penalty: 0.06, ..base.clone() }, &logits, &[0]), 0);
        assert_eq!(greedy_with(SamplingParams { presence_penalty: 0.2, ..base.clone() }, &logits, &[0]), 1);
        // negative logits are multiplied (pushed further down)
        let mut l = logits.to_vec();
        let s = Sampler::new(SamplingParams { repeat_penalty: 2.0, ..base.clone() }).unwrap();
        s.penalize(&mut l, &[2]);
        assert_eq!(l[2], -2.0);
        // only the last repeat_last_n tokens count
        assert_eq!(greedy_with(SamplingParams { repeat_penalty: 1.1, repeat_last_n: 1, ..base }, &logits, &[0, 1]), 0);
    }

    #[test]
    fn sampling_respects_filters() {
        // min_p = 0.5 keeps only tokens with p ≥ half the top one's: logits 0 and ln(0.6)
        let logits = [0.0f32, (0.6f32).ln(), (0.1f32).ln(), (0.05f32).ln()];
        let p = SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.5, ..Default::default() };
        let mut s = Sampler::new(p).unwrap();
        for _ in 0..200 {
            let mut l = logits.to_vec();
            assert!(s.sample(&mut l, &[]) <= 1);
        }
        let p = SamplingParams { temperature: 1.0, top_k: 2, top_p: 1.0, min_p: 0.0, seed: 5, ..Default::default() };
        let mut s = Sampler::new(p).unwrap();
        let mut seen = [0; 4];
        for _ in 0..500 {
            let mut l = logits.to_vec();
            seen[s.sample(&mut l, &[]) as usize] += 1;
        }
        assert!(seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[3] == 0, "{seen:?}");
        // top_p = 0.5: the top token alone already covers 0.5 of the mass → always token 0
        let p = SamplingParams { temperature: 1.0, top_k: 0, top_p: 0.5, min_p: 0.0, ..Default::default() };
        let mut s = Sampler::new(p).unwrap();
        for _ in 0..100 {
            let mut l = logits.to_vec();
            assert_eq!(s.sample(&mut l, &[]), 0);
        }
    }
}
