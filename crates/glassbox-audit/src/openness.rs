//! The Model Openness Framework (MOF, Linux Foundation Generative AI Commons): 17 components in
//! three classes. Class III (open model) needs the architecture, final parameters, technical
//! report, evaluation results, model card, data card and sample outputs; Class II (open
//! tooling) adds training, inference and evaluation code, evaluation data and supporting
//! libraries; Class I (open science) adds the research paper, datasets, data preprocessing code,
//! intermediate parameters and (optionally) model metadata. Each must be released under a
//! licence suited to its type (open-source for code, open-data/open-content for data, documents
//! and parameters). We grade what the files in hand show; what is only linked counts as
//! referenced, not present.

use serde::Serialize;

use glassbox_license::Category;

use crate::assess::Assessment;
use crate::evidence::Evidence;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Present,
    Referenced,
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub name: &'static str,
    /// The MOF class that first requires it (3, 2 or 1).
    pub class: u8,
    pub status: Status,
    /// Whether the licence covering it suits its type (only meaningful when present).
    pub open_licence: Option<bool>,
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Openness {
    pub components: Vec<Component>,
    /// The best class reached (1 is best), or None.
    pub class: Option<u8>,
    /// One plain sentence, e.g. "open-weight, not open source".
    pub verdict: String,
    /// True when weights are available but their licence restricts use ("pseudo-open").
    pub pseudo_open: bool,
}

const COMPONENTS: [(&str, u8); 17] = [
    ("model architecture", 3),
    ("final model parameters", 3),
    ("technical report", 3),
    ("evaluation results", 3),
    ("model card", 3),
    ("data card", 3),
    ("sample model outputs", 3),
    ("training code", 2),
    ("inference code", 2),
    ("evaluation code", 2),
    ("evaluation data", 2),
    ("supporting libraries and tools", 2),
    ("research paper", 1),
    ("datasets", 1),
    ("data preprocessing code", 1),
    ("intermediate model parameters", 1),
    ("model metadata", 1),
];

fn file_like(ev: &Evidence, pred: impl Fn(&str) -> bool) -> Option<String> {
    ev.other_files.iter().map(|p| p.display().to_string()).find(|p| pred(&p.to_ascii_lowercase()))
}

