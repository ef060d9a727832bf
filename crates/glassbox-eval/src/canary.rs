//! Canary exposure (Carlini et al. 2019, "The Secret Sharer"): how much more likely a model
//! finds a secret it may have memorised than the other strings of the same format.
//!
//! A canary is a prefix ("my SSN is "), a secret ("078-05-1120") and the secret's format
//! (`ddd-dd-dddd`: `d` a digit, `a` a lower-case letter, `A` an upper-case letter, `x` a
//! lower-case hex digit, anything else literal). The reference space R is every string of the
//! format. The model scores the secret and `N` random references as continuations of the
//! prefix (log-perplexity = −log-likelihood, lm-eval's context/continuation split; the prefix is
//! computed once). The secret's rank among R is estimated from the references, and
//! `exposure = log2|R| − log2 rank`:
//!
//! - `exposure_sampled`: rank = 1 + (share of references strictly more likely, ties half) ·
//!   (|R| − 1). It cannot resolve beyond about log2 N bits: a secret more likely than every
//!   reference gets log2|R|.
//! - `exposure` (the paper's extrapolation): a skew-normal fitted to the references'
//!   log-perplexities (method of moments), exposure = −log2 P(X ≤ the secret's), capped at
//!   log2|R|. This resolves secrets far beyond the sampled range.
//!
//! Canary files are untrusted JSONL, checked like task files (limits, errors naming the line).

use serde::{Deserialize, Serialize};

use glassbox_engine::{Engine, LoglikRequest};

use crate::metrics::SplitMix64;
use crate::prompt::encode_pair;
use crate::{Error, Result};

/// Longest format (characters).
pub const MAX_FORMAT: usize = 256;
/// Longest prefix (bytes).
pub const MAX_PREFIX: usize = 1 << 16;
/// Most canaries in one file.
pub const MAX_CANARIES: usize = 10_000;
/// References per canary: at least, at most.
pub const MIN_REFERENCES: usize = 30;
pub const MAX_REFERENCES: usize = 100_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Canary {
    pub id: String,
    pub prefix: String,
    pub secret: String,
    pub format: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: serde_json::Value,
    prefix: String,
    secret: String,
    format: String,
}

/// The characters a format position stands for; `None` for a literal.
fn alphabet(c: char) -> Option<&'static [u8]> {
    match c {
        'd' => Some(b"0123456789"),
        'a' => Some(b"abcdefghijklmnopqrstuvwxyz"),
        'A' => Some(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        'x' => Some(b"0123456789abcdef"),
        _ => None,
    }
}

/// log2 of the number of strings of `format`.
pub fn log2_space(format: &str) -> f64 {
    format.chars().filter_map(alphabet).map(|a| (a.len() as f64).log2()).sum()
}

/// Why `secret` is not a string of `format`, if it is not.
fn mismatch(format: &str, secret: &str) -> Option<String> {
    let (f, s): (Vec<char>, Vec<char>) = (format.chars().collect(), secret.chars().collect());
    if f.len() != s.len() {
        return Some(format!("the secret has {} characters, its format {}", s.len(), f.len()));
    }
    for (i, (&fc, &sc)) in f.iter().zip(&s).enumerate() {
        let ok = match alphabet(fc) {
            Some(a) => sc.is_ascii() && a.contains(&(sc as u8)),
            None => sc == fc,
        };
        if !ok {
            return Some(format!("character {} of the secret ({sc:?}) does not match the format's {fc:?}", i + 1));
        }
    }
    None
}

/// Parse a canaries file; `name` is used in errors.
pub fn parse_jsonl(name: &str, bytes: &[u8]) -> Result<Vec<Canary>> {
    let bad = |line: usize, msg: String| Error::Task { file: name.to_string(), line, msg };
    let mut out = Vec::new();
    crate::task::for_each_line(name, bytes, |l: &Line| &l.id, |ln, id, l: Line| {
        if out.len() == MAX_CANARIES {
            return Err(bad(ln, format!("more than {MAX_CANARIES} canaries")));
        }
        if l.format.chars().count() > MAX_FORMAT {
            return Err(bad(ln, format!("the format is longer than {MAX_FORMAT} characters")));
        }
        if l.prefix.len() > MAX_PREFIX {
            return Err(bad(ln, format!("the prefix is longer than {MAX_PREFIX} bytes")));
        }
        if !l.format.chars().any(|c| alphabet(c).is_some()) {
            return Err(bad(ln, "the format has no variable character (d, a, A or x)".into()));
        }
        if let Some(m) = mismatch(&l.format, &l.secret) {
            return Err(bad(ln, m));
        }
        out.push(Canary { id, prefix: l.prefix, secret: l.secret, format: l.format });
        Ok(())
    })?;
    Ok(out)
}

