//! IBANs as Presidio's `IbanRecognizer` finds them: a generic pattern, then, from the longest
//! candidate down (the whole match, without its last short group, without its last group), the
//! first that passes the ISO 13616 mod-97 check and its country's format; a valid check with the
//! format matching only once upper-cased scores 0.5, else 1.0. The country format is matched as a
//! prefix, as Presidio does (so an over-long IBAN whose prefix fits and whose checksum holds is
//! reported, as there).

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::patterns::fancy;
use crate::{Entity, Error, Finding};

static COUNTRY_CHECK: LazyLock<regex::Regex> = LazyLock::new(|| regex::RegexBuilder::new("[A-Z]{2}[0-9]{2}").case_insensitive(true).build().expect("a fixed pattern compiles"));

static GENERIC: LazyLock<fancy_regex::Regex> = LazyLock::new(|| {
    fancy(r"(?<![A-Z0-9])([A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,6})((?:[ -]?[A-Z0-9]{4})?)((?:[ -]?[A-Z0-9]{1,3})?)(?![A-Z0-9])")
});

/// Presidio's `iban_patterns.regex_per_country`, block by block (A letter, C letter or digit
/// (either case), N digit; a count repeats the block; "0" is a literal zero).
const COUNTRIES: &[(&str, &str)] = &[
    ("AL", "N4 N4 C4 C4 C4 C4"), ("AD", "N4 N4 C4 C4 C4"), ("AT", "N4 N4 N4 N4"), ("AZ", "C4 N4 N4 N4 N4 N4"),
    ("BH", "A4 C4 C4 C4 C2"), ("BY", "C4 N4 C4 C4 C4 C4"), ("BE", "N4 N4 N4"), ("BA", "N4 N4 N4 N4"),
    ("BR", "N4 N4 N4 N4 N4 N3 A C"), ("BG", "A4 N4 N N C2 C4 C2"), ("CR", "0 N3 N4 N4 N4 N2"), ("HR", "N4 N4 N4 N4 N"),
    ("CY", "N4 N4 C4 C4 C4 C4"), ("CZ", "N4 N4 N4 N4 N4"), ("DK", "N4 N4 N4 N2"), ("DO", "A4 N4 N4 N4 N4 N4"),
    ("TL", "N4 N4 N4 N4 N3"), ("EE", "N4 N4 N4 N4"), ("FO", "N4 N4 N4 N2"), ("FI", "N4 N4 N4 N2"),
    ("FR", "N4 N4 N2 C2 C4 C4 C N2"), ("GE", "C2 N2 N4 N4 N4 N2"), ("DE", "N4 N4 N4 N4 N2"), ("GI", "A4 C4 C4 C4 C3"),
    ("GR", "N4 N3 C C4 C4 C4 C3"), ("GL", "N4 N4 N4 N2"), ("GT", "C4 C4 C4 C4 C4 C4"), ("HU", "N4 N4 N4 N4 N4 N4"),
    ("IS", "N4 N4 N4 N4 N4 N2"), ("IE", "C4 N4 N4 N4 N2"), ("IL", "N4 N4 N4 N4 N3"), ("IT", "A N3 N4 N3 C C3 C C4 C3"),
    ("JO", "A4 N4 N4 N4 N4 N4 N2"), ("KZ", "N3 C C4 C4 C4"), ("XK", "N4 N4 N4 N4"), ("KW", "A4 C4 C4 C4 C4 C4 C2"),
    ("LV", "A4 C4 C4 C4 C"), ("LB", "N4 C4 C4 C4 C4 C4"), ("LI", "N4 N C3 C4 C4 C"), ("LT", "N4 N4 N4 N4"),
    ("LU", "N3 C C4 C4 C4"), ("MT", "A4 N4 N C3 C4 C4 C4 C3"), ("MR", "N4 N4 N4 N4 N4 N3"), ("MU", "A4 N4 N4 N4 N4 N3 A"),
    ("MD", "C4 C4 C4 C4 C4"), ("MC", "N4 N4 N2 C2 C4 C4 C N2"), ("ME", "N4 N4 N4 N4 N2"), ("NL", "A4 N4 N4 N2"),
    ("MK", "N3 C C4 C4 C N2"), ("NO", "N4 N4 N3"), ("PK", "C4 N4 N4 N4 N4"), ("PS", "C4 N4 N4 N4 N4 N"),
    ("PL", "N4 N4 N4 N4 N4 N4"), ("PT", "N4 N4 N4 N4 N"), ("QA", "A4 C4 C4 C4 C4 C"), ("RO", "A4 C4 C4 C4 C4"),
    ("SM", "A N3 N4 N3 C C4 C4 C3"), ("SA", "N2 C2 C4 C4 C4 C4"), ("RS", "N4 N4 N4 N4 N2"), ("SK", "N4 N4 N4 N4 N4"),
    ("SI", "N4 N4 N4 N3"), ("ES", "N4 N4 N4 N4 N4"), ("SE", "N4 N4 N4 N4 N4"), ("CH", "N4 N C3 C4 C4 C"),
    ("TN", "N4 N4 N4 N4 N4"), ("TR", "N4 N C3 C4 C4 C4 C2"), ("AE", "N4 N4 N4 N4 N3"), ("GB", "A4 N4 N4 N4 N2"),
    ("VA", "N4 N4 N4 N4 N2"), ("VG", "C4 N4 N4 N4 N4"), ("EG", "N4 N4 N4 N4 N4 N4 N"), ("IQ", "A4 N4 N4 N4 N3"),
    ("LY", "N4 N4 N4 N4 N4 N"), ("LC", "A4 C4 C4 C4 C4 C4 C4"), ("SC", "A4 N4 N4 N4 N4 N4 A3"), ("UA", "N4 N2 C4 C4 C4 C4 C3"),
];

