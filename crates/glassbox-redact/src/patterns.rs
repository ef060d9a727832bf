//! E-mail addresses, card numbers and US SSNs: Presidio's patterns (case-insensitive, `\w`,
//! `\d` and `\b` Unicode as Python's `regex` module has them) and its validation, searched
//! only inside the runs of characters they are made of (`window`), all in linear time.

use std::sync::LazyLock;

use crate::window;
use crate::{Entity, Finding};

pub(crate) fn linear(p: &str) -> regex::Regex {
    regex::RegexBuilder::new(p).case_insensitive(true).build().expect("a fixed pattern compiles")
}

pub(crate) const EMAIL_PATTERN: &str = r"\b((([!#$%&'*+\-/=?^_`{|}~\w])|([!#$%&'*+\-/=?^_`{|}~\w][!#$%&'*+\-/=?^_`{|}~\.\w]{0,}[!#$%&'*+\-/=?^_`{|}~\w]))[@]\w+(?:-+\w+)*(?:\.\w+(?:-+\w+)*)+)\b";

static EMAIL: LazyLock<regex::Regex> = LazyLock::new(|| linear(EMAIL_PATTERN));

/// Presidio keeps an address when tldextract finds a registrable domain under a known ICANN
/// suffix (private suffixes ignored): the host after the last `@`, lower-cased.
pub(crate) fn known_domain(address: &str) -> bool {
    let host = address.rsplit('@').next().unwrap_or("").to_lowercase();
    let Some(suffix) = psl::suffix(host.as_bytes()) else { return false };
    if !suffix.is_known() {
        return false;
    }
    match suffix.typ() {
        Some(psl::Type::Private) => true,
        _ => psl::domain(host.as_bytes()).is_some(),
    }
}

/// An address has no white space: the runs of other characters around each `@`.
pub(crate) fn email_joins(c: char) -> bool {
    !c.is_whitespace()
}

pub(crate) fn email(text: &str) -> Vec<Finding> {
    let at = text.match_indices('@').map(|(i, _)| i);
    let windows = window::runs(text, at, email_joins, |_| true);
    window::find_in(&EMAIL, text, &windows)
        .into_iter()
        .filter(|m| known_domain(&text[m.clone()]))
        .map(|m| Finding { entity: Entity::EmailAddress, start: m.start, end: m.end, score: 1.0 })
        .collect()
}

/// Presidio's card pattern without its leading look-ahead `(?!1\d{12}(?!\d))`, which
/// [`card_excluded`] checks at each match's start.
pub(crate) const CARD_PATTERN: &str = r"\b((4\d{3})|(5[0-5]\d{2})|(6\d{3})|(1\d{3})|(3\d{3}))[- ]?(\d{3,4})[- ]?(\d{3,4})[- ]?(\d{3,5})\b";

static CARD: LazyLock<regex::Regex> = LazyLock::new(|| linear(CARD_PATTERN));
static ONE_AND_TWELVE: LazyLock<regex::Regex> = LazyLock::new(|| linear(r"^1\d{12}(?:\D|$)"));

/// The look-ahead Presidio's pattern starts with: a 1 and exactly twelve more digits.
fn card_excluded(s: &str) -> bool {
    ONE_AND_TWELVE.is_match(s)
}

pub(crate) fn card_joins(c: char) -> bool {
    c == '-' || c == ' ' || window::is_nd(c)
}

/// The Luhn checksum over the digits of `s` (other characters ignored; no digit: false).
pub fn luhn(s: &str) -> bool {
    let (mut sum, mut n) = (0u32, 0usize);
    for d in s.chars().rev().filter_map(|c| c.to_digit(10)) {
        sum += if n % 2 == 1 { let x = d * 2; x / 10 + x % 10 } else { d };
        n += 1;
    }
    n > 0 && sum.is_multiple_of(10)
}

pub(crate) fn credit_card(text: &str, digits: &[usize]) -> Vec<Finding> {
    // Four groups of at least 4 + 3 + 3 + 3 digits. A run holding a valid number holds four
    // ASCII digits in a row (a number with other digits is dropped): only those seed a run.
    let windows = window::runs(text, window::ascii_digits_in_a_row(text, digits, 4), card_joins, |r| r.chars().filter(|&c| window::is_nd(c)).count() >= 13);
    window::find_unless(&CARD, text, &windows, 0, |t, s| card_excluded(&t[s..]))
        .into_iter()
        .filter(|m| card_valid(&text[m.clone()]))
        .map(|m| Finding { entity: Entity::CreditCard, start: m.start, end: m.end, score: 1.0 })
        .collect()
}

/// Presidio's check of a card-number match: Luhn over its digits. Only "-" and " " separate
/// groups; Unicode digits the pattern allows but Luhn cannot read make the number invalid, as
/// Python's int() would not (a rare, safe difference: such a string is dropped, not reported).
pub(crate) fn card_valid(m: &str) -> bool {
    m.bytes().all(|c| c.is_ascii_digit() || c == b'-' || c == b' ') && luhn(m)
}

/// Presidio's SSN patterns and scores, as the reference and the tests read them;
/// [`SSN_SHAPES`] is what `ssn` runs.
#[cfg(any(test, feature = "reference"))]
pub(crate) const SSN_PATTERNS: [(&str, f64); 5] = [
    (r"\b([0-9]{5})-([0-9]{4})\b", 0.05),
    (r"\b([0-9]{3})-([0-9]{6})\b", 0.05),
    (r"\b(([0-9]{3})-([0-9]{2})-([0-9]{4}))\b", 0.05),
    (r"\b[0-9]{9}\b", 0.05),
    (r"\b([0-9]{3})[- .]([0-9]{2})[- .]([0-9]{4})\b", 0.5),
];

