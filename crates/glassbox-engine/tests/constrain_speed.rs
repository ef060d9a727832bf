//! What a grammar costs per step on a real vocabulary (opt-in measurement, not a timed test):
//! `cargo test --release -p glassbox-engine --test constrain_speed -- --ignored --nocapture`.
//! Qwen2.5-Coder's vocabulary (151,936 tokens, the same in the 0.5B and 1.5B models).

use std::sync::Arc;
use std::time::Instant;

use glassbox_constrain::{compile_schema, Limits, Matcher};
use serde_json::json;

#[test]
#[ignore = "a measurement: run it by hand"]
fn mask_cost_on_qwen_vocabulary() {
    let f = glassbox_gguf::GgufFile::open(&glassbox_testdata::model("qwen2.5-coder-0.5b-instruct-q5_0.gguf")).unwrap();
    let tok = glassbox_tokenizer::Tokenizer::from_gguf(f.gguf()).unwrap();
    let t = Instant::now();
    let vocab = Arc::new(glassbox_engine::vocab_index(&tok));
    eprintln!("vocabulary index: {} tokens, {} trie nodes, built in {:.1} ms", vocab.n_vocab(), vocab.n_nodes(), t.elapsed().as_secs_f64() * 1e3);
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150}, "email": {"type": "string", "maxLength": 40},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5}, "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}, "required": ["city"]}}, "required": ["name", "age", "tags"]});
    let g = Arc::new(compile_schema(&schema, &Limits::default()).unwrap());
    let text = r#"{"name": "Ada Lovelace", "age": 36, "email": "ada@example.org", "tags": ["math", "poetry"], "address": {"city": "London", "zip": "W1"}}"#;
    let ids = tok.encode(text);
    // Cold: each step's mask in a fresh automaton advanced to that point (nothing cached).
    let mut cold = Vec::new();
    let mut allowed = Vec::new();
    for i in 0..ids.len() {
        let mut m = Matcher::new(g.clone(), vocab.clone()).unwrap();
        for &id in &ids[..i] {
            m.advance(id).unwrap();
        }
        let t = Instant::now();
        let mask = m.mask().unwrap();
        cold.push(t.elapsed().as_secs_f64());
        allowed.push(mask.iter().map(|w| w.count_ones()).sum::<u32>());
        assert!(m.allows(ids[i]), "token {} {:?} not allowed", ids[i], tok.token_bytes(ids[i], false));
    }
    let n = ids.len() as f64;
    eprintln!("{} tokens, cold masks: {:.2} ms on average, {:.2} ms at worst; tokens allowed per step {}..{}", ids.len(), cold.iter().sum::<f64>() / n * 1e3,
        cold.iter().cloned().fold(0.0, f64::max) * 1e3, allowed.iter().min().unwrap(), allowed.iter().max().unwrap());
    // One sequence as decoding runs it: a mask every step (the worst case: every sampled token
    // rejected), the automaton and mask cache kept; and checks only (every token accepted).
    let mut m = Matcher::new(g.clone(), vocab.clone()).unwrap();
    let t = Instant::now();
    for &id in &ids {
        m.mask().unwrap();
        m.advance(id).unwrap();
    }
    assert!(m.is_done());
    eprintln!("a mask every step: {:.2} ms per step ({:?}, {} states)", t.elapsed().as_secs_f64() / n * 1e3, m.stats, m.n_states());
    let mut m = Matcher::new(g.clone(), vocab.clone()).unwrap();
    let t = Instant::now();
    for &id in &ids {
        assert!(m.allows(id));
        m.advance(id).unwrap();
    }
    eprintln!("checks only: {:.1} µs per step", t.elapsed().as_secs_f64() / n * 1e6);
}
