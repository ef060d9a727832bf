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

use glassbox_gguf::{GgmlType, Gguf, GgufFile, GgufWriter, Value, WriterTensor};

fn run(args: &[&str]) -> Output {
    let store = std::env::temp_dir().join(format!("glassbox-arch-vocab-trust-{}.toml", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).env("GLASSBOX_TRUST_STORE", store).output().expect("run glassbox")
}

/// `tiny-{arch}-f32.gguf` with `ggml-vocab-{vocab}.gguf`'s tokenizer and matrices to fit it.
fn with_vocab(arch: &str, vocab: &str) -> (PathBuf, Vec<(String, Vec<u32>)>) {
    let src = std::fs::read(glassbox_testdata::fixture(&format!("tiny/tiny-{arch}-f32.gguf"))).unwrap();
    let g = Gguf::parse(&src, &Default::default()).unwrap();
    let voc_file = GgufFile::open(&glassbox_testdata::llama_vocab(&format!("ggml-vocab-{vocab}.gguf"))).unwrap();
    let voc = voc_file.gguf();
    let n_vocab = match voc.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) => a.len(),
        _ => panic!("{vocab}: no token list"),
    };
    let arch_name = g.get_str("general.architecture").unwrap().unwrap().to_owned();
    let mut w = GgufWriter::from_gguf(&g, &src);
    w.metadata.retain(|(k, _)| !k.starts_with("tokenizer.") && *k != format!("{arch_name}.vocab_size"));
    w.metadata.extend(voc.metadata().iter().filter(|(k, _)| k.starts_with("tokenizer.")).map(|(k, v)| (k.clone(), v.clone())));
    if g.get_u64(&format!("{arch_name}.vocab_size")).unwrap().is_some() {
        w.metadata.push((format!("{arch_name}.vocab_size"), Value::U32(n_vocab as u32)));
    }
    // Embedding and output rows for every token: a fixed pseudo-random pattern.
    let n_embd = g.get_u64(&format!("{arch_name}.embedding_length")).unwrap().unwrap() as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<u8> = (0..n_vocab * n_embd)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.6).to_le_bytes()
        })
        .collect();
    for t in w.tensors.iter_mut().filter(|t| t.name == "token_embd.weight" || t.name == "output.weight") {
        *t = WriterTensor { name: t.name.clone(), dims: vec![n_embd as u64, n_vocab as u64], ggml_type: GgmlType::F32, data: &values };
    }
    let dst = std::env::temp_dir().join(format!("glassbox-arch-vocab-{}-{arch}-{vocab}.gguf", std::process::id()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&dst).unwrap());
    w.write(&mut f).unwrap();
    std::io::Write::flush(&mut f).unwrap();
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
