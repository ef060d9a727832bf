//! Where the recognisers look: each recogniser's matches are made only of characters from its
//! own set (digits, separators, …: its *joining* characters), so a match lies inside one maximal
//! run of them. A run that holds no seed of the recogniser (a digit, an `@`, …) or too few digits
//! cannot hold a match and is never searched; the others are searched with one character of
//! context on each side (what `\b`, look-behind and libphonenumber's neighbour checks look at).
//! Because a run is maximal, leftmost-first matching inside it gives exactly the matches a search
//! of the whole text gives there; `tests` check each pattern's characters against its set.

use std::ops::Range;
use std::sync::LazyLock;

/// A run of joining characters (`run`) inside the text searched for it (`ctx`: the run and one
/// character either side, where the text has one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub run: Range<usize>,
    pub ctx: Range<usize>,
}

impl Window {
    /// The searched text.
    pub fn text<'t>(&self, text: &'t str) -> &'t str {
        &text[self.ctx.clone()]
    }
}

static ND: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(r"^\p{Nd}$").expect("a fixed pattern compiles"));

/// A Unicode decimal digit (`\d` in Python's and Rust's regexes, `\p{Nd}` in libphonenumber's).
pub(crate) fn is_nd(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    c.is_numeric() && ND.is_match(c.encode_utf8(&mut [0; 4]))
}

/// Byte offsets of every decimal digit, ASCII or not, in order.
pub(crate) fn digits(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // Eight bytes at a time where none is an ASCII digit or part of a non-ASCII character.
        if let Some(chunk) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if !digit_or_non_ascii(w) {
                i += 8;
                continue;
            }
        }
        if b[i] < 0x80 {
            if b[i].is_ascii_digit() {
                out.push(i);
            }
            i += 1;
        } else {
            let c = char_at(text, i);
            if is_nd(c) {
                out.push(i);
            }
            i += c.len_utf8();
        }
    }
    out
}

/// The digits of `digits` (offsets into `text`) that begin `n` ASCII digits in a row.
pub(crate) fn ascii_digits_in_a_row<'a>(text: &'a str, digits: &'a [usize], n: usize) -> impl Iterator<Item = usize> + 'a {
    let b = text.as_bytes();
    digits.iter().copied().filter(move |&d| b.get(d..d + n).is_some_and(|s| s.iter().all(u8::is_ascii_digit)))
}

/// Whether any of the eight bytes in `w` is an ASCII digit or not ASCII.
fn digit_or_non_ascii(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if w & HIGH != 0 {
        return true;
    }
    // Every byte is below 0x80, so adding to each cannot carry into the next: a byte is at least
    // `0` when adding 0x50 sets its top bit, at most `9` when adding 0x46 leaves it clear.
    (w + 0x50 * ONES) & !(w + 0x46 * ONES) & HIGH != 0
}

/// The character starting at byte `i` (a character boundary before the end).
fn char_at(text: &str, i: usize) -> char {
    text[i..].chars().next().expect("a character boundary before the end")
}

/// The maximal runs of `joins` characters around each seed (byte offsets of characters in
/// `text`, ascending), each once, kept when `keep` accepts the run's text.
pub(crate) fn runs(text: &str, seeds: impl IntoIterator<Item = usize>, joins: impl Fn(char) -> bool, keep: impl Fn(&str) -> bool) -> Vec<Window> {
    let b = text.as_bytes();
    let mut out: Vec<Window> = Vec::new();
    let mut covered = 0usize;
    for seed in seeds {
        if seed < covered || seed >= b.len() {
            continue;
        }
        let c = char_at(text, seed);
        if !joins(c) {
            covered = seed + c.len_utf8();
            continue;
        }
        // Scanned a byte at a time where the text is ASCII.
        let mut start = seed;
        let mut before = None;
        while start > 0 {
            let c = if b[start - 1] < 0x80 { b[start - 1] as char } else { text[..start].chars().next_back().expect("a character before") };
            if !joins(c) {
                before = Some(start - c.len_utf8());
                break;
            }
            start -= c.len_utf8();
        }
        let mut end = seed;
        let mut after = text.len();
        while end < b.len() {
            let c = if b[end] < 0x80 { b[end] as char } else { char_at(text, end) };
            if !joins(c) {
                after = end + c.len_utf8();
                break;
            }
            end += c.len_utf8();
        }
        covered = end.max(seed + 1);
        if keep(&text[start..end]) {
            out.push(Window { run: start..end, ctx: before.unwrap_or(start)..after });
        }
    }
    out
}

/// Leftmost-first matches of `re` inside each window, as byte ranges of the whole text.
pub(crate) fn find_in(re: &regex::Regex, text: &str, windows: &[Window]) -> Vec<Range<usize>> {
    find_unless(re, text, windows, 0, |_, _| false)
}

