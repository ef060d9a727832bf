//! qwen2 and qwen3 on tiny random-weight GGUFs (built with the gguf package, tensors in F16,
//! BF16, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0) against llama-cpp-python's logits on the same files.

use glassbox_kernels::{Isa, ThreadPool};
use glassbox_models::{Arch, KvCache, Logits, Model, Scratch, SeqBatch};

fn check(arch: &str, want_arch: Arch) {
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture(&format!("tiny/tiny-{arch}.json"))).unwrap()).unwrap();
    let tokens: Vec<u32> = fx["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let want: Vec<Vec<f32>> = fx["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect())
        .collect();
    for packed in [false, true] {
        let mut m = Model::load(&glassbox_testdata::fixture(&format!("tiny/tiny-{arch}.gguf"))).unwrap();
        assert_eq!(m.config.arch, want_arch);
        if packed {
            m.pack(Isa::detect());
        }
        let pool = ThreadPool::new(2);
        let mut cache = KvCache::new(&m.config, 32);
        let mut out = Vec::new();
        m.forward(&pool, Isa::detect(), &mut [SeqBatch { tokens: &tokens, cache: &mut cache, logits: Logits::All }], &mut Scratch::default(), &mut out)
            .unwrap();
        let n = m.config.n_vocab;
        let mut worst = 0f32;
        for (p, row) in want.iter().enumerate() {
            let got = &out[p * n..(p + 1) * n];
            let scale = row.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (a, b) in got.iter().zip(row) {
                worst = worst.max((a - b).abs() / scale);
            }
            let argmax = |x: &[f32]| x.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            assert_eq!(argmax(got), argmax(row), "{arch} position {p}");
        }
        eprintln!("{arch} (packed={packed}): largest logit difference {worst:.2e} of the logit range");
        // Activation quantisation (int8) on random weights: a few parts in a thousand.
        assert!(worst < 1e-2, "{arch}: {worst}");
    }
}

#[test]
fn tiny_qwen2_matches_llama_cpp() {
    check("qwen2", Arch::Qwen2);
}

#[test]
fn tiny_qwen3_matches_llama_cpp() {
    check("qwen3", Arch::Qwen3);
}
