//! Fuzz the GGUF parser: any input must parse or fail cleanly; whatever parses must describe
//! tensors inside the buffer, and writing it back must be idempotent (write → parse → write gives
//! the same bytes; compared as bytes because NaN metadata values are never `==` themselves).
//! Run: cd crates/glassbox-gguf/fuzz && cargo +nightly fuzz run gguf_parse
#![no_main]

use glassbox_gguf::{Gguf, GgufWriter, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_array_len: 1 << 16, max_string_len: 1 << 16, ..Limits::default() };
    if let Ok(g) = Gguf::parse(data, &limits) {
        for t in g.tensors() {
            assert!(g.data_offset + t.offset + t.size <= data.len() as u64);
            let _ = g.tensor_data(data, t);
        }
        let mut out = Vec::new();
        if GgufWriter::from_gguf(&g, data).write(&mut out).is_ok() {
            let again = Gguf::parse(&out, &limits).expect("written file re-parses");
            assert_eq!(again.tensors().len(), g.tensors().len());
            assert_eq!(again.metadata().len(), g.metadata().len());
            let mut out2 = Vec::new();
            GgufWriter::from_gguf(&again, &out).write(&mut out2).expect("rewrite");
            assert!(out == out2, "write is not idempotent");
        }
    }
});
