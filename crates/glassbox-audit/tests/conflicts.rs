//! Synthetic folders for the traps: a metadata label that contradicts the licence text, no
//! licence at all, a Llama-based fine-tune labelled MIT, an unknown licence text — and every
//! licence of the corpus shipped as LICENSE, with its expected id and key clauses.

mod common;

use common::{card, corpus_licence, gguf, scratch};
use glassbox_audit::{Severity, audit};

fn codes(r: &glassbox_audit::Report) -> Vec<(&'static str, Severity)> {
    r.findings.iter().map(|f| (f.code, f.severity)).collect()
}

#[test]
fn gguf_label_that_contradicts_the_licence_text_is_a_high_conflict() {
    let d = scratch("label");
    gguf(&d.join("m.gguf"), &[("general.license", "apache-2.0"), ("general.name", "Some Llama Quant")]);
    std::fs::write(d.join("LICENSE"), corpus_licence("llama-3.1-license-2024")).unwrap();
    let r = audit(&d, None).unwrap();
    assert_eq!(r.licences.len(), 1);
    assert_eq!(r.licences[0].governing.id, "LicenseRef-scancode-llama-3.1-license-2024");
    let f = r.findings.iter().find(|f| f.code == "licence-conflict").expect("conflict");
    assert_eq!(f.severity, Severity::High);
    assert!(f.message.contains("apache-2.0") && f.message.contains("Llama 3.1"), "{}", f.message);
    assert!(f.sources[0].contains("general.license"), "{:?}", f.sources);
}

#[test]
fn no_licence_means_no_rights() {
    let d = scratch("none");
    gguf(&d.join("m.gguf"), &[("general.name", "Nameless")]);
    let r = audit(&d, None).unwrap();
    assert!(codes(&r).contains(&("no-licence", Severity::High)), "{:?}", codes(&r));
    assert!(r.openness.verdict.starts_with("no licence"), "{}", r.openness.verdict);
}

#[test]
fn a_llama_fine_tune_labelled_mit_keeps_llama_obligations() {
    let d = scratch("mit-llama");
    std::fs::write(d.join("model.safetensors"), b"{}").unwrap();
    card(&d, "license: mit\nbase_model: meta-llama/Llama-3.1-8B-Instruct\nbase_model_relation: finetune");
    let r = audit(&d, None).unwrap();
    let f = r.findings.iter().find(|f| f.code == "base-licence-not-carried").expect("lineage finding");
    assert_eq!(f.severity, Severity::High);
    assert!(f.message.contains("Llama 3.1 Community License") && f.message.contains("MIT"), "{}", f.message);
    assert_eq!(r.lineage.len(), 2);
    assert_eq!(r.lineage[1].relation.as_deref(), Some("finetune"));
    assert_eq!(r.lineage[1].license_id.as_deref(), Some("LicenseRef-scancode-llama-3.1-license-2024"));
}

#[test]
fn a_quantized_gemma_labelled_apache_is_flagged_through_its_base() {
    let d = scratch("gemma-apache");
    gguf(&d.join("m.gguf"), &[("general.license", "apache-2.0"), ("general.base_model.0.organization", "google"), ("general.base_model.0.name", "gemma-3-270m")]);
    let r = audit(&d, None).unwrap();
    assert!(codes(&r).contains(&("base-licence-not-carried", Severity::High)), "{:?}", r.findings);
}

#[test]
fn an_unknown_licence_text_asks_for_a_human() {
    let d = scratch("unknown");
    gguf(&d.join("m.gguf"), &[]);
    std::fs::write(d.join("LICENSE"), "You may use this model on Tuesdays only, and never for chess.\n").unwrap();
    let r = audit(&d, None).unwrap();
    assert!(codes(&r).contains(&("unknown-licence-text", Severity::Medium)), "{:?}", r.findings);
    assert!(codes(&r).contains(&("no-licence", Severity::High)), "{:?}", r.findings);
}

#[test]
fn hf_other_with_license_name_and_gguf_family_names_resolve() {
    let d = scratch("other");
    gguf(&d.join("m.gguf"), &[("general.license", "gemma")]);
    card(&d, "license: other\nlicense_name: llama3.3\nlicense_link: LICENSE");
    let r = audit(&d, None).unwrap();
    // Two different licences named by metadata, no text: a conflict, and unpinned Gemma version.
    assert!(codes(&r).contains(&("licence-conflict", Severity::High)), "{:?}", r.findings);
    assert!(r.licences.iter().any(|l| l.governing.id == "LicenseRef-scancode-llama-3.3-license-2024"));
    assert!(codes(&r).contains(&("licence-version-unpinned", Severity::Info)), "{:?}", r.findings);
}

