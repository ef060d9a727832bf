//! Every licence text in tests/corpora/licenses (ScanCode's reference texts and the vendors'
//! files as found in the wild) is identified with its expected id.

use glassbox_license::{Format, identify, to_plain};

fn corpus(rel: &str) -> std::path::PathBuf {
    glassbox_testdata::corpus("licenses").join(rel)
}

/// A ScanCode `.LICENSE` file: YAML front matter, then the text.
fn scancode_text(key: &str) -> String {
    let s = std::fs::read_to_string(corpus(&format!("{key}.LICENSE"))).unwrap();
    let body = s.strip_prefix("---\n").and_then(|r| r.find("\n---\n").map(|i| r[i + 5..].to_owned()));
    body.unwrap_or(s)
}

fn read(rel: &str) -> String {
    let p = corpus(rel);
    let bytes = std::fs::read(&p).unwrap();
    to_plain(rel, &bytes, Format::detect(rel, &String::from_utf8_lossy(&bytes))).unwrap()
}

/// ScanCode key → the id its `.yml` gives (spdx_license_key).
fn yml_id(key: &str) -> String {
    let y = std::fs::read_to_string(corpus(&format!("{key}.yml"))).unwrap();
    y.lines().find_map(|l| l.strip_prefix("spdx_license_key: ")).unwrap().trim().to_owned()
}

#[test]
fn every_scancode_reference_text_gets_its_id() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus("")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "LICENSE") {
            continue;
        }
        let key = p.file_stem().unwrap().to_str().unwrap().to_owned();
        let got = identify(&scancode_text(&key));
        assert_eq!(got.id, yml_id(&key), "{key}: {got:?}");
        assert!(got.confidence > 0.99, "{key}: {got:?}");
        n += 1;
    }
    assert_eq!(n, 24);
}

#[test]
fn in_the_wild_files_get_their_ids() {
    let cases = [
        ("in-the-wild/InternLM_InternLM/LICENSE", "Apache-2.0", "Apache License 2.0"),
        ("in-the-wild/QwenLM_Qwen/LICENSE", "Apache-2.0", "Apache License 2.0"),
        ("in-the-wild/deepseek-ai_DeepSeek-R1/LICENSE", "MIT", "MIT License"),
        ("in-the-wild/deepseek-ai_DeepSeek-V3/LICENSE-CODE", "MIT", "MIT License"),
        ("in-the-wild/deepseek-ai_DeepSeek-V3/LICENSE-MODEL", "LicenseRef-scancode-deepseek-la-1.0", "DeepSeek License Agreement v1.0"),
        ("in-the-wild/meta-llama_llama/LICENSE", "LicenseRef-scancode-llama-2-license-2023", "Llama 2 Community License Agreement"),
        ("in-the-wild/meta-llama_llama/USE_POLICY.md", "unknown", "Llama 2 Acceptable Use Policy"),
        ("in-the-wild/meta-llama_llama3/LICENSE", "unknown", "Meta Llama 3 Community License Agreement"),
        ("in-the-wild/meta-llama_llama3/USE_POLICY.md", "unknown", "Meta Llama 3 Acceptable Use Policy"),
        ("in-the-wild/meta-llama_llama-models/models/llama2/LICENSE", "LicenseRef-scancode-llama-2-license-2023", "Llama 2 Community License Agreement"),
        ("in-the-wild/meta-llama_llama-models/models/llama2/USE_POLICY.md", "unknown", "Llama 2 Acceptable Use Policy"),
        ("in-the-wild/meta-llama_llama-models/models/llama3/LICENSE", "unknown", "Meta Llama 3 Community License Agreement"),
        ("in-the-wild/meta-llama_llama-models/models/llama3/USE_POLICY.md", "unknown", "Meta Llama 3 Acceptable Use Policy"),
        ("in-the-wild/meta-llama_llama-models/models/llama3_1/LICENSE", "LicenseRef-scancode-llama-3.1-license-2024", "Llama 3.1 Community License Agreement"),
        ("in-the-wild/meta-llama_llama-models/models/llama3_1/USE_POLICY.md", "unknown", "Llama 3.1 Acceptable Use Policy"),
        ("in-the-wild/meta-llama_llama-models/models/llama3_2/LICENSE", "LicenseRef-scancode-llama-3.2-license-2024", "Llama 3.2 Community License Agreement"),
        ("in-the-wild/meta-llama_llama-models/models/llama3_2/USE_POLICY.md", "unknown", "Llama 3.2 Acceptable Use Policy"),
        ("in-the-wild/meta-llama_llama-models/models/llama3_3/LICENSE", "LicenseRef-scancode-llama-3.3-license-2024", "Llama 3.3 Community License Agreement"),
        ("in-the-wild/meta-llama_llama-models/models/llama3_3/USE_POLICY.md", "unknown", "Llama 3.3 Acceptable Use Policy"),
        ("in-the-wild/meta-llama_llama-models/models/llama4/LICENSE", "unknown", "Llama 4 Community License Agreement"),
        ("in-the-wild/meta-llama_llama-models/models/llama4/USE_POLICY.md", "LicenseRef-scancode-llama-4-license-2025", "Llama 4 Acceptable Use Policy"),
    ];
    for (rel, id, name) in cases {
        let got = identify(&read(rel));
        assert_eq!((got.id.as_str(), got.name.as_str()), (id, name), "{rel}: {got:?}");
        assert!(got.key.is_some() && got.confidence >= 0.85, "{rel}: {got:?}");
    }
}

