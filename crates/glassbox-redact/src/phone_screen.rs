//! Which default regions libphonenumber's matcher could find a number for in a run, decided
//! without running it. The matcher costs microseconds per region and run, and most runs of
//! digits in text (card numbers, dates, amounts, IBANs, addresses) hold no phone number for any
//! region; a run with one usually holds it for one or two.
//!
//! The matcher (`PhoneNumberMatcher` at `VALID` leniency, one per region) walks *attempts*: each
//! candidate its pattern finds and, when that fails, the pieces inside it (before and after a
//! slash, a bracket, a spaced dash, a dot, a space). It reports the first attempt that parses for
//! its region into a valid number and resumes its search after it. Until it reports one, the
//! attempts it walks do not depend on the region. So, for a run:
//!
//! 1. every attempt the matcher could walk is listed: from the start of the run, and again from
//!    the end of any attempt that could be reported (checks that can only reject, such as the
//!    bracket, page-number and neighbour checks, are left to the matcher, so this is a superset);
//! 2. each attempt gets, per region, either "cannot be reported" — by a rule below, or because
//!    libphonenumber's own parse fails or finds the number invalid — or the number it parses to;
//! 3. regions whose outcomes agree on every attempt get the same matches (the matcher's checks
//!    after parsing see only the number and the attempt), so the matcher runs once for each group
//!    of regions with any number at all, and not for the others.
//!
//! The listing models the matcher's pattern without its extension part and its second-number
//! cut, so it covers runs of ASCII where no letter or `#` between digits could be an extension
//! label, any `x` or `~` between digits stands in a gap of punctuation the pattern takes whole,
//! no digit group is over 20 digits and there are at most [`MAX_GROUPS`] groups; for any other
//! run every region's matcher runs, as without this module.
//! `tests::screened_equals_every_region` checks the result against every region's matcher.

use std::sync::LazyLock;

use rlibphonenumber::enums::Region;
use rlibphonenumber::{CountryCodeSource, PhoneNumber, PHONE_NUMBER_UTIL};

use crate::phone::REGIONS;
use crate::phone_metadata;

/// More digit groups than this in one run and the run is not screened (its attempts grow with
/// the square of the groups).
const MAX_GROUPS: usize = 24;

/// The longest digit group libphonenumber's pattern takes whole (`\p{Nd}{1,20}`).
const MAX_GROUP_DIGITS: usize = 20;

/// The most digit groups in one candidate: a first block and up to 20 more.
const MAX_CANDIDATE_GROUPS: usize = 21;

/// What libphonenumber's metadata (as bundled by rlibphonenumber) says of each default region,
/// in [`REGIONS`]' order.
struct Code {
    /// The country calling code.
    code: &'static str,
    /// The lengths a national significant number may have in any region sharing the code
    /// (`general_desc.possible_length`: +1 is 10 everywhere and also 7 in Canada; +44 is 7, 9 or
    /// 10 in GB, Guernsey, Jersey and the Isle of Man).
    lengths: &'static [usize],
    /// What a parse for the region may strip from the front of national digits or read as a
    /// country code: the starts of its international prefix (`00`, `011`, Israel's `01…`), of
    /// its national prefix for parsing (`0`; `1` in North America; also `180020` in GB and
    /// `90` in Brazil) and its own country code.
    strips: &'static [&'static str],
    /// The starts of its national prefix for parsing, where every national format the region
    /// has that writes the prefix requires it (`national_prefix_optional_when_formatting` is
    /// never set): empty for the United States and Canada (no prefix in their formats) and
    /// India (optional in some).
    required_prefix: &'static [&'static str],
}

const CODES: [Code; 8] = [
    Code { code: "1", lengths: &[7, 10], strips: &["0", "1"], required_prefix: &[] },
    Code { code: "44", lengths: &[7, 9, 10], strips: &["0", "180020", "44"], required_prefix: &["0", "180020"] },
    Code { code: "49", lengths: &[4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], strips: &["0", "49"], required_prefix: &["0"] },
    Code { code: "33", lengths: &[9], strips: &["0", "33"], required_prefix: &["0"] },
    Code { code: "972", lengths: &[7, 8, 9, 10, 11, 12], strips: &["0", "972"], required_prefix: &["0"] },
    Code { code: "91", lengths: &[8, 9, 10, 11, 12, 13], strips: &["0", "91"], required_prefix: &[] },
    Code { code: "1", lengths: &[7, 10], strips: &["0", "1"], required_prefix: &[] },
    Code { code: "55", lengths: &[8, 9, 10, 11], strips: &["0", "90", "55"], required_prefix: &["0", "90"] },
];

