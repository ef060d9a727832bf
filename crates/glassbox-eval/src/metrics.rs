//! Scores as lm-evaluation-harness computes them for multiple-choice tasks, with uncertainty.
//!
//! - `acc`: the choice with the highest summed log-likelihood is the gold one (first index wins
//!   a tie, as `numpy.argmax`).
//! - `acc_norm`: the same after dividing each log-likelihood by the choice's length in
//!   characters (Unicode scalar values, Python's `len`) — of the choice text without the
//!   one-space target delimiter lm-eval puts before it, so ours is lm-eval's number exactly.
//! - `stderr`: lm-eval's `mean_stderr` (sample standard deviation over √n).
//! - `ci95`: percentile bootstrap over questions, deterministic given the seed.

use serde::{Deserialize, Serialize};

/// argmax with the first index winning ties (NaN never wins).
pub fn argmax(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] || xs[best].is_nan() && !x.is_nan() {
            best = i;
        }
    }
    best
}

/// Length used by `acc_norm`: characters of the choice without a leading delimiter space.
pub fn norm_len(choice: &str) -> usize {
    choice.strip_prefix(' ').unwrap_or(choice).chars().count().max(1)
}

/// `(pred, pred_norm)` for one question.
pub fn predict(logliks: &[f64], choices: &[String]) -> (usize, usize) {
    let normed: Vec<f64> = logliks.iter().zip(choices).map(|(&l, c)| l / norm_len(c) as f64).collect();
    (argmax(logliks), argmax(&normed))
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub stderr: f64,
    pub ci95: [f64; 2],
}

/// SplitMix64: a small, fixed generator so a seed means the same resamples everywhere.
pub struct SplitMix64(pub u64);
impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }
}

/// Expected calibration error of multiple-choice answers (Guo et al. 2017): each question's
/// confidence is the probability of its predicted choice after a softmax over the choices'
/// log-likelihoods; questions fall into `bins` equal-width confidence bins and the error is the
/// question-weighted mean |accuracy − mean confidence| over bins. 0 is perfectly calibrated.
pub fn ece(logliks: &[Vec<f64>], gold: &[usize], bins: usize) -> f64 {
    let n = logliks.len().min(gold.len());
    if n == 0 || bins == 0 {
        return f64::NAN;
    }
    let mut conf = vec![0f64; bins];
    let mut hits = vec![0f64; bins];
    let mut count = vec![0usize; bins];
    for (ll, &g) in logliks.iter().zip(gold) {
        let m = ll.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = ll.iter().map(|l| (l - m).exp()).sum();
        let pred = argmax(ll);
        let c = (ll[pred] - m).exp() / z;
        let b = ((c * bins as f64) as usize).min(bins - 1);
        conf[b] += c;
        hits[b] += f64::from(u8::from(pred == g));
        count[b] += 1;
    }
    (0..bins).filter(|&b| count[b] > 0).map(|b| (hits[b] - conf[b]).abs()).sum::<f64>() / n as f64
}

pub const BOOTSTRAP: usize = 1000;

/// Percentile bootstrap 95 % interval of `stat` over `n` questions: [`BOOTSTRAP`] resamples of
/// `n` indices drawn with replacement from a generator seeded with `seed`, `stat` recomputed on
/// each (resamples where it is not finite are left out).
pub fn bootstrap(n: usize, seed: u64, stat: impl Fn(&mut dyn Iterator<Item = usize>) -> f64) -> [f64; 2] {
    let mut rng = SplitMix64(seed);
    let mut v: Vec<f64> = (0..BOOTSTRAP)
        .map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.below(n.max(1))).collect();
            stat(&mut idx.into_iter())
        })
        .filter(|x| x.is_finite())
        .collect();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v.get(((q * (v.len().max(1) - 1) as f64).round()) as usize).copied().unwrap_or(f64::NAN);
    [at(0.025), at(0.975)]
}

/// Mean of per-question values with lm-eval's stderr and a bootstrap 95 % interval.
pub fn estimate(values: &[f64], seed: u64) -> Estimate {
    let n = values.len();
    if n == 0 {
        return Estimate { value: f64::NAN, stderr: f64::NAN, ci95: [f64::NAN, f64::NAN] };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let stderr = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() / (n as f64).sqrt()
    } else {
        f64::NAN
    };
    let ci95 = bootstrap(n, seed ^ 0x6c6d_2d65_7661_6c00, |idx| idx.map(|i| values[i]).sum::<f64>() / n as f64);
    Estimate { value: mean, stderr, ci95 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_follow_lm_eval() {
        // lm-eval: acc = argmax(lls); acc_norm = argmax(lls / len(choice)), choice without " ".
        let choices: Vec<String> = [" ab", " abcdef"].iter().map(|s| s.to_string()).collect();
        assert_eq!(predict(&[-4.0, -6.0], &choices), (0, 1)); // -2 vs -1 per char
        assert_eq!(argmax(&[1.0, 1.0, 0.5]), 0);
        assert_eq!(argmax(&[f64::NAN, -1.0]), 1);
        assert_eq!(norm_len(" héllo"), 5);
        assert_eq!(norm_len("x"), 1);
    }

    #[test]
    fn calibration_error_follows_its_definition() {
        // Two questions at confidence 0.5 (one right) and two at ~0.88 (both right).
        let ll = vec![vec![0.0, 0.0], vec![0.0, 0.0], vec![0.0, -2.0], vec![0.0, -2.0]];
        let c = 1.0 / (1.0 + (-2f64).exp());
        let e = ece(&ll, &[0, 1, 0, 0], 10);
        assert!((e - (2.0 * (1.0 - c)) / 4.0).abs() < 1e-12, "{e}");
        assert!(ece(&[vec![0.0, -50.0]], &[0], 10) < 1e-12);
        assert!(ece(&[], &[], 10).is_nan());
    }

    #[test]
    fn estimate_is_deterministic_and_brackets_the_mean() {
        let v: Vec<f64> = (0..300).map(|i| f64::from(i % 3 == 0)).collect();
        let a = estimate(&v, 1);
        assert_eq!(a, estimate(&v, 1));
        assert!((a.value - 1.0 / 3.0).abs() < 1e-12);
        assert!(a.ci95[0] < a.value && a.value < a.ci95[1]);
        // Width near the normal approximation's 2 × 1.96 × stderr.
        let w = a.ci95[1] - a.ci95[0];
        assert!((w / (3.92 * a.stderr) - 1.0).abs() < 0.2, "{w} vs {}", a.stderr);
        let mut r = SplitMix64(5);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
