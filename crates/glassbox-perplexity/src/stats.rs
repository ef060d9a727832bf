//! Perplexity and KL-divergence accumulators, term for term as llama-perplexity computes them
//! (same float/double mix, same uncertainty formulas), so the numbers compare directly.

use crate::base::join;

fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count < 1 {
        return (0.0, 0.0);
    }
    let f = sum / count as f64;
    let df = sum2 / count as f64 - f * f;
    let df = if df > 0.0 && count > 10 { (df / (count - 1) as f64).sqrt() } else { 0.0 };
    (f, df)
}

fn covariance(a: f64, b: f64, ab: f64, count: usize) -> f64 {
    if count < 10 {
        return 0.0;
    }
    let n = count as f64;
    (ab / n - (a / n) * (b / n)) / (n - 1.0)
}

/// llama.cpp's linear-interpolated percentile of sorted values.
fn percentile(sorted: &[f32], fraction: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    if fraction <= 0.0 {
        return sorted[0];
    }
    if fraction >= 1.0 {
        return sorted[sorted.len() - 1];
    }
    let p = fraction * (sorted.len() - 1) as f32;
    let ip = p as usize;
    let p = p - ip as f32;
    (1.0 - p) * sorted[ip] + p * sorted[(ip + 1).min(sorted.len() - 1)]
}

fn median(sorted: &[f32]) -> f32 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 0 => 0.5 * (sorted[n / 2] + sorted[n / 2 - 1]),
        n => sorted[n / 2],
    }
}

/// Negative log-likelihood of `tok` under `logits` as llama-perplexity's plain perplexity
/// computes it (f32 max and exponentials, f64 sum).
pub fn nll(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().fold(logits[0], |m, &v| m.max(v));
    let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
    -((logits[tok] - max) as f64 - sum.ln())
}

#[derive(Clone, Debug, Default)]
pub struct PplAccumulator {
    sum: f64,
    sum2: f64,
    count: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PplSummary {
    pub ppl: f64,
    pub ppl_unc: f64,
    pub tokens: usize,
}

impl PplAccumulator {
    pub fn add(&mut self, nll: f64) {
        self.sum += nll;
        self.sum2 += nll * nll;
        self.count += 1;
    }
    pub fn summary(&self) -> PplSummary {
        let (m, u) = mean_and_uncertainty(self.sum, self.sum2, self.count);
        let ppl = m.exp();
        PplSummary { ppl, ppl_unc: ppl * u, tokens: self.count }
    }
}

/// KL divergence of a model's distributions from a base file's, position by position.
#[derive(Clone, Debug, Default)]
pub struct KldAccumulator {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    max_p_diff: f32,
    n_same_top: usize,
    count: usize,
    kld_values: Vec<f32>,
    p_diff_values: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KldSummary {
    pub tokens: usize,
    pub ppl: f64,
    pub ppl_unc: f64,
    pub ppl_base: f64,
    pub ppl_base_unc: f64,
    pub ppl_ratio: f64,
    pub ppl_ratio_unc: f64,
    pub kld_mean: f64,
    pub kld_mean_unc: f64,
    pub kld_median: f64,
    pub kld_max: f64,
    pub kld_p99: f64,
    pub kld_p999: f64,
    /// Percent of positions where both models put the same token on top.
    pub same_top: f64,
    pub same_top_unc: f64,
    /// RMS of the difference in the probability of the actual next token, percent.
    pub rms_dp: f64,
    pub rms_dp_unc: f64,
    pub mean_dp: f64,
    pub max_abs_dp: f64,
}

impl KldAccumulator {
    /// Score one position: `logits` of the model under test, `base` the stored row (see
    /// [`crate::base`]), `tok` the actual next token. Returns this position's KLD.
    pub fn add(&mut self, logits: &[f32], base: &[u16], tok: usize) -> f64 {
        let n = logits.len();
        let mut max_logit = logits[0];
        let mut imax = 0;
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max_logit {
                max_logit = l;
                imax = i;
            }
        }
        let sum_exp: f64 = logits.iter().map(|&l| (l - max_logit).exp() as f64).sum();
        let log_sum_exp = sum_exp.ln() as f32;
        let scale = join(base[0], base[1]);
        let min_log_prob = join(base[2], base[3]);
        let q = &base[4..4 + n];

        let nll = max_logit + log_sum_exp - logits[tok];
        self.sum_nll += nll as f64;
        self.sum_nll2 += (nll * nll) as f64;
        let nll_base = -(scale * q[tok] as f32 + min_log_prob);
        self.sum_nll_base += nll_base as f64;
        self.sum_nll_base2 += (nll_base * nll_base) as f64;
        self.sum_nll_nll_base += (nll * nll_base) as f64;

