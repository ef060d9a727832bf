//! Phone numbers as Presidio's `PhoneRecognizer` finds them: libphonenumber's matcher at its
//! `VALID` leniency, run once per default region (US, GB, DE, FR, IL, IN, CA, BR), the union of
//! the spans, score 0.4. Matching uses `rlibphonenumber` (a port of Google's C++ library with
//! its bundled metadata); Presidio uses python-phonenumbers (a port of the Java one).

use std::sync::LazyLock;

use rlibphonenumber::enums::Region;
use rlibphonenumber::phonenumber_matcher::{Leniency, PHONE_MATCHER_FACTORY};

use crate::window::{self, is_nd};
use crate::{Entity, Finding};

/// The regions Presidio tries by default, in its order.
pub(crate) const REGIONS: [Region; 8] = [Region::US, Region::GB, Region::DE, Region::FR, Region::IL, Region::IN, Region::CA, Region::BR];

/// libphonenumber's own bound on candidates tried per text (Presidio passes the same). Each run
/// is searched as its own text, so the bound applies per run: a long text full of numbers is
/// searched to its end, where Presidio stops after this many candidates in the whole text.
pub(crate) const MAX_TRIES: usize = 65_535;

/// Every character libphonenumber's candidate pattern can match (its `PATTERN`: opening
/// brackets and plus signs, `VALID_PUNCTUATION`, `\p{Nd}` digits, and the extension forms
/// `;ext=`, `ext`, `extension`, `extensión`, `anexo`, `доб`, `int`, `x`, `#`, `~` and their
/// full-width forms, case-insensitively, with spaces, tabs, commas, colons and dots around them);
/// `tests::phone_pattern_characters_join` checks this against the pattern itself.
pub(crate) fn joins(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit() || matches!(c, ' ' | '\t' | '-' | '.' | ',' | ':' | ';' | '=' | '/' | '~' | '#' | '+' | '(' | ')' | '[' | ']' | 'e' | 'x' | 't' | 'n' | 's' | 'i' | 'o' | 'a' | 'E' | 'X' | 'T' | 'N' | 'S' | 'I' | 'O' | 'A');
    }
    is_nd(c)
        || matches!(c, '\u{A0}' | '\u{AD}' | '\u{200B}' | '\u{2060}' | '\u{3000}' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}' | '\u{FF0D}'..='\u{FF0F}' | '\u{FF08}' | '\u{FF09}' | '\u{FF3B}' | '\u{FF3D}' | '\u{2053}' | '\u{223C}' | '\u{FF0B}' | '\u{FF03}' | '\u{FF5E}')
        || EXTENSION_LETTER.is_match(c.encode_utf8(&mut [0; 4]))
}

/// The letters of the extension labels, with every character whose case folds into one.
static EXTENSION_LETTER: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new("(?i)^[extnsioaó\u{301}доб\u{FF45}\u{FF58}\u{FF54}\u{FF4E}\u{FF49}]$").expect("a fixed pattern compiles"));

/// A valid number has at least four digits, and one of four or five digits holds 164, 168 or 169
/// (German short numbers): the only ones libphonenumber's metadata accepts for these regions or
/// any country code (`tests::short_numbers` runs the matcher on every string of one to five
/// digits, with and without `+`). Runs with fewer digits, or with five at most and none of
/// these, cannot hold a phone number and skip the matcher (years, counts, prices in prose).
const MIN_DIGITS: usize = 4;
const SHORT: usize = 5;
const SHORT_VALID: [&str; 3] = ["164", "168", "169"];

pub(crate) fn may_hold_number(run: &str) -> bool {
    if !run.is_ascii() {
        return run.chars().filter(|&c| is_nd(c)).count() >= MIN_DIGITS;
    }
    may_be_valid(&run.bytes().filter(u8::is_ascii_digit).collect::<Vec<u8>>())
}

/// Whether a text whose (ASCII) digits are `digits` can be a valid number: not when it has
/// fewer than four, or five at most and none of 164, 168, 169 among them.
pub(crate) fn may_be_valid(digits: &[u8]) -> bool {
    digits.len() > SHORT || (digits.len() >= MIN_DIGITS && SHORT_VALID.iter().any(|p| digits.windows(3).any(|w| w == p.as_bytes())))
}

pub(crate) fn find(text: &str, digits: &[usize]) -> Vec<Finding> {
    let windows = window::runs(text, digits.iter().copied(), joins, may_hold_number);
    let mut out = Vec::new();
    for w in &windows {
        let t = w.text(text);
        let run = w.run.start - w.ctx.start..w.run.end - w.ctx.start;
        for region in crate::phone_screen::regions_to_search(t, run) {
            matches(t, region, w.ctx.start, &mut out);
        }
    }
    out
}

