//! Fidelity measured as llama.cpp's users measure it: KL divergence of our next-token
//! distributions from llama.cpp's on the same file and text, not exact greedy text (two correct
//! engines differ at near-ties). The reference rows (tests/fixtures/kld/*-top64.json, written by
//! scripts/gen_fixtures.py kldtop from llama-perplexity's base file) keep llama.cpp's top 64
//! tokens per position; the KL divergence over those plus one bucket for the rest can only be
//! lower than the full one, so the bounds here are necessary conditions, measured with margin.
//! Two correct engines on one quantised file differ by about as much as either differs from the
//! exact F32 model (both round activations, differently): which is closer to F32 is measured
//! against F32 base files (docs/benchmarks.md), here we only catch regressions.

use glassbox_engine::{Engine, EngineOptions, KvType};
use glassbox_perplexity::stats::coarse_kld;
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
    next: u32,
    ids: Vec<u32>,
    logprobs: Vec<f32>,
}

#[derive(Deserialize)]
struct Fixture {
    n_ctx: usize,
    chunks: usize,
    tokens: Vec<u32>,
    rows: Vec<Row>,
}

struct Measured {
    kld_mean: f64,
    kld_max: f64,
    same_top: f64,
}

fn measure(file: &str, fixture: &str) -> Measured {
    measure_with(file, fixture, (KvType::F16, KvType::F16))
}

fn measure_with(file: &str, fixture: &str, cache_types: (KvType, KvType)) -> Measured {
    measure_adapted(file, fixture, cache_types, None)
}

/// As [`measure_with`], with a LoRA adapter (a fixture path) attached.
fn measure_adapted(file: &str, fixture: &str, cache_types: (KvType, KvType), adapter: Option<&str>) -> Measured {
    let fx: Fixture = serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture(fixture)).unwrap()).unwrap();
    let opts = EngineOptions { threads: 2, ctx_size: fx.n_ctx, batch_size: 512, cache_types, ..Default::default() };
    let mut e = Engine::load(&glassbox_testdata::model(file), &opts).unwrap();
    if let Some(a) = adapter {
        let ad = glassbox_engine::Adapter::open(&glassbox_testdata::fixture(a)).unwrap();
        let id = e.attach_adapter(&ad, "(test)", 1.0, file).unwrap();
        e.set_active_adapters(&[id]).unwrap();
    }
    let n_vocab = e.model.config.n_vocab;
    let per = glassbox_perplexity::scored_per_chunk(fx.n_ctx);
    assert_eq!(fx.rows.len(), per * fx.chunks);
    let (mut sum, mut max, mut same) = (0f64, 0f64, 0usize);
    e.score_chunks(&fx.tokens, fx.n_ctx, fx.chunks, |c, rows| {
        for (r, logits) in rows.chunks_exact(n_vocab).enumerate() {
            let row = &fx.rows[c * per + r];
            assert_eq!(row.next, fx.tokens[c * fx.n_ctx + fx.n_ctx / 2 + 1 + r], "fixture rows line up with tokens");
            let k = coarse_kld(&row.ids, &row.logprobs, logits);
            sum += k;
            max = max.max(k);
            same += (glassbox_engine::argmax(logits) == row.ids[0]) as usize;
        }
        Ok(())
    })
    .unwrap();
    let n = fx.rows.len() as f64;
    let m = Measured { kld_mean: sum / n, kld_max: max, same_top: 100.0 * same as f64 / n };
    eprintln!("{file} (cache {}/{}): coarse KLD vs llama.cpp mean {:.6} max {:.6}, same top {:.2} % over {} positions (isa {:?})", cache_types.0.name(), cache_types.1.name(), m.kld_mean, m.kld_max, m.same_top, fx.rows.len(), e.isa());
    m
}

/// Run `file` against its fixture and hold it to measured bounds.
fn check(file: &str, fixture: &str, mean: f64, max: f64, same_top: f64) {
    let m = measure(file, fixture);
    assert!(m.kld_mean < mean, "mean KLD {}", m.kld_mean);
    assert!(m.kld_max < max, "max KLD {}", m.kld_max);
    assert!(m.same_top >= same_top, "same top {} %", m.same_top);
}

