//! Whole files against llama-quantize: the pinned SmolLM2 file (Q4_1, so re-quantised) to
//! Q4_K_M, Q3_K_M and Q8_0, and the tiny DeepSeek-2 (experts, latent attention; F32) to Q4_K_M,
//! Q2_K, Q5_K_M and Q8_0 — every tensor in the same order, of the same type, with the same bytes
//! (`tests/fixtures/quants/quantize_{file,deepseek2}.json`, `scripts/gen_fixtures.py quantize`).

use glassbox_gguf::{Gguf, GgufFile, Limits, Value};
use glassbox_quant::{Error, FileType, quantize_file};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn tensors_equal_llama_quantize() {
    let src = GgufFile::open(&glassbox_testdata::model(glassbox_testdata::SMOLLM2)).unwrap();
    equal_llama_quantize(&src, "quants/quantize_file.json");
    // A quantised source is re-quantised only when allowed, naming the first tensor.
    let e = quantize_file(&src, FileType::Q8_0, 2, false, &[], &mut Vec::new()).unwrap_err();
    assert!(matches!(&e, Error::Requantize { tensor, from: "Q4_1" } if tensor.starts_with("blk.0.") || tensor == "token_embd.weight"), "{e}");
}

/// Expert models: llama-quantize's rules for them (routers kept F32, expert stacks, the latent
/// attention's per-head matrices) reproduced byte for byte.
#[test]
fn expert_model_tensors_equal_llama_quantize() {
    let src = GgufFile::open(&glassbox_testdata::fixture("tiny/tiny-deepseek2-f32.gguf")).unwrap();
    equal_llama_quantize(&src, "quants/quantize_deepseek2.json");
}

fn equal_llama_quantize(src: &GgufFile, fixture: &str) {
    let fx: Json = serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture(fixture)).unwrap()).unwrap();
    let extra = vec![("glassbox.lineage.method".to_string(), Value::String("quantize".into()))];
    for (name, want) in fx["mixtures"].as_object().unwrap() {
        let ftype = FileType::from_name(name).unwrap();
        let mut out = Vec::new();
        let report = quantize_file(src, ftype, 2, true, &extra, &mut out).unwrap();
        let g = Gguf::parse(&out, &Limits::default()).unwrap();
        let want = want.as_array().unwrap();
        assert_eq!(g.tensors().len(), want.len());
        for (t, w) in g.tensors().iter().zip(want) {
            assert_eq!(t.name, w["name"].as_str().unwrap(), "{name}: order");
            assert_eq!(t.ggml_type.name(), w["type"].as_str().unwrap(), "{name}: {}", t.name);
            assert_eq!(hex(&Sha256::digest(g.tensor_data(&out, t))), w["sha256"].as_str().unwrap(), "{name}: {} bytes", t.name);
        }
        assert_eq!(report.len(), want.len());
        assert_eq!(g.get_u64("general.file_type").unwrap(), Some(u64::from(ftype.id())));
        assert_eq!(g.get_u64("general.quantization_version").unwrap(), Some(2));
        assert_eq!(g.get_str("glassbox.lineage.method").unwrap(), Some("quantize"));
    }
}
