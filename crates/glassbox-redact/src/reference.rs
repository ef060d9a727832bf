//! The recognisers the slow, obvious way, for differential tests only (feature `reference`):
//! Presidio's patterns verbatim (look-arounds and back-reference included) on fancy-regex's
//! backtracking engine, over the whole text, libphonenumber over the whole text. The windowed,
//! linear-time recognisers must give exactly these findings
//! (`differential` below, fuzz target `windows_equal_whole`).

use std::sync::LazyLock;

use rlibphonenumber::phonenumber_matcher::{Leniency, PHONE_MATCHER_FACTORY};

use crate::{Entity, Finding};

fn fancy(p: &str) -> fancy_regex::Regex {
    fancy_regex::RegexBuilder::new(&format!("(?i){p}")).backtrack_limit(100_000_000).build().expect("a fixed pattern compiles")
}

struct All {
    email: fancy_regex::Regex,
    card: fancy_regex::Regex,
    ssn: Vec<(fancy_regex::Regex, f64)>,
    iban: fancy_regex::Regex,
    ip: Vec<(fancy_regex::Regex, f64)>,
    mac: Vec<fancy_regex::Regex>,
    crypto: fancy_regex::Regex,
}

static ALL: LazyLock<All> = LazyLock::new(|| {
    const V4: &str = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)";
    let v6 = r"(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|:(?::[0-9A-Fa-f]{1,4}){1,7}|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|:(?::[0-9A-Fa-f]{1,4}){1,6})";
    let p128 = r"(?:/(?:12[0-8]|1[01]\d|[1-9]?\d))?";
    All {
        email: fancy(crate::patterns::EMAIL_PATTERN),
        card: fancy(r"\b(?!1\d{12}(?!\d))((4\d{3})|(5[0-5]\d{2})|(6\d{3})|(1\d{3})|(3\d{3}))[- ]?(\d{3,4})[- ]?(\d{3,4})[- ]?(\d{3,5})\b"),
        ssn: crate::patterns::SSN_PATTERNS.iter().map(|(p, s)| (fancy(p), *s)).collect(),
        iban: fancy(r"(?<![A-Z0-9])([A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,6})((?:[ -]?[A-Z0-9]{4})?)((?:[ -]?[A-Z0-9]{1,3})?)(?![A-Z0-9])"),
        ip: vec![
            (fancy(&format!(r"(?<![\w:])::(?:ffff(?::0{{1,4}})?:)?(?:{V4}\.){{3}}{V4}{p128}\b")), 0.6),
            (fancy(&format!(r"(?<![\w:])(?:(?:[0-9A-Fa-f]{{1,4}}:){{1,5}}:(?:[0-9A-Fa-f]{{1,4}}:){{0,4}}|(?:[0-9A-Fa-f]{{1,4}}:){{6}})(?:{V4}\.){{3}}{V4}{p128}\b")), 0.6),
            (fancy(&format!(r"\b{V4}\.{V4}\.{V4}\.{V4}(?:/(?:[0-2]?\d|3[0-2]))?\b")), 0.6),
            (fancy(&format!(r"(?<![\w:]){v6}(?:%[0-9a-zA-Z]+)?{p128}(?![\w:]|\.\d)")), 0.6),
            (fancy(r"(?<![\w:])::(?:/(?:12[0-8]|1[01]\d|[1-9]?\d))?(?![\w:])"), 0.1),
        ],
        mac: vec![fancy(r"\b[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}\b"), fancy(r"\b[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\b")],
        crypto: fancy(crate::crypto::CRYPTO_PATTERN),
    }
});

fn each(re: &fancy_regex::Regex, text: &str) -> Vec<(usize, usize)> {
    re.find_iter(text).map(|m| m.expect("within the backtracking limit")).map(|m| (m.start(), m.end())).collect()
}

/// Every finding, as [`crate::analyze`] should find them.
pub fn analyze(text: &str) -> Vec<Finding> {
    let a = &*ALL;
    let f = |entity, (start, end): (usize, usize), score| Finding { entity, start, end, score };
    let mut all = Vec::new();
    all.extend(each(&a.email, text).into_iter().filter(|&(s, e)| crate::patterns::known_domain(&text[s..e])).map(|m| f(Entity::EmailAddress, m, 1.0)));
    all.extend(each(&a.card, text).into_iter().filter(|&(s, e)| crate::patterns::card_valid(&text[s..e])).map(|m| f(Entity::CreditCard, m, 1.0)));
    for (re, score) in &a.ssn {
        all.extend(each(re, text).into_iter().filter(|&(s, e)| !crate::patterns::ssn_invalid(&text[s..e])).map(|m| f(Entity::UsSsn, m, *score)));
    }
    for c in a.iban.captures_iter(text) {
        let c = c.expect("within the backtracking limit");
        let start = c.get(0).expect("group 0").start();
        all.extend(crate::iban::best(text, start, [1, 2, 3].map(|g| c.get(g).map_or(start, |m| m.end()))));
    }
    for (re, score) in &a.ip {
        all.extend(each(re, text).into_iter().filter(|&(s, e)| crate::ip::interface_ok(&text[s..e])).map(|m| f(Entity::IpAddress, m, *score)));
    }
    for region in crate::phone::REGIONS {
        for m in PHONE_MATCHER_FACTORY.create_matcher(text, Leniency::Valid, crate::phone::MAX_TRIES as _, Some(region)) {
            if text.is_char_boundary(m.start) && text.is_char_boundary(m.end()) {
                all.push(f(Entity::PhoneNumber, (m.start, m.end()), 0.4));
            }
        }
    }
    for re in &a.mac {
        all.extend(each(re, text).into_iter().filter(|&(s, e)| crate::mac::valid(&text[s..e])).map(|m| f(Entity::MacAddress, m, 0.6)));
    }
    all.extend(each(&a.crypto, text).into_iter().filter(|&(s, e)| crate::crypto::valid(&text[s..e])).map(|m| f(Entity::Crypto, m, 1.0)));
    let mut out = crate::remove_duplicates(all);
    out.sort_by_key(|f| (f.start, f.end, f.entity));
    out
}

#[cfg(test)]
mod differential {
    use proptest::prelude::*;

    /// Text made of the pieces findings are made of, run together or separated, so runs start,
    /// end and touch everywhere.
    fn pieces() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                "[a-z.]{1,6}@[a-z]{1,6}\\.(com|de|uk)",
                "[0-9]{1,5}",
                "[0-9]{3}[-. ][0-9]{2}[-. ][0-9]{4}",
                "4[0-9]{3}[ -]?[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}",
                "(DE|GB|de|XX)[0-9]{2}[A-Z0-9 ]{4,24}",
                "[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]{1,3})?",
                "[0-9a-f]{0,4}(:[0-9a-f]{0,4}){1,8}(%[a-z0-9]{1,3})?",
                "([0-9A-F]{2}[:-]){5}[0-9A-F]{2}",
                "[13][1-9A-HJ-NP-Za-km-z]{25,34}",
                "\\+?[0-9() .\\[\\]~-]{4,20}( ?(ext|x|#) ?[0-9]{1,4})?",
                "[ ,;:/.\\-_a-zA-Z\\(\\)\\[\\]%é٣]{0,3}",
            ],
            0..10,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// The windowed, linear-time recognisers find exactly what Presidio's patterns find over
        /// the whole text.
        #[test]
        fn windows_equal_whole_text(text in prop_oneof![pieces(), "\\PC{0,120}"]) {
            prop_assert_eq!(crate::analyze(&text).unwrap(), super::analyze(&text));
        }
    }
}
