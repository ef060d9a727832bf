//! Property tests for the untrusted-text paths: any bytes convert or fail cleanly; the word form
//! is a fixed point; identification is total.

use glassbox_license::{Format, identify, to_plain, words};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_convert_or_fail_cleanly(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for f in [Format::Plain, Format::Markdown, Format::Html] {
            if let Ok(t) = to_plain("p", &data, f) {
                let w = words(&t);
                prop_assert_eq!(words(&w), w.clone());
                prop_assert!(!w.starts_with(' ') && !w.ends_with(' ') && !w.contains("  "));
            }
        }
    }

    #[test]
    fn html_scripts_never_leak_into_text(body in "[a-z ]{0,40}", script in "[a-z ;=()]{0,40}") {
        let html = format!("<html><script>{script}</script><p>{body}</p><style>{script}</style></html>");
        let t = to_plain("t.html", html.as_bytes(), Format::Html).unwrap();
        prop_assert_eq!(words(&t), words(&body));
    }

    #[test]
    fn identification_is_total(text in "\\PC{0,300}") {
        let id = identify(&text);
        prop_assert!(id.confidence >= 0.0 && id.confidence <= 1.0 + 1e-6);
        prop_assert!(id.id == "unknown" || id.key.is_some() || id.source == "spdx");
    }
}
