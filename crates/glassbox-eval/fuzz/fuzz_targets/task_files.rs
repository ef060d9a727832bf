//! Task files are untrusted (your own `--data` JSONL, converted downloads): any bytes must parse
//! as multiple-choice or closed-book questions (or canaries, or identities) within the limits, or be refused,
//! never panic.
#![no_main]

use glassbox_eval::task::{parse_jsonl, parse_qa_jsonl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = parse_jsonl("fuzz", data) {
        for it in &items {
            assert!(it.gold < it.choices.len() && it.choices.len() >= 2);
            assert!(it.biased.iter().all(|&b| b < it.choices.len()) && it.unknown.iter().all(|&u| u < it.choices.len()));
        }
    }
    if let Ok(items) = parse_qa_jsonl("fuzz", data) {
        assert!(items.iter().all(|q| !q.answers.is_empty()));
    }
    if let Ok(ids) = glassbox_eval::pii::parse_identities("fuzz", data) {
        assert!(ids.iter().all(|p| !p.name.trim().is_empty() && !p.email.trim().is_empty() && !p.phone.trim().is_empty()));
        let probes = glassbox_eval::pii::probes(&ids);
        assert_eq!(probes.len(), ids.len());
    }
    if let Ok(cs) = glassbox_eval::canary::parse_jsonl("fuzz", data) {
        assert!(cs.iter().all(|c| c.secret.chars().count() == c.format.chars().count() && glassbox_eval::canary::log2_space(&c.format) > 0.0));
    }
});
