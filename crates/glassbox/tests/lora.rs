//! `glassbox merge` end to end: the merged file computes what the adapter applied at run time
//! computes (what llama.cpp computes with it), carries base and adapters in its lineage, and bad
//! requests are refused by name with nothing left behind.

use std::process::{Command, Output};

fn glassbox(args: &[&str], store: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).env("GLASSBOX_TRUST_STORE", store).output().expect("run glassbox")
}

fn fx(rel: &str) -> String {
    glassbox_testdata::fixture(rel).display().to_string()
}

#[test]
fn a_merged_model_computes_what_the_adapter_computes() {
    let dir = std::env::temp_dir().join(format!("glassbox-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("trust.toml");
    let (model, adapter) = (fx("tiny/tiny-qwen2-f32.gguf"), fx("lora/tiny-qwen2-lora.gguf"));
    let out = dir.join("merged.gguf");
    let out_s = out.to_str().unwrap();
    let o = glassbox(&["merge", &model, "--lora", &adapter, "-o", out_s, "--json"], &store);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["merged"].as_array().unwrap().len(), 14);
    assert!(v["merged"].as_array().unwrap().iter().all(|m| m["type"] == "F32" && m["max_change"].as_f64().unwrap() > 0.0));
    // Lineage: the base and the adapter, with their digests and the scale.
    let g = glassbox_gguf::GgufFile::open(&out).unwrap();
    let g = g.gguf();
    assert_eq!(g.get_str("glassbox.lineage.method").unwrap(), Some("merge"));
    assert_eq!(g.get_str("glassbox.lineage.base.sha256").unwrap(), v["model"]["sha256"].as_str());
    assert_eq!(g.get_str("glassbox.lineage.adapter.0.sha256").unwrap(), v["adapters"][0]["sha256"].as_str());
    assert_eq!(g.get_f64("glassbox.lineage.adapter.0.scale").unwrap(), Some(1.0));
    // The merged file against llama.cpp applying the adapter: as close as the adapter at run time.
    let base = fx("kld/tiny-qwen2-lora.kld");
    let o = glassbox(&["perplexity", out_s, "--kl-divergence-base", &base, "--kl-divergence", "--json", "-t", "2"], &store);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merged: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(merged["kld_mean"].as_f64().unwrap() < 1e-4, "{merged}");
    assert_eq!(merged["same_top"], 100.0);
    // audit names the base and the adapter with their digests and adds the EU AI Act note;
    // the AI-BOM's pedigree lists both.
    let asha = v["adapters"][0]["sha256"].as_str().unwrap().to_string();
    let o = glassbox(&["audit", out_s, "--json"], &store);
    let audit = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(audit.contains("eu-ai-act-modifier") && audit.contains(&asha) && audit.contains("LoRA adapter merged"), "{audit}");
    let o = glassbox(&["bom", out_s], &store);
    let bom: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(bom.to_string().contains("ancestors") && bom.to_string().contains(&asha), "{bom}");
    // verify --base confirms the recorded base.
    let o = glassbox(&["verify", out_s, "--base", &model], &store);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    // Another type for the merged tensors; a type we cannot write; an existing output.
    let q8 = dir.join("merged-q8.gguf");
    let o = glassbox(&["merge", &model, "--lora", &format!("{adapter}:0.5"), "--type", "q8_0", "-o", q8.to_str().unwrap(), "--json"], &store);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["merged"].as_array().unwrap().iter().all(|m| m["type"] == "Q8_0"));
    let bad = dir.join("bad.gguf");
    let o = glassbox(&["merge", &model, "--lora", &adapter, "--type", "Q4_K_M", "-o", bad.to_str().unwrap()], &store);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--type Q4_K_M"));
    let o = glassbox(&["merge", &model, "--lora", &adapter, "-o", out_s], &store);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    // An adapter for another model: refused by name, nothing written.
    let o = glassbox(&["merge", &model, "--lora", &fx("lora/smollm2-lora.gguf"), "-o", bad.to_str().unwrap()], &store);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("smollm2-lora.gguf") && e.contains("architecture") && !e.contains("panicked"), "{e}");
    assert!(!bad.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `glassbox lora convert`: a PEFT adapter for a llama base, converted by us and applied, gives
/// what llama.cpp gives with its own converter's output (B's q/k rows permuted as the base
/// weights were); the file records what it came from; a pickle is refused with a pointer to scan.
#[test]
fn a_converted_peft_adapter_computes_what_llama_cpps_conversion_computes() {
    let dir = std::env::temp_dir().join(format!("glassbox-peft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("trust.toml");
    let (model, peft) = (fx("tiny/tiny-llama31.gguf"), fx("lora/peft/tiny-llama31"));
    let out = dir.join("converted.gguf");
    let out_s = out.to_str().unwrap();
    let o = glassbox(&["lora", "convert", &peft, "--base", &model, "-o", out_s, "--json"], &store);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["pairs"].as_u64(), v["architecture"].as_str(), v["alpha_written"].as_f64()), (Some(14), Some("llama"), Some(16.0)));
    let g = glassbox_gguf::GgufFile::open(&out).unwrap();
    let st = glassbox_trust::sha256_hex(&glassbox_trust::sha256_of(&std::fs::read(format!("{peft}/adapter_model.safetensors")).unwrap()));
    assert_eq!(g.gguf().get_str("glassbox.lineage.peft.adapter_model_safetensors.sha256").unwrap(), Some(st.as_str()));
    let base = fx("kld/tiny-llama31-peft.kld");
    let o = glassbox(&["perplexity", &model, "--lora", out_s, "--kl-divergence-base", &base, "--kl-divergence", "--json", "-t", "2"], &store);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["kld_mean"].as_f64().unwrap() < 1e-4, "{r}");
    // Without the adapter the same reference is far off: the adapter is what makes them agree.
    let o = glassbox(&["perplexity", &model, "--kl-divergence-base", &base, "--kl-divergence", "--json", "-t", "2"], &store);
    let bare: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(bare["kld_mean"].as_f64().unwrap() > 100.0 * r["kld_mean"].as_f64().unwrap(), "{bare}");
    // An existing output is kept; a pickled adapter is refused naming the file and `glassbox scan`.
    let o = glassbox(&["lora", "convert", &peft, "--base", &model, "-o", out_s], &store);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--force"));
    let pickled = dir.join("pickled");
    std::fs::create_dir_all(&pickled).unwrap();
    std::fs::copy(format!("{peft}/adapter_config.json"), pickled.join("adapter_config.json")).unwrap();
    std::fs::write(pickled.join("adapter_model.bin"), b"\x80\x02}q\x00.").unwrap();
    let o = glassbox(&["lora", "convert", pickled.to_str().unwrap(), "--base", &model, "-o", dir.join("p.gguf").to_str().unwrap()], &store);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("adapter_model.bin is a pickle") && e.contains("glassbox scan"), "{e}");
    assert!(!dir.join("p.gguf").exists());
    // The wrong base: an adapter of a 6-layer model for a 2-layer one.
    let o = glassbox(&["lora", "convert", &fx("lora/peft/tiny-gemma3"), "--base", &model, "-o", dir.join("q.gguf").to_str().unwrap()], &store);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("does not fit base model") && e.contains("blk.2.attn_k.weight: the base has no such tensor"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
