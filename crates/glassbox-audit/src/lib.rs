//! Audit what you may do with a model, from its files alone and offline: gather licence
//! evidence (GGUF metadata, model card front matter, licence files), identify the licences,
//! lay out their clause tables, flag conflicts and lineage problems, grade openness (Model
//! Openness Framework), apply an organisation's policy, and describe it all as a CycloneDX 1.6
//! AI-BOM.
//!
//! This crate never runs a model and never touches the network.

pub mod assess;
pub mod bom;
pub mod bom_eval;
pub mod evidence;
pub mod openness;
pub mod policy;
pub mod policy_eval;
pub mod render;
pub mod sarif;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use assess::{Assessment, Finding, Governing, Severity};
pub use evidence::Evidence;
pub use openness::Openness;
pub use policy::{Check, Policy};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {bytes} bytes is over the {limit}-byte limit")]
    TooLarge { path: PathBuf, bytes: u64, limit: u64 },
    #[error("{path}: more than {limit} files")]
    TooMany { path: PathBuf, limit: usize },
    #[error("model card {path}: {msg}")]
    Card { path: PathBuf, msg: String },
    #[error("policy {path}: {msg}")]
    Policy { path: PathBuf, msg: String },
    #[error("{0}")]
    License(glassbox_license::Error),
    #[error("{0}")]
    Gguf(String),
    #[error("{0}")]
    Trust(String),
}

/// One clause row as reported: the curated row plus where its sentence sits in the user's copy.
#[derive(Debug, Clone, Serialize)]
pub struct ClauseRow {
    pub topic: &'static str,
    pub title: &'static str,
    pub verdict: &'static str,
    pub summary: String,
    pub quote: String,
    /// "LICENSE line 42" when the sentence was found in the shipped text, else "reference text".
    pub found_in: String,
}

/// A governing licence with its clause table.
#[derive(Debug, Clone, Serialize)]
pub struct LicenceReport {
    #[serde(flatten)]
    pub governing: Governing,
    pub category: Option<&'static str>,
    pub clauses: Vec<ClauseRow>,
}

/// The whole audit.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub path: PathBuf,
    pub evidence: Evidence,
    pub licences: Vec<LicenceReport>,
    pub policies: Vec<Governing>,
    pub findings: Vec<Finding>,
    pub lineage: Vec<assess::Link>,
    pub openness: Openness,
    /// Policy checks; empty when no policy was given.
    pub policy: Vec<Check>,
    /// False when any policy check failed.
    pub policy_pass: bool,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.policy.iter().filter(|c| !c.pass)
    }
}

/// The clause table of `g`, each quote located in the licence text the model ships (already
/// read and converted while gathering evidence), when there is one.
fn clause_rows(g: &Governing, ev: &Evidence) -> Vec<ClauseRow> {
    let Some(e) = g.entry() else { return vec![] };
    let shipped = g.file.as_ref().and_then(|f| ev.licence_files.iter().find(|l| &l.path == f)).map(|l| l.text.as_str());
    let file_name = g.file.as_ref().and_then(|f| f.file_name()).map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    glassbox_license::Topic::ALL
        .iter()
        .map(|t| {
            let c = e.clause(*t);
            let quote = c.map(|c| c.quote.clone()).unwrap_or_default();
            let found_in = match (&shipped, quote.is_empty()) {
                (_, true) => String::new(),
                (Some(text), false) => match glassbox_license::find_quote(text, &quote) {
                    Some(line) => format!("{file_name} line {line}"),
                    None => format!("reference text ({file_name} words it differently)"),
                },
                (None, false) => "reference text (no licence file shipped)".into(),
            };
            ClauseRow {
                topic: t.as_str(),
                title: t.title(),
                verdict: c.map_or("not addressed", |c| c.verdict.as_str()),
                summary: c.map(|c| c.summary.clone()).unwrap_or_else(|| "no row in the clause table".into()),
                quote,
                found_in,
            }
        })
        .collect()
}

/// Audit `path` (a weights file or a model folder), applying `policy` when given.
pub fn audit(path: &Path, policy: Option<&Policy>) -> Result<Report, Error> {
    report(path, evidence::gather(path)?, policy)
}

/// Audit one weights file as `run`/`serve` load it (with the card and licence files beside it).
pub fn audit_model_file(path: &Path, policy: Option<&Policy>) -> Result<Report, Error> {
    report(path, evidence::gather_for_file(path)?, policy)
}

fn report(path: &Path, evidence: Evidence, policy: Option<&Policy>) -> Result<Report, Error> {
    let a = assess::assess(&evidence);
    let openness = openness::grade(&evidence, &a);
    let checks = policy.map(|p| p.check(&evidence, &a, &openness)).unwrap_or_default();
    let licences = a.governing.iter().map(|g| LicenceReport { governing: g.clone(), category: g.entry().map(|e| e.category.as_str()), clauses: clause_rows(g, &evidence) }).collect();
    Ok(Report {
        path: path.to_owned(),
        policy_pass: checks.iter().all(|c| c.pass),
        evidence,
        licences,
        policies: a.policies,
        findings: a.findings,
        lineage: a.lineage,
        openness,
        policy: checks,
    })
}
