//! Fuzz the model-signing bundle parser: any bytes parse or fail with an error, never a panic.
//! Run: cd crates/glassbox-trust/fuzz && cargo +nightly fuzz run bundle_parse
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = glassbox_trust::signing::parse_bundle(data, std::path::Path::new("fuzz.sig"));
});