/// Grade the model.
pub fn grade(ev: &Evidence, a: &Assessment) -> Openness {
    let eff = a.effective();
    let weights_cat = eff.and_then(|g| g.entry()).map(|e| e.category);
    let weights_open = matches!(weights_cat, Some(Category::Permissive | Category::Copyleft));
    let licence_name = eff.map(|g| g.name.clone()).unwrap_or_else(|| "no licence".into());
    let card = ev.card.as_ref().map(|p| p.strip_prefix(&ev.root).unwrap_or(p).display().to_string());
    let py = |needle: &'static str| move |p: &str| p.ends_with(".py") && p.contains(needle);
    let mut comps = vec![];
    for (name, class) in COMPONENTS {
        let (status, evidence): (Status, String) = match name {
            "final model parameters" => match ev.weights.first() {
                Some(w) => (Status::Present, format!("{} ({} bytes) under {licence_name}", w.path.strip_prefix(&ev.root).unwrap_or(&w.path).display(), w.size)),
                None => (Status::Missing, "no weights file".into()),
            },
            "model architecture" => {
                if let Some(f) = file_like(ev, py("modeling")) {
                    (Status::Present, format!("code {f}"))
                } else if let Some(arch) = ev.fact("general.architecture") {
                    (Status::Referenced, format!("named only ({}: {}); no architecture code", arch.source, arch.value))
                } else if let Some(f) = file_like(ev, |p| p.ends_with("config.json")) {
                    (Status::Referenced, format!("configuration only ({f}); no architecture code"))
                } else {
                    (Status::Missing, "not described".into())
                }
            }
            "model card" => match &card {
                Some(c) => (Status::Present, c.clone()),
                None => (Status::Missing, "no README.md / model card".into()),
            },
            "evaluation results" => match ev.fact("card.model-index") {
                Some(f) => (Status::Present, f.source.clone()),
                None => (Status::Missing, "no model-index in the card".into()),
            },
            "data card" | "datasets" => match (file_like(ev, |p| p.contains("data_card") || p.contains("datacard")), ev.fact("card.datasets")) {
                (Some(f), _) if name == "data card" => (Status::Present, f),
                (_, Some(d)) => (Status::Referenced, format!("{} names {}", d.source, d.value)),
                _ => (Status::Missing, "not found".into()),
            },
            "technical report" | "research paper" => match file_like(ev, |p| p.ends_with(".pdf")) {
                Some(f) => (Status::Present, f),
                None => (Status::Missing, "not in the files".into()),
            },
            "sample model outputs" => match file_like(ev, |p| p.contains("sample") && (p.ends_with(".txt") || p.ends_with(".json") || p.ends_with(".jsonl"))) {
                Some(f) => (Status::Present, f),
                None => (Status::Missing, "not in the files".into()),
            },
            "training code" => opt(file_like(ev, py("train"))),
            "inference code" => opt(file_like(ev, |p| p.ends_with(".py") && (p.contains("infer") || p.contains("generat")))),
            "evaluation code" => opt(file_like(ev, |p| p.ends_with(".py") && p.contains("eval"))),
            "evaluation data" => opt(file_like(ev, |p| p.contains("eval") && (p.ends_with(".json") || p.ends_with(".jsonl") || p.ends_with(".parquet")))),
            "supporting libraries and tools" => opt(file_like(ev, |p| p.ends_with("requirements.txt") || p.ends_with("pyproject.toml"))),
            "data preprocessing code" => opt(file_like(ev, |p| p.ends_with(".py") && (p.contains("preprocess") || p.contains("prepare")))),
            "intermediate model parameters" => opt(file_like(ev, |p| p.contains("checkpoint-") || p.contains("intermediate"))),
            "model metadata" => {
                if ev.facts.iter().any(|f| f.key.starts_with("general.")) || ev.fact("card.tags").is_some() {
                    (Status::Present, "GGUF general.* metadata / card front matter".into())
                } else {
                    (Status::Missing, "none".into())
                }
            }
            _ => (Status::Missing, String::new()),
        };
        let open_licence = (status == Status::Present).then_some(weights_open || eff.is_some_and(|g| g.entry().is_none() && g.id != "unknown" && spdx_is_open(&g.id)));
        comps.push(Component { name, class, status, open_licence, evidence });
    }
    let reached = |c: u8| comps.iter().filter(|x| x.class >= c && x.name != "model metadata").all(|x| x.status == Status::Present && x.open_licence == Some(true));
    let class = [1u8, 2, 3].into_iter().find(|c| reached(*c));
    let pseudo_open = !ev.weights.is_empty() && matches!(weights_cat, Some(Category::Restricted | Category::Noncommercial));
    let missing3: Vec<&str> = comps.iter().filter(|c| c.class == 3 && c.status != Status::Present).map(|c| c.name).collect();
    let verdict = match (weights_cat, class) {
        _ if eff.is_none() => "no licence: all rights reserved; not open".to_owned(),
        (Some(Category::Restricted), _) => format!("open-weight, not open source: the weights' licence ({licence_name}) restricts use"),
        (Some(Category::Noncommercial), _) => format!("open-weight, non-commercial only ({licence_name}): not open source"),
        (_, Some(c)) => format!("open model: MOF Class {}", class_name(c)),
        (Some(_), None) => format!("open weights under an open licence ({licence_name}); MOF Class III not reached (not present: {})", missing3.join(", ")),
        (None, _) => format!("licence {licence_name} has no clause table: openness not graded beyond the weights"),
    };
    Openness { components: comps, class, verdict, pseudo_open }
}

/// "I", "II" or "III" for a MOF class number (1 is best).
pub fn class_name(class: u8) -> &'static str {
    match class {
        1 => "I",
        2 => "II",
        _ => "III",
    }
}

fn opt(f: Option<String>) -> (Status, String) {
    match f {
        Some(f) => (Status::Present, f),
        None => (Status::Missing, "not in the files".into()),
    }
}

fn spdx_is_open(id: &str) -> bool {
    spdx::Expression::parse(id).is_ok_and(|e| e.requirements().all(|r| matches!(&r.req.license, spdx::LicenseItem::Spdx { id, .. } if id.is_osi_approved() || id.is_fsf_free_libre())))
}
