//! LoRA adapters in the forward pass: sequences using different adapters (or none) share one
//! batch and each gets bit-for-bit the logits it gets alone; scale 0 is the base model; an
//! adapter that does not fit is refused by name. (Agreement with llama.cpp applying the same
//! adapter: glassbox's perplexity and glassbox-engine's kld tests.)

use glassbox_kernels::{Isa, ThreadPool};
use glassbox_models::{KvCache, Logits, LoraPart, LoraTensor, Model, Scratch, SeqBatch};

fn tensors(scale: f32) -> Vec<LoraTensor> {
    let a = glassbox_lora::Adapter::open(&glassbox_testdata::fixture("lora/smollm2-lora.gguf")).unwrap();
    let part = |p: &glassbox_lora::Part| LoraPart { ty: p.ty, rows: p.rows, cols: p.cols, bytes: p.bytes.clone().into() };
    a.pairs.iter().map(|p| LoraTensor { target: p.target.clone(), a: part(&p.a), b: part(&p.b), scale: a.scale(p, scale) }).collect()
}

fn model() -> Model {
    let mut m = Model::load(&glassbox_testdata::model(glassbox_testdata::SMOLLM2)).unwrap();
    m.pack(Isa::detect());
    m
}

/// Prefill `toks` then decode `next`, alone, with `adapter` as the sequence's own.
fn alone(m: &Model, toks: &[u32], next: u32, adapter: Option<usize>) -> Vec<f32> {
    let (pool, isa, mut sc) = (ThreadPool::new(2), Isa::detect(), Scratch::default());
    let mut c = KvCache::new(&m.config, 64);
    c.set_adapter(adapter);
    let mut out = vec![];
    m.forward(&pool, isa, &mut [SeqBatch { tokens: toks, cache: &mut c, logits: Logits::Last }], &mut sc, &mut out).unwrap();
    m.forward(&pool, isa, &mut [SeqBatch { tokens: &[next], cache: &mut c, logits: Logits::Last }], &mut sc, &mut out).unwrap();
    out
}

#[test]
fn sequences_with_different_adapters_share_a_batch() {
    let mut m = model();
    let full = m.add_adapter(&tensors(1.0)).unwrap();
    let half = m.add_adapter(&tensors(0.5)).unwrap();
    let (a, b, c): (Vec<u32>, Vec<u32>, Vec<u32>) = (vec![504, 3575, 282, 4649, 314], vec![19556, 905, 216, 1, 4093, 198, 42], vec![1, 2, 3]);
    let (ra, rb, rc) = (alone(&m, &a, 7042, Some(full)), alone(&m, &b, 30, Some(half)), alone(&m, &c, 9, None));
    let base = alone(&model(), &c, 9, None);
    assert_eq!(rc, base, "a sequence without an adapter computes the base model");
    assert_ne!(alone(&m, &c, 9, Some(full)), rc, "the adapter changes the logits");
    let (pool, isa, mut sc) = (ThreadPool::new(2), Isa::detect(), Scratch::default());
    let mut caches: Vec<KvCache> = (0..3).map(|_| KvCache::new(&m.config, 64)).collect();
    for (cache, ad) in caches.iter_mut().zip([Some(full), Some(half), None]) {
        cache.set_adapter(ad);
    }
    let mut out = vec![];
    let [ca, cb, cc] = &mut caches[..] else { unreachable!() };
    m.forward(&pool, isa, &mut [
        SeqBatch { tokens: &a, cache: &mut *ca, logits: Logits::Last },
        SeqBatch { tokens: &b, cache: &mut *cb, logits: Logits::Last },
        SeqBatch { tokens: &c, cache: &mut *cc, logits: Logits::Last },
    ], &mut sc, &mut out).unwrap();
    m.forward(&pool, isa, &mut [
        SeqBatch { tokens: &[9], cache: &mut *cc, logits: Logits::Last },
        SeqBatch { tokens: &[7042], cache: &mut *ca, logits: Logits::Last },
        SeqBatch { tokens: &[30], cache: &mut *cb, logits: Logits::Last },
    ], &mut sc, &mut out).unwrap();
    let nv = m.config.n_vocab;
    let rows: Vec<&[f32]> = out.chunks_exact(nv).collect();
    assert_eq!([rows[0], rows[4]].concat(), ra);
    assert_eq!([rows[1], rows[5]].concat(), rb);
    assert_eq!([rows[2], rows[3]].concat(), rc);
}

#[test]
fn an_adapter_every_sequence_uses_and_scale_zero() {
    let mut m = model();
    let zero = m.add_adapter(&tensors(0.0)).unwrap();
    let c: Vec<u32> = vec![1, 2, 3];
    // Scale 0 adds exact zeros: the base model's logits.
    assert_eq!(alone(&m, &c, 9, Some(zero)), alone(&model(), &c, 9, None));
    let full = m.add_adapter(&tensors(1.0)).unwrap();
    let own = alone(&m, &c, 9, Some(full));
    m.set_active_adapters(&[full]).unwrap();
    assert_eq!(alone(&m, &c, 9, None), own, "active for every sequence = the sequence's own");
    assert_eq!(alone(&m, &c, 9, Some(full)), own, "not applied twice");
    assert!(m.set_active_adapters(&[7]).unwrap_err().to_string().contains("no adapter 7"));
    // Several at once add up: two halves make the whole (up to rounding).
    let half = m.add_adapter(&tensors(0.5)).unwrap();
    m.set_active_adapters(&[half, half]).unwrap();
    let two = alone(&m, &c, 9, None);
    let worst = two.iter().zip(&own).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-2, "two halves differ from the whole by {worst}");
    assert_ne!(two, alone(&model(), &c, 9, None));
}

#[test]
fn an_adapter_that_does_not_fit_is_refused_by_name() {
    let mut m = model();
    let mut t = tensors(1.0);
    t[0].target = "blk.99.attn_q.weight".into();
    assert!(m.add_adapter(&t).unwrap_err().to_string().contains("blk.99.attn_q.weight"));
    let mut t = tensors(1.0);
    t[1].target = t[0].target.clone();
    let e = m.add_adapter(&t).unwrap_err().to_string();
    assert!(e.contains(&t[0].target), "{e}");
    let mut t = tensors(1.0);
    t[0].target = "token_embd.weight".into();
    assert!(m.add_adapter(&t).unwrap_err().to_string().contains("token_embd.weight"));
    let mut t = tensors(1.0);
    t[0].scale = f32::NAN;
    assert!(m.add_adapter(&t).unwrap_err().to_string().contains("not finite"));
    // A sequence naming an adapter the model does not have: refused before anything changes.
    let (pool, isa, mut sc) = (ThreadPool::new(2), Isa::detect(), Scratch::default());
    let mut c = KvCache::new(&m.config, 64);
    c.set_adapter(Some(3));
    let e = m.forward(&pool, isa, &mut [SeqBatch { tokens: &[1, 2], cache: &mut c, logits: Logits::Last }], &mut sc, &mut vec![]).unwrap_err();
    assert!(e.to_string().contains("adapter 3"), "{e}");
    assert_eq!(c.len(), 0);
}