/// The regions whose matcher has to run over `t` (a run with its context), in [`REGIONS`]' order:
/// one per group of regions that would find the same numbers, none where no region could find
/// one.
pub(crate) fn regions_to_search(t: &str, run: std::ops::Range<usize>) -> Vec<Region> {
    match screen(t, run) {
        Some(regions) => regions,
        None => REGIONS.to_vec(),
    }
}

/// What one attempt can become, per region: nothing, or a number (an index into the run's
/// distinct numbers, so equal numbers have equal indices).
type Outcomes = [Option<u16>; 8];

/// Whether the run `t[run]` is one the listing models (see the module's documentation): where
/// its candidates end (after its last digit) if so.
fn modelled(t: &str, run: std::ops::Range<usize>) -> Option<usize> {
    let b = t.as_bytes();
    let r = b.get(run.clone())?;
    // Digits outside ASCII are not modelled.
    if !r.is_ascii() && t[run.clone()].chars().any(|c| !c.is_ascii() && crate::window::is_nd(c)) {
        return None;
    }
    // A candidate lies between the run's first and last digits, with what may lead it before:
    // letters elsewhere (a word joined to the run, such as "to" or "is") cannot be part of one,
    // as an extension label or an `x` needs digits after it.
    let first = run.start + r.iter().position(u8::is_ascii_digit)?;
    let end = run.start + r.iter().rposition(u8::is_ascii_digit)? + 1;
    // What may lead the candidate is the stretch of lead and punctuation characters just before
    // its first digit: a word joined to the run ("to", "Fax:") cannot.
    let mut lead_from = first;
    while lead_from > run.start && (lead(b[lead_from - 1]) || punct(b[lead_from - 1]) || !b[lead_from - 1].is_ascii()) {
        lead_from -= 1;
    }
    if !b[lead_from..first].is_ascii() {
        return None;
    }
    let (mut groups, mut widest, mut x) = (0, 0, false);
    let (mut digit, mut group_start) = (first, first);
    for i in first..end {
        let c = b[i];
        if c.is_ascii_digit() {
            if i == first || digit + 1 != i {
                groups += 1;
                group_start = i;
            }
            digit = i;
            widest = widest.max(i + 1 - group_start);
        } else if !c.is_ascii() {
            return None;
        } else if c == b'x' || c == b'~' {
            // Punctuation to libphonenumber (`x` also a carrier-code or extension mark): modelled
            // only inside a gap of at most four punctuation characters, which the pattern takes
            // as part of the number.
            let next = (i..end).find(|&j| b[j].is_ascii_digit()).unwrap_or(end);
            x = true;
            if next - digit - 1 > 4 || !b[digit + 1..next].iter().all(|&c| punct(c)) {
                return None;
            }
        } else if (c.is_ascii_alphabetic() || c == b'#') && b[digit + 1..i].iter().all(|c| b" \t,;".contains(c) || c.is_ascii_alphabetic() || *c == b'#') {
            // Between digits, a letter or `#` can only extend a number as an extension label,
            // which follows its digits after nothing but spaces, tabs, commas (or the `;` of
            // `;ext=`): a word after other punctuation ("00. In 2024") is no label.
            return None;
        }
    }
    // Past 21 groups the pattern's number part ends and an `x` could start an extension; so
    // can a `[- ]+\d{1,6}#` extension after the last digits, which lets the parse read what
    // follows an `x` or `~` as part of the number. A `/` before an `x` (in the lead too) cuts
    // a second number off. (Both found by review: "2125550~187     1#", "(/x(212) 555-0187/1".)
    let slash_x = b[lead_from..end].contains(&b'x') && b[lead_from..end].contains(&b'/');
    if widest > MAX_GROUP_DIGITS || groups > MAX_GROUPS || slash_x || (x && (groups > MAX_CANDIDATE_GROUPS || b.get(end) == Some(&b'#'))) {
        return None;
    }
    Some(end)
}

