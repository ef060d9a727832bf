//! PEFT conversion against llama.cpp's own converter: for tiny llama, qwen2 and gemma3 bases,
//! each PEFT fixture (BF16, F32 and F16 in the file; one module at another rank) converted to
//! F32, F16, BF16 and Q8_0 gives the same tensors — name, ggml type, shape and bytes — and the
//! same alpha as `convert_lora_to_gguf.py` wrote (tests/fixtures/lora/peft/expected.json, from
//! scripts/gen_lora.py).

use std::path::{Path, PathBuf};

use glassbox_gguf::{Gguf, GgufFile, Limits};
use glassbox_kernels::QType;
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn conversions_equal_llama_cpps_converter() {
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(root().join("tests/fixtures/lora/peft/expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (name, e) in expected["adapters"].as_object().unwrap() {
        let base = GgufFile::open(&root().join(e["base"].as_str().unwrap())).unwrap();
        let dir = root().join("tests/fixtures/lora/peft").join(name);
        for (outtype, ty) in [("f32", QType::F32), ("f16", QType::F16), ("bf16", QType::Bf16), ("q8_0", QType::Q8_0)] {
            let want = &e[outtype];
            let c = glassbox_lora::peft::convert(&dir, base.gguf(), name, ty, &[]).unwrap_or_else(|err| panic!("{name} {outtype}: {err}"));
            assert_eq!(c.alpha as f64, want["alpha"].as_f64().unwrap(), "{name} {outtype}");
            let g = Gguf::parse(&c.bytes, &Limits::default()).unwrap();
            let mut got: Vec<_> = g.tensors().iter().map(|t| (t.name.clone(), t.ggml_type.name().to_string(), t.dims.clone(), hex(&Sha256::digest(g.tensor_data(&c.bytes, t))))).collect();
            got.sort();
            let want: Vec<_> = want["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t["name"].as_str().unwrap().to_string(), t["type"].as_str().unwrap().to_string(), t["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect::<Vec<_>>(), t["sha256"].as_str().unwrap().to_string()))
                .collect();
            assert_eq!(got.len(), want.len(), "{name} {outtype}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g, w, "{name} {outtype}");
            }
            assert!(c.rescaled.is_empty() && c.skipped.is_empty());
            checked += got.len();
        }
    }
    assert!(checked > 500, "{checked}");
}
