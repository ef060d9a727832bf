//! Text handed to the recognisers is untrusted (model generations, HTTP bodies): any UTF-8 must
//! give findings on character boundaries inside the text, sorted, with scores in (0, 1], and a
//! redaction that keeps every byte outside the findings — never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(found) = glassbox_redact::analyze(text) else { return };
    for f in &found {
        assert!(f.start < f.end && f.end <= text.len());
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        assert!(f.score > 0.0 && f.score <= 1.0);
    }
    assert!(found.windows(2).all(|w| (w[0].start, w[0].end) <= (w[1].start, w[1].end)));
    let red = glassbox_redact::redact(text, &found);
    if found.is_empty() {
        assert_eq!(red, text);
    }
});
