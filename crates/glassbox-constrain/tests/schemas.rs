//! Grammars from schemas: what they accept and reject, text produced under their masks (a
//! random walk over a byte vocabulary plus multi-byte tokens), and refusals by name.

use std::sync::Arc;

use glassbox_constrain::{compile_schema, json_object, Error, Grammar, Limits, Matcher, VocabIndex};
use serde_json::{json, Value};

/// Every byte as a token, some multi-byte tokens as BPE vocabularies have them, and EOS.
fn vocab() -> Arc<VocabIndex> {
    let mut toks: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
    for t in ["{\"", "\":", "\": \"", "\",", "\"}", "true", "false", "null", "name", "age", ", ", ",\n  ", "\n}", "12", "3.", "é", "\"\n", "[{", "}]", "}}", "  "] {
        toks.push(Some(t.as_bytes().to_vec()));
    }
    toks.push(None); // a control token
    let eos = toks.len() as u32;
    toks.push(None);
    Arc::new(VocabIndex::new(&toks, &[eos]))
}

fn accepts(g: &Arc<Grammar>, text: &str) -> bool {
    let mut m = Matcher::new(g.clone(), vocab()).unwrap();
    m.advance_bytes(text.as_bytes()).is_ok() && m.is_accepting()
}

fn grammar(s: Value) -> Arc<Grammar> {
    Arc::new(compile_schema(&s, &Limits::default()).unwrap())
}

/// Text produced by choosing uniformly among the allowed tokens until done (or `steps` tokens).
fn walk(g: &Arc<Grammar>, seed: u64, steps: usize) -> Option<String> {
    let v = vocab();
    let mut m = Matcher::new(g.clone(), v.clone()).unwrap();
    let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut out = Vec::new();
    for _ in 0..steps {
        if m.is_done() {
            return Some(String::from_utf8(out).expect("grammar output is UTF-8"));
        }
        let mask = m.mask().unwrap();
        let allowed: Vec<u32> = (0..v.n_vocab() as u32).filter(|&t| mask[t as usize >> 6] >> (t & 63) & 1 == 1).collect();
        assert!(!allowed.is_empty(), "dead end after {:?}", String::from_utf8_lossy(&out));
        // Prefer closing tokens as the walk goes on, so walks end.
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let t = allowed[(rng >> 33) as usize % allowed.len()];
        for &a in allowed.iter().take(3) {
            assert!(m.allows(a));
        }
        if v.is_eog(t) {
            return Some(String::from_utf8(out).expect("grammar output is UTF-8"));
        }
        out.extend_from_slice(v.token_bytes(t));
        m.advance(t).unwrap();
    }
    None
}

#[test]
fn object_with_required_and_optional_properties() {
    let g = grammar(json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["name"], "additionalProperties": false}));
    for ok in [r#"{"name":"x"}"#, r#"{"name": "Ann", "age": 3}"#, "{\n  \"name\": \"é\\n\\u00e9\",\n  \"tags\": [\"a\", \"b\"]\n}", r#"{"name":"","age":-12,"tags":[]}"#] {
        assert!(accepts(&g, ok), "{ok}");
    }
    for bad in [r#"{}"#, r#"{"age": 3}"#, r#"{"age": 3, "name": "x"}"#, r#"{"name": "x",}"#, r#"{"name": "x", "extra": 1}"#, r#"{"name": 5}"#, r#"{"name":"x","age":01}"#, "{\"name\":\"a\u{1}\"}", r#"{"name":"x"} "#] {
        assert!(!accepts(&g, bad), "{bad}");
    }
}

