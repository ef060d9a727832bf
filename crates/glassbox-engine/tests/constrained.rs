//! Output held to a grammar on the real SmolLM2 file: greedy decoding under a schema is the
//! masked argmax (checked token by token against the unconstrained logits), a trigger leaves
//! text free until it appears, and a grammar no token can continue ends with an error naming
//! the dead end, never a hang.

use std::sync::Arc;

use glassbox_constrain::{compile_schema, json_object, Limits, Matcher, VocabIndex};
use glassbox_engine::{Constraint, Engine, EngineOptions, FinishReason, GenerateRequest, SamplingParams};
use serde_json::json;

fn engine() -> Engine {
    let opts = EngineOptions { threads: 2, ctx_size: 512, batch_size: 512, ..Default::default() };
    Engine::load(&glassbox_testdata::model(glassbox_testdata::SMOLLM2), &opts).unwrap()
}

fn greedy() -> SamplingParams {
    SamplingParams { temperature: 0.0, ..SamplingParams::default() }
}

#[test]
fn greedy_under_a_schema_is_the_masked_argmax() {
    let mut e = engine();
    let schema = json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 130}}, "required": ["name", "age"], "additionalProperties": false});
    let grammar = Arc::new(compile_schema(&schema, &Limits::default()).unwrap());
    let vocab = Arc::new(glassbox_engine::vocab_index(&e.tokenizer));
    let prompt = e.tokenize_chat(&e.render_chat(&[glassbox_engine::Message::new("user", "Describe a person as JSON.")]).unwrap());
    let c = Constraint { grammar: grammar.clone(), vocab: vocab.clone(), trigger: None };
    let g = e.generate(&GenerateRequest { constraint: Some(c), prompt: prompt.clone(), max_tokens: 80, sampling: greedy(), stop: vec![] }, |_| {}).unwrap();
    assert_eq!(g.finish_reason, FinishReason::Stop, "{}", g.text);
    let v: serde_json::Value = serde_json::from_str(&g.text).unwrap_or_else(|err| panic!("{err}: {}", g.text));
    assert!(v["name"].as_str().is_some_and(|n| n.chars().count() <= 12) && (0..=130).contains(&v["age"].as_i64().unwrap()), "{v}");
    assert!(g.constraint_s.is_some());
    // Each chosen token is the most likely one the grammar allows at that point (up to a
    // near-tie: the reference logits come from a fresh prefill, not the decode path).
    let mut m = Matcher::new(grammar, vocab).unwrap();
    let mut ctx = prompt;
    for &t in &g.ids {
        let mut lp = e.next_token_logprobs(&ctx).unwrap();
        m.apply_mask(&mut lp).unwrap();
        let best = lp.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(best - lp[t as usize] < 0.05, "token {t}: {} below the best allowed {best}", lp[t as usize]);
        m.advance(t).unwrap();
        ctx.push(t);
    }
    assert!(m.is_done());
}

#[test]
fn a_trigger_leaves_text_free_until_it_appears() {
    let mut e = engine();
    // After " the", exactly three digits; then free again.
    let schema = json!({"type": "integer", "minimum": 100, "maximum": 999});
    let mut sg = glassbox_constrain::SchemaGrammar::new(&Limits::default());
    let mut seq = glassbox_constrain::lit(b" ");
    seq.extend(sg.schema(&schema).unwrap());
    let c = Constraint { grammar: Arc::new(sg.finish(seq).unwrap()), vocab: Arc::new(glassbox_engine::vocab_index(&e.tokenizer)), trigger: Some(" the".into()) };
    let prompt = e.tokenizer.encode("Once upon a time, in the middle of the forest,");
    let g = e.generate(&GenerateRequest { constraint: Some(c), prompt, max_tokens: 40, sampling: greedy(), stop: vec![] }, |_| {}).unwrap();
    // Every " the " (the word, not " there") is followed by exactly three digits.
    let hits: Vec<usize> = g.text.match_indices(" the ").map(|(i, _)| i + 5).collect();
    assert!(!hits.is_empty(), "no trigger in {:?}", g.text);
    for at in hits {
        let d = &g.text.as_bytes()[at..];
        assert!(d.len() > 3 && d[..3].iter().all(u8::is_ascii_digit) && !d[3].is_ascii_digit(), "{:?}", g.text);
    }
}

#[test]
fn a_dead_end_is_an_error_not_a_hang() {
    let mut e = engine();
    // A vocabulary without any token holding '{': no JSON object can start.
    let tokens: Vec<Option<Vec<u8>>> = (0..e.tokenizer.n_vocab() as u32).map(|i| e.tokenizer.token_bytes(i, false).ok().filter(|b| !b.is_empty() && !b.contains(&b'{'))).collect();
    let vocab = Arc::new(VocabIndex::new(&tokens, e.tokenizer.eog_tokens()));
    let c = Constraint { grammar: Arc::new(json_object()), vocab, trigger: None };
    let prompt = e.tokenizer.encode("Hello");
    let err = e.generate(&GenerateRequest { constraint: Some(c), prompt, max_tokens: 10, sampling: greedy(), stop: vec![] }, |_| {}).unwrap_err();
    assert!(err.to_string().contains("dead end"), "{err}");
}
