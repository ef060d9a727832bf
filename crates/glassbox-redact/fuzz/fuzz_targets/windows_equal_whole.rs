//! The windowed, linear-time recognisers must find exactly what Presidio's own patterns find on
//! a backtracking engine over the whole text (`glassbox_redact::reference`): a window that missed
//! part of a match would be personal data let through.
//! Run: cd crates/glassbox-redact/fuzz && cargo +nightly fuzz run windows_equal_whole
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let fast = glassbox_redact::analyze(text).expect("short text");
    assert_eq!(fast, glassbox_redact::reference::analyze(text));
});