#[test]
fn walks_produce_valid_json() {
    let schemas = [
        json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}, "ok": {"type": "boolean"}, "n": {"type": ["integer", "null"]}}, "required": ["name", "ok"]}),
        json!({"type": "array", "items": {"enum": ["red", "green", 3, null]}, "minItems": 1, "maxItems": 3}),
        json!({"anyOf": [{"type": "number"}, {"const": {"a": [1, 2]}}]}),
    ];
    for (i, s) in schemas.iter().enumerate() {
        let g = grammar(s.clone());
        let mut done = 0;
        for seed in 0..40 {
            if let Some(t) = walk(&g, seed, 400) {
                let v: Value = serde_json::from_str(&t).unwrap_or_else(|e| panic!("schema {i}: {t:?}: {e}"));
                match i {
                    0 => {
                        assert!(v["name"].as_str().is_some_and(|n| n.chars().count() <= 5) && v["ok"].is_boolean(), "{t}");
                        assert!(v.get("n").is_none_or(|n| n.is_i64() || n.is_null()), "{t}");
                    }
                    1 => {
                        let a = v.as_array().unwrap();
                        assert!((1..=3).contains(&a.len()) && a.iter().all(|x| [json!("red"), json!("green"), json!(3), Value::Null].contains(x)), "{t}");
                    }
                    _ => assert!(v.is_number() || v == json!({"a": [1, 2]}), "{t}"),
                }
                done += 1;
            }
        }
        assert!(done >= 10, "schema {i}: only {done} walks finished");
    }
}

