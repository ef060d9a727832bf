use glassbox_kernels::{Isa, ThreadPool};
use glassbox_models::{KvCache, Logits, Model, Scratch, SeqBatch};

fn argmax(x: &[f32]) -> u32 {
    let mut b = 0;
    for i in 0..x.len() {
        if x[i] > x[b] {
            b = i;
        }
    }
    b as u32
}

#[test]
fn smollm2_greedy_matches_llama_cpp_on_one_prompt() {
    let model = Model::load(&glassbox_testdata::model(glassbox_testdata::SMOLLM2)).unwrap();
    let pool = ThreadPool::new(2);
    let isa = Isa::detect();
    let mut cache = KvCache::new(&model.config, 256);
    let mut sc = Scratch::default();
    let mut out = Vec::new();
    let prompt = [504u32, 3575, 282, 4649, 314];
    let mut batch = [SeqBatch { tokens: &prompt, cache: &mut cache, logits: Logits::Last }];
    model.forward(&pool, isa, &mut batch, &mut sc, &mut out).unwrap();
    let mut got = vec![];
    for _ in 0..16 {
        let t = argmax(&out);
        got.push(t);
        out.clear();
        let toks = [t];
        let mut batch = [SeqBatch { tokens: &toks, cache: &mut cache, logits: Logits::Last }];
        model.forward(&pool, isa, &mut batch, &mut sc, &mut out).unwrap();
    }
    assert_eq!(got, [7042, 30, 198, 198, 504, 1797, 1918, 553, 253, 2155, 282, 4723, 216, 35, 33, 33]);
}
