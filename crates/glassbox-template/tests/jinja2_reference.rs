//! Renders must equal Python jinja2 as transformers applies chat templates
//! (tests/fixtures/templates/renders.json, made by scripts/gen_fixtures.py).

use std::collections::HashMap;

use glassbox_template::{ChatTemplate, Limits, Message, RenderOptions};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    template: String,
    conversation: usize,
    add_generation_prompt: bool,
    #[serde(default)]
    tools: Option<serde_json::Value>,
    output: Option<String>,
    error: Option<String>,
}
#[derive(Deserialize)]
struct Fixture {
    bos_token: String,
    eos_token: String,
    conversations: Vec<Vec<Message>>,
    templates: HashMap<String, String>,
    cases: Vec<Case>,
}

#[test]
fn renders_match_jinja2() {
    let path = glassbox_testdata::fixture("templates/renders.json");
    let fx: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(fx.templates.len() >= 5);
    let mut failures = Vec::new();
    for c in &fx.cases {
        let t = ChatTemplate::new(&fx.templates[&c.template], Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", c.template));
        let opts = RenderOptions {
            add_generation_prompt: c.add_generation_prompt,
            bos_token: fx.bos_token.clone(),
            eos_token: fx.eos_token.clone(),
            now: Some((2026, 11, 22, 0, 0, 0)),
            tools: c.tools.clone(),
        };
        let got = t.render(&fx.conversations[c.conversation], &opts);
        match (&c.output, got) {
            (Some(want), Ok(got)) if *want == got => {}
            (None, Err(_)) => {}
            (want, got) => failures.push(format!(
                "{} conv {} agp {}:\n--- jinja2 ---\n{}\n--- ours ---\n{:?}\n(jinja2 error: {:?})",
                c.template, c.conversation, c.add_generation_prompt,
                want.as_deref().unwrap_or("<error>"), got, c.error
            )),
        }
    }
    assert!(failures.is_empty(), "{} of {} renders differ:\n{}", failures.len(), fx.cases.len(), failures.join("\n"));
}

#[test]
fn hostile_templates_are_bounded() {
    let small = Limits { fuel: 100_000, ..Limits::default() };
    let t = ChatTemplate::new("{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}", small).unwrap();
    let e = t.render(&[], &RenderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("fuel"), "{e}");
    let big = "x".repeat(2 << 20);
    assert!(ChatTemplate::new(&big, Limits::default()).is_err());
    // No file or environment access exists: these names are undefined, and calling them fails.
    for src in ["{% include '/etc/passwd' %}", "{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}"] {
        let r = ChatTemplate::new(src, Limits::default()).and_then(|t| t.render(&[], &RenderOptions::default()));
        if let Ok(out) = r {
            assert!(!out.contains("root:") && !out.contains("class"), "{src} rendered {out:?}");
        }
    }
    let t = ChatTemplate::new("{{ raise_exception('no system role') }}", Limits::default()).unwrap();
    let e = t.render(&[], &RenderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no system role"), "{e}");
}

#[test]
fn tojson_matches_python_json_dumps() {
    let v = serde_json::json!({"b": [1, 2.5, "é<&>'\"\n"], "a": null, "t": true});
    assert_eq!(
        glassbox_template::to_python_json(&v, None, false),
        r#"{"b": [1, 2.5, "é<&>'\"\n"], "a": null, "t": true}"#
    );
    assert_eq!(glassbox_template::to_python_json(&v, Some(2), true), "{\n  \"a\": null,\n  \"b\": [\n    1,\n    2.5,\n    \"é<&>'\\\"\\n\"\n  ],\n  \"t\": true\n}");
}
