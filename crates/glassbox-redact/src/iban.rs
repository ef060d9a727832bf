//! IBANs as Presidio's `IbanRecognizer` finds them: a generic pattern, then, from the longest
//! candidate down (the whole match, without its last short group, without its last group), the
//! first that passes the ISO 13616 mod-97 check and its country's format; a valid check with the
//! format matching only once upper-cased scores 0.5, else 1.0. The country format is matched as a
//! prefix, as Presidio does (so an over-long IBAN whose prefix fits and whose checksum holds is
//! reported, as there).

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::patterns::linear;
use crate::{Entity, Finding};

/// Presidio's generic pattern, `(?<![A-Z0-9])` + this + `(?![A-Z0-9])` (case-insensitive): it
/// starts with two letters and two digits, so it is tried only where those stand, anchored there
/// (the look-behind checked by hand, the look-ahead consumed as one more character or the end).
pub(crate) const IBAN_BODY: &str = r"([A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,6})((?:[ -]?[A-Z0-9]{4})?)((?:[ -]?[A-Z0-9]{1,3})?)";

static GENERIC: LazyLock<regex::Regex> = LazyLock::new(|| linear(&format!(r"^(?:{IBAN_BODY})(?:[^A-Z0-9]|$)")));

/// `(?i)[A-Z0-9]`: ASCII letters and digits, and the two characters whose case folds into them
/// (the long s and the Kelvin sign).
pub(crate) fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '\u{17F}' || c == '\u{212A}'
}

/// The characters of a match: [`alnum`], spaces and hyphens.
#[cfg(test)]
pub(crate) fn alnum_or_separator(c: char) -> bool {
    alnum(c) || c == ' ' || c == '-'
}

/// Longest text a match and the character after it can take (43 characters of at most 3 bytes,
/// one more of at most 4), with room to spare: a slice this long from a match's start decides it.
const SPAN: usize = 160;

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

/// Whether an IBAN's check digits (its third and fourth characters) are the ISO 13616 ones for
/// the rest: mod 97 of the number read from its characters after the first four, then the
/// country letters and "00", each letter as its two-digit value (A = 10 … Z = 35, any case).
fn check_digits_ok(iban: &str) -> bool {
    let b = iban.as_bytes();
    if b.len() < 4 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..2]).chain(b"00") {
        let Some(v) = char::from(c).to_digit(36) else { return false };
        rem = (rem * if v < 10 { 10 } else { 100 } + v) % 97;
    }
    let want = 98 - rem;
    b[2] == b'0' + (want / 10) as u8 && b[3] == b'0' + (want % 10) as u8
}

fn format_ok(iban: &str) -> bool {
    iban.get(..2).and_then(|cc| FORMATS.get(cc)).is_some_and(|re| re.is_match(iban))
}

/// Presidio's `validate_result`: `Some(true)` valid, `None` valid once upper-cased, `Some(false)`.
fn validate(candidate: &str) -> Option<bool> {
    let s: String = candidate.chars().filter(|c| *c != '-' && *c != ' ').collect();
    if !s.is_ascii() || !check_digits_ok(&s) {
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

/// Where a match can start: two letters (`(?i)[A-Z]`) before two ASCII digits, with no letter
/// or digit before them; in order. (Two such places never overlap.)
fn starts(text: &str, digits: &[usize]) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for w in digits.windows(2) {
        let (d, next) = (w[0], w[1]);
        if next != d + 1 || !b[d].is_ascii_digit() || !b[next].is_ascii_digit() {
            continue;
        }
        let mut before = text[..d].char_indices().rev();
        let (Some((i2, c2)), Some((i1, c1))) = (before.next(), before.next()) else { continue };
        let letter = |c: char| alnum(c) && !c.is_ascii_digit();
        if !letter(c1) || !letter(c2) || i2 + c2.len_utf8() != d {
            continue;
        }
        if crate::window::char_before(text, i1).is_some_and(alnum) {
            continue;
        }
        out.push(i1);
    }
    out
}

/// Presidio's choice among a match's candidates (`ends`: where groups 1, 2 and 3 end; group 3
/// ends the whole match): the longest that validates.
pub(crate) fn best(text: &str, start: usize, ends: [usize; 3]) -> Option<Finding> {
    for end in ends.into_iter().rev() {
        let candidate = &text[start..end];
        if candidate.is_empty() {
            continue;
        }
        let score = match validate(candidate) {
            Some(true) => 1.0,
            None => 0.5,
            Some(false) => continue,
        };
        return Some(Finding { entity: Entity::IbanCode, start, end, score });
    }
    None
}

pub(crate) fn find(text: &str, digits: &[usize]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut done = 0;
    for start in starts(text, digits) {
        if start < done {
            continue;
        }
        let mut end = (start + SPAN).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let Some(caps) = GENERIC.captures(&text[start..end]) else { continue };
        let ends = [1, 2, 3].map(|g| start + caps.get(g).map_or(0, |m| m.end()));
        done = ends[2];
        out.extend(best(text, start, ends));
    }
    out
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

    /// The check digits as ISO 13616 states them: letters replaced by their numbers in the
    /// rearranged string, the whole read as one decimal number, mod 97.
    fn check_digits_spelled_out(iban: &str) -> Option<String> {
        let moved = format!("{}{}00", iban.get(4..)?, iban.get(..2)?);
        let number: String = moved.chars().map(|c| c.to_digit(36).map(|v| v.to_string())).collect::<Option<_>>()?;
        let rem = number.bytes().fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97);
        Some(format!("{:02}", 98 - rem))
    }

    #[test]
    fn check_digits_as_the_standard_states_them() {
        use proptest::prelude::*;
        proptest!(ProptestConfig::with_cases(3000), |(cc in "[A-Za-z]{2}", bban in "[A-Za-z0-9]{0,30}", right: bool, check in "[0-9]{2}")| {
            let want = check_digits_spelled_out(&format!("{cc}00{bban}")).expect("alphanumeric");
            let iban = format!("{cc}{}{bban}", if right { &want } else { &check });
            prop_assert_eq!(check_digits_ok(&iban), iban[2..4] == want, "{}", iban);
        });
    }
}
