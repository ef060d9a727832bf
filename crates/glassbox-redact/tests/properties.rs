//! Properties over arbitrary and PII-shaped text: findings are well-formed, the redacted text
//! keeps everything outside them and none of what they covered, and the recognisers are
//! invariant to the text around a match that is separated from it.

use glassbox_redact::{analyze, redact};
use proptest::prelude::*;

fn pii_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z]{1,8}@[a-z]{1,8}\\.(com|org|de|uk|xyz)",
            "[0-9]{3}-[0-9]{2}-[0-9]{4}",
            "4[0-9]{3} [0-9]{4} [0-9]{4} [0-9]{4}",
            "[A-Z]{2}[0-9]{2}[A-Z0-9 ]{10,30}",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "[0-9a-f:]{2,30}",
            "\\+?[0-9() .-]{5,20}",
            "[ \\PC]{0,12}",
        ],
        0..8,
    )
    .prop_map(|parts| parts.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn findings_are_well_formed(text in prop_oneof![pii_like(), "\\PC{0,200}"]) {
        let found = analyze(&text).unwrap();
        for f in &found {
            prop_assert!(f.start < f.end && f.end <= text.len());
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            prop_assert!(f.score > 0.0 && f.score <= 1.0);
        }
        let red = redact(&text, &found);
        // Outside the union of findings every byte is kept, in order.
        let mut covered = vec![false; text.len()];
        for f in &found {
            covered[f.start..f.end].iter_mut().for_each(|c| *c = true);
        }
        let kept: String = text.char_indices().filter(|(i, _)| !covered[*i]).map(|(_, c)| c).collect();
        let stripped: String = {
            let mut s = red.clone();
            for e in glassbox_redact::Entity::ALL {
                s = s.replace(&format!("<{}>", e.name()), "");
            }
            s
        };
        prop_assert_eq!(stripped, kept);
    }

    #[test]
    fn a_finding_does_not_depend_on_far_away_text(a in pii_like(), b in pii_like()) {
        // Separated by a blank line and a word, each half's findings stay where they were.
        let joined = format!("{a}\n\nand\n\n{b}");
        let shift = a.len() + "\n\nand\n\n".len();
        let both = analyze(&joined).unwrap();
        let mut expect: Vec<_> = analyze(&a).unwrap();
        expect.extend(analyze(&b).unwrap().into_iter().map(|mut f| { f.start += shift; f.end += shift; f }));
        expect.sort_by_key(|f| (f.start, f.end, f.entity));
        prop_assert_eq!(both, expect);
    }
}
