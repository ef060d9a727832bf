//! Continuous-batching readiness: sequences at different positions share one forward pass, and
//! a sequence's logits are bit-identical whether it runs alone, beside others, or with its
//! prompt prefilled in chunks. Runs on the production path: weights repacked for the detected
//! ISA (CI runs the suite once per ISA the CPU supports, so every kernel path is covered).

use glassbox_kernels::{Isa, ThreadPool};
use glassbox_models::{Error, KvCache, Logits, Model, Scratch, SeqBatch};

fn model() -> Model {
    let mut m = Model::load(&glassbox_testdata::model(glassbox_testdata::SMOLLM2)).unwrap();
    let packed = m.pack(Isa::detect());
    // Every matrix of SmolLM2 (Q4_1/Q8_0) has a packed kernel wherever the ISA has one.
    assert_eq!(packed > 0, Isa::detect().packs(glassbox_kernels::QType::Q4_1), "packing did not match the ISA");
    m
}

#[test]
fn batch_composition_does_not_change_logits() {
    batching_changes_nothing(&model(), &[504, 3575, 282, 4649, 314], 7042, &[19556, 905, 216, 1, 4093, 198, 42, 43, 44], 30);
}

/// The same for a mixture-of-experts model with latent attention (tiny DeepSeek-2, quantised,
/// repacked): experts run once per step over every sequence's tokens routed to them.
#[test]
fn batch_composition_does_not_change_moe_logits() {
    let mut m = Model::load(&glassbox_testdata::fixture("tiny/tiny-deepseek2.gguf")).unwrap();
    m.pack(Isa::detect());
    batching_changes_nothing(&m, &[264, 3, 17, 250, 99], 42, &[1, 42, 7, 130, 255, 12, 64, 200, 5], 30);
    // One compressed K row per token and layer, no V cache: 3 layers × 64 × (32 + 16) × 2 bytes.
    assert_eq!(KvCache::new(&m.config, 64).bytes(), 3 * 64 * 48 * 2);
}

fn batching_changes_nothing(m: &Model, a: &[u32], next_a: u32, b: &[u32], next_b: u32) {
    let pool = ThreadPool::new(2);
    let isa = Isa::detect();
    let mut sc = Scratch::default();
    // Alone: prefill a, then one decode step.
    let alone = |toks: &[u32], next: u32, sc: &mut Scratch| {
        let mut c = KvCache::new(&m.config, 64);
        let mut out = vec![];
        m.forward(&pool, isa, &mut [SeqBatch { tokens: toks, cache: &mut c, logits: Logits::Last }], sc, &mut out).unwrap();
        let first = out.clone();
        out.clear();
        m.forward(&pool, isa, &mut [SeqBatch { tokens: &[next], cache: &mut c, logits: Logits::Last }], sc, &mut out).unwrap();
        (first, out)
    };
    let (a1, a2) = alone(a, next_a, &mut sc);
    let (b1, b2) = alone(b, next_b, &mut sc);
    // Together: both prompts in one batch, then both decode steps in one batch.
    let (mut ca, mut cb) = (KvCache::new(&m.config, 64), KvCache::new(&m.config, 64));
    let mut out = vec![];
    m.forward(&pool, isa, &mut [
        SeqBatch { tokens: a, cache: &mut ca, logits: Logits::Last },
        SeqBatch { tokens: b, cache: &mut cb, logits: Logits::Last },
    ], &mut sc, &mut out).unwrap();
    let n = m.config.n_vocab;
    assert!(out[..n] == a1[..] && out[n..] == b1[..], "prefill logits differ when batched");
    out.clear();
    m.forward(&pool, isa, &mut [
        SeqBatch { tokens: &[next_b], cache: &mut cb, logits: Logits::Last },
        SeqBatch { tokens: &[next_a], cache: &mut ca, logits: Logits::Last },
    ], &mut sc, &mut out).unwrap();
    assert!(out[..n] == b2[..] && out[n..] == a2[..], "decode logits differ when batched");
    // Chunked prefill (3 + 2 + 4 tokens) equals one-shot prefill.
    let mut c = KvCache::new(&m.config, 64);
    for chunk in [&b[..3], &b[3..5]] {
        m.forward(&pool, isa, &mut [SeqBatch { tokens: chunk, cache: &mut c, logits: Logits::None }], &mut sc, &mut vec![]).unwrap();
    }
    let mut out = vec![];
    m.forward(&pool, isa, &mut [SeqBatch { tokens: &b[5..], cache: &mut c, logits: Logits::Last }], &mut sc, &mut out).unwrap();
    assert!(out == b1, "chunked prefill differs");
    assert_eq!(c.len(), b.len());
}

#[test]
fn kv_cache_is_sized_by_requested_context() {
    let m = model();
    let c = KvCache::new(&m.config, 128);
    // 30 layers × 128 positions × (3 kv heads × 64) × 2 (K and V) × 2 bytes
    assert_eq!(c.bytes(), 30 * 128 * 192 * 2 * 2);
}

#[test]
fn context_overflow_and_bad_tokens_are_errors_and_change_nothing() {
    let m = model();
    let pool = ThreadPool::new(1);
    let mut sc = Scratch::default();
    let mut c = KvCache::new(&m.config, 4);
    let r = m.forward(&pool, Isa::detect(), &mut [SeqBatch { tokens: &[1, 2, 3, 4, 5], cache: &mut c, logits: Logits::Last }], &mut sc, &mut vec![]);
    assert!(matches!(r, Err(Error::ContextFull { used: 0, new: 5, capacity: 4 })));
    assert_eq!(c.len(), 0);
    let r = m.forward(&pool, Isa::detect(), &mut [SeqBatch { tokens: &[1, 49152], cache: &mut c, logits: Logits::Last }], &mut sc, &mut vec![]);
    assert!(matches!(r, Err(Error::BadToken { id: 49152, .. })), "{r:?}");
    assert_eq!(c.len(), 0);
}
