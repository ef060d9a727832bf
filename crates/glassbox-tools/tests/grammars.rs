//! Call grammars: what each format and choice accepts, checked on a byte vocabulary.

use std::sync::Arc;

use glassbox_constrain::{Limits, Matcher, VocabIndex};
use glassbox_tools::{call_grammar, parse_choice, parse_output, parse_tools, Choice, Format};
use serde_json::json;

fn tools() -> Vec<glassbox_tools::Function> {
    parse_tools(&json!([
        {"type": "function", "function": {"name": "get_weather", "strict": true, "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string", "pattern": "^[A-Z]"}}}}},
    ]))
    .unwrap()
}

fn accepts(format: Format, choice: &Choice, parallel: bool, text: &str) -> bool {
    let g = call_grammar(format, &tools(), choice, parallel, &Limits::default()).unwrap().expect("a grammar");
    let toks: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
    let mut m = Matcher::new(Arc::new(g.grammar), Arc::new(VocabIndex::new(&toks, &[]))).unwrap();
    m.advance_bytes(text.as_bytes()).is_ok() && m.is_accepting()
}

const PARIS: &str = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";

#[test]
fn hermes_required_and_named() {
    let block = format!("<tool_call>\n{PARIS}\n</tool_call>");
    assert!(accepts(Format::Hermes, &Choice::Required, true, &block));
    assert!(accepts(Format::Hermes, &Choice::Required, true, &format!("{block}\n{block}")));
    // whitespace after the last of several calls still lets the reply end
    assert!(accepts(Format::Hermes, &Choice::Required, true, &format!("{block}\n{block}\n")));
    assert!(!accepts(Format::Hermes, &Choice::Required, false, &format!("{block}\n{block}")));
    // arguments held to the strict schema; the non-strict function's pattern is not enforced
    assert!(!accepts(Format::Hermes, &Choice::Required, true, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"c\"}}\n</tool_call>"));
    assert!(accepts(Format::Hermes, &Choice::Required, true, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"utc\", \"x\": 1}}\n</tool_call>"));
    assert!(!accepts(Format::Hermes, &Choice::Required, true, "<tool_call>\n{\"name\": \"rm\", \"arguments\": {}}\n</tool_call>"));
    assert!(!accepts(Format::Hermes, &Choice::Required, true, "Sure!"));
    let named = Choice::Named("get_time".into());
    assert!(!accepts(Format::Hermes, &named, true, &block));
    assert!(accepts(Format::Hermes, &named, true, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"));
}

#[test]
fn hermes_auto_holds_only_the_call_body_after_its_tag() {
    let g = call_grammar(Format::Hermes, &tools(), &Choice::Auto, true, &Limits::default()).unwrap().unwrap();
    assert_eq!(g.trigger.as_deref(), Some("<tool_call>"));
    assert!(accepts(Format::Hermes, &Choice::Auto, true, &format!("\n{PARIS}\n</tool_call>")));
    // no strict function, or another format: auto is free
    let loose: Vec<_> = tools().into_iter().filter(|f| !f.strict).collect();
    assert!(call_grammar(Format::Hermes, &loose, &Choice::Auto, true, &Limits::default()).unwrap().is_none());
    assert!(call_grammar(Format::Llama3, &tools(), &Choice::Auto, true, &Limits::default()).unwrap().is_none());
    assert!(call_grammar(Format::Hermes, &tools(), &Choice::None, true, &Limits::default()).unwrap().is_none());
}

#[test]
fn llama3_and_mistral() {
    assert!(accepts(Format::Llama3, &Choice::Required, true, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\", \"unit\": \"f\"}}"));
    assert!(!accepts(Format::Llama3, &Choice::Required, true, PARIS));
    let two = format!("[{PARIS}, {{\"name\": \"get_time\", \"arguments\": {{}}}}]");
    assert!(accepts(Format::Mistral, &Choice::Required, true, &two));
    assert!(!accepts(Format::Mistral, &Choice::Required, false, &two));
    assert_eq!(parse_output(Format::Mistral, &two, &["get_weather", "get_time"]).calls.len(), 2);
}

#[test]
fn definitions_and_choices_are_checked() {
    let bad = |t: serde_json::Value| parse_tools(&t).unwrap_err().param;
    assert_eq!(bad(json!([{"type": "function", "function": {"name": "a b"}}])), "tools[0].function.name");
    assert_eq!(bad(json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}])), "tools[0].function.parameters");
    assert_eq!(bad(json!([{"type": "function", "function": {"name": "f", "strict": "yes"}}])), "tools[0].function.strict");
    // parameters without a type describe an object
    let f = parse_tools(&json!([{"type": "function", "function": {"name": "f", "parameters": {}}}])).unwrap();
    assert_eq!(f[0].parameters["type"], "object");
    assert_eq!(bad(json!([{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}])), "tools[1].function.name");
    assert_eq!(bad(json!((0..=glassbox_tools::MAX_TOOLS).map(|i| json!({"type": "function", "function": {"name": format!("f{i}")}})).collect::<Vec<_>>())), "tools");
    let t = tools();
    assert_eq!(parse_choice(Some(&json!("required")), &t).unwrap(), Choice::Required);
    assert_eq!(parse_choice(None, &t).unwrap(), Choice::Auto);
    assert_eq!(parse_choice(None, &[]).unwrap(), Choice::None);
    assert!(parse_choice(Some(&json!({"type": "function", "function": {"name": "nope"}})), &t).is_err());
    assert!(parse_choice(Some(&json!("always")), &t).is_err());
    assert!(parse_choice(Some(&json!("required")), &[]).is_err());
    assert!(parse_choice(Some(&json!("auto")), &[]).is_err());
    assert_eq!(parse_choice(Some(&json!("none")), &[]).unwrap(), Choice::None);
    // a strict function whose schema cannot be enforced, and an invalid schema: 400s naming it
    let strict_pattern = parse_tools(&json!([{"type": "function", "function": {"name": "f", "strict": true, "parameters": {"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}}}])).unwrap();
    let e = call_grammar(Format::Hermes, &strict_pattern, &Choice::Auto, true, &Limits::default()).err().unwrap();
    assert!(e.param == "tools[0].function.parameters" && e.msg.contains("pattern"), "{e}");
    let invalid = parse_tools(&json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "frob"}}}}}])).unwrap();
    assert!(call_grammar(Format::Hermes, &invalid, &Choice::None, true, &Limits::default()).is_err());
}
