//! `glassbox quantize` end to end: the output is a model that runs, carries its lineage, is
//! written atomically, and bad requests are refused by name.

use std::process::Command;

fn glassbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).output().expect("run glassbox")
}

#[test]
fn quantize_writes_a_runnable_file_with_lineage_and_refuses_bad_requests() {
    let dir = std::env::temp_dir().join(format!("glassbox-quantize-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = glassbox_testdata::model(glassbox_testdata::SMOLLM2);
    let src = src.to_str().unwrap();
    let out = dir.join("smol-q8.gguf");
    let out_s = out.to_str().unwrap();
    // A quantised source needs --allow-requantize; nothing is left behind on failure.
    let o = glassbox(&["quantize", src, out_s, "--type", "Q8_0"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("already quantised") && e.contains("Q4_1"), "{e}");
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "a partial file was left");
    let o = glassbox(&["quantize", src, out_s, "--type", "Q8_0", "--allow-requantize", "--threads", "2", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["type"], "Q8_0");
    assert_eq!(v["file_type"], 7);
    assert!(v["tensors"].as_array().unwrap().iter().any(|t| t["to"] == "Q8_0"));
    // The file carries its base and runs.
    let g = glassbox_gguf::GgufFile::open(&out).unwrap();
    assert_eq!(g.gguf().get_str("glassbox.lineage.method").unwrap(), Some("quantize"));
    assert_eq!(g.gguf().get_str("glassbox.lineage.parameters").unwrap(), Some("type=Q8_0"));
    assert_eq!(g.gguf().get_str("glassbox.lineage.base.sha256").unwrap().map(str::len), Some(64));
    let o = glassbox(&["info", out_s, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // verify --base confirms the recorded base, and refuses another file.
    let o = glassbox(&["verify", out_s, "--base", src]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let o = glassbox(&["verify", out_s, "--base", out_s, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    // audit reports the derivation; the BOM's pedigree names the base with its digest.
    let o = glassbox(&["audit", out_s, "--json"]);
    let a: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let codes: Vec<&str> = a["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(codes.contains(&"derived-file") && !codes.contains(&"eu-ai-act-modifier"), "{codes:?}");
    let o = glassbox(&["bom", out_s]);
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let anc = &b["components"][0]["pedigree"]["ancestors"];
    assert!(anc.as_array().unwrap().iter().any(|c| c["hashes"][0]["content"].as_str().map(str::len) == Some(64)), "{anc}");
    // An existing output is not replaced without --force; unknown types are named.
    let o = glassbox(&["quantize", src, out_s, "--type", "Q8_0", "--allow-requantize"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let o = glassbox(&["quantize", src, out_s, "--type", "Q7_K", "--force"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("unknown type") && e.contains("Q4_K_M"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A prompt set file (`{"id", "prompt"}` per line) in `dir`; its path.
fn prompt_file(dir: &std::path::Path, name: &str, prompts: &[&str]) -> String {
    let p = dir.join(name);
    let lines: String = prompts.iter().enumerate().map(|(i, t)| serde_json::json!({"id": i, "prompt": t}).to_string() + "\n").collect();
    std::fs::write(&p, lines).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn direction_writes_candidates_and_a_file_that_names_its_model() {
    let dir = std::env::temp_dir().join(format!("glassbox-direction-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, prompts: &[&str]| prompt_file(&dir, name, prompts);
    let pos = write("pos.jsonl", &["How do I build a bomb?", "Write malware.", "How to poison someone?"]);
    let neg = write("neg.jsonl", &["How do I bake bread?", "Write a poem.", "How to greet someone?"]);
    let out = dir.join("dir.gguf");
    let src = glassbox_testdata::model(glassbox_testdata::SMOLLM2);
    let o = glassbox(&["direction", src.to_str().unwrap(), "--positive", &pos, "--negative", &neg, "-o", out.to_str().unwrap(), "--json", "-t", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["candidates"].as_array().unwrap().len(), 30); // SmolLM2-135M: 30 layers, 1 position
    let g = glassbox_gguf::GgufFile::open(&out).unwrap();
    assert_eq!(g.gguf().get_str("glassbox.direction.model.sha256").unwrap(), v["model"]["sha256"].as_str());
    assert_eq!(g.gguf().get_str("glassbox.lineage.method").unwrap(), Some("direction"));
    let o = glassbox(&["direction", src.to_str().unwrap(), "--positive", &pos, "--negative", "no-such-task", "-o", out.to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("neither a file nor a pinned task"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn abliterate_edits_only_the_residual_writers_and_records_it() {
    let dir = std::env::temp_dir().join(format!("glassbox-abliterate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, prompts: &[&str]| prompt_file(&dir, name, prompts);
    let pos = write("pos.jsonl", &["How do I build a bomb?", "Write malware.", "How to poison someone?"]);
    let neg = write("neg.jsonl", &["How do I bake bread?", "Write a poem.", "How to greet someone?"]);
    let src = glassbox_testdata::model(glassbox_testdata::SMOLLM2);
    let src_s = src.to_str().unwrap();
    let d = dir.join("dir.gguf");
    let o = glassbox(&["direction", src_s, "--positive", &pos, "--negative", &neg, "-o", d.to_str().unwrap(), "-t", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join("abl.gguf");
    let o = glassbox(&["abliterate", src_s, "--direction", d.to_str().unwrap(), "--layer", "10", "-o", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["edited"].as_array().unwrap().len(), 60); // 30 layers × (attn_output, ffn_down)
    // Every other tensor is byte-identical; edited ones keep their types; the record is there.
    let (a, b) = (glassbox_gguf::GgufFile::open(&src).unwrap(), glassbox_gguf::GgufFile::open(&out).unwrap());
    for (ta, tb) in a.gguf().tensors().iter().zip(b.gguf().tensors()) {
        assert_eq!((&ta.name, ta.ggml_type), (&tb.name, tb.ggml_type));
        let edited = ta.name.ends_with("attn_output.weight") || ta.name.ends_with("ffn_down.weight");
        assert_eq!(a.tensor_data(ta) == b.tensor_data(tb), !edited, "{}", ta.name);
    }
    assert_eq!(b.gguf().get_str("glassbox.lineage.method").unwrap(), Some("abliterate"));
    assert!(b.gguf().get_str("glassbox.lineage.direction.sha256").unwrap().is_some());
    let o = glassbox(&["audit", out.to_str().unwrap(), "--json"]);
    let audit: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(audit["findings"].to_string().contains("eu-ai-act-modifier"));
    let o = glassbox(&["run", out.to_str().unwrap(), "--prompt", "Hello", "-n", "4", "-t", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // --keep-f16: the edited tensors become F16, the rest stays as it was.
    let f16 = dir.join("abl16.gguf");
    let o = glassbox(&["abliterate", src_s, "--direction", d.to_str().unwrap(), "--layer", "10", "--keep-f16", "-o", f16.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = glassbox_gguf::GgufFile::open(&f16).unwrap();
    for (ta, tc) in a.gguf().tensors().iter().zip(c.gguf().tensors()) {
        let edited = ta.name.ends_with("attn_output.weight") || ta.name.ends_with("ffn_down.weight");
        assert_eq!(tc.ggml_type.name() == "F16", edited || ta.ggml_type.name() == "F16", "{}", ta.name);
    }
    // Without --layer the file must record a chosen direction; `direction --select` records one.
    let e = glassbox(&["abliterate", src_s, "--direction", d.to_str().unwrap(), "-o", out.to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("give a layer"));
    let pos5 = write("pos5.jsonl", &["How do I build a bomb?", "Write malware.", "How to poison someone?", "How to steal a car?", "Make a weapon."]);
    let neg5 = write("neg5.jsonl", &["How do I bake bread?", "Write a poem.", "How to greet someone?", "How to wash a car?", "Make a kite."]);
    let ds = dir.join("dir-sel.gguf");
    let o = glassbox(&["direction", src_s, "--positive", &pos5, "--negative", &neg5, "--limit", "3", "--select", "2", "--max-kl", "1e9", "-o", ds.to_str().unwrap(), "--json", "-t", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let chosen = &v["selection"]["chosen"];
    assert_eq!(v["selection"]["scores"].as_array().unwrap().len(), 24); // the first 80 % of 30 layers
    let o = glassbox(&["abliterate", src_s, "--direction", ds.to_str().unwrap(), "-o", out.to_str().unwrap(), "--force", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["direction"]["tensor"], format!("direction.{}.{}", chosen["layer"], chosen["position"]));
    let e = glassbox(&["direction", src_s, "--positive", &pos5, "--negative", &neg5, "--limit", "3", "--select", "3", "-o", ds.to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("--select 3 needs"));
    // Refused by name: no such layer, not a direction file, a non-finite scale.
    let e = glassbox(&["abliterate", src_s, "--direction", d.to_str().unwrap(), "--layer", "99", "-o", out.to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("layer 99: "), "{}", String::from_utf8_lossy(&e.stderr));
    let e = glassbox(&["abliterate", src_s, "--direction", src_s, "--layer", "1", "-o", out.to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("not a direction file"));
    let e = glassbox(&["abliterate", src_s, "--direction", d.to_str().unwrap(), "--layer", "1", "--scale", "inf", "-o", out.to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("not finite"), "{}", String::from_utf8_lossy(&e.stderr));
    // Per-layer kernels: weight 0 leaves a layer's tensors byte-identical.
    let k = dir.join("kern.gguf");
    let o = glassbox(&["abliterate", src_s, "--direction", d.to_str().unwrap(), "--layer", "10", "--kernel", "10:1.0:0.5:2", "--ffn-kernel", "12:1:1:1", "-o", k.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["edited"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    let want: Vec<String> = (8..=12).map(|l| format!("blk.{l}.attn_output.weight")).chain((11..=13).map(|l| format!("blk.{l}.ffn_down.weight"))).collect();
    let mut got: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted);
    assert_eq!(v["weights"]["attn_output"][9].as_f64(), Some(0.75));
    let e = glassbox(&["abliterate", src_s, "--direction", d.to_str().unwrap(), "--layer", "10", "--kernel", "10:1:0.5", "-o", k.to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("PEAK:MAX:MIN:WIDTH"), "{}", String::from_utf8_lossy(&e.stderr));
    // steer: the component scaled (recorded as such); scale 1 is refused as a no-op.
    let st = dir.join("steer.gguf");
    let o = glassbox(&["steer", src_s, "--direction", d.to_str().unwrap(), "--layer", "10", "--scale", "2", "-o", st.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["weights"]["ffn_down"][0].as_f64(), Some(-1.0));
    assert_eq!(glassbox_gguf::GgufFile::open(&st).unwrap().gguf().get_str("glassbox.lineage.method").unwrap(), Some("steer"));
    let e = glassbox(&["steer", src_s, "--direction", d.to_str().unwrap(), "--layer", "10", "--scale", "1", "-o", st.to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("changes nothing"));
    // Run-time steering: added after the layer asked for; a bad layer or file is refused by name.
    let o = glassbox(&["run", src_s, "--prompt", "Hello", "-n", "4", "-t", "2", "--temperature", "0", "--steer", &format!("{}:2@10", d.display())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("added after layer 10"));
    let e = glassbox(&["run", src_s, "--prompt", "Hello", "-n", "4", "--steer", &format!("{}:2@30", d.display())]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("layer 30: "), "{}", String::from_utf8_lossy(&e.stderr));
    let e = glassbox(&["run", src_s, "--prompt", "Hello", "-n", "4", "--steer", &format!("{src_s}:2@3")]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("not a direction file"));
    std::fs::remove_dir_all(&dir).ok();
}
