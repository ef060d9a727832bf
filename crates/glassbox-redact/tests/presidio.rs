//! Our recognisers against Microsoft Presidio's own output (presidio-analyzer 2.2.366, its
//! predefined pattern recognisers with no NLP model) over the sentences in
//! `tests/fixtures/redact/presidio.json` — made by `scripts/gen_fixtures.py pii`.

use glassbox_redact::analyze;
use serde_json::Value;

fn fixture() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/redact/presidio.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("fixture json")
}

/// Byte offset → character index (Presidio's offsets are Python `str` indices).
fn char_index(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

#[test]
fn every_span_and_score_equals_presidio() {
    let fx = fixture();
    let mut mismatches = Vec::new();
    let mut n = 0;
    for case in fx["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<(String, u64, u64, f64)> = case["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["entity"].as_str().unwrap().to_string(), f["start"].as_u64().unwrap(), f["end"].as_u64().unwrap(), f["score"].as_f64().unwrap()))
            .collect();
        n += want.len();
        let mut got: Vec<(String, u64, u64, f64)> = analyze(text)
            .unwrap()
            .into_iter()
            .map(|f| (f.entity.name().to_string(), char_index(text, f.start) as u64, char_index(text, f.end) as u64, (f.score * 1e4).round() / 1e4))
            .collect();
        got.sort_by(|a, b| (a.1, a.2, &a.0).cmp(&(b.1, b.2, &b.0)));
        if got != want {
            mismatches.push(format!("{text:?}\n  presidio {want:?}\n  ours     {got:?}"));
        }
    }
    assert!(n > 150, "fixture has {n} findings");
    assert!(mismatches.is_empty(), "{} of {} cases differ:\n{}", mismatches.len(), fx["cases"].as_array().unwrap().len(), mismatches.join("\n"));
}