        let max_lse = max_logit + log_sum_exp;
        let mut sum = 0f64;
        let mut imax_base = 0usize;
        let mut p_log_base_max = 0f32;
        for (i, &qi) in q.iter().enumerate() {
            let p_log_base = scale * qi as f32 + min_log_prob;
            if i == 0 || p_log_base > p_log_base_max {
                p_log_base_max = p_log_base;
                imax_base = i;
            }
            if p_log_base > -16.0 {
                let p_base = p_log_base.exp();
                sum += (p_base * (p_log_base - logits[i] + max_lse)) as f64;
            }
        }
        self.sum_kld += sum;
        self.sum_kld2 += sum * sum;
        self.count += 1;
        if imax == imax_base {
            self.n_same_top += 1;
        }
        let p_base = (-nll_base).exp();
        let p = (-nll).exp();
        let p_diff = p - p_base;
        self.sum_p_diff += p_diff as f64;
        let p_diff2 = (p_diff * p_diff) as f64;
        self.sum_p_diff2 += p_diff2;
        self.sum_p_diff4 += p_diff2 * p_diff2;
        self.max_p_diff = self.max_p_diff.max(p_diff.abs());
        self.kld_values.push(sum as f32);
        self.p_diff_values.push(p_diff);
        sum
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn summary(&self) -> KldSummary {
        let c = self.count;
        let (lp, lp_u) = mean_and_uncertainty(self.sum_nll, self.sum_nll2, c);
        let (lb, lb_u) = mean_and_uncertainty(self.sum_nll_base, self.sum_nll_base2, c);
        let cov = covariance(self.sum_nll, self.sum_nll_base, self.sum_nll_nll_base, c);
        let ratio_ln = lp - lb;
        let ratio_unc = (lp_u * lp_u + lb_u * lb_u - 2.0 * cov).max(0.0).sqrt();
        let (kld, kld_u) = mean_and_uncertainty(self.sum_kld, self.sum_kld2, c);
        let (mse, mse_u) = mean_and_uncertainty(self.sum_p_diff2, self.sum_p_diff4, c);
        let rms = mse.sqrt();
        let rms_u = if rms > 0.0 { 0.5 / rms * mse_u } else { 0.0 };
        let (mean_dp, _) = mean_and_uncertainty(self.sum_p_diff, self.sum_p_diff2, c);
        let top = if c > 0 { self.n_same_top as f64 / c as f64 } else { 0.0 };
        let top_u = if c > 1 { (top * (1.0 - top) / (c - 1) as f64).sqrt() } else { 0.0 };
        let mut k = self.kld_values.clone();
        k.sort_by(f32::total_cmp);
        let ppl = lp.exp();
        let ppl_base = lb.exp();
        let ppl_ratio = ratio_ln.exp();
        KldSummary {
            tokens: c,
            ppl,
            ppl_unc: ppl * lp_u,
            ppl_base,
            ppl_base_unc: ppl_base * lb_u,
            ppl_ratio,
            ppl_ratio_unc: ppl_ratio * ratio_unc,
            kld_mean: kld,
            kld_mean_unc: kld_u,
            kld_median: median(&k) as f64,
            kld_max: k.last().copied().unwrap_or(0.0) as f64,
            kld_p99: percentile(&k, 0.99) as f64,
            kld_p999: percentile(&k, 0.999) as f64,
            same_top: 100.0 * top,
            same_top_unc: 100.0 * top_u,
            rms_dp: 100.0 * rms,
            rms_dp_unc: 100.0 * rms_u,
            mean_dp: 100.0 * mean_dp,
            max_abs_dp: 100.0 * self.max_p_diff as f64,
        }
    }
}

/// KL(reference ‖ model) over a coarse-grained vocabulary: the tokens `ids` (with the
/// reference's log-probabilities `ref_logprobs`) and one bucket for every other token. By the
/// data-processing inequality this is never more than the full KL divergence, so a bound on it
/// is a necessary condition; it lets a test carry a reference's top tokens instead of whole
/// distributions.
pub fn coarse_kld(ids: &[u32], ref_logprobs: &[f32], logits: &[f32]) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let lse = max + logits.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln();
    let (mut kl, mut p_ref_in, mut p_in) = (0f64, 0f64, 0f64);
    for (&id, &lr) in ids.iter().zip(ref_logprobs) {
        let lr = lr as f64;
        let lo = logits[id as usize] as f64 - lse;
        let pr = lr.exp();
        kl += pr * (lr - lo);
        p_ref_in += pr;
        p_in += lo.exp();
    }
    let rest_ref = (1.0 - p_ref_in).max(0.0);
    let rest = (1.0 - p_in).max(1e-12);
    if rest_ref > 0.0 {
        kl += rest_ref * (rest_ref / rest).ln();
    }
    kl
}