/// [`regions_to_search`] for a [`modelled`] run; `None` for any other.
fn screen(t: &str, run: std::ops::Range<usize>) -> Option<Vec<Region>> {
    let b = t.as_bytes();
    let end = modelled(t, run.clone())?;
    let mut outcomes: Vec<((usize, usize), Outcomes)> = Vec::with_capacity(16);
    let mut numbers: Vec<PhoneNumber> = Vec::with_capacity(4);
    let (mut todo, mut seen) = (Vec::with_capacity(4), Vec::with_capacity(4));
    todo.push(run.start);
    seen.push(run.start);
    let (mut tried, mut digits) = (Vec::with_capacity(16), Vec::with_capacity(32));
    while let Some(pos) = todo.pop() {
        let mut at = pos;
        while let Some((s, e)) = candidate(b, at, end) {
            if !skipped(t, s, e) {
                attempts(b, s, e, &mut tried);
                for &a in &tried {
                    if outcomes.iter().any(|(k, _)| *k == a) {
                        continue;
                    }
                    let o = outcome(&t[a.0..a.1], &mut digits, &mut numbers);
                    if o.iter().any(Option::is_some) && !seen.contains(&a.1) {
                        seen.push(a.1);
                        todo.push(a.1);
                    }
                    outcomes.push((a, o));
                }
            }
            at = e;
        }
    }
    let mut keep: Vec<usize> = Vec::new();
    for r in 0..REGIONS.len() {
        if outcomes.iter().all(|(_, o)| o[r].is_none()) {
            continue;
        }
        if !keep.iter().any(|&k| outcomes.iter().all(|(_, o)| o[k] == o[r])) {
            keep.push(r);
        }
    }
    Some(keep.into_iter().map(|r| REGIONS[r]).collect())
}

/// libphonenumber's punctuation (`VALID_PUNCTUATION`) in ASCII.
fn punct(c: u8) -> bool {
    matches!(c, b'-' | b'x' | b' ' | b'(' | b')' | b'.' | b'[' | b']' | b'/' | b'~')
}

/// What may lead a number (`(`, `[` and plus signs).
fn lead(c: u8) -> bool {
    matches!(c, b'(' | b'[' | b'+')
}

/// Whether `s` is `(?:LEAD PUNCT{0,4}){0,2}`, what may stand before a candidate's first digit.
fn lead_part(s: &[u8]) -> bool {
    fn rest(s: &[u8], leads: usize) -> bool {
        if s.is_empty() {
            return true;
        }
        if leads == 2 || !lead(s[0]) {
            return false;
        }
        // The lead, then as many of up to four punctuation characters as lets the rest parse.
        (0..=4).any(|n| s.len() > n && s[1..=n].iter().all(|&c| punct(c)) && rest(&s[1 + n..], leads + 1))
    }
    s.len() <= 10 && rest(s, 0)
}

/// The matcher's pattern searched from `at`: its leftmost match in `b[..end]`, as byte offsets.
/// Without the extension part (a screened run cannot hold one) it is an optional lead, a digit
/// group, then more groups each after at most four punctuation characters, 21 groups at most;
/// groups have at most 20 digits in a screened run, so each is taken whole.
fn candidate(b: &[u8], at: usize, end: usize) -> Option<(usize, usize)> {
    let first = (at..end).find(|&i| b[i].is_ascii_digit())?;
    let start = (first.saturating_sub(10).max(at)..=first).find(|&p| lead_part(&b[p..first]))?;
    let mut e = first;
    let mut groups = 0;
    loop {
        while e < end && b[e].is_ascii_digit() {
            e += 1;
        }
        groups += 1;
        let gap = (e..end.min(e + 5)).take_while(|&i| punct(b[i])).count();
        if groups == MAX_CANDIDATE_GROUPS || gap > 4 || e + gap >= end || !b[e + gap].is_ascii_digit() {
            return Some((start, e));
        }
        e += gap;
    }
}

static SLASH_DATES: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"(?:(?:[0-3]?\d/[01]?\d)|(?:[01]?\d/[0-3]?\d))/(?:[12]\d)?\d{2}").expect("a fixed pattern compiles"));
static TIME_STAMPS: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(r"[12]\d{3}[-/]?[01]\d[-/]?[0-3]\d +[0-2]\d$").expect("a fixed pattern compiles"));
static TIME_STAMPS_SUFFIX: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(r"^:[0-5]\d").expect("a fixed pattern compiles"));

