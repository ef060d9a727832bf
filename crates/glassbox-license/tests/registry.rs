//! The curated data: every quote is the licence's own words, every licence has a full table.

use glassbox_license::{Topic, builtin, find_quote, words};

#[test]
fn every_quote_occurs_in_its_reference_text() {
    let mut bad = vec![];
    for e in builtin() {
        let text = words(e.text);
        for c in &e.clauses {
            if !c.quote.is_empty() && !text.contains(&words(&c.quote)) {
                bad.push(format!("{} {}: {:?}", e.key, c.topic.as_str(), c.quote));
            }
        }
        for p in &e.phrases {
            assert!(text.contains(p.as_str()), "{}: phrase {p:?} is not in its text", e.key);
        }
    }
    assert!(bad.is_empty(), "quotes not found verbatim:\n{}", bad.join("\n"));
}

#[test]
fn every_licence_has_a_row_for_every_topic_and_policies_say_what_they_bind() {
    for e in builtin() {
        if e.document == "license" {
            for t in Topic::ALL {
                assert_eq!(e.clauses.iter().filter(|c| c.topic == t).count(), 1, "{}: topic {}", e.key, t.as_str());
            }
        } else {
            assert!(e.clause(Topic::AcceptableUse).is_some(), "{}", e.key);
        }
        for c in &e.clauses {
            let needs_quote = !matches!(c.verdict, glassbox_license::Verdict::NotAddressed) && e.document == "license";
            assert!(!needs_quote || !c.quote.is_empty(), "{} {}: a clause needs its quote", e.key, c.topic.as_str());
        }
    }
}

#[test]
fn user_caps_are_structured() {
    let cap = |k: &str| glassbox_license::by_key(k).unwrap().clause(Topic::UserThreshold).unwrap().max_users;
    assert_eq!(cap("llama-3.1-license-2024"), Some(700_000_000));
    assert_eq!(cap("llama-2-license-2023"), Some(700_000_000));
    assert_eq!(cap("qwen-2024"), Some(100_000_000));
    assert_eq!(cap("apache-2.0"), None);
}

#[test]
fn quotes_are_located_by_line() {
    let e = glassbox_license::by_key("llama-3.1-license-2024").unwrap();
    let line = find_quote(e.text, &e.clause(Topic::GoverningLaw).unwrap().quote).unwrap();
    assert!(e.text.lines().nth(line - 1).unwrap().contains("Governing"), "line {line}");
}
