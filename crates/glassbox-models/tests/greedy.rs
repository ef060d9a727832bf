//! Greedy continuations must equal llama.cpp's token for token (fixtures from
//! scripts/gen_fixtures.py with llama-cpp-python).
//!
//! What "equal" can mean here: quantised inference rounds activations to int8 at every matmul,
//! so a change in float summation order (1e-7) can flip one rounding and move logits by a
//! visible amount after 30 layers. llama.cpp itself disagrees with itself by 0.7–1.5 logits
//! (SmolLM2) and 1–3 (Gemma 3) when the same tokens are evaluated in one batch instead of one at
//! a time; the fixture records that measured self-disagreement per case. So:
//! - at every compared step, our logits for llama.cpp's top-8 tokens must be within that bound
//!   plus our own kernel paths' spread: glassbox's scalar, AVX2 and AVX-512 paths (same math,
//!   other float summation orders) disagree with each other by up to ~1 logit at the same
//!   chaotic positions (`our_paths_spread`, ignored, measures it), so two engines' noise adds;
//! - the next token is always llama.cpp's (teacher forcing), so both implementations see the
//!   same context at every step and every one of the 24 × 32 steps is compared;
//! - our argmax must equal llama.cpp's at every step, except at a near-tie: llama.cpp's own
//!   logit for our token must then be within a fixed `NEAR_TIE_MARGIN` of its top logit (our
//!   token is its runner-up, or one of several within the margin); such waivers are counted
//!   and reported and capped at `MAX_WAIVERS_PERCENT` of the steps. Anything else fails. (The distribution-level yardstick,
//!   KL divergence against a higher-precision reference, is the engine-fidelity issue's.)

use glassbox_kernels::{Isa, ThreadPool};
use glassbox_models::{KvCache, Logits, Model, Scratch, SeqBatch};
use serde::Deserialize;


/// Largest gap (logits, llama.cpp's) between llama.cpp's choice and ours at a waived step.
/// Measured 2026-11-30 (AMD EPYC, AVX-512 + AVX-VNNI), largest gap per kernel path:
/// AVX-VNNI 0.370 (Gemma 3) / 0.236 (SmolLM2), AVX2 0.370 / 0.236, scalar 0.434 / 0.818 (the
/// scalar path rounds differently from llama.cpp's x86 build, which the fixtures come from).
const NEAR_TIE_MARGIN: f32 = 1.0;
/// At most this share of all compared steps may be near-tie waivers (measured: Gemma 3 23/768
/// = 3.0 % on every path; SmolLM2 16/768 = 2.1 % on AVX-VNNI and AVX2, 28/768 = 3.6 % scalar).
const MAX_WAIVERS_PERCENT: usize = 5;
/// Largest top-8 logit disagreement between two of glassbox's own kernel paths over a fixture's
/// teacher-forced steps (`our_paths_spread`). Measured 2026-11-30 on AMD EPYC (Zen 5, every
/// path): SmolLM2 1.027 (scalar vs AVX2), 0.854 (AVX2 vs AVX-512); Gemma 3 1.498 (AVX2 vs
/// AVX-512), 1.489 (scalar vs AVX2). llama.cpp's batch-vs-single: 0.7–1.5 / 1–3.
const SMOLLM2_SPREAD: f32 = 1.1;
const GEMMA3_SPREAD: f32 = 1.6;

#[derive(Deserialize)]
struct Case {
    prompt: String,
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
    top: Vec<Vec<(u32, f32)>>,
    llama_self_max_diff: f32,
}
#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

fn argmax(x: &[f32]) -> u32 {
    let mut b = 0;
    for i in 1..x.len() {
        if x[i] > x[b] {
            b = i;
        }
    }
    b as u32
}