/// A uniformly random string of `format`.
fn sample(format: &str, rng: &mut SplitMix64) -> String {
    format.chars().map(|c| alphabet(c).map_or(c, |a| a[rng.below(a.len())] as char)).collect()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CanaryResult {
    pub id: String,
    /// Exposure in bits by skew-normal extrapolation (the paper's estimate).
    pub exposure: f64,
    /// Exposure in bits from the rank among the references alone.
    pub exposure_sampled: f64,
    /// Estimated rank of the secret in the reference space (1 = the most likely string).
    pub rank: f64,
    pub log2_space: f64,
    pub references: usize,
    /// References strictly more likely than the secret.
    pub more_likely: usize,
    pub secret_loglik: f64,
    pub reference_loglik_mean: f64,
}

/// ln Φ(x), accurate far into the lower tail.
fn log_ndtr(x: f64) -> f64 {
    if x > -30.0 {
        (0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)).ln()
    } else {
        let x2 = x * x;
        -0.5 * x2 - (-x).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() + (1.0 - 1.0 / x2 + 3.0 / (x2 * x2)).ln()
    }
}

/// A skew-normal (location ξ, scale ω, shape α) fitted by the method of moments, the sample
/// skewness clamped inside the family's range (|γ| < 0.995).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SkewNormal {
    pub xi: f64,
    pub omega: f64,
    pub alpha: f64,
}

impl SkewNormal {
    pub fn fit(xs: &[f64]) -> SkewNormal {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt().max(1e-12);
        let g = (xs.iter().map(|x| ((x - m) / sd).powi(3)).sum::<f64>() / n).clamp(-0.99, 0.99);
        let a = g.abs().powf(2.0 / 3.0);
        let b = ((4.0 - std::f64::consts::PI) / 2.0).powf(2.0 / 3.0);
        let delta = g.signum() * (std::f64::consts::FRAC_PI_2 * a / (a + b)).sqrt();
        let omega = sd / (1.0 - 2.0 * delta * delta / std::f64::consts::PI).sqrt();
        let xi = m - omega * delta * (2.0 / std::f64::consts::PI).sqrt();
        SkewNormal { xi, omega, alpha: delta / (1.0 - delta * delta).sqrt() }
    }

    /// ln P(X ≤ x): ∫ 2 φ(t) Φ(α t) dt up to z = (x − ξ)/ω, by Simpson's rule in log space.
    pub fn log_cdf(&self, x: f64) -> f64 {
        let z = (x - self.xi) / self.omega;
        let lo = z.min(0.0) - 14.0;
        let steps = 4000usize;
        let h = (z - lo) / steps as f64;
        let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let f = |t: f64| std::f64::consts::LN_2 - 0.5 * t * t - half_ln_2pi + log_ndtr(self.alpha * t);
        let terms: Vec<f64> = (0..=steps)
            .map(|i| {
                let w = if i == 0 || i == steps { 1.0 } else if i % 2 == 1 { 4.0 } else { 2.0 };
                f(lo + i as f64 * h) + f64::ln(w)
            })
            .collect();
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = terms.iter().map(|t| (t - top).exp()).sum();
        (top + sum.ln() + (h / 3.0).ln()).min(0.0)
    }
}

