//! Licence files are untrusted: any bytes, as plain text, Markdown or HTML, must convert and
//! identify without panicking.
#![no_main]

use glassbox_license::{Format, identify, to_plain, words};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::Plain, Format::Markdown, Format::Html] {
        if let Ok(text) = to_plain("fuzz", data, format) {
            let _ = words(&text);
            let id = identify(&text);
            assert!(id.confidence <= 1.0 + 1e-6);
        }
    }
});
