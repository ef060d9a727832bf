//! From evidence to judgement: which licence governs the weights, where the sources disagree,
//! and what the lineage implies.

use glassbox_license::{Category, Entry, Named, by_key, parse_name};
use serde::Serialize;

use crate::evidence::Evidence;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// Something the reader must know, with its sources.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable short name (`licence-conflict`, `no-licence`, …) for SARIF rules and scripts.
    pub code: &'static str,
    pub message: String,
    pub sources: Vec<String>,
}

/// A licence that governs (part of) the model, and how we know.
#[derive(Debug, Clone, Serialize)]
pub struct Governing {
    /// SPDX id, `LicenseRef-scancode-*`, or `unknown`.
    pub id: String,
    pub name: String,
    /// Registry key, when we have the licence's clause table.
    pub key: Option<String>,
    /// `text` (a licence file was identified) or `metadata` (only a name was stated).
    pub basis: &'static str,
    pub sources: Vec<String>,
    /// The file holding the text, when basis is `text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
}

impl Governing {
    pub fn entry(&self) -> Option<&'static Entry> {
        self.key.as_deref().and_then(by_key)
    }
}

/// One link of the lineage chain.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub name: String,
    pub relation: Option<String>,
    /// The base's licence, when the table of known bases has it.
    pub license_id: Option<String>,
    pub license_name: Option<String>,
    pub source: String,
    /// The ancestor file's SHA-256, when recorded.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// Licences (not use policies) that govern the weights.
    pub governing: Vec<Governing>,
    /// Use policies found (incorporated by reference into a licence).
    pub policies: Vec<Governing>,
    pub findings: Vec<Finding>,
    /// The model first, then its bases.
    pub lineage: Vec<Link>,
}

impl Assessment {
    /// The licence whose terms bind most: a restricted one over a copyleft one over a
    /// permissive one; an unknown licence counts as most restrictive.
    pub fn effective(&self) -> Option<&Governing> {
        let rank = |g: &Governing| match g.entry().map(|e| e.category) {
            None => 5,
            Some(Category::Noncommercial) => 4,
            Some(Category::Restricted) => 3,
            Some(Category::Copyleft) => 2,
            Some(Category::Permissive) => 1,
            Some(Category::Policy) => 0,
        };
        self.governing.iter().max_by_key(|g| rank(g))
    }
}

#[derive(serde::Deserialize)]
struct BaseTable {
    base: Vec<BaseRow>,
}
#[derive(serde::Deserialize)]
struct BaseRow {
    prefix: String,
    license: String,
}

/// The licence of a well-known base model, by repository name.
pub fn base_licence(name: &str) -> Option<&'static Entry> {
    static TABLE: std::sync::OnceLock<Vec<BaseRow>> = std::sync::OnceLock::new();
    let rows = TABLE.get_or_init(|| toml::from_str::<BaseTable>(include_str!("../data/base-models.toml")).map(|t| t.base).unwrap_or_default());
    let repo = name.trim().trim_start_matches("https://huggingface.co/").trim_start_matches("hf.co/").to_ascii_lowercase();
    rows.iter().filter(|r| repo.starts_with(&r.prefix.to_ascii_lowercase())).max_by_key(|r| r.prefix.len()).and_then(|r| by_key(&r.license))
}

fn file_source(ev: &Evidence, f: &crate::evidence::LicenceFile) -> String {
    let rel = f.path.strip_prefix(&ev.root).unwrap_or(&f.path).display().to_string();
    let (a, b) = f.identification.lines;
    if a == 0 { rel } else { format!("{rel} lines {a}-{b}") }
}

