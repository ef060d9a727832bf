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
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.is_empty() {
        return false;
    }
    let sum: u32 = digits.iter().rev().enumerate().map(|(i, &d)| if i % 2 == 1 { let x = d * 2; x / 10 + x % 10 } else { d }).sum();
    sum.is_multiple_of(10)
}

pub(crate) fn credit_card(text: &str, digits: &[usize]) -> Vec<Finding> {
    // Four groups of at least 4 + 3 + 3 + 3 digits.
    let windows = window::runs(text, digits.iter().copied(), card_joins, |r| r.chars().filter(|&c| window::is_nd(c)).count() >= 13);
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
    let s: String = m.chars().filter(|c| *c != '-' && *c != ' ').collect();
    s.chars().all(|c| c.is_ascii_digit()) && luhn(&s)
}

pub(crate) const SSN_PATTERNS: [(&str, f64); 5] = [
    (r"\b([0-9]{5})-([0-9]{4})\b", 0.05),
    (r"\b([0-9]{3})-([0-9]{6})\b", 0.05),
    (r"\b(([0-9]{3})-([0-9]{2})-([0-9]{4}))\b", 0.05),
    (r"\b[0-9]{9}\b", 0.05),
    (r"\b([0-9]{3})[- .]([0-9]{2})[- .]([0-9]{4})\b", 0.5),
];

static SSN: LazyLock<Vec<(regex::Regex, f64)>> = LazyLock::new(|| SSN_PATTERNS.iter().map(|(p, s)| (linear(p), *s)).collect());

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
    let mut out = Vec::new();
    for (re, score) in SSN.iter() {
        for m in window::find_in(re, text, &windows) {
            if !ssn_invalid(&text[m.clone()]) {
                out.push(Finding { entity: Entity::UsSsn, start: m.start, end: m.end, score: *score });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
