//! Continuous batching must not change what a request gets: each request's tokens through the
//! scheduler (joined mid-flight, prefilled in small chunks, batched with others) equal what
//! single-request generation gives for the same request.

use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};

use glassbox_engine::{Engine, EngineOptions, EventSink, FinishReason, GenerateRequest, SamplingParams, SchedRequest, SeqEvent};

#[derive(Clone, Default)]
struct Collect {
    events: Arc<Mutex<Vec<SeqEvent>>>,
    closed: Arc<AtomicBool>,
    close_after_tokens: Option<usize>,
}

impl EventSink for Collect {
    fn send(&mut self, ev: SeqEvent) -> bool {
        if self.closed.load(Ordering::SeqCst) {
            return false;
        }
        let mut e = self.events.lock().unwrap();
        e.push(ev);
        let n_tokens = e.iter().filter(|e| matches!(e, SeqEvent::Token { .. })).count();
        if self.close_after_tokens.is_some_and(|n| n_tokens >= n) {
            self.closed.store(true, Ordering::SeqCst);
        }
        true
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Collect {
    fn ids_text_finish(&self) -> (Vec<u32>, String, Option<FinishReason>) {
        let mut ids = vec![];
        let mut text = String::new();
        let mut fin = None;
        for e in self.events.lock().unwrap().iter() {
            match e {
                SeqEvent::Token { token, text: t, .. } => {
                    ids.push(*token);
                    text.push_str(t);
                }
                SeqEvent::Text(t) => text.push_str(t),
                SeqEvent::Done { finish_reason, .. } => fin = Some(*finish_reason),
                SeqEvent::Error(e) => panic!("error event: {e}"),
                SeqEvent::PromptLogprobs(_) => {}
            }
        }
        (ids, text, fin)
    }
    fn prompt_logprobs(&self) -> Vec<glassbox_engine::TokenLogprob> {
        let ev = self.events.lock().unwrap();
        let mut found = ev.iter().filter_map(|e| if let SeqEvent::PromptLogprobs(l) = e { Some(l.clone()) } else { None });
        let first = found.next().expect("prompt log-probabilities were sent");
        assert!(found.next().is_none(), "sent once");
        first
    }
}

#[test]
fn scored_prompts_change_no_output_and_match_loglikelihood() {
    // `echo` + `logprobs`: every prompt token after the first is scored, in chunks small
    // enough to bound the logits rows, while generation goes on exactly as without scoring.
    let mut single = engine();
    let reqs = requests(&single);
    let (mut sched, _fe) = engine().into_scheduler(4, 300);
    let plain: Vec<Collect> = reqs.iter().map(|_| Collect::default()).collect();
    let scored: Vec<Collect> = reqs.iter().map(|_| Collect::default()).collect();
    for ((r, p), s) in reqs.iter().zip(&plain).zip(&scored) {
        for (sink, lp) in [(p, None), (s, Some(3))] {
            sched.submit(SchedRequest { request: GenerateRequest { constraint: None, prompt: r.prompt.clone(), max_tokens: r.max_tokens, sampling: r.sampling.clone(), stop: r.stop.clone() }, top_logprobs: Some(1), prompt_logprobs: lp, sink: Box::new(sink.clone()), adapter: None });
        }
    }
    while sched.step() {}
    for ((r, p), s) in reqs.iter().zip(&plain).zip(&scored) {
        assert_eq!(p.ids_text_finish(), s.ids_text_finish());
        let lps = s.prompt_logprobs();
        assert_eq!(lps.len(), r.prompt.len() - 1);
        assert!(lps.iter().zip(&r.prompt[1..]).all(|(l, &t)| l.token == t && l.top.len() == 3 && l.logprob <= 0.0));
        let want = single
            .loglikelihood(&[glassbox_engine::LoglikRequest { context: r.prompt[..1].to_vec(), continuations: vec![r.prompt[1..].to_vec()] }])
            .unwrap()[0][0]
            .loglik;
        let got: f64 = lps.iter().map(|l| f64::from(l.logprob)).sum();
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
    }
    // A long scored prompt spans several chunks.
    let long: Vec<u32> = single.tokenizer.encode(&"The quick brown fox jumps over the lazy dog. ".repeat(20));
    assert!(long.len() > 150);
    let s = Collect::default();
    sched.submit(SchedRequest {
        request: GenerateRequest { constraint: None, prompt: long.clone(), max_tokens: 1, sampling: SamplingParams { temperature: 0.0, ..Default::default() }, stop: vec![] },
        top_logprobs: None,
        prompt_logprobs: Some(0),
        sink: Box::new(s.clone()),
        adapter: None,
    });
    while sched.step() {}
    assert_eq!(s.prompt_logprobs().len(), long.len() - 1);
}

fn engine() -> Engine {
    Engine::load(&glassbox_testdata::model(glassbox_testdata::SMOLLM2), &EngineOptions { threads: 2, ctx_size: 256, batch_size: 512, ..Default::default() }).unwrap()
}

fn requests(e: &Engine) -> Vec<GenerateRequest> {
    let prompts = ["The capital of France is", "Once upon a time, in a land far away, there lived", "def fib(n):", "1, 2, 3,", "Water boils at", "My favourite colour"];
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| GenerateRequest { constraint: None,
            prompt: e.tokenizer.encode(p),
            max_tokens: 12 + i,
            sampling: if i % 2 == 0 { SamplingParams { temperature: 0.0, ..Default::default() } } else { SamplingParams { temperature: 0.9, seed: i as u64, ..Default::default() } },
            stop: if i == 4 { vec!["°".into()] } else { vec![] },
        })
        .collect()
}

#[test]
fn batched_outputs_equal_single_request_outputs() {
    let mut single = engine();
    let reqs = requests(&single);
    let want: Vec<_> = reqs.iter().map(|r| single.generate(r, |_| {}).unwrap()).collect();
    let (mut sched, _fe) = engine().into_scheduler(4, 7);
    let sinks: Vec<Collect> = reqs.iter().map(|_| Collect::default()).collect();
    // Half the requests arrive first; the rest join while those are decoding.
    for (r, s) in reqs.iter().zip(&sinks).take(3) {
        sched.submit(SchedRequest { request: GenerateRequest { constraint: None, prompt: r.prompt.clone(), max_tokens: r.max_tokens, sampling: r.sampling.clone(), stop: r.stop.clone() }, top_logprobs: None, prompt_logprobs: None, sink: Box::new(s.clone()), adapter: None });
    }
    for _ in 0..5 {
        sched.step();
    }
    for (r, s) in reqs.iter().zip(&sinks).skip(3) {
        sched.submit(SchedRequest { request: GenerateRequest { constraint: None, prompt: r.prompt.clone(), max_tokens: r.max_tokens, sampling: r.sampling.clone(), stop: r.stop.clone() }, top_logprobs: None, prompt_logprobs: None, sink: Box::new(s.clone()), adapter: None });
    }
    let mut max_running = 0;
    let mut steps = 0;
    while !sched.is_idle() {
        sched.step();
        max_running = max_running.max(sched.stats.running.load(Ordering::SeqCst));
        steps += 1;
        assert!(steps < 10_000);
    }
    assert!(max_running <= 4);
    for (i, (w, s)) in want.iter().zip(&sinks).enumerate() {
        let (ids, text, fin) = s.ids_text_finish();
        assert_eq!(ids, w.ids, "request {i}");
        assert_eq!(text, w.text, "request {i}");
        assert_eq!(fin, Some(w.finish_reason), "request {i}");
    }
}

#[test]
fn disconnected_client_frees_its_slot_within_one_step() {
    let e = engine();
    let prompt = e.tokenizer.encode("Tell me a long story about a dragon");
    let (mut sched, _fe) = e.into_scheduler(2, 64);
    let quitter = Collect { close_after_tokens: Some(2), ..Default::default() };
    let stayer = Collect::default();
    for s in [&quitter, &stayer] {
        sched.submit(SchedRequest {
            request: GenerateRequest { constraint: None, prompt: prompt.clone(), max_tokens: 40, sampling: SamplingParams { temperature: 0.0, ..Default::default() }, stop: vec![] },
            top_logprobs: Some(2),
            prompt_logprobs: None,
            sink: Box::new(s.clone()),
            adapter: None,
        });
    }
    while !quitter.closed.load(Ordering::SeqCst) {
        sched.step();
    }
    sched.step();
    assert_eq!(sched.stats.running.load(Ordering::SeqCst), 1, "slot freed");
    while !sched.is_idle() {
        sched.step();
    }
    let (ids, _, fin) = stayer.ids_text_finish();
    assert!(ids.len() > 2 && ids.len() <= 40, "{}", ids.len());
    assert!(fin.is_some(), "the remaining request finished normally");
    let (q_ids, _, q_fin) = quitter.ids_text_finish();
    assert_eq!((q_ids.len(), q_fin), (2, None), "the quitter got nothing after leaving");
    // logprobs were requested: every token event carries the chosen token's and 2 alternatives.
    for ev in stayer.events.lock().unwrap().iter() {
        if let SeqEvent::Token { token, logprob: Some(lp), .. } = ev {
            assert_eq!(lp.token, *token);
            assert!(lp.logprob <= 0.0 && lp.top.len() == 2);
            assert_eq!(lp.top[0].0, *token, "greedy picks the most likely token");
        }
    }
}

#[test]
fn oversized_prompt_is_an_error_event() {
    let e = engine();
    let prompt = e.tokenizer.encode(&"word ".repeat(300));
    let (mut sched, _fe) = e.into_scheduler(2, 64);
    let s = Collect::default();
    sched.submit(SchedRequest { request: GenerateRequest { constraint: None, prompt, max_tokens: 4, sampling: SamplingParams::default(), stop: vec![] }, top_logprobs: None, prompt_logprobs: None, sink: Box::new(s.clone()), adapter: None });
    sched.step();
    let ev = s.events.lock().unwrap();
    assert!(matches!(&ev[0], SeqEvent::Error(m) if m.contains("context size is 256")), "{ev:?}");
}

#[test]
fn drafts_in_the_scheduler_change_no_output_and_save_steps() {
    let mut single = engine();
    let mut reqs = requests(&single);
    // Requests whose output repeats their prompt, where drafts get accepted.
    for (i, p) in ["a b c d e f g a b c d e f g a b c d e f g a b", "1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1,"].iter().enumerate() {
        reqs.push(GenerateRequest { constraint: None,
            prompt: single.tokenizer.encode(p),
            max_tokens: 40,
            sampling: if i == 0 { SamplingParams { temperature: 0.0, ..Default::default() } } else { SamplingParams { temperature: 0.8, seed: 5, ..Default::default() } },
            stop: vec![],
        });
    }
    let want: Vec<_> = reqs.iter().map(|r| single.generate(r, |_| {}).unwrap()).collect();
    // 0: plain; 1: prompt lookup; 2: the same model as its own draft (every draft accepted
    // under greedy sampling, so the step saving is certain), one draft cache per sequence.
    let run = |mode: usize| {
        let (sched, _fe) = engine().into_scheduler(4, 16);
        let mut sched = match mode {
            0 => sched,
            1 => sched.with_lookup(8),
            _ => {
                let target = engine();
                let draft = glassbox_models::Model::load(&glassbox_testdata::model(glassbox_testdata::SMOLLM2)).unwrap();
                sched.with_draft(glassbox_engine::DraftModel::new(draft, &target, 256).unwrap(), 4)
            }
        };
        let sinks: Vec<Collect> = reqs.iter().map(|_| Collect::default()).collect();
        for (r, s) in reqs.iter().zip(&sinks) {
            sched.submit(SchedRequest { request: GenerateRequest { constraint: None, prompt: r.prompt.clone(), max_tokens: r.max_tokens, sampling: r.sampling.clone(), stop: r.stop.clone() }, top_logprobs: None, prompt_logprobs: None, sink: Box::new(s.clone()), adapter: None });
        }
        let mut steps = 0;
        while !sched.is_idle() {
            sched.step();
            steps += 1;
            assert!(steps < 10_000);
        }
        (sinks, steps)
    };
    let (plain, plain_steps) = run(0);
    let (spec, spec_steps) = run(1);
    let (drafted, draft_steps) = run(2);
    for (i, w) in want.iter().enumerate() {
        for (name, s) in [("plain", &plain[i]), ("lookup", &spec[i]), ("draft model", &drafted[i])] {
            let (ids, text, fin) = s.ids_text_finish();
            assert_eq!(ids, w.ids, "{name} request {i}");
            assert_eq!(text, w.text, "{name} request {i}");
            assert_eq!(fin, Some(w.finish_reason), "{name} request {i}");
        }
    }
    eprintln!("steps: plain {plain_steps}, lookup {spec_steps}, draft model {draft_steps}");
    assert!(spec_steps < plain_steps, "plain {plain_steps} lookup {spec_steps}");
    assert!(draft_steps < plain_steps, "plain {plain_steps} draft model {draft_steps}");
}

#[test]
fn generate_many_equals_one_by_one_and_gives_the_engine_back() {
    let mut e = engine();
    let reqs = requests(&e);
    let want: Vec<_> = reqs.iter().map(|r| e.generate(r, |_| {}).unwrap()).collect();
    let mut seen = Vec::new();
    let got = e.generate_many(&reqs, 4, |done, total| seen.push((done, total))).unwrap();
    for (w, g) in want.iter().zip(&got) {
        assert_eq!((&w.ids, &w.text, w.finish_reason), (&g.ids, &g.text, g.finish_reason));
        assert_eq!((w.prompt_tokens, w.completion_tokens), (g.prompt_tokens, g.completion_tokens));
    }
    assert_eq!(seen.last(), Some(&(reqs.len(), reqs.len())));
    // The engine works as before afterwards; a request that cannot run is named.
    assert_eq!(e.generate(&reqs[0], |_| {}).unwrap().ids, want[0].ids);
    let too_long = GenerateRequest { constraint: None, prompt: vec![1; 300], max_tokens: 1, sampling: SamplingParams::default(), stop: vec![] };
    let err = e.generate_many(&[reqs[0].clone(), too_long], 2, |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("request 1") && err.contains("context size"), "{err}");
}
