//! Properties over random schemas of the supported subset: every value the schema accepts
//! (generated independently of the compiler, written compactly and pretty-printed) is accepted
//! by the grammar; random walks under the grammar's masks end in JSON that parses; compiling
//! arbitrary JSON never panics.

use std::sync::Arc;

use glassbox_constrain::{compile_schema, Limits, Matcher, VocabIndex};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn vocab() -> Arc<VocabIndex> {
    let mut toks: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
    for t in ["{\"", "\": ", "\",", ", \"", "\"}", "}]", "[{", "null", "true", "  ", "\n  "] {
        toks.push(Some(t.as_bytes().to_vec()));
    }
    let eos = toks.len() as u32;
    toks.push(None);
    Arc::new(VocabIndex::new(&toks, &[eos]))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "string"})),
        (0usize..4, 4usize..12).prop_map(|(a, b)| json!({"type": "string", "minLength": a, "maxLength": b})),
        Just(json!({"type": "integer"})),
        (-500i64..500, 0i64..2000).prop_map(|(a, w)| json!({"type": "integer", "minimum": a, "maximum": a + w})),
        Just(json!({"type": "number"})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "null"})),
        Just(json!({"enum": ["a", 1, null, {"k": [true]}]})),
        Just(json!({"const": "fixed"})),
        Just(json!({"type": "string", "format": "date"})),
    ]
}

fn schema() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (prop::collection::vec(inner.clone(), 1..4), prop::collection::vec(any::<bool>(), 4)).prop_map(|(props, req)| {
                let p: Map<String, Value> = props.into_iter().enumerate().map(|(i, s)| (format!("k{i}"), s)).collect();
                let r: Vec<Value> = p.keys().zip(req).filter(|(_, r)| *r).map(|(k, _)| json!(k)).collect();
                json!({"type": "object", "properties": p, "required": r, "additionalProperties": false})
            }),
            (inner.clone(), 0usize..2, 2usize..4).prop_map(|(i, a, b)| json!({"type": "array", "items": i, "minItems": a, "maxItems": b})),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| json!({"anyOf": [a, b]})),
            inner.prop_map(|i| json!({"type": "object", "additionalProperties": i})),
        ]
    })
}

/// A value `s` accepts, chosen by `r` (written from the schema's meaning, not the compiler's).
fn instance(s: &Value, r: &mut u64) -> Value {
    fn next_in(r: &mut u64, n: u64) -> u64 {
        *r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*r >> 33) % n.max(1)
    }
    macro_rules! next {
        ($n:expr) => {
            next_in(r, $n)
        };
    }
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return e[next!(e.len() as u64) as usize].clone();
    }
    if let Some(a) = s.get("anyOf").and_then(Value::as_array) {
        let pick = next!(2) as usize;
        return instance(&a[pick], r);
    }
    match s["type"].as_str().unwrap_or("") {
        "string" if s.get("format").is_some() => json!(format!("20{:02}-{:02}-{:02}", next!(100), 1 + next!(12), 1 + next!(28))),
        "string" => {
            let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0);
            let max = s.get("maxLength").and_then(Value::as_u64).unwrap_or(8);
            let n = min + next!(max - min + 1);
            let chars = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\u{1}', 'é', '日', '🚀', '\u{7f}'];
            json!((0..n).map(|_| chars[next!(chars.len() as u64) as usize]).collect::<String>())
        }
        "integer" => {
            let lo = s.get("minimum").and_then(Value::as_i64).unwrap_or(-1_000_000);
            let hi = s.get("maximum").and_then(Value::as_i64).unwrap_or(1_000_000);
            json!(lo + next!((hi - lo + 1) as u64) as i64)
        }
        "number" => json!((next!(2_000_001) as f64 - 1e6) / 1000.0),
        "boolean" => json!(next!(2) == 1),
        "null" => Value::Null,
        "array" => {
            let min = s["minItems"].as_u64().unwrap_or(0);
            let max = s["maxItems"].as_u64().unwrap_or(3);
            let n = min + next!(max - min + 1);
            Value::Array((0..n).map(|_| instance(&s["items"], r)).collect())
        }
        "object" => match s.get("properties").and_then(Value::as_object) {
            Some(p) => {
                let req: Vec<&str> = s["required"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                let mut o = Map::new();
                for (k, v) in p {
                    if req.contains(&k.as_str()) || next!(2) == 1 {
                        o.insert(k.clone(), instance(v, r));
                    }
                }
                Value::Object(o)
            }
            None => {
                let n = next!(3);
                Value::Object((0..n).map(|i| (format!("key \"{i}\""), instance(&s["additionalProperties"], r))).collect())
            }
        },
        other => panic!("no instance for type {other}"),
    }
}

fn accepts(m: &mut Matcher, text: &str) -> bool {
    m.advance_bytes(text.as_bytes()).is_ok() && m.is_accepting()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_instance_is_accepted(s in schema(), seed in any::<u64>()) {
        let g = Arc::new(compile_schema(&s, &Limits::default()).unwrap());
        let v = vocab();
        let mut r = seed;
        for _ in 0..4 {
            let x = instance(&s, &mut r);
            for text in [serde_json::to_string(&x).unwrap(), serde_json::to_string_pretty(&x).unwrap()] {
                let mut m = Matcher::new(g.clone(), v.clone()).unwrap();
                prop_assert!(accepts(&mut m, &text), "schema {s}\nrejected {text}");
            }
        }
    }

    #[test]
    fn walks_end_in_json(s in schema(), seed in any::<u64>()) {
        let g = Arc::new(compile_schema(&s, &Limits::default()).unwrap());
        let v = vocab();
        let mut m = Matcher::new(g, v.clone()).unwrap();
        let mut r = seed | 1;
        let mut out = Vec::new();
        for _ in 0..300 {
            if m.is_done() {
                break;
            }
            let mask = m.mask().unwrap();
            let allowed: Vec<u32> = (0..v.n_vocab() as u32).filter(|&t| mask[t as usize >> 6] >> (t & 63) & 1 == 1).collect();
            prop_assert!(!allowed.is_empty(), "dead end after {:?}", String::from_utf8_lossy(&out));
            r ^= r << 13; r ^= r >> 7; r ^= r << 17;
            let t = allowed[(r % allowed.len() as u64) as usize];
            if v.is_eog(t) {
                m.advance(t).unwrap();
                break;
            }
            out.extend_from_slice(v.token_bytes(t));
            m.advance(t).unwrap();
        }
        if m.is_accepting() {
            let text = String::from_utf8(out).unwrap();
            prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn arbitrary_json_never_panics(s in any_json()) {
        if let Ok(g) = compile_schema(&s, &Limits { max_symbols: 20_000, ..Limits::default() }) {
            let mut m = Matcher::new(Arc::new(g), vocab()).unwrap();
            let _ = m.mask();
        }
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..2000).prop_map(|n| json!(n)),
        prop::sample::select(vec!["string", "integer", "object", "array", "number", "#/$defs/a", "#", "date", "uuid", "x"]).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(vec!["type", "properties", "items", "required", "enum", "const", "anyOf", "$ref", "$defs", "a", "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "additionalProperties", "format", "allOf", "oneOf"]), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}