// Bounds: measured (scalar / AVX2 / AVX-VNNI) with margin —
// SmolLM2: mean 0.0030 / 0.0029 / 0.0029, max 0.018 / 0.016 / 0.016, same top 97.6 / 98.0 / 98.0 %;
// Gemma 3: mean 0.0060 / 0.0057 / 0.0057, max 0.045 / 0.053 / 0.053, same top 93.3 / 94.8 / 94.8 %;
// Qwen 0.5B: mean 0.0012 / 0.0010 / 0.0010, max 0.012 / 0.0086 / 0.0086, same top 97.2 / 98.4 / 98.4 %.

#[test]
fn smollm2_distributions_match_llama_cpp() {
    check(glassbox_testdata::SMOLLM2, "kld/smollm2-top64.json", 0.005, 0.04, 95.0);
}

#[test]
fn gemma3_distributions_match_llama_cpp() {
    check(glassbox_testdata::GEMMA3, "kld/gemma3-top64.json", 0.01, 0.1, 90.0);
}

#[test]
fn qwen05_distributions_match_llama_cpp() {
    check(glassbox_testdata::QWEN05, "kld/qwen05-top64.json", 0.003, 0.03, 95.0);
}

/// Opt-in (the 1.5B is not fetched by `--all`): `python3 scripts/fetch_models.py
/// qwen2.5-coder-1.5b-instruct-q4_k_m`, then `cargo test --release -p glassbox-engine --test kld
/// -- --ignored`.
#[test]
#[ignore = "opt-in: needs the 1.1 GB Qwen2.5-Coder-1.5B (fetch it by name)"]
fn qwen15_distributions_match_llama_cpp() {
    // Measured (scalar / AVX-VNNI): mean 0.0022 / 0.0023, max 0.012 / 0.011, same top 95.6 / 96.8 %.
    check(glassbox_testdata::QWEN15, "kld/qwen15-top64.json", 0.005, 0.03, 93.0);
}

/// LoRA applied without merging, against llama.cpp applying the same adapter (a synthetic rank-4
/// F16 adapter on attn_q and attn_v of SmolLM2, PEFT's default targets,
/// tests/fixtures/lora/, made by scripts/gen_lora.py; llama-perplexity --lora wrote the
/// reference). The divergence must be about what it is without the adapter, and the adapter must
/// visibly change the distributions. Measured (AVX-512, 252 positions): with the adapter mean
/// 0.0027, max 0.028; without it 0.0025 / 0.010; the adapter ignored 0.0067 / 0.040 (and the
/// adapter turns the greedy answer to "What is the capital of France?" from "L'Étoile, la
/// Marseillaise, …" into "The capital of France is Paris."). Same top is 96.8 % with the adapter
/// against 98.8 % without, but it is not a stable measure here: three arithmetically equivalent
/// orders of the adapter's sums (ggml's F16 product; F16 widened to F32 with f16-rounded inputs,
/// as dot products or as row additions — each agreeing with llama.cpp to a mean KLD of 2.5e-7
/// to 2.7e-7 on the F32 tiny model) give 98.0, 96.0 and 96.8 %, so the bound on it is loose.
#[test]
fn smollm2_with_an_adapter_matches_llama_cpp_with_it() {
    let f16 = (KvType::F16, KvType::F16);
    let with = measure_adapted(glassbox_testdata::SMOLLM2, "kld/smollm2-lora-top64.json", f16, Some("lora/smollm2-lora.gguf"));
    let without = measure(glassbox_testdata::SMOLLM2, "kld/smollm2-top64.json");
    let ignored = measure(glassbox_testdata::SMOLLM2, "kld/smollm2-lora-top64.json");
    eprintln!("same top: with adapter {:.2} %, without {:.2} %; adapter ignored {:.2} % (mean KLD {:.4})", with.same_top, without.same_top, ignored.same_top, ignored.kld_mean);
    assert!(with.same_top >= without.same_top - 3.5, "same top with the adapter {} % < without {} %", with.same_top, without.same_top);
    assert!(with.kld_mean < 1.4 * without.kld_mean && with.kld_max < 0.04, "mean KLD {} (without the adapter {}) max {}", with.kld_mean, without.kld_mean, with.kld_max);
    assert!(ignored.kld_mean > 1.8 * with.kld_mean, "the adapter changes little: {} vs {}", ignored.kld_mean, with.kld_mean);
}