/// libphonenumber's matches for `region` in `t` (which starts at `offset` in the text).
pub(crate) fn matches(t: &str, region: Region, offset: usize, out: &mut Vec<Finding>) {
    for m in PHONE_MATCHER_FACTORY.create_matcher(t, Leniency::Valid, MAX_TRIES as _, Some(region)) {
        let (start, end) = (m.start, m.end());
        // The matcher works in bytes of this text; a span off a character boundary would be a
        // bug there, and is dropped rather than trusted.
        if start < end && end <= t.len() && t.is_char_boundary(start) && t.is_char_boundary(end) {
            out.push(Finding { entity: Entity::PhoneNumber, start: offset + start, end: offset + end, score: 0.4 });
        }
    }
}

/// [`find`] with every region's matcher over every run: what the screen must agree with.
#[cfg(test)]
pub(crate) fn find_every_region(text: &str, digits: &[usize]) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &window::runs(text, digits.iter().copied(), joins, may_hold_number) {
        for region in REGIONS {
            matches(w.text(text), region, w.ctx.start, &mut out);
        }
    }
    out
}

/// libphonenumber's candidate pattern (rlibphonenumber 2.2.15 `matcher_regex.rs`,
/// `helper_constants.rs`, `helper_functions::create_extn_pattern(false)`), for tests: every
/// character it can match must join a run, and the screen's own candidate search must agree
/// with it.
#[cfg(test)]
pub(crate) fn candidate_pattern() -> String {
    let punct = "[-x\u{2010}-\u{2015}\u{2212}\u{30FC}\u{FF0D}-\u{FF0F} \u{00A0}\u{00AD}\u{200B}\u{2060}\u{3000}()\u{FF08}\u{FF09}\u{FF3B}\u{FF3D}.\\[\\]/~\u{2053}\u{223C}]{0,4}";
    let digits = "\\p{Nd}{1,20}";
    let ext_digits = "([\\p{Nd}]{1,20})";
    let sep = "[ \u{00A0}\\t,]*";
    let after = "[:\\.\u{FF0E}]?[ \u{00A0}\\t,-]*";
    let explicit = "(?:e?xt(?:ensi(?:o\u{0301}?|\u{00F3}))?n?|(?:\u{FF45})?\u{FF58}\u{FF54}(?:\u{FF4E})?|\u{0434}\u{043E}\u{0431}|anexo)";
    let ambiguous = "(?:[x\u{FF58}#\u{FF03}~\u{FF5E}]|int|\u{FF49}\u{FF4E}\u{FF54})";
    let extn = format!(";ext={ext_digits}|{sep}{explicit}{after}{ext_digits}#?|{sep}{ambiguous}{after}{ext_digits}#?|[- ]+{ext_digits}#");
    let lead = "[(\\[\u{FF08}\u{FF3B}+\u{FF0B}]";
    format!("(?:{lead}{punct}){{0,2}}{digits}(?:{punct}{digits}){{0,20}}(?i)(?:{extn})?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_several_formats() {
        let t = "call (212) 555-0187 or +44 20 7946 0958, not 12";
        let f: Vec<&str> = find(t, &crate::window::digits(t)).iter().map(|f| &t[f.start..f.end]).collect();
        assert!(f.contains(&"(212) 555-0187"), "{f:?}");
        assert!(f.contains(&"+44 20 7946 0958"), "{f:?}");
        assert!(!f.contains(&"12"));
    }

    /// What [`may_hold_number`] relies on, checked on libphonenumber itself: no string of one to
    /// five digits (with or without `+`) is a number in any of the regions, except those holding
    /// 164, 168 or 169 — and those are still found.
    #[test]
    fn short_numbers() {
        let matcher_finds = |t: &str| REGIONS.iter().any(|&r| PHONE_MATCHER_FACTORY.create_matcher(t, Leniency::Valid, MAX_TRIES as _, Some(r)).next().is_some());
        let mut valid = 0;
        for n in 1..=SHORT as u32 {
            for v in 0..10u64.pow(n) {
                let d = format!("{v:0width$}", width = n as usize);
                for t in [d.clone(), format!("+{d}")] {
                    if matcher_finds(&t) {
                        assert!(n as usize >= MIN_DIGITS && !t.starts_with('+') && SHORT_VALID.iter().any(|p| d.contains(p)), "{t} is a valid number");
                        assert_eq!(find(&t, &crate::window::digits(&t)).len(), 1, "{t}");
                        valid += 1;
                    }
                }
            }
        }
        assert_eq!(valid, 360);
        assert!(!may_hold_number(" 2024 ") && !may_hold_number("12 345") && may_hold_number("0164 1") && may_hold_number("123456"));
        assert!(!may_be_valid(b"") && !may_be_valid(b"16") && may_be_valid(b"1690"));
    }
}