/// Judge the evidence.
pub fn assess(ev: &Evidence) -> Assessment {
    let mut findings = vec![];
    let mut governing: Vec<Governing> = vec![];
    let mut policies: Vec<Governing> = vec![];
    for f in &ev.licence_files {
        let id = &f.identification;
        let src = file_source(ev, f);
        match id.entry() {
            Some(e) if e.document == "use-policy" => {
                policies.push(Governing { id: id.id.clone(), name: id.name.clone(), key: Some(e.key.clone()), basis: "text", sources: vec![src], file: Some(f.path.clone()) });
            }
            Some(e) => {
                governing.push(Governing { id: id.id.clone(), name: id.name.clone(), key: Some(e.key.clone()), basis: "text", sources: vec![src], file: Some(f.path.clone()) });
            }
            None if id.is_known() => {
                governing.push(Governing { id: id.id.clone(), name: id.name.clone(), key: None, basis: "text", sources: vec![src], file: Some(f.path.clone()) });
            }
            None => {
                let upper = f.path.file_name().unwrap_or_default().to_string_lossy().to_ascii_uppercase();
                // A NOTICE file is expected not to be a licence; anything else unknown needs a human.
                if !upper.starts_with("NOTICE") {
                    let closest = id.closest.as_ref().map(|c| format!("; closest: {} ({:.2}; {})", c.name, c.score, c.reason)).unwrap_or_default();
                    findings.push(Finding { severity: Severity::Medium, code: "unknown-licence-text", message: format!("{src} is not a licence glassbox knows{closest}: review it by hand"), sources: vec![src] });
                }
            }
        }
    }
    // What metadata states.
    let stated: Vec<(Named, &crate::evidence::Fact)> = ev.stated_licences.iter().map(|f| (parse_name(&f.value), f)).collect();
    let have_text = !governing.is_empty();
    for (named, fact) in &stated {
        let src = format!("{} = {:?}", fact.source, fact.value);
        match named {
            Named::Other => {
                let named_elsewhere = stated.iter().any(|(n, f)| f.key.ends_with("license_name") && !matches!(n, Named::Other));
                if !have_text && !named_elsewhere {
                    findings.push(Finding { severity: Severity::Medium, code: "licence-other", message: format!("{src}: the licence is \"other\" and no licence text or license_name says which"), sources: vec![src.clone()] });
                }
            }
            Named::Unknown(name) => {
                findings.push(Finding { severity: Severity::Medium, code: "unknown-licence-name", message: format!("{src}: {name:?} is not a licence name glassbox recognises"), sources: vec![src.clone()] });
            }
            _ if have_text => {
                let agrees = governing.iter().any(|g| named.agrees_with(g.key.as_deref(), &g.id));
                if agrees {
                    for g in governing.iter_mut().filter(|g| named.agrees_with(g.key.as_deref(), &g.id)) {
                        g.sources.push(src.clone());
                    }
                } else {
                    let texts: Vec<String> = governing.iter().map(|g| format!("{} ({})", g.name, g.sources[0])).collect();
                    findings.push(Finding {
                        severity: Severity::High,
                        code: "licence-conflict",
                        message: format!("metadata says {} but the licence text is {}: the text governs; the metadata label is wrong", describe(named, &fact.value), texts.join(", ")),
                        sources: vec![src.clone()],
                    });
                }
            }
            Named::Entry(e) => merge(&mut governing, Governing { id: e.id_or_unknown().to_owned(), name: e.name.clone(), key: Some(e.key.clone()), basis: "metadata", sources: vec![src.clone()], file: None }),
            Named::Family { family, candidates } => {
                // The version is not pinned: take the newest we know, and say so.
                let e = candidates.last().copied().unwrap_or(candidates[0]);
                findings.push(Finding {
                    severity: Severity::Info,
                    code: "licence-version-unpinned",
                    message: format!("{src} names the {family} family without a version (one of: {}); no licence text pins it, assuming {}", candidates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "), e.name),
                    sources: vec![src.clone()],
                });
                merge(&mut governing, Governing { id: e.id_or_unknown().to_owned(), name: e.name.clone(), key: Some(e.key.clone()), basis: "metadata", sources: vec![src.clone()], file: None });
            }
            Named::Spdx(expr) => merge(&mut governing, Governing { id: expr.clone(), name: expr.clone(), key: None, basis: "metadata", sources: vec![src.clone()], file: None }),
        }
    }
    // Metadata-only licences that disagree with each other.
    if !have_text {
        let distinct: std::collections::BTreeSet<&str> = governing.iter().map(|g| g.id.as_str()).collect();
        if distinct.len() > 1 {
            findings.push(Finding {
                severity: Severity::High,
                code: "licence-conflict",
                message: format!("metadata names different licences ({}) and no licence text settles it", distinct.into_iter().collect::<Vec<_>>().join(", ")),
                sources: governing.iter().flat_map(|g| g.sources.clone()).collect(),
            });
        }
        if !governing.is_empty() {
            findings.push(Finding { severity: Severity::Medium, code: "no-licence-text", message: "no licence text ships with the model: the licence is known only from metadata labels, which quantizers often copy or guess".into(), sources: governing.iter().flat_map(|g| g.sources.clone()).collect() });
        }
    }
    if governing.is_empty() {
        findings.push(Finding { severity: Severity::High, code: "no-licence", message: "no licence found in the files or metadata: no licence means no rights are granted".into(), sources: vec![ev.root.display().to_string()] });
    }
    let lineage = lineage(ev);
    for link in lineage.iter().skip(1) {
        let Some(base) = base_licence(&link.name) else { continue };
        let covered = governing.iter().any(|g| g.entry().is_some_and(|e| e.family == base.family));
        if !covered && base.category != Category::Permissive {
            findings.push(Finding {
                severity: Severity::High,
                code: "base-licence-not-carried",
                message: format!(
                    "base model {} is under the {}; this derivative is labelled {} — the base licence's obligations still apply to it",
                    link.name,
                    base.name,
                    if governing.is_empty() { "with no licence".to_owned() } else { governing.iter().map(|g| g.name.clone()).collect::<Vec<_>>().join(", ") }
                ),
                sources: vec![link.source.clone()],
            });
        }
    }
    if let Some(d) = &ev.derivation {
        findings.extend(derivation_findings(d, &governing, &ev.root.display().to_string()));
    }
    for p in &policies {
        let bound = governing.iter().any(|g| g.entry().zip(p.entry()).is_some_and(|(a, b)| a.family == b.family));
        if !bound {
            findings.push(Finding { severity: Severity::Info, code: "orphan-use-policy", message: format!("{} is present but no licence of its family was found", p.name), sources: p.sources.clone() });
        }
    }
    Assessment { governing, policies, findings, lineage }
}

fn describe(named: &Named, raw: &str) -> String {
    match named {
        Named::Entry(e) => format!("{raw:?} ({})", e.name),
        _ => format!("{raw:?}"),
    }
}

fn merge(list: &mut Vec<Governing>, g: Governing) {
    match list.iter_mut().find(|x| x.id == g.id && x.key == g.key) {
        Some(x) => x.sources.extend(g.sources),
        None => list.push(g),
    }
}

/// What a file glassbox derived from another owes: the record itself, the governing licences'
/// terms for derivatives (naming, attribution, whether modification is allowed), and — for an
/// edit of behaviour — the EU AI Act note.
fn derivation_findings(d: &crate::evidence::Derivation, governing: &[Governing], source: &str) -> Vec<Finding> {
    use glassbox_license::Topic;
    let mut out = vec![Finding {
        severity: Severity::Info,
        code: "derived-file",
        message: format!(
            "made from {} (sha256 {}) by {} {}{}; `glassbox verify --base BASE.gguf` checks that file",
            if d.base_name.is_empty() { "a base file" } else { &d.base_name },
            d.base_sha256,
            if d.tool.is_empty() { "glassbox" } else { &d.tool },
            d.method,
            if d.parameters.is_empty() { String::new() } else { format!(" ({})", d.parameters) }
        ),
        sources: vec![format!("glassbox.lineage.* in {source}")],
    }];
    for g in governing {
        let Some(e) = g.entry() else { continue };
        let duties: Vec<String> = [Topic::Derivatives, Topic::Naming, Topic::Attribution, Topic::DownstreamRestrictions]
            .into_iter()
            .filter_map(|t| e.clause(t).map(|c| format!("{}: {}", t.title(), c.summary)))
            .collect();
        if !duties.is_empty() {
            let severity = if e.category == Category::Permissive { Severity::Info } else { Severity::Medium };
            out.push(Finding { severity, code: "derivative-obligations", message: format!("{} binds this derivative — {}", e.name, duties.join("; ")), sources: g.sources.clone() });
        }
    }
    if d.method != "quantize" {
        out.push(Finding {
            severity: Severity::Medium,
            code: "eu-ai-act-modifier",
            message: format!(
                "this file's behaviour was changed ({}): under the EU AI Act a substantial modification may make whoever made it the provider of a new system, with the provider's duties; measure what changed with `glassbox eval compare BASE THIS` and keep the result",
                d.method
            ),
            sources: vec![format!("glassbox.lineage.method in {source}")],
        });
    }
    out
}

fn lineage(ev: &Evidence) -> Vec<Link> {
    let mut out = vec![Link { name: ev.name.clone().unwrap_or_else(|| ev.root.file_name().unwrap_or_default().to_string_lossy().to_string()), relation: None, license_id: None, license_name: None, source: "this model".into(), sha256: None }];
    let mut seen = std::collections::BTreeSet::new();
    for b in &ev.base_models {
        let key = b.name.trim_start_matches("https://huggingface.co/").to_ascii_lowercase();
        if !seen.insert(key) {
            continue;
        }
        let lic = base_licence(&b.name);
        out.push(Link { name: b.name.clone(), relation: b.relation.clone(), license_id: lic.map(|e| e.id_or_unknown().to_owned()), license_name: lic.map(|e| e.name.clone()), source: b.source.clone(), sha256: b.sha256.clone() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Derivation;

    #[test]
    fn a_behaviour_edit_carries_the_eu_ai_act_note_and_a_quantisation_does_not() {
        let d = |method: &str| Derivation { base_sha256: "ab".repeat(32), base_name: "Base".into(), method: method.into(), parameters: "scale=1".into(), tool: "glassbox 0.1.0".into(), time_unix: Some(0) };
        let codes = |m: &str| derivation_findings(&d(m), &[], "m.gguf").into_iter().map(|f| f.code).collect::<Vec<_>>();
        assert_eq!(codes("quantize"), ["derived-file"]);
        assert_eq!(codes("abliterate"), ["derived-file", "eu-ai-act-modifier"]);
        let f = derivation_findings(&d("abliterate"), &[], "m.gguf");
        assert!(f[0].message.contains("made from Base") && f[0].message.contains(&"ab".repeat(32)));
    }
}