#[test]
fn every_corpus_licence_shipped_as_license_gets_its_id_and_key_clauses() {
    // (ScanCode key, expected id, topic, expected verdict)
    let cases = [
        ("llama-2-license-2023", "LicenseRef-scancode-llama-2-license-2023", "train-other-models", "forbidden"),
        ("llama-3.1-license-2024", "LicenseRef-scancode-llama-3.1-license-2024", "naming", "required"),
        ("llama-3.2-license-2024", "LicenseRef-scancode-llama-3.2-license-2024", "user-threshold", "conditional"),
        ("llama-3.3-license-2024", "LicenseRef-scancode-llama-3.3-license-2024", "attribution", "required"),
        ("llama-license-2023", "LicenseRef-scancode-llama-license-2023", "commercial-use", "forbidden"),
        ("gemma-tou-2024-04-01", "LicenseRef-scancode-gemma-tou-2024-04-01", "remote-restriction", "conditional"),
        ("gemma-tou-2025-03-24", "LicenseRef-scancode-gemma-tou-2025-03-24", "downstream-restrictions", "required"),
        ("deepseek-la-1.0", "LicenseRef-scancode-deepseek-la-1.0", "remote-restriction", "conditional"),
        ("qwen-2024", "LicenseRef-scancode-qwen-2024", "user-threshold", "conditional"),
        ("tongyi-qianwen-2023", "LicenseRef-scancode-tongyi-qianwen-2023", "train-other-models", "forbidden"),
        ("falcon-2-11b-1.0", "LicenseRef-scancode-falcon-2-11b-1.0", "unilateral-change", "conditional"),
        ("bigscience-open-rail-m", "LicenseRef-scancode-bigscience-open-rail-m", "downstream-restrictions", "required"),
        ("bigscience-rail-1.0", "LicenseRef-scancode-bigscience-rail-1.0", "acceptable-use", "required"),
        ("bigcode-open-rail-m-v1", "LicenseRef-scancode-bigcode-open-rail-m-v1", "downstream-restrictions", "required"),
        ("nvidia-open-model-2025-04-28", "LicenseRef-scancode-nvidia-open-model-2025-04-28", "commercial-use", "allowed"),
        ("apache-2.0", "Apache-2.0", "commercial-use", "allowed"),
        ("mit", "MIT", "attribution", "required"),
        ("bsd-new", "BSD-3-Clause", "commercial-use", "allowed"),
        ("cc-by-4.0", "CC-BY-4.0", "commercial-use", "allowed"),
        ("cc-by-nc-4.0", "CC-BY-NC-4.0", "commercial-use", "forbidden"),
        ("cc-by-sa-4.0", "CC-BY-SA-4.0", "downstream-restrictions", "required"),
        ("gpl-3.0", "GPL-3.0-only", "downstream-restrictions", "required"),
    ];
    for (key, id, topic, verdict) in cases {
        let d = scratch(&format!("corpus-{key}"));
        std::fs::write(d.join("model.safetensors"), b"{}").unwrap();
        std::fs::write(d.join("LICENSE"), corpus_licence(key)).unwrap();
        let r = audit(&d, None).unwrap();
        assert_eq!(r.licences.len(), 1, "{key}: {:#?}", r.licences);
        let l = &r.licences[0];
        assert_eq!(l.governing.id, id, "{key}");
        let row = l.clauses.iter().find(|c| c.topic == topic).unwrap();
        assert_eq!(row.verdict, verdict, "{key} {topic}");
        if !row.quote.is_empty() {
            assert!(row.found_in.starts_with("LICENSE line"), "{key} {topic}: {}", row.found_in);
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn vendor_files_as_found_in_the_wild_get_their_ids_and_key_clauses() {
    // (file under in-the-wild/, expected id, expected name prefix, topic, verdict)
    let cases = [
        ("meta-llama_llama3/LICENSE", "unknown", "Meta Llama 3 Community", "naming", "required"),
        ("meta-llama_llama3/LICENSE", "unknown", "Meta Llama 3 Community", "train-other-models", "forbidden"),
        ("meta-llama_llama-models/models/llama4/LICENSE", "unknown", "Llama 4 Community", "user-threshold", "conditional"),
        ("meta-llama_llama-models/models/llama3_1/LICENSE", "LicenseRef-scancode-llama-3.1-license-2024", "Llama 3.1", "train-other-models", "conditional"),
        ("meta-llama_llama/LICENSE", "LicenseRef-scancode-llama-2-license-2023", "Llama 2", "train-other-models", "forbidden"),
        ("deepseek-ai_DeepSeek-V3/LICENSE-MODEL", "LicenseRef-scancode-deepseek-la-1.0", "DeepSeek", "remote-restriction", "conditional"),
        ("deepseek-ai_DeepSeek-R1/LICENSE", "MIT", "MIT", "commercial-use", "allowed"),
        ("QwenLM_Qwen/LICENSE", "Apache-2.0", "Apache", "commercial-use", "allowed"),
        ("InternLM_InternLM/LICENSE", "Apache-2.0", "Apache", "commercial-use", "allowed"),
    ];
    for (rel, id, name, topic, verdict) in cases {
        let d = scratch("wild");
        std::fs::write(d.join("model.safetensors"), b"{}").unwrap();
        std::fs::copy(glassbox_testdata::corpus("licenses/in-the-wild").join(rel), d.join("LICENSE")).unwrap();
        let r = audit(&d, None).unwrap();
        assert_eq!(r.licences.len(), 1, "{rel}: {:#?}", r.licences);
        let l = &r.licences[0];
        assert_eq!(l.governing.id, id, "{rel}");
        assert!(l.governing.name.starts_with(name), "{rel}: {}", l.governing.name);
        assert_eq!(l.clauses.iter().find(|c| c.topic == topic).unwrap().verdict, verdict, "{rel} {topic}");
    }
}

#[test]
fn a_licence_text_in_the_model_card_body_counts_as_text() {
    let d = scratch("card-body");
    std::fs::write(d.join("model.safetensors"), b"{}").unwrap();
    std::fs::write(d.join("README.md"), format!("---\nlicense: mit\n---\n\n# My model\n\nIt is small.\n\n## License\n\n{}\n", corpus_licence("mit"))).unwrap();
    let r = audit(&d, None).unwrap();
    assert_eq!(r.licences.len(), 1, "{:#?}", r.licences);
    assert_eq!((r.licences[0].governing.id.as_str(), r.licences[0].governing.basis), ("MIT", "text"));
    assert!(r.licences[0].governing.sources[0].starts_with("README.md lines"), "{:?}", r.licences[0].governing.sources);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    // A card that only names its licence is not a licence text.
    let d = scratch("card-name-only");
    std::fs::write(d.join("model.safetensors"), b"{}").unwrap();
    card(&d, "license: mit");
    let r = audit(&d, None).unwrap();
    assert_eq!(r.licences[0].governing.basis, "metadata");
}

#[test]
fn use_policies_are_reported_beside_their_licence() {
    let d = scratch("aup");
    std::fs::write(d.join("model.safetensors"), b"{}").unwrap();
    let wild = glassbox_testdata::corpus("licenses/in-the-wild/meta-llama_llama-models/models/llama3_2");
    std::fs::copy(wild.join("LICENSE"), d.join("LICENSE")).unwrap();
    std::fs::copy(wild.join("USE_POLICY.md"), d.join("USE_POLICY.md")).unwrap();
    let r = audit(&d, None).unwrap();
    assert_eq!(r.licences[0].governing.id, "LicenseRef-scancode-llama-3.2-license-2024");
    assert_eq!(r.policies.len(), 1);
    assert_eq!(r.policies[0].name, "Llama 3.2 Acceptable Use Policy");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn bad_model_cards_get_clear_errors() {
    let d = scratch("badcard");
    std::fs::write(d.join("README.md"), "---\nlicense: [unclosed\n---\n").unwrap();
    let e = audit(&d, None).unwrap_err().to_string();
    assert!(e.contains("README.md") && e.contains("YAML"), "{e}");
    std::fs::write(d.join("README.md"), "---\n- a list\n---\n").unwrap();
    let e = audit(&d, None).unwrap_err().to_string();
    assert!(e.contains("mapping"), "{e}");
    // A billion-laughs alias bomb is refused or bounded, never expanded without limit.
    let mut bomb = String::from("---\na: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    for i in 0..9 {
        let prev = if i == 0 { "a".to_owned() } else { format!("l{}", i - 1) };
        bomb.push_str(&format!("l{i}: &l{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    bomb.push_str("license: mit\n---\n");
    std::fs::write(d.join("README.md"), bomb).unwrap();
    let t = std::time::Instant::now();
    let _ = audit(&d, None);
    assert!(t.elapsed().as_secs() < 10);
}

#[test]
fn the_base_model_table_parses_and_the_longest_prefix_wins() {
    use glassbox_audit::assess::base_licence;
    assert_eq!(base_licence("deepseek-ai/DeepSeek-V3-0324").unwrap().key, "mit");
    assert_eq!(base_licence("deepseek-ai/DeepSeek-V3-Base").unwrap().key, "deepseek-la-1.0");
    assert_eq!(base_licence("https://huggingface.co/Qwen/Qwen2.5-72B-Instruct").unwrap().key, "qwen-2024");
    assert_eq!(base_licence("qwen/qwen2.5-7b").unwrap().key, "apache-2.0");
    assert_eq!(base_licence("google/gemma-3-270m").unwrap().key, "gemma-tou-2025-03-24");
    assert!(base_licence("someone/unknown-model").is_none());
}

#[test]
fn every_base_model_row_names_a_registry_licence() {
    let text = std::fs::read_to_string(glassbox_testdata::repo_root().join("crates/glassbox-audit/data/base-models.toml")).unwrap();
    let rows: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("license = ")).collect();
    assert!(rows.len() > 30);
    for r in rows {
        let key = r.trim_matches('"');
        assert!(glassbox_license::by_key(key).is_some(), "unknown licence key {key}");
    }
}