/// [`SSN_PATTERNS`] written out: each is digit groups of fixed lengths, one separator from a
/// set between them, and a word boundary at either end.
const SSN_SHAPES: [(&[usize], &[u8], f64); 5] = [
    (&[5, 4], b"-", 0.05),
    (&[3, 6], b"-", 0.05),
    (&[3, 2, 4], b"-", 0.05),
    (&[9], b"", 0.05),
    (&[3, 2, 4], b"- .", 0.5),
];

/// Presidio's `UsSsnRecognizer.invalidate_result`.
pub(crate) fn ssn_invalid(s: &str) -> bool {
    let delimiters: std::collections::BTreeSet<char> = s.chars().filter(|c| matches!(c, '.' | '-' | ' ')).collect();
    if delimiters.len() > 1 {
        return true;
    }
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    let first = d.chars().next();
    if d.chars().all(|c| Some(c) == first) {
        return true;
    }
    d.get(3..5) == Some("00") || d.get(5..) == Some("0000") || matches!(d.get(..3), Some("000" | "666")) || matches!(d.as_str(), "123456789" | "987654320" | "078051120")
}

pub(crate) fn ssn_joins(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '-' | ' ' | '.')
}

pub(crate) fn ssn(text: &str, digits: &[usize]) -> Vec<Finding> {
    let windows = window::runs(text, digits.iter().copied(), ssn_joins, |r| r.bytes().filter(u8::is_ascii_digit).count() >= 9);
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for w in &windows {
        // A run is ASCII digits and separators: its digit groups, and whether a word boundary
        // can stand at the run's ends (the characters around it are not word characters).
        groups.clear();
        let mut i = w.run.start;
        while i < w.run.end {
            if b[i].is_ascii_digit() {
                let s = i;
                while i < w.run.end && b[i].is_ascii_digit() {
                    i += 1;
                }
                groups.push((s, i));
            } else {
                i += 1;
            }
        }
        let open = window::char_before(text, w.run.start).is_none_or(|c| !window::is_word(c));
        let close = text[w.run.end..].chars().next().is_none_or(|c| !window::is_word(c));
        for (lengths, seps, score) in SSN_SHAPES {
            for at in 0..groups.len() {
                let Some(g) = groups.get(at..at + lengths.len()) else { break };
                let shaped = g.iter().zip(lengths).all(|(&(s, e), &n)| e - s == n)
                    && g.windows(2).all(|p| p[1].0 == p[0].1 + 1 && seps.contains(&b[p[0].1]));
                let (start, end) = (g[0].0, g[g.len() - 1].1);
                // Inside the run a group's neighbours are separators: boundaries.
                if shaped && (start > w.run.start || open) && (end < w.run.end || close) && !ssn_invalid(&text[start..end]) {
                    out.push(Finding { entity: Entity::UsSsn, start, end, score });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written-out SSN shapes find what Presidio's patterns find in the same windows.
    #[test]
    fn ssn_shapes_equal_the_patterns() {
        use proptest::prelude::*;
        let regexes: Vec<(regex::Regex, f64)> = SSN_PATTERNS.iter().map(|(p, s)| (linear(p), *s)).collect();
        let group = prop_oneof!["[0-9]{2}", "[0-9]{3}", "[0-9]{4}", "[0-9]{5}", "[0-9]{6}", "[0-9]{9}", "[0-9]{1,12}"];
        let sep = prop_oneof![Just("-".to_string()), Just(" ".to_string()), Just(".".to_string()), "[- .]{1,2}"];
        let found = std::cell::Cell::new(0);
        proptest!(ProptestConfig::with_cases(4000), |(before in "[a _,٣é]?", body in prop::collection::vec((group, sep), 1..6), after in "[a _,٣é]?")| {
            let body: String = body.iter().enumerate().map(|(i, (g, s))| if i + 1 < body.len() { format!("{g}{s}") } else { g.clone() }).collect();
            let t = format!("{before}{body}{after}");
            let d = window::digits(&t);
            let windows = window::runs(&t, d.iter().copied(), ssn_joins, |r| r.bytes().filter(u8::is_ascii_digit).count() >= 9);
            let mut want: Vec<(usize, usize, u64)> = Vec::new();
            for (re, score) in &regexes {
                for m in window::find_in(re, &t, &windows) {
                    if !ssn_invalid(&t[m.clone()]) {
                        want.push((m.start, m.end, score.to_bits()));
                    }
                }
            }
            let mut got: Vec<(usize, usize, u64)> = ssn(&t, &d).iter().map(|f| (f.start, f.end, f.score.to_bits())).collect();
            want.sort_unstable();
            got.sort_unstable();
            found.set(found.get() + want.len());
            prop_assert_eq!(got, want, "{:?}", t);
        });
        assert!(found.get() > 500, "{} matches", found.get());
    }

    #[test]
    fn luhn_and_ssn_rules() {
        assert!(luhn("4111111111111111") && !luhn("4111111111111112") && luhn("378282246310005") && !luhn(""));
        for bad in ["078-05-1120", "123-45-6789", "000-12-3456", "666-12-3456", "536-00-1234", "536-22-0000", "111-11-1111", "536-22 8726"] {
            assert!(ssn_invalid(bad), "{bad}");
        }
        for good in ["536-22-8726", "536 22 8726", "900-12-3456", "536228726"] {
            assert!(!ssn_invalid(good), "{good}");
        }
        assert!(known_domain("a@example.com") && known_domain("x@blogspot.com") && known_domain("A@EXAMPLE.COM"));
        assert!(!known_domain("a@co.uk") && !known_domain("x@example.con") && !known_domain("x@mail.local"));
    }
}
