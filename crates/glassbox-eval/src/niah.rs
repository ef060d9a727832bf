//! Needle in a haystack over a grid of context lengths × needle depths, in the RULER task
//! family's forms: one needle (`niah`, the gkamradt grid), several keys of which one is asked
//! (`ruler_multikey`: the others are distractors), several values for one key
//! (`ruler_multivalue`), several keys asked at once (`ruler_multiquery`), and variable tracking
//! (`ruler_vt`: follow a chain of assignments). Scoring is deterministic string matching (RULER's
//! `string_match_all`: the share of expected values found in the answer), never a judge model.
//!
//! The haystack is RULER's "noise" filler (no data needed) or any text you give (e.g. the
//! public-domain King James Bible, `scripts/kjv_text.py`), cut at sentence boundaries.

use glassbox_engine::{Engine, GenerateRequest, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::metrics::SplitMix64;
use crate::{Error, Result};

/// RULER's noise haystack, one repetition.
pub const NOISE: &str = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";

const WORDS: &[&str] = &[
    "amber", "brisk", "cobalt", "dapper", "elfin", "fuzzy", "gentle", "hollow", "ivory", "jolly", "kindly", "lunar", "mellow",
    "nimble", "olive", "placid", "quaint", "rustic", "silver", "tidy", "umber", "vivid", "woolly", "zesty",
];
const NOUNS: &[&str] = &[
    "anchor", "badger", "candle", "dolphin", "engine", "falcon", "garden", "harbor", "island", "jacket", "kettle", "lantern",
    "meadow", "needle", "orchard", "pepper", "quarry", "ribbon", "saddle", "thimble", "umbrella", "violin", "walnut", "yarrow",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Niah,
    RulerMultikey,
    RulerMultivalue,
    RulerMultiquery,
    RulerVt,
}

impl Kind {
    pub fn from_name(s: &str) -> Option<Kind> {
        Some(match s {
            "niah" => Kind::Niah,
            "ruler_multikey" => Kind::RulerMultikey,
            "ruler_multivalue" => Kind::RulerMultivalue,
            "ruler_multiquery" => Kind::RulerMultiquery,
            "ruler_vt" => Kind::RulerVt,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::Niah => "niah",
            Kind::RulerMultikey => "ruler_multikey",
            Kind::RulerMultivalue => "ruler_multivalue",
            Kind::RulerMultiquery => "ruler_multiquery",
            Kind::RulerVt => "ruler_vt",
        }
    }
    pub const ALL: [Kind; 5] = [Kind::Niah, Kind::RulerMultikey, Kind::RulerMultivalue, Kind::RulerMultiquery, Kind::RulerVt];
    fn max_tokens(self) -> usize {
        match self {
            Kind::Niah | Kind::RulerMultikey => 16,
            Kind::RulerMultivalue | Kind::RulerMultiquery => 48,
            Kind::RulerVt => 40,
        }
    }
}

#[derive(Clone, Debug)]
pub struct NiahOptions {
    pub kind: Kind,
    /// Prompt lengths in tokens (the whole prompt: instructions, haystack, question).
    pub lengths: Vec<usize>,
    /// Needle depths, percent of the haystack (0 = at its start).
    pub depths: Vec<u32>,
    /// Prompts per cell (different keys and values).
    pub samples: usize,
    pub seed: u64,
    /// Haystack text; `None` for RULER's noise filler.
    pub haystack: Option<String>,
}

/// One generated test: the prompt, its tokens, and the values a correct answer contains.
#[derive(Clone, Debug)]
pub struct Case {
    pub prompt: String,
    pub tokens: Vec<u32>,
    pub expected: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cell {
    pub length: usize,
    pub depth: u32,
    /// Mean share of expected values found, over the cell's samples.
    pub score: f64,
    pub prompt_tokens: Vec<usize>,
    pub answers: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NiahResult {
    pub task: Kind,
    pub lengths: Vec<usize>,
    pub depths: Vec<u32>,
    pub samples: usize,
    pub cells: Vec<Cell>,
    /// Mean score per length (over depths).
    pub by_length: Vec<f64>,
    /// Longest length whose mean score is at least 85 % (RULER's threshold); 0 when none.
    pub effective_length: usize,
    pub seconds: f64,
}

fn key(rng: &mut SplitMix64) -> String {
    format!("{}-{}", WORDS[rng.below(WORDS.len())], NOUNS[rng.below(NOUNS.len())])
}

/// `n` different keys.
fn keys(rng: &mut SplitMix64, n: usize) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    while keys.len() < n {
        let k = key(rng);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

fn value(rng: &mut SplitMix64) -> String {
    (1_000_000 + rng.below(9_000_000)).to_string()
}

/// Haystack units: sentences of the given text (kept with their punctuation and following
/// space), or the noise filler's repetitions.
fn units(haystack: Option<&str>) -> Vec<String> {
    let Some(text) = haystack else { return vec![NOISE.to_string()] };
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        cur.push(if ch == '\n' { ' ' } else { ch });
        if matches!(ch, '.' | '!' | '?') {
            out.push(std::mem::take(&mut cur) + " ");
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur + " ");
    }
    out.retain(|s| !s.trim().is_empty());
    out
}

/// Needles, the question, the answer prefix and the expected values of one case.
fn needles(kind: Kind, rng: &mut SplitMix64) -> (Vec<String>, String, String, Vec<String>) {
    let magic = |k: &str, v: &str| format!("One of the special magic numbers for {k} is: {v}. ");
    match kind {
        Kind::Niah => {
            let (k, v) = (key(rng), value(rng));
            (vec![magic(&k, &v)], format!("What is the special magic number for {k} mentioned in the provided text?"),
             format!("The special magic number for {k} mentioned in the provided text is"), vec![v])
        }
        Kind::RulerMultikey => {
            let keys = keys(rng, 4);
            let vals: Vec<String> = (0..4).map(|_| value(rng)).collect();
            let ask = rng.below(4);
            (keys.iter().zip(&vals).map(|(k, v)| magic(k, v)).collect(),
             format!("What is the special magic number for {} mentioned in the provided text?", keys[ask]),
             format!("The special magic number for {} mentioned in the provided text is", keys[ask]), vec![vals[ask].clone()])
        }
        Kind::RulerMultivalue => {
            let k = key(rng);
            let vals: Vec<String> = (0..4).map(|_| value(rng)).collect();
            (vals.iter().map(|v| magic(&k, v)).collect(),
             format!("What are all the special magic numbers for {k} mentioned in the provided text?"),
             format!("The special magic numbers for {k} mentioned in the provided text are"), vals)
        }
        Kind::RulerMultiquery => {
            let keys = keys(rng, 4);
            let vals: Vec<String> = (0..4).map(|_| value(rng)).collect();
            let list = format!("{}, {}, {} and {}", keys[0], keys[1], keys[2], keys[3]);
            (keys.iter().zip(&vals).map(|(k, v)| magic(k, v)).collect(),
             format!("What are all the special magic numbers for {list} mentioned in the provided text?"),
             format!("The special magic numbers for {list} mentioned in the provided text are"), vals)
        }
        Kind::RulerVt => {
            // A chain of 4 variables: X1 = value, X2 = X1, ... every one holds the value.
            let v = value(rng);
            let names: Vec<String> = (0..4).map(|_| format!("{}{}", ["V", "Q", "Z", "K"][rng.below(4)], 10_000 + rng.below(90_000))).collect();
            let mut lines = vec![format!("VAR {} = {v}. ", names[0])];
            for w in names.windows(2) {
                lines.push(format!("VAR {} = VAR {}. ", w[1], w[0]));
            }
            (lines,
             format!("Find all variables that are assigned the value {v} in the text above."),
             format!("Answer: According to the chain(s) of variable assignment in the text above, 4 variables are assgined the value {v}, they are:"),
             names)
        }
    }
}

const INTRO: &str = "Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you about the numbers afterwards.\n";
const VT_INTRO: &str = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n";

fn assemble(kind: Kind, haystack: &[String], n_units: usize, depth: u32, ns: &[String], question: &str, prefix: &str) -> String {
    let intro = if kind == Kind::RulerVt { VT_INTRO } else { INTRO };
    let mut body = String::new();
    // Needles go in at the depth; several needles are spread from there to the end, in order.
    let at = |i: usize| {
        let span = n_units.saturating_sub(n_units * depth as usize / 100);
        n_units * depth as usize / 100 + span * i / ns.len().max(1)
    };
    let mut next = 0;
    for u in 0..=n_units {
        while next < ns.len() && at(next) == u {
            body.push_str(&ns[next]);
            next += 1;
        }
        if u < n_units {
            body.push_str(&haystack[u % haystack.len()]);
        }
    }
    format!("{intro}{body}\n{question} {prefix}")
}

/// Build one case of about `length` prompt tokens (never more), needles at `depth` percent.
pub fn build_case(engine: &Engine, kind: Kind, haystack: &[String], length: usize, depth: u32, rng: &mut SplitMix64) -> Result<Case> {
    let (ns, question, prefix, expected) = needles(kind, rng);
    let encode = |n: usize| engine.tokenizer.encode(&assemble(kind, haystack, n, depth, &ns, &question, &prefix));
    // The tokens of the longest prompt found so far that fits: the final prompt's, kept.
    let mut best = encode(0);
    let bare = best.len();
    if bare >= length {
        return Err(Error::Usage(format!("{}: a prompt of {length} tokens cannot hold the {bare}-token question and needles", kind.name())));
    }
    // The most haystack units that keep the prompt within `length` tokens: bisect between 0
    // and a bound twice the estimate.
    let per_unit = (haystack.iter().take(64).map(|u| engine.tokenizer.encode(u).len()).sum::<usize>() as f64 / haystack.len().min(64) as f64).max(1.0);
    let (mut lo, mut hi) = (0usize, 2 * ((length - bare) as f64 / per_unit).ceil() as usize + 2);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let ids = encode(mid);
        if ids.len() <= length {
            (lo, best) = (mid, ids);
        } else {
            hi = mid;
        }
    }
    if haystack.len() > 1 && lo > haystack.len() {
        return Err(Error::Usage(format!("the haystack text has {} sentences, too few for {length} tokens", haystack.len())));
    }
    let prompt = assemble(kind, haystack, lo, depth, &ns, &question, &prefix);
    Ok(Case { prompt, tokens: best, expected })
}

/// RULER's `string_match_all`: share of expected values in the answer (case-insensitive).
pub fn score(answer: &str, expected: &[String]) -> f64 {
    let a = answer.to_lowercase();
    expected.iter().filter(|e| a.contains(&e.to_lowercase())).count() as f64 / expected.len().max(1) as f64
}

/// KV cache bytes for one prompt of `tokens` (f16 K and V), to state before running.
pub fn kv_bytes(engine: &Engine, tokens: usize) -> usize {
    let c = &engine.model.config;
    c.n_layers * tokens * c.n_head_kv * (c.head_dim + c.head_dim_v) * 2
}

pub fn run(engine: &mut Engine, opts: &NiahOptions, mut progress: impl FnMut(usize, usize)) -> Result<NiahResult> {
    if opts.lengths.is_empty() || opts.depths.is_empty() || opts.samples == 0 {
        return Err(Error::Usage("needle in a haystack needs at least one length, one depth and one sample".into()));
    }
    if let Some(&d) = opts.depths.iter().find(|&&d| d > 100) {
        return Err(Error::Usage(format!("depth {d} is not a percentage (0..=100)")));
    }
    let need = opts.lengths.iter().max().copied().unwrap_or(0) + opts.kind.max_tokens();
    if need > engine.ctx_size() {
        return Err(Error::Usage(format!(
            "the longest prompt ({} tokens) plus its answer needs a context of {need}; the context size is {} (raise it with -c)",
            need - opts.kind.max_tokens(), engine.ctx_size()
        )));
    }
    let hay = units(opts.haystack.as_deref());
    if hay.is_empty() {
        return Err(Error::Usage("the haystack text has no sentences".into()));
    }
    let started = std::time::Instant::now();
    let total = opts.lengths.len() * opts.depths.len();
    let mut cells = Vec::with_capacity(total);
    for (li, &length) in opts.lengths.iter().enumerate() {
        for (di, &depth) in opts.depths.iter().enumerate() {
            let mut rng = SplitMix64(opts.seed ^ ((li as u64) << 32) ^ di as u64);
            let (mut sum, mut toks, mut answers) = (0.0, Vec::new(), Vec::new());
            for _ in 0..opts.samples {
                let case = build_case(engine, opts.kind, &hay, length, depth, &mut rng)?;
                toks.push(case.tokens.len());
                let req = GenerateRequest { constraint: None,
                    prompt: case.tokens,
                    max_tokens: opts.kind.max_tokens(),
                    sampling: SamplingParams { temperature: 0.0, ..Default::default() },
                    stop: vec!["\n\n".into()],
                };
                let g = engine.generate(&req, |_| {})?;
                sum += score(&g.text, &case.expected);
                answers.push(g.text);
            }
            cells.push(Cell { length, depth, score: sum / opts.samples as f64, prompt_tokens: toks, answers });
            progress(cells.len(), total);
        }
    }
    let by_length: Vec<f64> = opts
        .lengths
        .iter()
        .map(|&l| {
            let s: Vec<f64> = cells.iter().filter(|c| c.length == l).map(|c| c.score).collect();
            s.iter().sum::<f64>() / s.len() as f64
        })
        .collect();
    let effective_length = opts.lengths.iter().zip(&by_length).filter(|(_, s)| **s >= 0.85).map(|(l, _)| *l).max().unwrap_or(0);
    Ok(NiahResult {
        task: opts.kind,
        lengths: opts.lengths.clone(),
        depths: opts.depths.clone(),
        samples: opts.samples,
        cells,
        by_length,
        effective_length,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_is_share_of_values_found() {
        assert_eq!(score("The number is 1234567.", &["1234567".into()]), 1.0);
        assert_eq!(score("1234567 and 7654321", &["1234567".into(), "7654321".into(), "1111111".into()]), 2.0 / 3.0);
        assert_eq!(score("nothing", &["1".into()]), 0.0);
        assert_eq!(score("var v12345", &["V12345".into()]), 1.0);
    }

    #[test]
    fn needles_sit_at_their_depth_and_every_kind_builds() {
        let hay = units(None);
        let ns = vec!["NEEDLE. ".to_string()];
        let p0 = assemble(Kind::Niah, &hay, 10, 0, &ns, "Q?", "A:");
        let p50 = assemble(Kind::Niah, &hay, 10, 50, &ns, "Q?", "A:");
        let p100 = assemble(Kind::Niah, &hay, 10, 100, &ns, "Q?", "A:");
        let at = |p: &str| p.find("NEEDLE").unwrap() as f64 / p.len() as f64;
        assert!(at(&p0) < 0.2 && (0.4..0.6).contains(&at(&p50)) && at(&p100) > 0.85, "{} {} {}", at(&p0), at(&p50), at(&p100));
        assert_eq!(p50.matches("grass").count(), 10);
        let mut rng = SplitMix64(3);
        for k in Kind::ALL {
            let (ns, q, a, exp) = needles(k, &mut rng);
            assert!(!ns.is_empty() && !q.is_empty() && !a.is_empty() && !exp.is_empty());
            let p = assemble(k, &hay, 20, 30, &ns, &q, &a);
            assert!(ns.iter().all(|n| p.contains(n.as_str())) && exp.iter().all(|e| p.contains(e.as_str())));
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        assert_eq!(units(Some("One. Two! Three?\nFour")).len(), 4);
    }
}
