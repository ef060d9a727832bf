//! Fuzz the format scanners (pickle opcodes, zip walking, npy headers, GGUF + templates, strict
//! safetensors headers): any input must be analysed without panicking, and every finding must
//! point inside the input.
//! Run: cd crates/glassbox-scan/fuzz && cargo +nightly fuzz run scan_bytes
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let r = glassbox_scan::scan_bytes(data, "fuzz");
    for f in &r.findings {
        if !f.location.contains('!') {
            assert!(f.offset.unwrap_or(0) <= data.len() as u64);
        }
    }
    let _ = glassbox_scan::to_sarif(&r);
    // The same bytes as a file named .safetensors take the strict header path.
    let _ = glassbox_scan::scan_bytes(data, "fuzz.safetensors");
});
