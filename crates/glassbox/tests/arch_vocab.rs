//! Each new architecture with the real tokenizer of a family that uses it: the tiny random
//! models of `archs.rs` (whose numerics are checked against llama.cpp there) rebuilt here, at test
//! time, with the tokenizer metadata of llama.cpp's own vocabulary file for that family
//! (`ggml-vocab-*.gguf`, pinned in models/test-models.toml `[vocab]`) and embedding and output
//! matrices of that vocabulary's size. `glassbox tokenize` on the model must give llama.cpp's
//! test-vector ids, and the model must run end to end (prompt → tokens → text). With
//! `GLASSBOX_KEEP_VOCAB_MODELS=DIR` the models are kept there, and `scripts/gen_fixtures.py
//! arch-vocab` compares glassbox with llama.cpp on them (KL divergence; not in CI).

use std::path::PathBuf;
use std::process::{Command, Output};


fn run(args: &[&str]) -> Output {
    let store = std::env::temp_dir().join(format!("glassbox-arch-vocab-trust-{}.toml", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).env("GLASSBOX_TRUST_STORE", store).output().expect("run glassbox")
}

#[path = "../../glassbox-testdata/shared/vocab_model.rs"]
mod vocab_model;

/// `tiny-{arch}-f32.gguf` with `ggml-vocab-{vocab}.gguf`'s tokenizer and matrices to fit it.
fn with_vocab(arch: &str, vocab: &str) -> (PathBuf, Vec<(String, Vec<u32>)>) {
    let dst = std::env::temp_dir().join(format!("glassbox-arch-vocab-{}-{arch}-{vocab}.gguf", std::process::id()));
    vocab_model::with_vocab(&format!("tiny/tiny-{arch}-f32.gguf"), vocab, None, &dst);
    // llama.cpp's test vectors for this vocabulary (texts without special-token syntax).
    let raw = std::fs::read_to_string(glassbox_testdata::llama_vocab(&format!("ggml-vocab-{vocab}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(glassbox_testdata::llama_vocab(&format!("ggml-vocab-{vocab}.gguf.out"))).unwrap();
    let cases = raw
        .split("\n__ggml_vocab_test__\n")
        .zip(out.lines())
        .filter(|(t, _)| !t.is_empty() && !t.contains('<'))
        .map(|(t, ids)| (t.to_owned(), ids.split_whitespace().map(|x| x.parse().unwrap()).collect()))
        .take(12)
        .collect();
    (dst, cases)
}

fn check(arch: &str, vocab: &str) {
    let (model, cases) = with_vocab(arch, vocab);
    let m = model.display().to_string();
    assert!(cases.len() >= 8, "{vocab}: {} cases", cases.len());
    for (text, want) in &cases {
        let o = run(&["tokenize", &m, "--text", text, "--no-special", "--json"]);
        assert!(o.status.success(), "{arch}/{vocab} tokenize: {}", String::from_utf8_lossy(&o.stderr));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let got: Vec<u32> = j["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(&got, want, "{arch} with the {vocab} tokenizer: {text:?}");
    }
    let o = run(&["run", &m, "--raw", "-p", "Hello world, this is", "-n", "8", "--json", "-t", "2"]);
    assert!(o.status.success(), "{arch}/{vocab} run: {}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["prompt_tokens"].as_u64().unwrap() >= 3 && j["completion_tokens"].as_u64().unwrap() >= 1, "{arch}/{vocab}: {j}");
    // Kept for the side-by-side check against llama.cpp (`scripts/gen_fixtures.py arch-vocab`).
    match std::env::var_os("GLASSBOX_KEEP_VOCAB_MODELS") {
        Some(dir) => std::fs::rename(&model, PathBuf::from(dir).join(format!("{arch}-{vocab}.gguf"))).unwrap(),
        None => std::fs::remove_file(model).unwrap(),
    }
}

#[test]
fn falcon_and_starcoder2() {
    check("falcon", "falcon");
    check("falcon40", "falcon");
    check("starcoder2", "starcoder");
}

/// GPT-NeoX-20B's vocabulary is MPT's (llama.cpp's `mpt` pre-tokenizer).
#[test]
fn gptneox_and_granite() {
    check("gptneox", "mpt");
    check("granite", "refact");
}

/// SentencePiece families: Phi-3's, and Llama 2's (InternLM2, Mixtral).
#[test]
fn phi3_internlm2_mixtral() {
    check("phi3", "phi-3");
    check("internlm2", "llama-spm");
    check("mixtral", "llama-spm");
}

#[test]
fn deepseek2() {
    check("deepseek2", "deepseek-llm");
    check("deepseek2lite", "deepseek-coder");
}