/// Leftmost-first matches of `re` in `t` — the span of capture `group` (0: the whole match; a
/// pattern whose look-ahead is consumed as one more character keeps its match in group 1) —
/// skipping starts where `excluded(t, start)` holds and searching on from the next character:
/// what a backtracking engine does with a look-around at a pattern's start.
pub(crate) fn matches_unless(re: &regex::Regex, t: &str, group: usize, excluded: impl Fn(&str, usize) -> bool) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at <= t.len() {
        let m = if group == 0 {
            re.find_at(t, at).map(|m| m.range())
        } else {
            re.captures_at(t, at).map(|c| c.get(group).expect("the pattern has the group").range())
        };
        let Some(m) = m else { break };
        if excluded(t, m.start) {
            at = m.start + t[m.start..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        at = m.end.max(m.start + 1);
        out.push(m);
    }
    out
}

/// [`matches_unless`] inside each window, as byte ranges of the whole text.
pub(crate) fn find_unless(re: &regex::Regex, text: &str, windows: &[Window], group: usize, excluded: impl Fn(&str, usize) -> bool) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for w in windows {
        out.extend(matches_unless(re, w.text(text), group, &excluded).into_iter().map(|m| w.ctx.start + m.start..w.ctx.start + m.end));
    }
    out
}

/// The character before byte `at` (none at the start).
pub(crate) fn char_before(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

/// Python's `\w` (Unicode word characters), as the regex crate has it.
pub(crate) fn is_word(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    regex_syntax::is_word_character(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_maximal_and_once() {
        let t = "ab 12-34 x 5 6 7, 8";
        let w = runs(t, digits(t), |c| c.is_ascii_digit() || c == ' ' || c == '-', |_| true);
        let got: Vec<&str> = w.iter().map(|w| &t[w.run.clone()]).collect();
        assert_eq!(got, [" 12-34 ", " 5 6 7", " 8"]);
        assert_eq!(w[0].text(t), "b 12-34 x");
        assert_eq!(w[2].text(t), ", 8");
        assert!(is_nd('٣') && is_nd('３') && !is_nd('½') && !is_nd('a'));
        assert_eq!(digits("a٣b1"), vec![1, 4]);
        let long = "the year 2024, ninety-nine (99) and ٣ or / : ~ 0 9 and more words: 7";
        let want: Vec<usize> = long.char_indices().filter(|&(_, c)| is_nd(c)).map(|(i, _)| i).collect();
        for from in 0..long.len() {
            if long.is_char_boundary(from) {
                assert_eq!(digits(&long[from..]), want.iter().filter(|&&i| i >= from).map(|i| i - from).collect::<Vec<_>>(), "{from}");
            }
        }
        for b in 0u8..0x80 {
            assert_eq!(digit_or_non_ascii(u64::from_le_bytes([b, b'a', b' ', b'z', b'/', b':', b'~', b'A'])), b.is_ascii_digit(), "{b}");
        }
    }

    /// Every character `pattern` (case-insensitive when `ci`) can match, as ranges.
    fn characters(pattern: &str, ci: bool) -> Vec<(char, char)> {
        use regex_syntax::hir::{Class, HirKind};
        fn walk(h: &regex_syntax::hir::Hir, out: &mut Vec<(char, char)>) {
            match h.kind() {
                HirKind::Literal(l) => out.extend(std::str::from_utf8(&l.0).expect("utf-8 literal").chars().map(|c| (c, c))),
                HirKind::Class(Class::Unicode(c)) => out.extend(c.ranges().iter().map(|r| (r.start(), r.end()))),
                HirKind::Class(Class::Bytes(_)) => panic!("byte class"),
                HirKind::Repetition(r) => walk(&r.sub, out),
                HirKind::Capture(c) => walk(&c.sub, out),
                HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().for_each(|h| walk(h, out)),
                HirKind::Empty | HirKind::Look(_) => {}
            }
        }
        let hir = regex_syntax::ParserBuilder::new().case_insensitive(ci).build().parse(pattern).expect("pattern parses");
        let mut out = Vec::new();
        walk(&hir, &mut out);
        out
    }

    fn all_join(name: &str, pattern: &str, ci: bool, joins: impl Fn(char) -> bool) {
        for (a, b) in characters(pattern, ci) {
            for c in (a as u32..=b as u32).filter_map(char::from_u32) {
                assert!(joins(c), "{name}: {c:?} (U+{:04X}) is in the pattern but does not join a run", c as u32);
            }
        }
    }

    /// The windows are exact only if each pattern's characters all join its runs: checked on the
    /// patterns themselves (their syntax trees), not on examples.
    #[test]
    fn every_pattern_character_joins_its_runs() {
        all_join("email", crate::patterns::EMAIL_PATTERN, true, crate::patterns::email_joins);
        all_join("card", crate::patterns::CARD_PATTERN, true, crate::patterns::card_joins);
        for (p, _) in crate::patterns::SSN_PATTERNS {
            all_join("ssn", p, true, crate::patterns::ssn_joins);
        }
        all_join("iban", crate::iban::IBAN_BODY, true, crate::iban::alnum_or_separator);
        for (i, (p, _, _)) in crate::ip::patterns().iter().enumerate() {
            // The address only: what follows it is the consumed look-ahead.
            let body = if i >= 3 { &p[1..p.find(")(?:$").expect("group 1")] } else { p.as_str() };
            all_join("ip", body, true, crate::ip::joins);
        }
        for p in crate::mac::MAC_PATTERNS {
            all_join("mac", p, true, crate::mac::joins);
        }
        all_join("crypto", crate::crypto::CRYPTO_PATTERN, true, crate::iban::alnum);
        let phone = crate::phone::candidate_pattern();
        all_join("phone", &phone, false, crate::phone::joins);
        // The time-stamp check looks at ":" and two digits after a candidate.
        all_join("phone", "^:[0-5]\\d", false, crate::phone::joins);
    }
}
