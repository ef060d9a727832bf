//! Block formats against an independent implementation: gguf-py's numpy dequantisers
//! (tests/fixtures/quants/dequant.json, made by scripts/gen_fixtures.py).

use glassbox_kernels::{QType, dequantize_row};

#[test]
fn dequantisation_matches_gguf_py_for_every_type() {
    let path = glassbox_testdata::fixture("quants/dequant.json");
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut seen = Vec::new();
    for case in fx["cases"].as_array().unwrap() {
        let name = case["type"].as_str().unwrap();
        let ty = QType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"));
        let hex = case["bytes"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let want: Vec<f32> = case["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let mut got = vec![0f32; want.len()];
        dequantize_row(ty, &bytes, &mut got);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{name}[{i}]: {a} vs gguf-py {b}");
        }
        seen.push(name.to_owned());
    }
    assert_eq!(seen.len(), 12, "{seen:?}");
}
