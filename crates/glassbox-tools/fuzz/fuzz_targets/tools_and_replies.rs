//! Fuzz tool definitions and model replies: bytes that parse as JSON are checked as `tools`
//! (and `tool_choice` from their first element), compiled into call grammars in every format;
//! the bytes as text are parsed as a reply in every format, whole and streamed in two pieces,
//! which must agree on the calls. Nothing may panic.
//! Run: cd crates/glassbox-tools/fuzz && cargo +nightly fuzz run tools_and_replies
#![no_main]

use glassbox_constrain::Limits;
use glassbox_tools::{call_grammar, parse_choice, parse_output, parse_tools, CallStream, Choice, Delta, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_bytes: 4096, max_depth: 16, max_symbols: 20_000, max_count: 64 };
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(tools) = parse_tools(&v)
    {
        let choice = parse_choice(v.get(0), &tools).unwrap_or(Choice::Auto);
        for f in [Format::Hermes, Format::Llama3, Format::Mistral] {
            let _ = call_grammar(f, &tools, &choice, true, &limits);
        }
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let names = ["f", "get_weather"];
    let cut = (0..=text.len()).rev().find(|&i| text.is_char_boundary(i) && i <= text.len() / 2).unwrap_or(0);
    for f in [Format::Hermes, Format::Llama3, Format::Mistral] {
        let whole = parse_output(f, text, &names);
        let mut s = CallStream::new(f, &names, false);
        let mut d = s.push(&text[..cut]);
        d.extend(s.push(&text[cut..]));
        d.extend(s.finish());
        let calls: Vec<_> = d.into_iter().filter_map(|d| if let Delta::Call(c) = d { Some(c) } else { None }).collect();
        assert_eq!(calls, whole.calls, "{f:?}: streamed calls differ from the whole parse of {text:?}");
    }
});
