//! Fuzz HTTP request validation: any body must be validated for both endpoints without
//! panicking, every rejection must be a 4xx naming a field, and every accepted request must
//! respect the per-request bounds. The same bytes are also checked as `Host` and
//! `Content-Type` header values.
//! Run: cd crates/glassbox-server/fuzz && cargo +nightly fuzz run validate_request
#![no_main]

#[allow(dead_code)]
#[path = "../../src/openai.rs"]
mod openai;
#[allow(dead_code)]
#[path = "../../src/guard.rs"]
mod guard;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = openai::Limits { max_text_bytes: 4096, ..openai::Limits::default() };
    for chat in [true, false] {
        match openai::validate(data, chat, &limits) {
            Ok(v) => {
                let c = &v.common;
                assert!(!c.model.is_empty() && c.model.len() <= openai::MAX_MODEL_BYTES);
                assert!((1..=openai::MAX_N).contains(&c.n));
                assert!(c.stop.len() <= limits.max_stop && c.stop.iter().all(|s| s.len() <= limits.max_stop_bytes));
                assert!(c.top_logprobs <= openai::MAX_TOP_LOGPROBS);
                assert!(c.sampling.temperature >= 0.0 && c.sampling.temperature <= 2.0);
                assert!(c.sampling.top_p > 0.0 && c.sampling.top_p <= 1.0);
                // structured output and tools: only on chat, and only in their shapes
                let x = &v.extras;
                assert!(chat || (x.response_format.is_none() && x.tools.is_none() && x.tool_choice.is_none()));
                assert!(x.response_format.as_ref().is_none_or(|r| r["type"] == "json_object" || r["json_schema"]["schema"].is_object() || r["json_schema"]["schema"].is_boolean()));
                assert!(x.tools.as_ref().is_none_or(|t| t.as_array().is_some_and(|a| !a.is_empty())));
                match &v.input {
                    openai::Input::Messages(m) => {
                        assert!(chat && !m.is_empty() && m.len() <= limits.max_messages);
                        assert!(m.iter().map(|m| m.content.len()).sum::<usize>() <= limits.max_text_bytes);
                        // tool calls only on assistant messages, call ids only on tool messages
                        assert!(m.iter().all(|m| (m.tool_calls.is_empty() || m.role == "assistant") && (m.tool_call_id.is_none() || m.role == "tool")));
                    }
                    openai::Input::Prompt(openai::Prompt::Text(t)) => assert!(!chat && t.len() <= limits.max_text_bytes),
                    openai::Input::Prompt(openai::Prompt::Tokens(ids)) => assert!(!chat && ids.len() <= limits.max_text_bytes),
                }
            }
            Err(e) => {
                assert_eq!(e.status, 400);
                assert!(e.param.as_deref().is_some_and(|p| !p.is_empty()));
                let _ = e.body().to_string();
            }
        }
    }
    let _ = guard::is_json_content_type(data);
    let p = guard::HostPolicy::new("localhost", std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
    if p.allows(data) {
        let s = std::str::from_utf8(data).unwrap();
        let (name, port) = guard::split_host_port(s).unwrap();
        assert!(["localhost", "127.0.0.1", "[::1]"].iter().any(|n| n.eq_ignore_ascii_case(name)));
        assert_eq!(port, Some(8080));
    }
});