/// A q8_0 KV cache (llama.cpp's `-ctk q8_0 -ctv q8_0`) stores 34 bytes per 32 values instead of
/// 64. Qwen2.5's keys have outlier dimensions, so 8-bit keys cost it visibly — in llama.cpp too:
/// against its own f16-cache run on this text (4 chunks), its q8_0-K run has mean KLD 0.0086,
/// max 0.49, same top 94.5 %. Ours here, against llama.cpp's f16 run: f16 cache 0.0011 / 97.6 %,
/// q8_0 cache 0.0135 (max 0.50) / 94.0 % (AVX-512, 2026-11-30). Bounds with margin.
#[test]
fn q8_0_kv_cache_costs_what_llama_cpps_costs() {
    let f16 = measure(glassbox_testdata::QWEN05, "kld/qwen05-top64.json");
    let q8 = measure_with(glassbox_testdata::QWEN05, "kld/qwen05-top64.json", (KvType::Q8_0, KvType::Q8_0));
    assert!(q8.kld_mean < 0.025 && q8.kld_mean > f16.kld_mean, "q8_0 cache mean KLD {} (f16 {})", q8.kld_mean, f16.kld_mean);
    assert!(q8.same_top >= 90.0, "q8_0 cache same top {} % (f16 {} %)", q8.same_top, f16.same_top);
}

/// Logits of the first `chunks` chunks of a fixture's tokens under `opts`.
fn chunk_logits(file: &str, fixture: &str, chunks: usize, opts: EngineOptions) -> (Vec<f32>, usize) {
    let fx: Fixture = serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture(fixture)).unwrap()).unwrap();
    let mut e = Engine::load(&glassbox_testdata::model(file), &EngineOptions { ctx_size: fx.n_ctx, ..opts }).unwrap();
    let mut out = Vec::new();
    e.score_chunks(&fx.tokens, fx.n_ctx, chunks, |_, rows| {
        out.extend_from_slice(rows);
        Ok(())
    })
    .unwrap();
    (out, e.model.config.n_vocab)
}

fn mean_kld(reference: &[f32], other: &[f32], n_vocab: usize) -> f64 {
    let logp = |row: &[f32]| {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        row.iter().map(move |&x| x as f64 - lse).collect::<Vec<f64>>()
    };
    let rows: Vec<f64> = reference
        .chunks_exact(n_vocab)
        .zip(other.chunks_exact(n_vocab))
        .map(|(a, b)| logp(a).iter().zip(logp(b)).map(|(p, q)| p.exp() * (p - q)).sum())
        .collect();
    rows.iter().sum::<f64>() / rows.len() as f64
}

#[test]
fn the_two_pass_output_layer_halves_the_divergence_from_the_exact_model() {
    // Against exact mode (what the exactly dequantized F32 file computes): the default output
    // layer (each row's 8-bit rounding error carried in a second pass) must be much closer than
    // llama.cpp's single rounding (`fast_logits`). Measured on 2 chunks: SmolLM2 0.00248 vs 0.00363
    // (avx512), 0.00237 vs 0.00323 (scalar).
    let base = EngineOptions { threads: 2, batch_size: 512, ..Default::default() };
    let fx = "kld/smollm2-top64.json";
    let (exact, nv) = chunk_logits(glassbox_testdata::SMOLLM2, fx, 2, EngineOptions { exact: true, ..base.clone() });
    let (precise, _) = chunk_logits(glassbox_testdata::SMOLLM2, fx, 2, base.clone());
    let (fast, _) = chunk_logits(glassbox_testdata::SMOLLM2, fx, 2, EngineOptions { fast_logits: true, ..base });
    let (kp, kf) = (mean_kld(&exact, &precise, nv), mean_kld(&exact, &fast, nv));
    eprintln!("KLD from exact: two-pass output {kp:.6}, single rounding {kf:.6}");
    assert!(kp < 0.85 * kf, "two-pass {kp} vs single {kf}");
}