fn check(model_file: &str, fixture: &str, own_spread: f32) {
    let mut model = Model::load(&glassbox_testdata::model(model_file)).unwrap();
    // The production path: repacked weights where the CPU has a packed kernel.
    model.pack(Isa::detect());
    let fx: Fixture = serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture(fixture)).unwrap()).unwrap();
    assert!(fx.cases.len() >= 20);
    let pool = ThreadPool::new(2);
    let isa = Isa::detect();
    let mut sc = Scratch::default();
    let (mut matched, mut total) = (0, 0);
    let mut report = Vec::new();
    let mut worst = 0f32;
    for c in &fx.cases {
        let mut cache = KvCache::new(&model.config, 256);
        let mut logits = Vec::new();
        let mut b = [SeqBatch { tokens: &c.prompt_ids, cache: &mut cache, logits: Logits::Last }];
        model.forward(&pool, isa, &mut b, &mut sc, &mut logits).unwrap();
        let bound = c.llama_self_max_diff + own_spread;
        for (i, &want) in c.ids.iter().enumerate() {
            let got = argmax(&logits);
            total += 1;
            for &(id, v) in &c.top[i] {
                let d = (logits[id as usize] - v).abs();
                worst = worst.max(d);
                assert!(d <= bound, "{model_file}: prompt {:?} step {i}: logit of token {id} is {} vs llama.cpp {v} (bound {bound}: llama.cpp's own {} + our paths' {own_spread})", c.prompt, logits[id as usize], c.llama_self_max_diff);
            }
            if got != want {
                // llama.cpp's own logit for our token: how far behind its choice it was there.
                let rank = c.top[i].iter().position(|t| t.0 == got);
                let gap = rank.map(|r| c.top[i][0].1 - c.top[i][r].1);
                assert!(
                    matches!(gap, Some(g) if g < NEAR_TIE_MARGIN),
                    "{model_file}: prompt {:?} step {i}: argmax {got}, llama.cpp {want}; our token is llama.cpp's #{} ({gap:?} logits behind), not a near-tie within {NEAR_TIE_MARGIN}",
                    c.prompt,
                    rank.map_or("unranked".into(), |r| (r + 1).to_string())
                );
                report.push(format!("{:?} step {i} (our token llama.cpp's #{}, {:.3} behind)", c.prompt, rank.unwrap() + 1, gap.unwrap()));
            } else {
                matched += 1;
            }
            logits.clear();
            let t = [want];
            let mut b = [SeqBatch { tokens: &t, cache: &mut cache, logits: Logits::Last }];
            model.forward(&pool, isa, &mut b, &mut sc, &mut logits).unwrap();
        }
    }
    let n_all = fx.cases.len() * fx.cases[0].ids.len();
    eprintln!("{model_file}: {matched}/{n_all} greedy steps identical, largest top-8 logit difference {worst:.3}; near-ties resolved the other way: {}", report.join("; "));
    assert_eq!(total, n_all);
    assert!(report.len() * 100 <= n_all * MAX_WAIVERS_PERCENT, "{model_file}: {} near-tie waivers in {n_all} steps, over {MAX_WAIVERS_PERCENT}%", report.len());
}

#[test]
fn smollm2_greedy_matches_llama_cpp() {
    check(glassbox_testdata::SMOLLM2, "greedy/smollm2.json", SMOLLM2_SPREAD);
}

#[test]
fn gemma3_greedy_matches_llama_cpp() {
    check(glassbox_testdata::GEMMA3, "greedy/gemma3.json", GEMMA3_SPREAD);
}

/// Teacher-forced logits of llama.cpp's top-8 tokens at every step of every case, on `isa`.
fn top_logits(isa: Isa, model_file: &str, fx: &Fixture) -> Vec<f32> {
    let mut model = Model::load(&glassbox_testdata::model(model_file)).unwrap();
    model.pack(isa);
    let (pool, mut sc, mut out) = (ThreadPool::new(2), Scratch::default(), Vec::new());
    for c in &fx.cases {
        let mut cache = KvCache::new(&model.config, 256);
        let mut logits = Vec::new();
        let mut b = [SeqBatch { tokens: &c.prompt_ids, cache: &mut cache, logits: Logits::Last }];
        model.forward(&pool, isa, &mut b, &mut sc, &mut logits).unwrap();
        for (i, &want) in c.ids.iter().enumerate() {
            out.extend(c.top[i].iter().map(|&(id, _)| logits[id as usize]));
            logits.clear();
            let t = [want];
            let mut b = [SeqBatch { tokens: &t, cache: &mut cache, logits: Logits::Last }];
            model.forward(&pool, isa, &mut b, &mut sc, &mut logits).unwrap();
        }
    }
    out
}

/// Measures `SMOLLM2_SPREAD` / `GEMMA3_SPREAD`: how far this CPU's kernel paths disagree.
#[test]
#[ignore = "measurement (slow on the scalar path); run with --ignored --nocapture"]
fn our_paths_spread() {
    for (file, fixture) in [(glassbox_testdata::SMOLLM2, "greedy/smollm2.json"), (glassbox_testdata::GEMMA3, "greedy/gemma3.json")] {
        let fx: Fixture = serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture(fixture)).unwrap()).unwrap();
        let runs: Vec<(Isa, Vec<f32>)> = Isa::supported().into_iter().map(|i| (i, top_logits(i, file, &fx))).collect();
        for (i, (a, la)) in runs.iter().enumerate() {
            for (b, lb) in &runs[i + 1..] {
                let spread = la.iter().zip(lb).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                println!("{file}: {a} vs {b}: {spread:.3}");
            }
        }
    }
}
