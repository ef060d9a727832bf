//! The policy gate, and the AI-BOM validated against the official CycloneDX 1.6 JSON schema
//! (bundled in schema/, offline).

mod common;

use common::{card, corpus_licence, scratch};
use glassbox_audit::{Policy, audit, bom::to_cyclonedx, sarif::to_sarif};

fn policy(dir: &std::path::Path, text: &str) -> Policy {
    let p = dir.join("policy.toml");
    std::fs::write(&p, text).unwrap();
    Policy::load(&p).unwrap()
}

fn folder_with(tag: &str, key: &str) -> std::path::PathBuf {
    let d = scratch(tag);
    std::fs::write(d.join("model.safetensors"), b"{}").unwrap();
    std::fs::write(d.join("LICENSE"), corpus_licence(key)).unwrap();
    d
}

fn failed(r: &glassbox_audit::Report) -> Vec<String> {
    r.failures().map(|c| format!("{}: {}", c.rule, c.reason)).collect()
}

#[test]
fn allow_and_deny_lists_by_id_and_family() {
    let d = folder_with("allow", "gemma-tou-2025-03-24");
    let p = policy(&d, "[licenses]\nallow = [\"Apache-2.0\", \"MIT\"]\n");
    let r = audit(&d, Some(&p)).unwrap();
    assert!(!r.policy_pass);
    assert!(failed(&r)[0].contains("not in the allow list"), "{:?}", failed(&r));
    let p = policy(&d, "[licenses]\nallow = [\"family:gemma\"]\n");
    assert!(audit(&d, Some(&p)).unwrap().policy_pass);
    let p = policy(&d, "[licenses]\ndeny = [\"family:gemma\"]\nallow = [\"family:gemma\"]\n");
    let r = audit(&d, Some(&p)).unwrap();
    assert!(failed(&r)[0].contains("denied"), "{:?}", failed(&r));
}

#[test]
fn use_rules_follow_the_clause_tables() {
    let d = folder_with("use", "llama-2-license-2023");
    let p = policy(&d, "[use]\ncommercial = true\nmonthly_active_users = 800_000_000\ntrain_other_models = true\n");
    let r = audit(&d, Some(&p)).unwrap();
    let f = failed(&r);
    assert!(f.iter().any(|m| m.starts_with("use.train_other_models") && m.contains("forbids")), "{f:?}");
    assert!(f.iter().any(|m| m.starts_with("use.monthly_active_users") && m.contains("exceeds")), "{f:?}");
    assert!(!f.iter().any(|m| m.starts_with("use.commercial")), "{f:?}");
    let p = policy(&d, "[use]\ncommercial = true\nmonthly_active_users = 5_000_000\n");
    assert!(audit(&d, Some(&p)).unwrap().policy_pass);
    let d = folder_with("nc", "cc-by-nc-4.0");
    let p = policy(&d, "[use]\ncommercial = true\n");
    assert!(failed(&audit(&d, Some(&p)).unwrap())[0].starts_with("use.commercial"));
}

#[test]
fn openness_and_conflict_rules() {
    let d = folder_with("open", "gemma-tou-2025-03-24");
    let p = policy(&d, "[openness]\nallow_pseudo_open = false\n");
    let r = audit(&d, Some(&p)).unwrap();
    assert!(failed(&r)[0].contains("open-weight, not open source"), "{:?}", failed(&r));
    let p = policy(&d, "[openness]\nmin_class = \"III\"\n");
    assert!(!audit(&d, Some(&p)).unwrap().policy_pass);
    // A labelled conflict fails any policy.
    let d = scratch("conflict-policy");
    std::fs::write(d.join("model.safetensors"), b"{}").unwrap();
    card(&d, "license: mit\nbase_model: meta-llama/Llama-2-7b-hf");
    let r = audit(&d, Some(&policy(&d, ""))).unwrap();
    assert!(failed(&r).iter().any(|m| m.starts_with("licenses.conflicts")), "{:?}", failed(&r));
}

#[test]
fn integrity_rules_check_the_lock_and_the_signature() {
    let d = folder_with("integrity", "apache-2.0");
    let p = policy(&d, "[integrity]\nrequire_lock = \"glassbox.lock\"\n");
    let r = audit(&d, Some(&p)).unwrap();
    assert!(failed(&r)[0].contains("glassbox.lock"), "{:?}", failed(&r));
    let pins = glassbox_trust::hash_files(&[d.join("model.safetensors")], 1).unwrap();
    glassbox_trust::Lockfile::add(&d.join("glassbox.lock"), &pins).unwrap();
    assert!(audit(&d, Some(&p)).unwrap().policy_pass, "{:?}", failed(&audit(&d, Some(&p)).unwrap()));
    std::fs::write(d.join("model.safetensors"), b"{ }").unwrap();
    assert!(failed(&audit(&d, Some(&p)).unwrap())[0].contains("does not match the pin"));
    // Signature: the model-signing corpus folder, signed with the P-256 key.
    let ms = glassbox_testdata::corpus("model-signing");
    let p = policy(&d, &format!("[integrity]\nrequire_signature = {{ signature = {:?}, public_key = {:?} }}\n", ms.join("model-p256.sig"), ms.join("key-p256.pub.pem")));
    let r = audit(&ms.join("model"), Some(&p)).unwrap();
    assert!(r.policy.iter().any(|c| c.rule == "integrity.require_signature" && c.pass), "{:?}", r.policy);
    let p = policy(&d, &format!("[integrity]\nrequire_signature = {{ signature = {:?}, public_key = {:?} }}\n", ms.join("model-p256.sig"), ms.join("key-p384.pub.pem")));
    let r = audit(&ms.join("model"), Some(&p)).unwrap();
    assert!(failed(&r).iter().any(|m| m.starts_with("integrity.require_signature")), "{:?}", r.policy);
}

