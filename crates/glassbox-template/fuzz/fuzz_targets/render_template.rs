//! Fuzz hostile chat templates: any source must parse or fail cleanly, and any render must
//! finish (fuel), stay within the output limit, or fail with an error — never panic. This renders
//! in process, so it also finds values minijinja grows without bound; the `glassbox` binary's
//! worker processes contain those (see `src/sandbox.rs`), and each one found becomes a sandbox
//! regression test. The input is `template \0 message content`.
//! Seeds: the real templates in tests/corpora/chat-templates plus `seeds/` here.
//! Run (fork mode keeps going past out-of-memory inputs and saves them under artifacts/):
//!   cd crates/glassbox-template/fuzz && cargo +nightly fuzz run -s none render_template \
//!   corpus/ seeds/ ../../../tests/corpora/chat-templates -- -fork=1 -ignore_ooms=1 \
//!   -ignore_timeouts=1 -timeout=30 -max_len=8192 -rss_limit_mb=2048
#![no_main]

use glassbox_template::{ChatTemplate, Limits, Message, RenderOptions};
use libfuzzer_sys::fuzz_target;

static QUIET_PANICS: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys's panic hook aborts before any `catch_unwind` runs, but `render` catches
    // panics inside minijinja and turns them into errors (as it does in the product). Replace the
    // hook: a panic `render` catches is an error here too, and one it does not catch still
    // aborts (libfuzzer-sys aborts when a panic leaves this closure).
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (src, content) = text.split_once('\0').unwrap_or((text, "hello"));
    let limits = Limits { max_source_bytes: 64 << 10, max_output_bytes: 256 << 10, fuel: 200_000 };
    let Ok(t) = ChatTemplate::new(src, limits.clone()) else { return };
    let msgs = [Message::new("system", "be brief"), Message::new("user", content), Message::new("assistant", content)];
    let opts = RenderOptions { add_generation_prompt: true, bos_token: "<s>".into(), eos_token: "</s>".into(), now: Some((2026, 1, 1, 0, 0, 0)), tools: None };
    if let Ok(out) = t.render(&msgs, &opts) {
        assert!(out.len() <= limits.max_output_bytes);
    }
});