#[test]
fn refs_and_recursion() {
    let tree = json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}, "required": ["v", "kids"]}}});
    let g = grammar(tree);
    assert!(accepts(&g, r#"{"v":1,"kids":[{"v":2,"kids":[]},{"v":3,"kids":[{"v":4,"kids":[]}]}]}"#));
    assert!(!accepts(&g, r#"{"v":1,"kids":[{"v":2}]}"#));
    let e = compile_schema(&json!({"$ref": "#/$defs/N", "$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}, "required": ["next"]}}}), &Limits::default()).unwrap_err();
    assert!(matches!(e, Error::NoBaseCase(_)), "{e}");
    let e = compile_schema(&json!({"$ref": "#/$defs/A", "$defs": {"A": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}}}), &Limits::default()).unwrap_err();
    assert!(matches!(e, Error::LeftRecursive(_)), "{e}");
}

#[test]
fn integer_bounds() {
    let g = grammar(json!({"type": "integer", "minimum": -15, "exclusiveMaximum": 120}));
    for v in -30i64..=200 {
        assert_eq!(accepts(&g, &v.to_string()), (-15..120).contains(&v), "{v}");
    }
    assert!(!accepts(&g, "007") && !accepts(&g, "-0"));
    let g = grammar(json!({"type": "integer", "minimum": 1000}));
    assert!(accepts(&g, "1000") && accepts(&g, "999999999") && !accepts(&g, "999"));
}

#[test]
fn formats_and_lengths() {
    let g = grammar(json!({"type": "object", "properties": {"d": {"type": "string", "format": "date-time"}, "u": {"type": "string", "format": "uuid"}, "s": {"type": "string", "minLength": 2, "maxLength": 3}}, "required": ["d", "u", "s"]}));
    assert!(accepts(&g, r#"{"d":"2026-12-01T22:19:34.5Z","u":"123e4567-e89b-12d3-a456-426614174000","s":"éé"}"#));
    assert!(!accepts(&g, r#"{"d":"2026-13-01T22:19:34Z","u":"123e4567-e89b-12d3-a456-426614174000","s":"éé"}"#));
    // calendar dates: every day of 1999-2001 and 2100, against chrono-free arithmetic
    let dg = grammar(json!({"type": "string", "format": "date"}));
    for y in [1999, 2000, 2001, 2004, 2100, 1, 400] {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        for m in 1..=12 {
            let days = match m { 2 if leap => 29, 2 => 28, 4 | 6 | 9 | 11 => 30, _ => 31 };
            for d in 1..=32 {
                assert_eq!(accepts(&dg, &format!("\"{y:04}-{m:02}-{d:02}\"")), d <= days, "{y}-{m}-{d}");
            }
        }
    }
    assert!(!accepts(&dg, "\"0000-01-01\"") && !accepts(&dg, "\"2026-00-10\"") && !accepts(&dg, "\"2026-01-00\""));
    assert!(!accepts(&g, r#"{"d":"2026-12-01T22:19:34Z","u":"123e4567-e89b-12d3-a456-426614174000","s":"abcd"}"#));
}

#[test]
fn json_object_accepts_any_object() {
    let g = Arc::new(json_object());
    assert!(accepts(&g, r#"{"a": [1, 2.5e3, {"b": null}], "c": "d"}"#) && accepts(&g, "{}"));
    assert!(!accepts(&g, "[1]") && !accepts(&g, "\"x\""));
}

#[test]
fn refusals_name_the_problem() {
    let l = Limits::default();
    let cases = [
        (json!({"type": "string", "pattern": "^a+$"}), "pattern"),
        (json!({"type": "object", "properties": {"a": {"type": "string"}}, "minProperties": 1}), "minProperties"),
        (json!({"type": "number", "minimum": 0}), "minimum"),
        (json!({"not": {"type": "string"}}), "not"),
        (json!({"type": "string", "format": "email"}), "email"),
        (json!({"$ref": "https://example.com/s.json"}), "not local"),
        (json!({"type": "frobnicate"}), "frobnicate"),
        (json!({"type": "array", "maxItems": 100000}), "maxItems"),
        // constraints beside a combinator or literal, or without a type, would go unenforced
        (json!({"type": "object", "properties": {"k": {"type": "string"}}, "anyOf": [{"required": ["k"]}]}), "beside anyOf"),
        (json!({"type": "string", "minLength": 3, "enum": ["a", "bbbb"]}), "minLength beside enum"),
        (json!({"minimum": 5}), "minimum without a type"),
        (json!({"maxItems": 2, "maxLength": 3}), "without a type"),
        (json!({"oneOf": [{"type": "integer"}, {"type": "number"}]}), "overlap"),
        (json!({"oneOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "object", "properties": {"b": {"type": "string"}}}]}), "overlap"),
        (json!({"type": "string", "enum": ["a", 1]}), "does not have the type"),
    ];
    for (s, word) in cases {
        let e = compile_schema(&s, &l).unwrap_err().to_string();
        assert!(e.contains(word), "{s}: {e}");
    }
    // disjoint oneOf branches are enforced; constraints imply their type
    for ok in [json!({"oneOf": [{"type": "integer"}, {"type": "string"}]}), json!({"oneOf": [{"type": "object", "properties": {"t": {"const": "a"}}, "required": ["t"]}, {"type": "object", "properties": {"t": {"enum": ["b"]}}, "required": ["t"]}]}),
               json!({"additionalProperties": false}), json!({"items": {"type": "integer"}, "maxItems": 2}), json!({"type": "string", "enum": ["a", "b"]})] {
        compile_schema(&ok, &l).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    assert!(!accepts(&grammar(json!({"maxItems": 2})), "[1,2,3]") && accepts(&grammar(json!({"maxItems": 2})), "[1,2]"));
    // a large item repeated many times: one rule referenced, or refused before any copy is made
    let t = std::time::Instant::now();
    compile_schema(&json!({"type": "array", "items": {"const": "x".repeat(60_000)}, "minItems": 1024}), &l).unwrap();
    let tight = Limits { max_symbols: 5_000, ..Limits::default() };
    assert!(matches!(compile_schema(&json!({"type": "array", "items": {"type": "string", "format": "uuid"}, "minItems": 1024}), &tight), Err(Error::TooLarge(_))));
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
    let mut deep = json!({"type": "string"});
    for _ in 0..40 {
        deep = json!({"type": "array", "items": deep});
    }
    assert!(matches!(compile_schema(&deep, &l), Err(Error::TooDeep(32))));
    let big: serde_json::Map<String, Value> = (0..5000).map(|i| (format!("property_{i}"), json!({"type": "string"}))).collect();
    assert!(matches!(compile_schema(&json!({"type": "object", "properties": big}), &l), Err(Error::TooLarge(_))));
}

#[test]
fn a_full_automaton_starts_again_instead_of_failing() {
    // A bounded array of objects: every item is a new set of states. With a tiny state bound the
    // automaton must start again (it is a cache of the grammar) and still accept the text.
    let g = grammar(json!({"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["name", "n"]}, "maxItems": 200}));
    let items: Vec<String> = (0..150).map(|i| format!("{{\"name\": \"item {i}\", \"n\": {i}}}")).collect();
    let text = format!("[{}]", items.join(", "));
    let limits = glassbox_constrain::dfa::DfaLimits { max_states: 300, ..Default::default() };
    let mut m = Matcher::with_limits(g, vocab(), limits).unwrap();
    for chunk in text.as_bytes().chunks(5) {
        m.mask().unwrap();
        m.advance_bytes(chunk).unwrap();
    }
    assert!(m.is_done());
    assert!(m.stats.resets > 0, "{:?}", m.stats);
    assert!(m.n_states() <= 300);
}
