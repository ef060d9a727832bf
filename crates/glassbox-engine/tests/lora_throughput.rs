//! Decode throughput with LoRA adapters, side by side in one run (opt-in: a measurement, not a
//! timed test): the bare base, every sequence on one adapter, and sequences spread over four
//! adapters in the same batch — counted over full-batch decode steps only. `cargo test --release -p glassbox-engine --test lora_throughput
//! -- --ignored --nocapture` (GLASSBOX_BENCH_MODEL and GLASSBOX_BENCH_ADAPTER pick other files).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use glassbox_engine::{Adapter, Engine, EngineOptions, EventSink, GenerateRequest, SamplingParams, SchedRequest, SeqEvent};

#[derive(Clone, Default)]
struct Count(Arc<Mutex<usize>>);

impl EventSink for Count {
    fn send(&mut self, ev: SeqEvent) -> bool {
        if let SeqEvent::Token { .. } = ev {
            *self.0.lock().unwrap() += 1;
        }
        true
    }
    fn is_closed(&self) -> bool {
        false
    }
}

#[test]
#[ignore = "a measurement: run it by hand"]
fn decode_throughput_with_adapters() {
    let model = std::env::var("GLASSBOX_BENCH_MODEL").map(std::path::PathBuf::from).unwrap_or_else(|_| glassbox_testdata::model(glassbox_testdata::SMOLLM2));
    let adapter = std::env::var("GLASSBOX_BENCH_ADAPTER").map(std::path::PathBuf::from).unwrap_or_else(|_| glassbox_testdata::fixture("lora/smollm2-lora.gguf"));
    let mut e = Engine::load(&model, &EngineOptions { threads: 2, ctx_size: 512, batch_size: 512, ..Default::default() }).unwrap();
    let a = Adapter::open(&adapter).unwrap();
    // Small scales: a random adapter at full scale derails the model into early end-of-text.
    let ids: Vec<usize> = [0.3, 0.25, 0.2, 0.15].iter().map(|&s| e.attach_adapter(&a, "(bench)", s, "base").unwrap()).collect();
    let chat = e.render_chat(&[glassbox_engine::Message::new("user", "Write a long story about a lighthouse keeper and the sea.")]).unwrap();
    let prompt = e.tokenize_chat(&chat);
    let (mut sched, _fe) = e.into_scheduler(8, 512);
    let mut run = |label: &str, adapters: &[Option<usize>]| -> f64 {
        let count = Count::default();
        for (i, &ad) in adapters.iter().enumerate() {
            let sampling = SamplingParams { temperature: 0.8, seed: i as u64, ..Default::default() };
            let request = GenerateRequest { constraint: None, prompt: prompt.clone(), max_tokens: 128, sampling, stop: vec![] };
            sched.submit(SchedRequest { request, top_logprobs: None, prompt_logprobs: None, sink: Box::new(count.clone()), adapter: ad });
        }
        // Decode only, at full batch: the steps in which every sequence got a token (prefill
        // steps and the tail after a sequence stopped are left out, so an adapter that ends a
        // sequence early does not change the rate).
        let (mut n, mut secs) = (0usize, 0f64);
        let mut last = 0;
        loop {
            let t = Instant::now();
            let more = sched.step();
            let dt = t.elapsed().as_secs_f64();
            let now = *count.0.lock().unwrap();
            // (`last >= n`: every sequence had its first token before this step, so no prefill.)
            if now - last == adapters.len() && last >= adapters.len() {
                n += now - last;
                secs += dt;
            }
            last = now;
            if !more {
                break;
            }
        }
        let tps = n as f64 / secs;
        eprintln!("{label:<36} {n:>4} tokens in {secs:6.2} s of full-batch decode steps: {tps:7.1} tok/s");
        tps
    };
    run("warm-up", &[None; 8]);
    // Alternating rounds: a slow spell of the machine hits both sides of a ratio alike.
    let four: Vec<Option<usize>> = (0..8).map(|i| Some(ids[i % 4])).collect();
    let mut sums = [0f64; 5];
    let rounds = 3;
    for _ in 0..rounds {
        sums[0] += run("1 sequence, bare", &[None]);
        sums[1] += run("1 sequence, adapter", &[Some(ids[0])]);
        sums[2] += run("8 sequences, bare", &[None; 8]);
        sums[3] += run("8 sequences, one adapter", &[Some(ids[0]); 8]);
        sums[4] += run("8 sequences over 4 adapters", &four);
    }
    let m: Vec<f64> = sums.iter().map(|s| s / f64::from(rounds)).collect();
    eprintln!("means over {rounds} rounds (tok/s): 1 bare {:.1}, 1 adapter {:.1}, 8 bare {:.1}, 8 one adapter {:.1}, 8 over 4 {:.1}", m[0], m[1], m[2], m[3], m[4]);
    eprintln!("ratios: 1 seq adapter/bare {:.3}; 8 seqs one adapter/bare {:.3}; 4 adapters/one adapter {:.3}", m[1] / m[0], m[3] / m[2], m[4] / m[3]);
}
