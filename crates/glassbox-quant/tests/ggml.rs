//! Our quantisers against ggml's own (`ggml_quantize_chunk`, no importance matrix) on random
//! rows and real ones (SmolLM2's weights): every byte equal. `tests/fixtures/quants/quantize.json`
//! is made by `scripts/gen_fixtures.py quantize`.

use glassbox_quant::{QType, SUPPORTED, quantize_row};
use serde_json::Value;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn every_byte_equals_ggml() {
    let p = glassbox_testdata::fixture("quants/quantize.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let row: Vec<f32> = unhex(case["f32"].as_str().unwrap()).chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        for ty in SUPPORTED.into_iter().filter(|t| *t != QType::F32) {
            let want = unhex(case["quantized"][ty.name()].as_str().unwrap());
            let got = quantize_row(ty, &row).unwrap();
            assert_eq!(got.len(), want.len());
            if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
                panic!("{} {}: first difference at byte {i} (block {}): ours {:02x}, ggml {:02x}", case["row"], ty.name(), i / ty.block().1, got[i], want[i]);
            }
            checked += 1;
        }
    }
    // 13 rows × 12 types (F32 is a copy).
    assert_eq!(checked, fx["cases"].as_array().unwrap().len() * 12);
    assert!(checked >= 150, "{checked}");
}
