//! Which licence is this text?
//!
//! Two stages. First our registry (model licences and the common open ones): each reference
//! text is compared with the input by askalono's bigram Dice score (the `spdx` crate's
//! matcher), the best few are re-scored on the input's best-matching line range (so a licence
//! inside a web page or a README still scores high), and a candidate is accepted only if that
//! score reaches [`ACCEPT`] *and* every distinctive phrase of its version occurs in the input.
//! The phrases are what tell Llama 3.1 from 3.2 from 3.3 (bigram scores 0.98 apart) and Gemma's
//! 2024 terms from its 2025 terms. Second, when nothing in the registry fits, the whole SPDX
//! licence list; an SPDX match must reach [`ACCEPT_SPDX`], so a custom licence built on Apache
//! 2.0 (Falcon's scores 0.83 against it) is never reported as Apache-2.0.

use std::sync::OnceLock;

use spdx::detection::{Store, TextData};

use crate::normalize::words;
use crate::registry::{Entry, builtin};

/// Minimum score (over the matched line range) for a registry licence.
pub const ACCEPT: f32 = 0.85;
/// Minimum score for a licence from the SPDX list.
pub const ACCEPT_SPDX: f32 = 0.9;
/// How many registry candidates get the (costlier) line-range re-scoring.
const RESCORE: usize = 4;

/// What a text was identified as.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Identification {
    /// SPDX id, `LicenseRef-scancode-*`, or `unknown`.
    pub id: String,
    /// Registry key, when the registry matched.
    pub key: Option<String>,
    /// Human name (for an unknown text: `unknown`).
    pub name: String,
    /// Dice score of the matched range against the reference, 0..1.
    pub confidence: f32,
    /// 1-based inclusive line range of the input that matched (0, 0 when nothing did).
    pub lines: (usize, usize),
    /// The first words of the matched range, to show the user.
    pub excerpt: String,
    /// Distinctive phrases of the accepted version that were found.
    pub phrases: Vec<String>,
    /// For an unknown text: the nearest known licence and its score, and why it was not taken.
    pub closest: Option<Closest>,
    /// Where the identity came from: `registry` or `spdx`.
    pub source: &'static str,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Closest {
    pub id: String,
    pub name: String,
    pub score: f32,
    pub reason: String,
}

impl Identification {
    /// The registry entry this identification names.
    pub fn entry(&self) -> Option<&'static Entry> {
        self.key.as_deref().and_then(crate::registry::by_key)
    }

    pub fn is_known(&self) -> bool {
        self.id != "unknown" || self.key.is_some()
    }
}

struct Refs {
    entries: Vec<(&'static Entry, TextData)>,
}

fn refs() -> &'static Refs {
    static CELL: OnceLock<Refs> = OnceLock::new();
    CELL.get_or_init(|| Refs { entries: builtin().iter().map(|e| (e, TextData::new(e.text).without_text())).collect() })
}

fn spdx_store() -> Option<&'static Store> {
    static CELL: OnceLock<Option<Store>> = OnceLock::new();
    CELL.get_or_init(|| Store::load_inline().ok()).as_ref()
}

fn excerpt(text: &str, lines: (usize, usize)) -> String {
    let line = text.lines().skip(lines.0.saturating_sub(1)).take(lines.1.saturating_sub(lines.0) + 1).find(|l| !l.trim().is_empty()).unwrap_or("");
    let line = line.trim();
    match line.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// Identify the licence in `text` (plain text; see [`crate::normalize::to_plain`]).
pub fn identify(text: &str) -> Identification {
    let input = TextData::new(text);
    let input_words = words(text);
    let mut scored: Vec<(f32, &'static Entry, &TextData)> = refs().entries.iter().map(|(e, d)| (d.match_score(&input), *e, d)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut rescored: Vec<(f32, (usize, usize), &'static Entry)> = scored
        .iter()
        .take(RESCORE)
        .filter(|(s, _, _)| *s > 0.05)
        .map(|(whole, e, d)| {
            let (view, s) = input.optimize_bounds(d);
            // Never let the range search do worse than the whole text.
            if s >= *whole { (s, view.lines_view(), *e) } else { (*whole, input.lines_view(), *e) }
        })
        .collect();
    rescored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut closest: Option<Closest> = None;
    for (score, view, e) in &rescored {
        let missing: Vec<&String> = e.phrases.iter().filter(|p| !input_words.contains(p.as_str())).collect();
        if *score >= ACCEPT && missing.is_empty() {
            let lines = (view.0 + 1, view.1.max(view.0 + 1));
            return Identification {
                id: e.id_or_unknown().to_owned(),
                key: Some(e.key.clone()),
                name: e.name.clone(),
                confidence: *score,
                lines,
                excerpt: excerpt(text, lines),
                phrases: e.phrases.clone(),
                closest: None,
                source: "registry",
            };
        }
        if closest.is_none() {
            let reason = if *score < ACCEPT {
                format!("score {score:.2} is below {ACCEPT}")
            } else {
                format!("its distinctive wording is missing: {:?} (another version, or a modified text)", missing)
            };
            closest = Some(Closest { id: e.id_or_unknown().to_owned(), name: e.name.clone(), score: *score, reason });
        }
    }
    if let Some(store) = spdx_store() {
        let m = store.analyze(&input);
        let in_registry = builtin().iter().any(|e| e.id.as_deref() == Some(m.name));
        if m.score >= ACCEPT_SPDX && !in_registry {
            return Identification {
                id: m.name.to_owned(),
                key: None,
                name: m.name.to_owned(),
                confidence: m.score,
                lines: (1, text.lines().count().max(1)),
                excerpt: excerpt(text, (1, text.lines().count().max(1))),
                phrases: vec![],
                closest: None,
                source: "spdx",
            };
        }
        if !in_registry && closest.as_ref().is_none_or(|c| m.score > c.score) {
            closest = Some(Closest { id: m.name.to_owned(), name: m.name.to_owned(), score: m.score, reason: format!("score {:.2} is below {ACCEPT_SPDX}", m.score) });
        }
    }
    Identification { id: "unknown".into(), key: None, name: "unknown".into(), confidence: 0.0, lines: (0, 0), excerpt: String::new(), phrases: vec![], closest, source: "none" }
}