/// The matcher skips a candidate that looks like a date (`d/m/yy`) or the date and hour of a
/// time stamp followed by `:mm`.
fn skipped(t: &str, s: usize, e: usize) -> bool {
    let c = &t[s..e];
    (c.contains('/') && SLASH_DATES.is_match(c)) || (t[e..].starts_with(':') && TIME_STAMPS.is_match(c) && TIME_STAMPS_SUFFIX.is_match(&t[e..]))
}

/// Every attempt the matcher makes for the candidate `b[s..e]` when no attempt succeeds: the
/// candidate, then for each inner pattern in its order (`/+(.*)`, `(\([^(]*)`, a dash with a space
/// on one side, a dot run, a space run) the text before its first match and each match's group,
/// with trailing punctuation trimmed. (Its fourth pattern, for non-ASCII dashes, cannot match.)
fn attempts(b: &[u8], s: usize, e: usize, out: &mut Vec<(usize, usize)>) {
    let c = &b[s..e];
    out.clear();
    out.push((s, e));
    // Each pattern's matches in order, as (match start, group start, group end = match end):
    // the text before its first match, then each match's group, trailing characters that are
    // neither letters, digits nor `#` trimmed.
    let push = |(d, g, m): (usize, usize, usize), first: &mut bool, out: &mut Vec<(usize, usize)>| {
        for (from, to) in [(0, d), (g, m)].into_iter().skip(usize::from(!*first)) {
            let mut to = to;
            while to > from && !(c[to - 1].is_ascii_alphanumeric() || c[to - 1] == b'#') {
                to -= 1;
            }
            if to > from {
                out.push((s + from, s + to));
            }
        }
        *first = false;
    };
    // `/+(.*)`: the first slash run and everything after it.
    let mut first = true;
    if let Some(i) = c.iter().position(|&x| x == b'/') {
        let j = i + c[i..].iter().take_while(|&&x| x == b'/').count();
        push((i, j, c.len()), &mut first, out);
    }
    // `(\([^(]*)`: from each `(` to the next.
    first = true;
    for (i, _) in c.iter().enumerate().filter(|&(_, &x)| x == b'(') {
        push((i, i, i + 1 + c[i + 1..].iter().position(|&x| x == b'(').unwrap_or(c.len() - i - 1)), &mut first, out);
    }
    // `(?:\p{Z}-|-\p{Z})\p{Z}*(.+)`: the first " -" or "- ", spaces, then the rest.
    first = true;
    if let Some(i) = c.windows(2).position(|w| w == b" -" || w == b"- ") {
        let j = i + 2 + c[i + 2..].iter().take_while(|&&x| x == b' ').count();
        // `.+` needs a character; the candidate ends with a digit, so one is there.
        push((i, j.min(c.len() - 1), c.len()), &mut first, out);
    }
    // `\.+\p{Z}*([^.]+)`: each dot run, spaces, then up to the next dot.
    first = true;
    let mut i = 0;
    while let Some(p) = c[i..].iter().position(|&x| x == b'.') {
        let d = i + p;
        let j = d + c[d..].iter().take_while(|&&x| x == b'.').count();
        let k = j + c[j..].iter().take_while(|&&x| x == b' ').count();
        // `[^.]+` takes at least one character: the last space when only spaces precede a dot.
        let g = if k < c.len() && c[k] != b'.' { k } else { k.saturating_sub(1).max(j) };
        let m = g + c[g..].iter().position(|&x| x == b'.').unwrap_or(c.len() - g);
        if m > g {
            push((d, g, m), &mut first, out);
        }
        i = m.max(j);
    }
    // `\p{Z}+([^\p{Z}]+)`: each space run, then up to the next space.
    first = true;
    let mut i = 0;
    while let Some(p) = c[i..].iter().position(|&x| x == b' ') {
        let d = i + p;
        let j = d + c[d..].iter().take_while(|&&x| x == b' ').count();
        let m = j + c[j..].iter().position(|&x| x == b' ').unwrap_or(c.len() - j);
        if m > j {
            push((d, j, m), &mut first, out);
        }
        i = m;
        if m == c.len() {
            break;
        }
    }
}

