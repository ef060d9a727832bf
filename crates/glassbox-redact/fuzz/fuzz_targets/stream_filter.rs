//! Fuzz the streaming redaction filter: any text, cut into chunks of any size, must give exactly
//! what the whole text gives at once (nothing of a finding leaks across a chunk boundary, and
//! nothing is lost; input placeholders restored, a deny list's terms found) — or, where a length
//! bound decided a cut, at least let through nothing the whole text redacts. First byte: chunk
//! size.
//! Run: cd crates/glassbox-redact/fuzz && cargo +nightly fuzz run stream_filter
#![no_main]

use std::sync::{Arc, LazyLock};

use glassbox_redact::{DenyList, Entity, Mode, Redactor, StreamFilter};
use libfuzzer_sys::fuzz_target;

static DENY: LazyLock<Arc<DenyList>> = LazyLock::new(|| Arc::new(DenyList::new(&["Blue Falcon", "blue", "Jane Q. Roe", "x-7"]).expect("a fixed list")));

fn redactor() -> Redactor {
    let mut r = Redactor::new(Mode::Placeholder, Entity::ALL.to_vec());
    r.deny = Some(DENY.clone());
    r.restorable = true;
    let _ = r.redact("a@example.com 4111 1111 1111 1111 +1 415 555 0100");
    r.restorable = false;
    r
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let step = usize::from(step % 16) + 1;
    let mut whole_r = redactor();
    let whole = StreamFilter::new(true, true).finish_with(&text, &mut whole_r);
    let mut r = redactor();
    let mut f = StreamFilter::new(true, true);
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    for c in chars.chunks(step) {
        out.push_str(&f.push(&c.iter().collect::<String>(), &mut r));
    }
    out.push_str(&f.finish(&mut r));
    if f.bounded_cuts == 0 {
        assert_eq!(out, whole, "chunks of {step} chars");
        return;
    }
    // Where a length bound decided a cut, the output may differ, but nothing the whole text
    // redacts may come through.
    let r = redactor();
    for found in glassbox_redact::analyze_with(&text, r.deny.as_deref()).unwrap_or_default() {
        let value = &text[found.start..found.end];
        assert!(whole.contains(value) || !out.contains(value), "{value:?} leaked in chunks of {step} chars: {out:?}");
    }
});
