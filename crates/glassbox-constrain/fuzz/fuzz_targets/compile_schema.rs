//! Fuzz schema compilation and the automaton: any bytes that parse as JSON are compiled as a
//! schema (small limits); a compiled grammar runs over the same bytes as output text and
//! computes a mask. Nothing may panic, loop or grow past its bounds.
//! Run: cd crates/glassbox-constrain/fuzz && cargo +nightly fuzz run compile_schema
#![no_main]

use std::sync::{Arc, OnceLock};

use glassbox_constrain::{compile_schema, dfa::DfaLimits, Limits, Matcher, VocabIndex};
use libfuzzer_sys::fuzz_target;

fn vocab() -> Arc<VocabIndex> {
    static V: OnceLock<Arc<VocabIndex>> = OnceLock::new();
    V.get_or_init(|| {
        let mut toks: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
        for t in ["{\"", "\": ", "\",", "null", "true", "\\u00"] {
            toks.push(Some(t.as_bytes().to_vec()));
        }
        let eos = toks.len() as u32;
        toks.push(None);
        Arc::new(VocabIndex::new(&toks, &[eos]))
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(schema) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let limits = Limits { max_bytes: 4096, max_depth: 16, max_symbols: 20_000, max_count: 64 };
    let Ok(g) = compile_schema(&schema, &limits) else { return };
    let dl = DfaLimits { max_states: 2_000, max_entries: 1 << 16, max_stacks: 256, max_depth: 128 };
    let mut m = Matcher::with_limits(Arc::new(g), vocab(), dl).expect("a compiled grammar starts");
    let _ = m.mask();
    for chunk in data.chunks(7) {
        if m.advance_bytes(chunk).is_err() {
            break;
        }
        let _ = m.mask();
    }
});