#[test]
fn the_qwen_notice_is_a_collection_of_third_party_notices_not_a_model_licence() {
    // Qwen's NOTICE bundles Megatron-LM's BSD text and others; whatever it is, it is not the
    // Qwen licence and must not be taken for one.
    let got = identify(&read("in-the-wild/QwenLM_Qwen/NOTICE"));
    assert!(!got.id.contains("qwen"), "{got:?}");
}

#[test]
fn an_apache_based_custom_licence_is_not_apache() {
    let got = identify(&scancode_text("falcon-2-11b-1.0"));
    assert_eq!(got.id, "LicenseRef-scancode-falcon-2-11b-1.0");
    // The same text with its distinctive title removed: closest is Falcon (or Apache), but it is
    // reported as unknown, never as Apache-2.0.
    let anonymous = scancode_text("falcon-2-11b-1.0").replace("Falcon 2 11B TII License Version 1.0", "Example Model Licence");
    let got = identify(&anonymous);
    assert_ne!(got.id, "Apache-2.0", "{got:?}");
}

#[test]
fn an_unknown_version_is_not_forced_into_a_known_one() {
    // A hypothetical Llama 3.4: the text of 3.3 with its version lines changed.
    let t = scancode_text("llama-3.3-license-2024").replace("3.3", "3.4").replace("December 6, 2024", "March 1, 2026");
    let got = identify(&t);
    assert_eq!(got.id, "unknown", "{got:?}");
    let c = got.closest.expect("closest reported");
    assert!(c.name.starts_with("Llama ") && c.score > 0.95 && c.reason.contains("distinctive wording"), "{c:?}");
}

#[test]
fn gemma_terms_2024_and_2025_are_told_apart() {
    assert_eq!(identify(&scancode_text("gemma-tou-2024-04-01")).id, "LicenseRef-scancode-gemma-tou-2024-04-01");
    assert_eq!(identify(&scancode_text("gemma-tou-2025-03-24")).id, "LicenseRef-scancode-gemma-tou-2025-03-24");
}

#[test]
fn a_licence_inside_a_longer_document_is_found_with_its_span() {
    let mit = scancode_text("mit");
    let doc = format!("# My model\n\nSome words about the model.\n\nMore words here.\n\n## License\n\n{mit}\n\n## Citation\n\n@misc{{x}}\n");
    let got = identify(&doc);
    assert_eq!(got.id, "MIT", "{got:?}");
    assert!(got.lines.0 >= 7 && got.lines.0 <= 10, "{got:?}");
}

#[test]
fn gibberish_is_unknown() {
    let got = identify("This is not a licence. It is a shopping list: eggs, milk, bread.");
    assert_eq!(got.id, "unknown");
    assert!(got.key.is_none());
}
