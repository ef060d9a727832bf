//! Fuzz the PEFT converter: any adapter_config.json and adapter_model.safetensors bytes must be
//! converted or refused cleanly, and whatever is converted must read back as an adapter that fits
//! the base. Input: a little-endian u16 length of the config, the config, then the safetensors.
//! Run: cd crates/glassbox-lora/fuzz && cargo +nightly fuzz run peft
#![no_main]

use glassbox_gguf::{GgmlType, Gguf, GgufWriter, Limits, Value, WriterTensor};
use glassbox_lora::Adapter;
use libfuzzer_sys::fuzz_target;

fn base() -> Vec<u8> {
    let q = vec![0u8; 8 * 8 * 4];
    let k = vec![0u8; 8 * 4 * 4];
    let w = GgufWriter {
        version: 3,
        metadata: vec![
            ("general.architecture".into(), Value::String("llama".into())),
            ("llama.attention.head_count".into(), Value::U32(2)),
            ("llama.attention.head_count_kv".into(), Value::U32(1)),
        ],
        tensors: vec![
            WriterTensor { name: "blk.0.attn_q.weight".into(), dims: vec![8, 8], ggml_type: GgmlType::F32, data: &q },
            WriterTensor { name: "blk.0.attn_k.weight".into(), dims: vec![8, 4], ggml_type: GgmlType::F32, data: &k },
        ],
    };
    let mut out = Vec::new();
    w.write(&mut out).unwrap();
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = u16::from_le_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    let (config, st) = rest.split_at(n.min(rest.len()));
    let b = base();
    let g = Gguf::parse(&b, &Limits::default()).unwrap();
    let dir = std::path::Path::new("fuzz");
    for ty in [glassbox_kernels::QType::F32, glassbox_kernels::QType::Q8_0] {
        if let Ok(c) = glassbox_lora::peft::convert_bytes(dir, config, st, &g, "base", ty, &[]) {
            let ga = Gguf::parse(&c.bytes, &Limits::default()).unwrap();
            let a = Adapter::from_gguf(dir, &ga, &c.bytes).unwrap();
            a.check_base(&g, "base").unwrap();
            assert_eq!(a.pairs.len(), c.pairs);
        }
    }
});
