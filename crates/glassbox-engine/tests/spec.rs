//! Speculative decoding is lossless: the same tokens as plain decoding — greedy and sampled
//! with a seed, with stop strings and token limits — from prompt-lookup drafts and from a draft
//! model, in fewer forward passes.

use glassbox_engine::{DraftModel, Drafter, Engine, EngineOptions, GenerateRequest, SamplingParams, SpecOptions, lookup};

fn engine(file: &str) -> Engine {
    let opts = EngineOptions { threads: 2, ctx_size: 512, batch_size: 512, ..Default::default() };
    Engine::load(&glassbox_testdata::model(file), &opts).unwrap()
}

/// A code edit: the answer copies most of the prompt.
const EDIT: &str = "Rename the variable `total` to `sum` in this Python function and return only the code.\n\n```python\ndef add_all(values):\n    total = 0\n    for v in values:\n        total = total + v\n    return total\n```\n";

fn req(e: &Engine, sampling: SamplingParams, max_tokens: usize, stop: Vec<String>) -> GenerateRequest {
    let rendered = e.render_chat(&[glassbox_template::Message::new("user", EDIT)]).unwrap();
    GenerateRequest { constraint: None, prompt: e.tokenize_chat(&rendered), max_tokens, sampling, stop }
}

fn lookup_opts() -> SpecOptions {
    SpecOptions { drafter: Drafter::Lookup { ngram_max: 3, ngram_min: 1 }, max_draft: 8 }
}

#[test]
fn lookup_finds_the_latest_longest_match() {
    assert_eq!(lookup(&[1, 2, 3, 9, 1, 2, 3, 7, 8, 1, 2, 3], 3, 1, 2), vec![7, 8]);
    assert_eq!(lookup(&[5, 6, 7, 5], 3, 1, 4), vec![6, 7, 5]);
    assert!(lookup(&[1, 2, 3], 3, 1, 4).is_empty());
    assert!(lookup(&[1, 2, 1], 2, 1, 0).is_empty());
}

#[test]
fn greedy_and_sampled_lookup_output_equals_plain() {
    let mut e = engine(glassbox_testdata::SMOLLM2);
    for sampling in [
        SamplingParams { temperature: 0.0, ..SamplingParams::default() },
        SamplingParams { temperature: 0.9, seed: 11, ..SamplingParams::default() },
        SamplingParams { temperature: 0.7, repeat_penalty: 1.1, seed: 3, ..SamplingParams::default() },
    ] {
        let r = req(&e, sampling.clone(), 80, vec![]);
        let plain = e.generate(&r, |_| {}).unwrap();
        let mut streamed = String::new();
        let (spec, stats) = e.generate_speculative(&r, &mut lookup_opts(), |t| streamed.push_str(t)).unwrap();
        assert_eq!(spec.ids, plain.ids, "{sampling:?}");
        assert_eq!(spec.text, plain.text);
        assert_eq!(streamed, plain.text);
        assert_eq!(spec.finish_reason, plain.finish_reason);
        eprintln!("{sampling:?}: {} tokens in {} passes, {}/{} drafts accepted", spec.ids.len(), stats.passes, stats.accepted, stats.drafted);
        if sampling.temperature == 0.0 {
            assert!(stats.accepted > 0 && stats.passes < spec.ids.len(), "{stats:?}");
        }
    }
}

#[test]
fn stops_and_limits_are_the_same_as_plain() {
    let mut e = engine(glassbox_testdata::SMOLLM2);
    let greedy = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
    for (max, stop) in [(1, vec![]), (7, vec![]), (200, vec!["return".to_string()]), (200, vec!["```\n".to_string()])] {
        let r = req(&e, greedy.clone(), max, stop.clone());
        let plain = e.generate(&r, |_| {}).unwrap();
        let (spec, _) = e.generate_speculative(&r, &mut lookup_opts(), |_| {}).unwrap();
        assert_eq!((spec.ids, spec.text, spec.finish_reason), (plain.ids, plain.text, plain.finish_reason), "max {max} stop {stop:?}");
    }
}

#[test]
fn draft_model_output_equals_plain_and_vocabularies_are_checked() {
    let mut e = engine(glassbox_testdata::SMOLLM2);
    let greedy = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
    let r = req(&e, greedy, 48, vec![]);
    let plain = e.generate(&r, |_| {}).unwrap();
    // The model drafting for itself: every draft is the target's own greedy choice (drafts past
    // the end of the answer are the only ones refused).
    let draft = glassbox_models::Model::load(&glassbox_testdata::model(glassbox_testdata::SMOLLM2)).unwrap();
    let mut opts = SpecOptions { drafter: Drafter::Model(Box::new(DraftModel::new(draft, &e, 512).unwrap())), max_draft: 6 };
    let (spec, stats) = e.generate_speculative(&r, &mut opts, |_| {}).unwrap();
    assert_eq!(spec.ids, plain.ids);
    assert!(stats.acceptance() > 0.8 && stats.passes * 3 < spec.ids.len(), "{stats:?}");
    // A second run reuses the drafter from a clean cache.
    let (again, _) = e.generate_speculative(&r, &mut opts, |_| {}).unwrap();
    assert_eq!(again.ids, plain.ids);
    let gemma = glassbox_models::Model::load(&glassbox_testdata::model(glassbox_testdata::GEMMA3)).unwrap();
    let err = DraftModel::new(gemma, &e, 512).err().expect("vocabulary mismatch refused").to_string();
    assert!(err.contains("vocabularies must match"), "{err}");
}
