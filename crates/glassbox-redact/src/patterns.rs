//! E-mail addresses, card numbers and US SSNs: Presidio's patterns (case-insensitive, `\w`,
//! `\d` and `\b` Unicode as Python's `regex` module has them) and its validation.

use std::sync::LazyLock;

use crate::{Entity, Error, Finding};

/// Backtracking steps allowed per pattern search (fancy-regex; the linear ones need none).
pub(crate) const BACKTRACK_LIMIT: usize = 1_000_000;

fn linear(p: &str) -> regex::Regex {
    regex::RegexBuilder::new(p).case_insensitive(true).build().expect("a fixed pattern compiles")
}

pub(crate) fn fancy(p: &str) -> fancy_regex::Regex {
    fancy_regex::RegexBuilder::new(&format!("(?i){p}")).backtrack_limit(BACKTRACK_LIMIT).build().expect("a fixed pattern compiles")
}

static EMAIL: LazyLock<regex::Regex> = LazyLock::new(|| {
    linear(r"\b((([!#$%&'*+\-/=?^_`{|}~\w])|([!#$%&'*+\-/=?^_`{|}~\w][!#$%&'*+\-/=?^_`{|}~\.\w]{0,}[!#$%&'*+\-/=?^_`{|}~\w]))[@]\w+(?:-+\w+)*(?:\.\w+(?:-+\w+)*)+)\b")
});

/// Presidio keeps an address when tldextract finds a registrable domain under a known ICANN
/// suffix (private suffixes ignored): the host after the last `@`, lower-cased.
fn known_domain(address: &str) -> bool {
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

pub(crate) fn email(text: &str) -> Vec<Finding> {
    EMAIL
        .find_iter(text)
        .filter(|m| known_domain(m.as_str()))
        .map(|m| Finding { entity: Entity::EmailAddress, start: m.start(), end: m.end(), score: 1.0 })
        .collect()
}

static CARD_SHAPE: LazyLock<regex::Regex> = LazyLock::new(|| linear(r"\d{4}[- ]?\d{3,4}[- ]?\d{3,4}[- ]?\d{3,5}"));

static CARD: LazyLock<fancy_regex::Regex> =
    LazyLock::new(|| fancy(r"\b(?!1\d{12}(?!\d))((4\d{3})|(5[0-5]\d{2})|(6\d{3})|(1\d{3})|(3\d{3}))[- ]?(\d{3,4})[- ]?(\d{3,4})[- ]?(\d{3,5})\b"));

/// The Luhn checksum over the digits of `s` (other characters ignored; no digit: false).
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.is_empty() {
        return false;
    }
    let sum: u32 = digits.iter().rev().enumerate().map(|(i, &d)| if i % 2 == 1 { let x = d * 2; x / 10 + x % 10 } else { d }).sum();
    sum.is_multiple_of(10)
}

pub(crate) fn credit_card(text: &str) -> Result<Vec<Finding>, Error> {
    let mut out = Vec::new();
    // The pattern without its boundary and look-ahead, searched linearly: where that finds
    // nothing, the backtracking search cannot either, and is skipped.
    if !CARD_SHAPE.is_match(text) {
        return Ok(out);
    }
    for m in CARD.find_iter(text) {
        let m = m.map_err(|_| Error::Budget("credit card"))?;
        // Only "-" and " " separate groups; Unicode digits the pattern allows but Luhn cannot
        // read make the number invalid, as Python's int() would not (a rare, safe difference:
        // such a string is dropped rather than reported).
        let s: String = m.as_str().chars().filter(|c| *c != '-' && *c != ' ').collect();
        if s.chars().all(|c| c.is_ascii_digit()) && luhn(&s) {
            out.push(Finding { entity: Entity::CreditCard, start: m.start(), end: m.end(), score: 1.0 });
        }
    }
    Ok(out)
}

static SSN: LazyLock<[(regex::Regex, f64); 5]> = LazyLock::new(|| {
    [
        (linear(r"\b([0-9]{5})-([0-9]{4})\b"), 0.05),
        (linear(r"\b([0-9]{3})-([0-9]{6})\b"), 0.05),
        (linear(r"\b(([0-9]{3})-([0-9]{2})-([0-9]{4}))\b"), 0.05),
        (linear(r"\b[0-9]{9}\b"), 0.05),
        (linear(r"\b([0-9]{3})[- .]([0-9]{2})[- .]([0-9]{4})\b"), 0.5),
    ]
});

/// Presidio's `UsSsnRecognizer.invalidate_result`.
fn ssn_invalid(s: &str) -> bool {
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

pub(crate) fn ssn(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (re, score) in SSN.iter() {
        for m in re.find_iter(text) {
            if !ssn_invalid(m.as_str()) {
                out.push(Finding { entity: Entity::UsSsn, start: m.start(), end: m.end(), score: *score });
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
