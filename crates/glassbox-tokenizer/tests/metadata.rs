//! Tokenizer metadata faults are refused with errors naming them (never guessed around).

use glassbox_gguf::{Array, Gguf, GgufFile, GgufWriter, Limits, Value};
use glassbox_tokenizer::Tokenizer;

/// The tiny model's metadata with `edit` applied, as a parsed GGUF.
fn with_metadata(edit: impl Fn(&mut Vec<(String, Value)>)) -> Result<Tokenizer, String> {
    let f = GgufFile::open(&glassbox_testdata::fixture("tiny/tiny-qwen2.gguf")).unwrap();
    let mut w = GgufWriter::from_gguf(f.gguf(), f.bytes());
    edit(&mut w.metadata);
    let mut bytes = Vec::new();
    w.write(&mut bytes).unwrap();
    let g = Gguf::parse(&bytes, &Limits::default()).unwrap();
    Tokenizer::from_gguf(&g).map_err(|e| e.to_string())
}

fn set(md: &mut [(String, Value)], key: &str, v: Value) {
    md.iter_mut().find(|(k, _)| k == key).unwrap().1 = v;
}

#[test]
fn tiny_vocab_loads() {
    let t = with_metadata(|_| {}).unwrap();
    assert_eq!(t.n_vocab(), 267);
}

#[test]
fn unknown_pre_tokenizer_is_refused_by_name() {
    let e = with_metadata(|md| set(md, "tokenizer.ggml.pre", Value::String("mystery-pre".into()))).err().unwrap();
    assert!(e.contains("mystery-pre") && e.contains("refusing to guess"), "{e}");
}

#[test]
fn unknown_tokenizer_model_is_refused_by_name() {
    let e = with_metadata(|md| set(md, "tokenizer.ggml.model", Value::String("wordpiece9".into()))).err().unwrap();
    assert!(e.contains("wordpiece9"), "{e}");
}

#[test]
fn inconsistent_metadata_names_the_key() {
    let e = with_metadata(|md| set(md, "tokenizer.ggml.token_type", Value::Array(Array::I32(vec![1; 3])))).err().unwrap();
    assert!(e.contains("tokenizer.ggml.token_type"), "{e}");
    let e = with_metadata(|md| set(md, "tokenizer.ggml.bos_token_id", Value::U32(100_000))).err().unwrap();
    assert!(e.contains("tokenizer.ggml.bos_token_id") && e.contains("out of range"), "{e}");
    let e = with_metadata(|md| set(md, "tokenizer.ggml.merges", Value::Array(Array::String(vec!["nospace".into()])))).err().unwrap();
    assert!(e.contains("tokenizer.ggml.merges") && e.contains("nospace"), "{e}");
}