static FORMATS: LazyLock<HashMap<&'static str, regex::Regex>> = LazyLock::new(|| {
    COUNTRIES
        .iter()
        .map(|(cc, blocks)| {
            let mut p = format!("^({cc})[0-9]{{2}}[ ]?");
            for b in blocks.split(' ') {
                let (class, n) = b.split_at(1);
                let class = match class {
                    "A" => "[A-Z]",
                    "C" => "[a-zA-Z0-9]",
                    "N" => "[0-9]",
                    _ => "[0]",
                };
                match n {
                    "" => p.push_str(&format!("{class}[ ]?")),
                    n if class == "[0]" => p.push_str(&format!("{class}{n}")),
                    n => p.push_str(&format!("({class}[ ]?){{{n}}}")),
                }
            }
            (*cc, regex::Regex::new(&p).expect("a country format compiles"))
        })
        .collect()
});

/// ISO 13616 check digits of an (upper-cased) IBAN with its check digits ignored.
fn check_digits(iban: &str) -> Option<String> {
    let t = format!("{}00{}", iban.get(..2)?, iban.get(4..)?).to_uppercase();
    let moved = format!("{}{}", &t[4..], &t[..4]);
    let mut rem: u32 = 0;
    for c in moved.chars() {
        let v = c.to_digit(36)?;
        for d in v.to_string().chars() {
            rem = (rem * 10 + d.to_digit(10)?) % 97;
        }
    }
    Some(format!("{:02}", 98 - rem))
}

fn format_ok(iban: &str) -> bool {
    iban.get(..2).and_then(|cc| FORMATS.get(cc)).is_some_and(|re| re.is_match(iban))
}

/// Presidio's `validate_result`: `Some(true)` valid, `None` valid once upper-cased, `Some(false)`.
fn validate(candidate: &str) -> Option<bool> {
    let s: String = candidate.chars().filter(|c| *c != '-' && *c != ' ').collect();
    if !s.is_ascii() || s.get(2..4).is_none() || check_digits(&s).as_deref() != s.get(2..4) {
        return Some(false);
    }
    if format_ok(&s) {
        Some(true)
    } else if format_ok(&s.to_uppercase()) {
        None
    } else {
        Some(false)
    }
}

pub(crate) fn find(text: &str) -> Result<Vec<Finding>, Error> {
    let mut out = Vec::new();
    // The pattern needs two letters and two digits in a row: without them (checked by a linear
    // search with the same case folding) it cannot match, and its backtracking search is skipped.
    if !COUNTRY_CHECK.is_match(text) {
        return Ok(out);
    }
    for caps in GENERIC.captures_iter(text) {
        let caps = caps.map_err(|_| Error::Budget("IBAN"))?;
        let whole = caps.get(0).expect("group 0");
        for g in [3, 2, 1] {
            let end = caps.get(g).map_or(whole.end(), |m| m.end());
            let candidate = &text[whole.start()..end];
            if candidate.is_empty() {
                continue;
            }
            let score = match validate(candidate) {
                Some(true) => 1.0,
                None => 0.5,
                Some(false) => continue,
            };
            out.push(Finding { entity: Entity::IbanCode, start: whole.start(), end, score });
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_formats() {
        assert_eq!(COUNTRIES.len(), 76);
        assert_eq!(validate("GB82 WEST 1234 5698 7654 32"), Some(true));
        assert_eq!(validate("DE89370400440532013000"), Some(true));
        assert_eq!(validate("DE89370400440532013001"), Some(false));
        assert_eq!(validate("de89370400440532013000"), None);
        assert_eq!(validate("RU0204452560040702810412345678901"), Some(false));
        // Over-long but its prefix fits the format and the checksum holds: Presidio reports it.
        assert_eq!(validate("DE6537040044053201300012"), Some(true));
    }
}