#[test]
fn bad_policies_are_refused_with_the_field_named() {
    let d = scratch("badpolicy");
    let load = |t: &str| {
        std::fs::write(d.join("p.toml"), t).unwrap();
        Policy::load(&d.join("p.toml")).unwrap_err().to_string()
    };
    assert!(load("[licences]\nallow = []\n").contains("licences"));
    assert!(load("[openness]\nmin_class = \"IV\"\n").contains("min_class"));
    assert!(load("[use]\nmonthly_active_users = -3\n").contains("monthly_active_users") || load("[use]\nmonthly_active_users = -3\n").contains("invalid"));
    assert!(load("[integrity]\nrequire_signature = { signature = \"s\" }\n").contains("exactly one"));
}

fn cyclonedx_validator() -> jsonschema::Validator {
    let dir = glassbox_testdata::repo_root().join("crates/glassbox-audit/schema");
    let read = |f: &str| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap();
    let registry = jsonschema::Registry::new()
        .add("http://cyclonedx.org/schema/spdx.schema.json", jsonschema::Resource::from_contents(read("spdx.schema.json")))
        .unwrap()
        .add("http://cyclonedx.org/schema/jsf-0.82.schema.json", jsonschema::Resource::from_contents(read("jsf-0.82.schema.json")))
        .unwrap()
        .prepare()
        .unwrap();
    let schema = read("bom-1.6.schema.json");
    jsonschema::options().with_registry(&registry).should_validate_formats(true).build(&schema).unwrap()
}

#[test]
fn boms_validate_against_the_cyclonedx_1_6_schema() {
    let v = cyclonedx_validator();
    let mut dirs = vec![];
    for key in ["apache-2.0", "llama-3.1-license-2024", "gemma-tou-2025-03-24", "cc-by-nc-4.0", "gpl-3.0"] {
        dirs.push(folder_with(&format!("bom-{key}"), key));
    }
    let lineage = scratch("bom-lineage");
    std::fs::write(lineage.join("a.safetensors"), b"{}").unwrap();
    std::fs::write(lineage.join("b.safetensors"), b"{ }").unwrap();
    card(&lineage, "license: mit\nbase_model: meta-llama/Llama-3.1-8B\ndatasets:\n- HuggingFaceTB/smollm-corpus\npipeline_tag: text-generation");
    dirs.push(lineage);
    dirs.push(scratch("bom-empty"));
    for d in dirs {
        let r = audit(&d, None).unwrap();
        let bom = to_cyclonedx(&r);
        let errors: Vec<String> = v.iter_errors(&bom).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}\n{bom:#}", d.display());
        assert_eq!(bom["components"][0]["type"], "machine-learning-model");
    }
    // A broken BOM is caught (the validator is not vacuous).
    let mut bad = to_cyclonedx(&audit(&folder_with("bom-bad", "mit"), None).unwrap());
    bad["components"][0]["type"] = "banana".into();
    assert!(!v.is_valid(&bad));
}

#[test]
fn bom_carries_hashes_licences_and_pedigree() {
    let d = scratch("bom-content");
    std::fs::write(d.join("m.safetensors"), b"{}").unwrap();
    std::fs::write(d.join("LICENSE"), corpus_licence("llama-3.1-license-2024")).unwrap();
    card(&d, "license: llama3.1\nbase_model: meta-llama/Llama-3.1-8B");
    let bom = to_cyclonedx(&audit(&d, None).unwrap());
    let m = &bom["components"][0];
    assert_eq!(m["hashes"][0]["alg"], "SHA-256");
    assert_eq!(m["hashes"][0]["content"], "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    assert!(m["licenses"][0]["license"]["name"].as_str().unwrap().contains("LicenseRef-scancode-llama-3.1-license-2024"));
    assert_eq!(m["licenses"][0]["license"]["acknowledgement"], "concluded");
    assert_eq!(m["pedigree"]["ancestors"][0]["name"], "meta-llama/Llama-3.1-8B");
    let sarif = to_sarif(&audit(&d, None).unwrap());
    assert_eq!(sarif["version"], "2.1.0");
}
