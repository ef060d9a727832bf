//! Fuzz the adapter reader: any input must be read or refused cleanly; whatever is read has
//! complete pairs of agreeing rank, finite values and a scale that is finite for a finite user
//! scale. Run: cd crates/glassbox-lora/fuzz && cargo +nightly fuzz run adapter
#![no_main]

use glassbox_gguf::{Gguf, Limits};
use glassbox_lora::Adapter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_array_len: 1 << 16, max_string_len: 1 << 16, ..Limits::default() };
    let Ok(g) = Gguf::parse(data, &limits) else { return };
    if let Ok(a) = Adapter::from_gguf(std::path::Path::new("fuzz.gguf"), &g, data) {
        assert!(!a.pairs.is_empty());
        for p in &a.pairs {
            assert_eq!(p.a.rows, p.rank);
            assert_eq!(p.b.cols, p.rank);
            assert!(p.rank > 0 && p.rank <= glassbox_lora::MAX_RANK);
            assert!(a.scale(p, 1.0).is_finite() || !a.alpha.is_finite());
        }
        let _ = a.check_base(&g, "itself");
    }
});
