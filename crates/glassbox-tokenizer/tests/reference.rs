//! Token ids must equal llama.cpp's on the committed corpus (tests/fixtures/tokenize, made by
//! scripts/gen_fixtures.py with llama-cpp-python).

use glassbox_gguf::GgufFile;
use glassbox_tokenizer::Tokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}
#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

fn check(model: &str, fixture: &str) {
    let f = GgufFile::open(&glassbox_testdata::model(model)).unwrap();
    let tok = Tokenizer::from_gguf(f.gguf()).unwrap();
    let fx: Fixture =
        serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture(fixture)).unwrap()).unwrap();
    assert!(fx.cases.len() >= 200, "corpus too small: {}", fx.cases.len());
    let mut failures = Vec::new();
    for c in &fx.cases {
        let got = tok.encode(&c.text);
        if got != c.ids {
            failures.push(format!("{:?}\n  want {:?}\n  got  {:?}", c.text, c.ids, got));
        }
    }
    assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), fx.cases.len(), failures.join("\n"));
}

#[test]
fn smollm2_matches_llama_cpp() {
    check(glassbox_testdata::SMOLLM2, "tokenize/smollm2.json");
}

#[test]
fn gemma3_matches_llama_cpp() {
    check(glassbox_testdata::GEMMA3, "tokenize/gemma3.json");
}

#[test]
fn decode_roundtrips_plain_text() {
    for model in [glassbox_testdata::SMOLLM2, glassbox_testdata::GEMMA3] {
        let f = GgufFile::open(&glassbox_testdata::model(model)).unwrap();
        let tok = Tokenizer::from_gguf(f.gguf()).unwrap();
        for s in ["Hello world", "日本語 🚀 text", "  spaces\n\tand tabs", "x = 1_000;"] {
            let ids = tok.encode_with(s, false, false, false);
            assert_eq!(tok.decode(&ids, false).unwrap(), s, "{model}");
        }
    }
}
