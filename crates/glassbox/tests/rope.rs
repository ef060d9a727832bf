//! The RoPE math llama.cpp applies, checked by KL divergence against llama.cpp's own base files
//! over tiny all-F32 models (scripts/gen_fixtures.py kld): Llama 3.1-style `rope_freqs`
//! factors; Gemma 3 4B-style linear scaling on global layers only, sliding-window layers with
//! their own base and window, partial rotary dimensions, final logit soft-capping; Qwen2 with
//! YaRN. Each check has a negative control (the same file with the feature removed is far off),
//! and files asking for what is not implemented are refused with the key or tensor named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use glassbox_gguf::{Gguf, GgufWriter, Value};

fn store() -> PathBuf {
    std::env::temp_dir().join(format!("glassbox-rope-trust-{}.toml", std::process::id()))
}

fn glassbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).env("GLASSBOX_TRUST_STORE", store()).output().expect("run glassbox")
}

fn tiny(v: &str) -> PathBuf {
    glassbox_testdata::fixture(&format!("tiny/tiny-{v}.gguf"))
}

/// Mean KLD of `model` against llama.cpp's base file for variant `v`.
fn kld(model: &Path, v: &str) -> f64 {
    let base = glassbox_testdata::fixture(&format!("kld/tiny-{v}.kld"));
    let o = glassbox(&["perplexity", &model.display().to_string(), "--kl-divergence-base", &base.display().to_string(), "--kl-divergence", "--json", "-t", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    j["kld_mean"].as_f64().unwrap()
}

/// An F32 tensor of zeros to add to a file: (name, length).
type Extra = (&'static str, usize);

/// A copy of `src` with metadata edited, the named tensors dropped and `extra` tensors added, in
/// a per-test temporary file.
fn edited(src: &Path, name: &str, edit: impl FnOnce(&mut Vec<(String, Value)>), drop: &[&str], extra: &[Extra]) -> PathBuf {
    let bytes = std::fs::read(src).unwrap();
    let g = Gguf::parse(&bytes, &Default::default()).unwrap();
    let mut w = GgufWriter::from_gguf(&g, &bytes);
    edit(&mut w.metadata);
    w.tensors.retain(|t| !drop.contains(&t.name.as_str()));
    let zeros = vec![0u8; extra.iter().map(|e| e.1 * 4).max().unwrap_or(0)];
    for &(tname, n) in extra {
        w.tensors.push(glassbox_gguf::WriterTensor { name: tname.into(), dims: vec![n as u64], ggml_type: glassbox_gguf::GgmlType::F32, data: &zeros[..n * 4] });
    }
    let dst = std::env::temp_dir().join(format!("glassbox-rope-{}-{name}.gguf", std::process::id()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&dst).unwrap());
    w.write(&mut f).unwrap();
    std::io::Write::flush(&mut f).unwrap();
    dst
}

fn set(md: &mut Vec<(String, Value)>, key: &str, v: Value) {
    match md.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = v,
        None => md.push((key.into(), v)),
    }
}

#[test]
fn llama31_rope_freqs_match_llama_cpp() {
    let k = kld(&tiny("llama31"), "llama31");
    assert!(k.abs() < 1e-4, "KLD {k}");
    // Negative control: the same weights without the factors.
    let without = edited(&tiny("llama31"), "nofreqs", |_| {}, &["rope_freqs.weight"], &[]);
    let k0 = kld(&without, "llama31");
    assert!(k0 > 1e-3, "dropping rope_freqs changed little: {k0}");
    let _ = std::fs::remove_file(without);
}

#[test]
fn gemma3_global_scaling_swa_partial_rotary_softcap_match_llama_cpp() {
    let k = kld(&tiny("gemma3"), "gemma3");
    assert!(k.abs() < 1e-4, "KLD {k}");
    for (name, key, v) in [
        ("noscale", "gemma3.rope.scaling.factor", Value::F32(1.0)),
        ("swabase", "gemma3.rope.freq_base_swa", Value::F32(1_000_000.0)),
        ("nocap", "gemma3.final_logit_softcapping", Value::F32(0.0)),
        ("nowindow", "gemma3.attention.sliding_window", Value::U32(0)),
    ] {
        let m = edited(&tiny("gemma3"), name, |md| set(md, key, v), &[], &[]);
        let k0 = kld(&m, "gemma3");
        assert!(k0 > 1e-4, "changing {key} changed little: {k0}");
        let _ = std::fs::remove_file(m);
    }
}

#[test]
fn qwen2_yarn_matches_llama_cpp() {
    let k = kld(&tiny("qwen2yarn"), "qwen2yarn");
    assert!(k.abs() < 1e-4, "KLD {k}");
    let linear = edited(&tiny("qwen2yarn"), "linear", |md| set(md, "qwen2.rope.scaling.type", Value::String("linear".into())), &[], &[]);
    let k0 = kld(&linear, "qwen2yarn");
    assert!(k0 > 1e-4, "YaRN vs linear changed little: {k0}");
    let _ = std::fs::remove_file(linear);
}

fn refused(path: &Path) -> String {
    let o = glassbox(&["run", &path.display().to_string(), "--raw", "--prompt", "hi", "-n", "1"]);
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[test]
fn unimplemented_keys_and_tensors_are_refused_by_name() {
    let q = glassbox_testdata::fixture("tiny/tiny-qwen2-f32.gguf");
    type Edit = Box<dyn FnOnce(&mut Vec<(String, Value)>)>;
    let key = |k: &'static str, v: Value| -> Edit { Box::new(move |md| set(md, k, v)) };
    let none = || -> Edit { Box::new(|_| {}) };
    let cases: Vec<(&str, Edit, &[Extra], &str)> = vec![
        ("longrope", key("qwen2.rope.scaling.type", Value::String("longrope".into())), &[], "qwen2.rope.scaling.type = \"longrope\""),
        ("unknowntype", key("qwen2.rope.scaling.type", Value::String("ntk".into())), &[], "unknown RoPE scaling type \"ntk\""),
        ("noncausal", key("qwen2.attention.causal", Value::Bool(false)), &[], "\"qwen2.attention.causal\""),
        ("experts", key("qwen2.expert_count", Value::U32(8)), &[], "\"qwen2.expert_count\""),
        ("beta", key("qwen2.rope.scaling.yarn_beta_fast", Value::F32(16.0)), &[], "\"qwen2.rope.scaling.yarn_beta_fast\""),
        ("attnscale", key("qwen2.attention.scale", Value::F32(0.5)), &[], "\"qwen2.attention.scale\""),
        ("softcap", key("qwen2.final_logit_softcapping", Value::F32(30.0)), &[], "\"qwen2.final_logit_softcapping\""),
        ("partial", key("qwen2.rope.dimension_count", Value::U32(8)), &[], "differs from the head size 16"),
        ("bias", none(), &[("blk.0.attn_output.bias", 64)], "tensor \"blk.0.attn_output.bias\""),
        // rope_freqs outside llama is refused as unused, as llama.cpp refuses it.
        ("freqs", none(), &[("rope_freqs.weight", 8)], "tensor \"rope_freqs.weight\""),
    ];
    for (name, edit, extra, expect) in cases {
        let m = edited(&q, name, edit, &[], extra);
        let e = refused(&m);
        assert!(e.contains(expect), "{name}: {e}");
        let _ = std::fs::remove_file(m);
    }
}