/// Whether `attempt` can be reported, per region: `None` where it cannot, else the number it
/// parses to.
fn outcome(attempt: &str, digits: &mut Vec<u8>, numbers: &mut Vec<PhoneNumber>) -> Outcomes {
    digits.clear();
    digits.extend(attempt.bytes().filter(u8::is_ascii_digit));
    let digits = &digits[..];
    let mut out: Outcomes = Default::default();
    // An `x` or `~` may mark an extension or a carrier code, or (three letters) make the number
    // one of letters: the digits are then not simply the number's, and only parsing decides.
    let marks = attempt.bytes().any(|c| c == b'x' || c == b'~');
    if digits.is_empty() || (!marks && !crate::phone::may_be_valid(digits)) {
        return out;
    }
    let plus = attempt.bytes().find(|&c| c == b'+' || c.is_ascii_digit()) == Some(b'+');
    let mut intern = |n: Option<PhoneNumber>| {
        let n = n?;
        let i = numbers.iter().position(|m| *m == n).unwrap_or_else(|| {
            numbers.push(n);
            numbers.len() - 1
        });
        u16::try_from(i).ok()
    };
    // libphonenumber's parse and validity check, as `phone_metadata` writes them out where it
    // does.
    let parse = |region: Region| {
        match phone_metadata::parse(attempt, digits, region) {
            Some(n) => n,
            None => PHONE_NUMBER_UTIL.parse_and_keep_raw_input(attempt, Some(region)).ok(),
        }
        .filter(phone_metadata::is_valid)
    };
    if plus && digits[0] != b'0' {
        // After a plus sign the number's own country code decides, whatever the region (a
        // plus before 0 is no country code: the matcher then reads the digits as dialled
        // from the region).
        return [intern(parse(REGIONS[0])); 8];
    }
    let national = !plus && !marks;
    for r in 0..REGIONS.len() {
        if national && !may_be_national(digits, r) {
            continue;
        }
        out[r] = if national && plain(digits, r) {
            // The parse would give the region's code and the digits as they are: regions
            // sharing a code share the number.
            match (0..r).find(|&q| CODES[q].code == CODES[r].code && plain(digits, q)) {
                Some(q) => out[q],
                None => intern(national_number(attempt, digits, r)),
            }
        } else {
            intern(parse(REGIONS[r]).filter(|n| !prefix_missing(n, digits, r)))
        };
    }
    out
}

/// Whether the matcher's national-prefix check rejects `n`, parsed for region `r` from an
/// attempt with `digits`: where the region requires its national prefix ([`Code::required_prefix`]),
/// a number read as national (no plus sign, international prefix or country code before it)
/// whose national format begins with the prefix is not reported when its digits do not.
fn prefix_missing(n: &PhoneNumber, digits: &[u8], r: usize) -> bool {
    let required = CODES[r].required_prefix;
    !required.is_empty()
        && n.country_code_source == Some(CountryCodeSource::FromDefaultCountry as i32)
        && !required.iter().any(|p| digits.starts_with(p.as_bytes()))
        && phone_metadata::national_format_starts_with_zero(n)
}

/// Whether national `digits` begin with nothing a parse for region `r` would strip or take as
/// a country code ([`Code::strips`]), and not with 0 (a leading zero the number keeps). A parse
/// reads such digits whole as the national significant number.
fn plain(digits: &[u8], r: usize) -> bool {
    digits[0] != b'0' && !CODES[r].strips.iter().any(|p| digits.starts_with(p.as_bytes()))
}

/// The number a parse for region `r` makes of [`plain`] national `digits`, if it is valid and
/// can pass the matcher's national-prefix check.
fn national_number(attempt: &str, digits: &[u8], r: usize) -> Option<PhoneNumber> {
    let n = PhoneNumber {
        country_code: CODES[r].code.parse().ok()?,
        national_number: std::str::from_utf8(digits).ok()?.parse().ok()?,
        raw_input: Some(attempt.to_string()),
        country_code_source: Some(CountryCodeSource::FromDefaultCountry as i32),
        ..Default::default()
    };
    (phone_metadata::is_valid(&n) && !prefix_missing(&n, digits, r)).then_some(n)
}

/// Whether national `digits` can be a valid number for region `r`: [`plain`] digits are the
/// national significant number, so their length must be one the region's code has.
fn may_be_national(digits: &[u8], r: usize) -> bool {
    !plain(digits, r) || CODES[r].lengths.contains(&digits.len())
}

#[cfg(test)]
#[path = "phone_screen_tests.rs"]
mod tests;