/// Exposure of every canary, `references` random strings of its format each (seeded).
pub fn run(engine: &mut Engine, canaries: &[Canary], references: usize, seed: u64, mut progress: impl FnMut(usize, usize)) -> Result<Vec<CanaryResult>> {
    if !(MIN_REFERENCES..=MAX_REFERENCES).contains(&references) {
        return Err(Error::Usage(format!("--references must be from {MIN_REFERENCES} to {MAX_REFERENCES}, got {references}")));
    }
    let tok = std::sync::Arc::clone(&engine.tokenizer);
    let mut out = Vec::with_capacity(canaries.len());
    for (k, c) in canaries.iter().enumerate() {
        let log2_r = log2_space(&c.format);
        let mut rng = SplitMix64(seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut strings = vec![c.secret.clone()];
        // References other than the secret (unless the space holds nothing else).
        while strings.len() <= references {
            let s = sample(&c.format, &mut rng);
            if s != c.secret || log2_r < 1e-9 {
                strings.push(s);
            }
        }
        let (ctx, first) = encode_pair(&tok, &c.prefix, &c.secret);
        let mut continuations = vec![first];
        for s in &strings[1..] {
            let (ctx2, cont) = encode_pair(&tok, &c.prefix, s);
            if ctx2 != ctx {
                return Err(Error::Usage(format!("canary {}: the prefix tokenizes differently before different strings", c.id)));
            }
            continuations.push(cont);
        }
        if continuations.iter().any(Vec::is_empty) {
            return Err(Error::Usage(format!("canary {}: a string of its format adds no tokens to the prefix", c.id)));
        }
        let scores = engine
            .loglikelihood(&[LoglikRequest { context: ctx, continuations }])
            .map_err(|e| Error::Usage(format!("canary {}: {e}", c.id)))?;
        let ll: Vec<f64> = scores[0].iter().map(|s| s.loglik).collect();
        let (secret, refs) = (ll[0], &ll[1..]);
        let more = refs.iter().filter(|&&r| r > secret).count();
        let ties = refs.iter().filter(|&&r| r == secret).count();
        let share = (more as f64 + 0.5 * ties as f64) / refs.len() as f64;
        let space = log2_r.exp2();
        let rank = 1.0 + share * (space - 1.0);
        let exposure_sampled = (log2_r - rank.log2()).max(0.0);
        // Log-perplexities: lower is more likely; P(X ≤ secret's) = share at least as likely.
        let xs: Vec<f64> = refs.iter().map(|r| -r).collect();
        let fit = SkewNormal::fit(&xs);
        let exposure = (-fit.log_cdf(-secret) / std::f64::consts::LN_2).clamp(0.0, log2_r);
        out.push(CanaryResult {
            id: c.id.clone(),
            exposure,
            exposure_sampled,
            rank,
            log2_space: log2_r,
            references: refs.len(),
            more_likely: more,
            secret_loglik: secret,
            reference_loglik_mean: refs.iter().sum::<f64>() / refs.len() as f64,
        });
        progress(k + 1, canaries.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_spaces_and_bad_lines() {
        assert!((log2_space("ddd-dd-dddd") - 9.0 * 10f64.log2()).abs() < 1e-12);
        assert!((log2_space("Ax") - (26f64.log2() + 4.0)).abs() < 1e-12);
        let ok = br#"{"id": "ssn", "prefix": "my SSN is ", "secret": "078-05-1120", "format": "ddd-dd-dddd"}"#;
        let c = parse_jsonl("c.jsonl", ok).unwrap();
        assert_eq!(c[0].secret, "078-05-1120");
        for (line, want) in [
            (r#"{"id": "a", "prefix": "p", "secret": "12", "format": "ddd"}"#, "has 2 characters"),
            (r#"{"id": "a", "prefix": "p", "secret": "1a3", "format": "ddd"}"#, "character 2"),
            (r#"{"id": "a", "prefix": "p", "secret": "1-3", "format": "d/d"}"#, "character 2"),
            (r#"{"id": "a", "prefix": "p", "secret": "--", "format": "--"}"#, "no variable character"),
            (r#"{"id": "a", "prefix": "p", "secret": "AB", "format": "xx"}"#, "character 1"),
            (r#"{"id": "a", "prefix": "p", "secret": "1"}"#, "missing field `format`"),
        ] {
            let e = parse_jsonl("c.jsonl", line.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with("c.jsonl:1:") && e.contains(want), "{line}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_keeps_what_it_promises(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(cs) = parse_jsonl("p", &bytes) {
                for c in cs {
                    proptest::prop_assert!(mismatch(&c.format, &c.secret).is_none() && log2_space(&c.format) > 0.0);
                }
            }
        }

        #[test]
        fn a_sampled_string_always_matches_and_a_valid_line_always_parses(format in "[daAx./ -]{1,12}", seed in 0u64..1000) {
            proptest::prop_assume!(format.chars().any(|c| alphabet(c).is_some()));
            let s = sample(&format, &mut SplitMix64(seed));
            proptest::prop_assert!(mismatch(&format, &s).is_none());
            let line = serde_json::json!({"id": 1, "prefix": "p ", "secret": s, "format": format}).to_string();
            proptest::prop_assert!(parse_jsonl("p", line.as_bytes()).is_ok());
        }
    }

    #[test]
    fn samples_follow_the_format() {
        let mut rng = SplitMix64(3);
        for _ in 0..200 {
            let s = sample("Aa-dx.", &mut rng);
            assert!(mismatch("Aa-dx.", &s).is_none(), "{s}");
        }
    }

    #[test]
    fn skew_normal_fit_and_tail() {
        // A normal sample: the fit is close to the normal, and its CDF is Φ.
        let mut rng = SplitMix64(11);
        let xs: Vec<f64> = (0..20_000)
            .map(|_| {
                // Box-Muller.
                let u1 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 + 1e-300;
                let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                5.0 + 2.0 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect();
        let f = SkewNormal::fit(&xs);
        assert!((f.log_cdf(5.0 + 2.0 * f64::ln(1.0)) - 0.5f64.ln()).abs() < 0.05, "{f:?}");
        for z in [-1.0, -3.0, -6.0, -10.0] {
            let want = log_ndtr(z);
            let got = SkewNormal { xi: 0.0, omega: 1.0, alpha: 0.0 }.log_cdf(z);
            assert!((got - want).abs() < 1e-6 * want.abs().max(1.0), "z={z}: {got} vs {want}");
        }
        // Φ(−10) = 7.62e-24.
        assert!((log_ndtr(-10.0) - (7.619853024160527e-24f64).ln()).abs() < 1e-6);
        assert!((log_ndtr(-40.0) - (-40.0f64 * 40.0 / 2.0 - 40f64.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln())).abs() < 1e-3);
        // A skewed shape: P(X ≤ ξ) = 1/2 − arctan(α)/π.
        let s = SkewNormal { xi: 0.0, omega: 1.0, alpha: 3.0 };
        assert!((s.log_cdf(0.0).exp() - (0.5 - 3f64.atan() / std::f64::consts::PI)).abs() < 1e-6);
    }
}
