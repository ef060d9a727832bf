//! Decode throughput with LoRA adapters, side by side in one run (opt-in: a measurement, not a
//! timed test): the bare base, every sequence on one adapter, and sequences spread over four
//! adapters in the same batch. `cargo test --release -p glassbox-engine --test lora_throughput
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
    let ids: Vec<usize> = [1.0, 0.9, 0.8, 0.7].iter().map(|&s| e.attach_adapter(&a, "(bench)", s, "base").unwrap()).collect();
    let chat = e.render_chat(&[glassbox_engine::Message::new("user", "Write a long story about a lighthouse keeper and the sea.")]).unwrap();
    let prompt = e.tokenize_chat(&chat);
    let (mut sched, _fe) = e.into_scheduler(8, 512);
    let mut run = |label: &str, adapters: &[Option<usize>]| -> f64 {
        let count = Count::default();
        for (i, &ad) in adapters.iter().enumerate() {
            let sampling = SamplingParams { temperature: 0.8, seed: i as u64, ..Default::default() };
            let request = GenerateRequest { prompt: prompt.clone(), max_tokens: 64, sampling, stop: vec![] };
            sched.submit(SchedRequest { request, top_logprobs: None, prompt_logprobs: None, sink: Box::new(count.clone()), adapter: ad });
        }
        let t = Instant::now();
        while sched.step() {}
        let secs = t.elapsed().as_secs_f64();
        let n = *count.0.lock().unwrap();
        let tps = n as f64 / secs;
        eprintln!("{label:<36} {n:>4} tokens in {secs:6.2} s: {tps:7.1} tok/s");
        tps
    };
    run("warm-up", &[None; 8]);
    let one_bare = run("1 sequence, bare", &[None]);
    let one_lora = run("1 sequence, adapter", &[Some(ids[0])]);
    let bare = run("8 sequences, bare", &[None; 8]);
    let same = run("8 sequences, one adapter", &[Some(ids[0]); 8]);
    let four: Vec<Option<usize>> = (0..8).map(|i| Some(ids[i % 4])).collect();
    let spread = run("8 sequences over 4 adapters", &four);
    eprintln!("ratios: 1 seq adapter/bare {:.3}; 8 seqs one adapter/bare {:.3}; 4 adapters/one adapter {:.3}", one_lora / one_bare, same / bare, spread / same);
}
