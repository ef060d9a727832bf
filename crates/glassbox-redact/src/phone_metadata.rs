//! Three of libphonenumber's answers, read from the metadata rlibphonenumber bundles without its
//! per-call machinery: whether a number is valid (`is_valid_number`), whether its national
//! format begins with a 0 (what the matcher's national-prefix check reads, see `phone_screen`),
//! and what a plainly written attempt parses to (`parse_and_keep_raw_input`; see [`parse`]).
//!
//! The library answers the first with a map lookup and up to a dozen pattern searches for each
//! region sharing the number's calling code (25 share +1). Here every pattern of one calling code
//! is one DFA, walked once over the national significant number, and the library's own decision
//! rules (`get_region_for_number`, `get_number_type`, `choose_formatting_pattern_for_number`,
//! written out below) are applied to the set of patterns that match the whole of it. The DFAs
//! are built from the library's own pattern strings the first time a code is seen. A code whose
//! patterns are not in the form the library wraps them in, or do not fit [`DFA_LIMIT`], and any
//! case below not written out, is answered by the library itself. `tests` compare both answers
//! with the library's on every calling code, over numbers made from every example number.

use std::sync::OnceLock;

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::{primitives::StateID, start, syntax};
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{Hir, HirKind, Look};
use rlibphonenumber::enums::{PhoneNumberFormat, Region};
use rlibphonenumber::interfaces::AsOriginal;
use rlibphonenumber::{PhoneNumber, PHONE_NUMBER_UTIL};

/// Calling codes are below this.
const CODES: usize = 1000;

/// The most distinct patterns one calling code may have here (the +1 regions have about 200).
const MAX_PATTERNS: usize = 64 * WORDS;
const WORDS: usize = 16;

/// The most memory one calling code's DFA, and building it, may take.
const DFA_LIMIT: usize = 32 << 20;

/// libphonenumber's `is_valid_number`.
pub(crate) fn is_valid(n: &PhoneNumber) -> bool {
    let mut buf = [0u8; 32];
    match (code(n.country_code), nsn(n, &mut buf)) {
        (Some(c), Some(nsn)) => match c.matching(nsn) {
            Some(set) => c.valid(nsn.len(), &set),
            None => PHONE_NUMBER_UTIL.is_valid_number(n),
        },
        _ => PHONE_NUMBER_UTIL.is_valid_number(n),
    }
}

/// Whether libphonenumber's national format of `n` (`format(n, National)`) begins with a 0.
pub(crate) fn national_format_starts_with_zero(n: &PhoneNumber) -> bool {
    let mut buf = [0u8; 32];
    // A number without digits is formatted as it was written.
    if n.national_number != 0
        && let (Some(c), Some(nsn)) = (code(n.country_code), nsn(n, &mut buf))
        && let (Some(formats), Some(set)) = (&c.formats, c.matching(nsn))
    {
        match formats.iter().find(|f| f.leading.test(&set) && f.pattern.test(&set)).map(|f| f.first) {
            // No format: the digits as they are.
            None => return nsn[0] == b'0',
            Some(First::Literal(zero)) => return zero,
            Some(First::Digits) => return nsn[0] == b'0',
            Some(First::Unknown) => {}
        }
    }
    PHONE_NUMBER_UTIL.format(n, PhoneNumberFormat::National).starts_with('0')
}

/// libphonenumber's `parse_and_keep_raw_input(attempt, region)` for an attempt of ASCII digits
/// (`digits`, at least three) and the punctuation ` -.()/[]`, with at most one plus sign, before
/// every digit. `None` where this is not written out here — a number without a plus sign that
/// begins with the region's international prefix, or with its country code where the library
/// would take that as one; a plus sign before no known country code; the library's
/// national-prefix step failing — else the parse's result (`Some(None)`: it fails). The steps
/// before the country code (extracting the number, the viability and extension checks) leave
/// such an attempt's digits as they are; `tests::parse_equals_the_library` and its property test
/// check the whole against the library.
pub(crate) fn parse(attempt: &str, digits: &[u8], region: Region) -> Option<Option<PhoneNumber>> {
    let b = attempt.as_bytes();
    let plus = b.iter().position(|&c| c == b'+');
    if digits.len() < 3
        || !b.iter().all(|&c| c.is_ascii_digit() || b" -.()/[]+".contains(&c))
        || plus.is_some_and(|p| b[p..].iter().skip(1).any(|&c| c == b'+') || b[..p].iter().any(u8::is_ascii_digit))
    {
        return None;
    }
    let util = PHONE_NUMBER_UTIL.as_original();
    let number = std::str::from_utf8(digits).ok()?;
    let (cc, national, md, source) = if plus.is_some() {
        // After the plus sign, the country code; the number is then read with its main
        // region's metadata.
        let (national, cc) = util.extract_country_code(std::borrow::Cow::Borrowed(number))?;
        let national = match national {
            std::borrow::Cow::Borrowed(s) => s,
            std::borrow::Cow::Owned(_) => return None,
        };
        let md = util.get_region_for_country_code(cc).and_then(|r| util.get_metadata_for_region_or_calling_code(cc, r));
        (cc, national, md, rlibphonenumber::CountryCodeSource::FromNumberWithPlusSign)
    } else {
        let md = util.get_metadata_for_region(region)?;
        if md.international_prefix().anchor_start().ok()?.is_some_and(|idd| idd.is_match(number)) {
            return None;
        }
        let cc = md.original.country_code();
        if let Some(rest) = number.strip_prefix(&cc.to_string()) {
            // The library takes a country code without a plus sign where the number is not
            // national but what follows is, or is too long to be national.
            let (potential, _) = util.maybe_strip_national_prefix_and_carrier_code(md, rest).ok()?;
            let general = md.general_desc.national_number_pattern().anchor_full().ok()?;
            let national = |s: &str| general.is_some_and(|g| g.is_match(s));
            if (!national(number) && national(&potential)) || length(&md.general_desc.original, number.len()) == Length::TooLong {
                return None;
            }
        }
        (cc, number, Some(md), rlibphonenumber::CountryCodeSource::FromDefaultCountry)
    };
    if national.len() < 2 {
        return Some(None);
    }
    let stripped_number;
    let (nsn, carrier) = match md {
        None => (national, None),
        Some(md) => {
            let (stripped, carrier) = util.maybe_strip_national_prefix_and_carrier_code(md, national).ok()?;
            // The stripped number is kept only where its length is possible for the region.
            match length(&md.general_desc.original, stripped.len()) {
                Length::Possible | Length::TooLong => {
                    let carrier = carrier.map(str::to_string);
                    stripped_number = stripped.into_owned();
                    (stripped_number.as_str(), carrier)
                }
                _ => (national, None),
            }
        }
    };
    if !(2..=17).contains(&nsn.len()) {
        return Some(None);
    }
    let zeros = nsn.bytes().take_while(|&c| c == b'0').count();
    let zeros = if zeros == nsn.len() { zeros - 1 } else { zeros };
    Some(Some(PhoneNumber {
        country_code: cc,
        national_number: nsn.parse().ok()?,
        raw_input: Some(attempt.to_string()),
        country_code_source: Some(source as i32),
        italian_leading_zero: (zeros > 0).then_some(true),
        number_of_leading_zeros: (zeros > 1).then_some(zeros as i32),
        preferred_domestic_carrier_code: carrier,
        ..Default::default()
    }))
}

/// What `test_number_length` says of a number of `len` digits for a region whose general
/// description is `general`, for an unknown type.
#[derive(Debug, PartialEq)]
enum Length {
    Possible,
    LocalOnly,
    TooShort,
    TooLong,
    Invalid,
}

fn length(general: &rlibphonenumber::PhoneNumberDesc, len: usize) -> Length {
    let mask = |lengths: &[i32]| lengths.iter().fold(0u64, |m, &l| if l == -1 { 0 } else { m | u32::try_from(l).ok().and_then(|l| 1u64.checked_shl(l)).unwrap_or(0) });
    let (possible, local) = (mask(&general.possible_length), mask(&general.possible_length_local_only));
    if possible == 0 {
        return Length::Invalid;
    }
    if len >= 64 {
        return Length::TooLong;
    }
    if local & (1 << len) != 0 {
        return Length::LocalOnly;
    }
    let (min, max) = (possible.trailing_zeros() as usize, 63 - possible.leading_zeros() as usize);
    if len == min {
        Length::Possible
    } else if len < min {
        Length::TooShort
    } else if len > max {
        Length::TooLong
    } else if possible & (1 << len) != 0 {
        Length::Possible
    } else {
        Length::Invalid
    }
}

/// The national significant number as the library writes it
/// (`get_national_significant_number`): the number, after its leading zeros when it has an
/// "Italian" leading zero (at most ten).
fn nsn<'b>(n: &PhoneNumber, buf: &'b mut [u8; 32]) -> Option<&'b [u8]> {
    let zeros = if n.italian_leading_zero() { usize::try_from(n.number_of_leading_zeros()).unwrap_or(0).min(10) } else { 0 };
    let mut at = buf.len();
    let mut v = n.national_number;
    loop {
        at = at.checked_sub(1)?;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in 0..zeros {
        at = at.checked_sub(1)?;
        buf[at] = b'0';
    }
    Some(&buf[at..])
}

fn code(cc: i32) -> Option<&'static Code> {
    static BUILT: [OnceLock<Option<Code>>; CODES] = [const { OnceLock::new() }; CODES];
    let i = usize::try_from(cc).ok().filter(|&i| i < CODES)?;
    BUILT[i].get_or_init(|| Code::build(cc)).as_ref()
}

/// A pattern's answer for a number: from its DFA (a pattern index), or fixed (the library
/// matches no number against an absent pattern, and every number against an empty one).
#[derive(Clone, Copy, Debug)]
enum Pat {
    Never,
    Always,
    Id(usize),
}

impl Pat {
    fn test(self, set: &Set) -> bool {
        match self {
            Pat::Never => false,
            Pat::Always => true,
            Pat::Id(p) => set[p / 64] & (1 << (p % 64)) != 0,
        }
    }
}

type Set = [u64; WORDS];

/// A number description (`is_number_matching_desc`): its possible lengths (none listed: any) and
/// its national number pattern.
#[derive(Debug)]
struct Desc {
    lengths: Option<u64>,
    pat: Pat,
}

impl Desc {
    fn test(&self, len: usize, set: &Set) -> bool {
        if let Some(mask) = self.lengths
            && (len >= 64 || mask & (1 << len) == 0)
        {
            return false;
        }
        self.pat.test(set)
    }
}

/// One region's metadata as `get_number_type` reads it.
#[derive(Debug)]
struct Rule {
    leading: Pat,
    general: Desc,
    /// Premium rate, toll free, shared cost, VoIP, personal, pager, UAN, voicemail, fixed line,
    /// and mobile where its pattern is not the fixed line's.
    types: Vec<Desc>,
}

impl Rule {
    /// `get_number_type(..) != Unknown`.
    fn known(&self, len: usize, set: &Set) -> bool {
        self.general.test(len, set) && self.types.iter().any(|d| d.test(len, set))
    }
}

/// What a national format begins with, once chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
enum First {
    /// A written character: whether it is a 0.
    Literal(bool),
    /// The number's first digit (the format begins with its first group, which begins the
    /// pattern and is never empty).
    Digits,
    /// Not written out here: the library formats the number.
    Unknown,
}

#[derive(Debug)]
struct Format {
    leading: Pat,
    pattern: Pat,
    first: First,
}

struct Code {
    dfa: dense::DFA<Vec<u32>>,
    start: StateID,
    /// The regions sharing the code, in the library's order (`None`: no metadata, which makes
    /// the library stop there and call the number invalid).
    regions: Vec<Option<Rule>>,
    /// The main region's national formats (`None`: left to the library).
    formats: Option<Vec<Format>>,
}

/// Distinct pattern strings, each a whole-number match for the DFA.
#[derive(Default)]
struct Patterns {
    strings: Vec<String>,
}

impl Patterns {
    fn add(&mut self, p: String) -> Option<Pat> {
        let i = match self.strings.iter().position(|s| *s == p) {
            Some(i) => i,
            None => {
                self.strings.push(p);
                self.strings.len() - 1
            }
        };
        (i < MAX_PATTERNS).then_some(Pat::Id(i))
    }

    /// A pattern as the library stores it (`^(?:…)$`, see rlibphonenumber's `RegexTriplets`),
    /// matched against the whole number (`prefix`: against its start, as `anchor_start`).
    /// `None` when the pattern is not in that form.
    fn pattern(&mut self, base: Option<&str>, prefix: bool) -> Option<Pat> {
        let Some(base) = base else { return Some(Pat::Never) };
        if base.len() < 6 {
            return Some(Pat::Always);
        }
        let hir = regex_syntax::parse(base).ok()?;
        let anchored = hir.properties().look_set_prefix().contains(Look::Start) && hir.properties().look_set_suffix().contains(Look::End);
        if !anchored || !base.ends_with('$') {
            return None;
        }
        if prefix {
            // A start of the number matches: the whole number, as the rest is digits.
            self.add(format!("(?:{})[0-9]*$", &base[..base.len() - 1]))
        } else {
            self.add(base.to_string())
        }
    }

    fn desc(&mut self, lengths: &[i32], base: Option<&str>) -> Option<Desc> {
        let lengths = (!lengths.is_empty()).then(|| lengths.iter().filter_map(|&l| u32::try_from(l).ok().filter(|&l| l < 64)).fold(0u64, |m, l| m | 1 << l));
        Some(Desc { lengths, pat: self.pattern(base, false)? })
    }
}

/// The pattern string of a description wrapper (its `national_number_pattern`).
macro_rules! desc {
    ($p:expr, $w:expr) => {
        $p.desc(&$w.original.possible_length, $w.national_number_pattern().pattern_base.as_deref())
    };
}

impl Code {
    fn build(cc: i32) -> Option<Code> {
        let util = PHONE_NUMBER_UTIL.as_original();
        let regions: Vec<Region> = util.get_regions_for_country_calling_code(cc)?.collect();
        let single = regions.len() == 1;
        let mut p = Patterns::default();
        let mut rules = Vec::new();
        for &r in &regions {
            // One region: `get_region_for_number` takes it without a check, and
            // `is_valid_number_for_region` reads its metadata, or the code's where it is
            // non-geographic. Several: `get_region_for_number_from_region_list` reads each
            // region's own.
            let md = if single { util.get_metadata_for_region_or_calling_code(cc, r) } else { util.get_metadata_for_region(r) };
            let Some(md) = md.filter(|md| !(single && r == Region::World && md.original.country_code() != cc)) else {
                rules.push(None);
                continue;
            };
            let mut types = vec![
                desc!(p, md.premium_rate)?,
                desc!(p, md.toll_free)?,
                desc!(p, md.shared_cost)?,
                desc!(p, md.voip)?,
                desc!(p, md.personal_number)?,
                desc!(p, md.pager)?,
                desc!(p, md.uan)?,
                desc!(p, md.voicemail)?,
                desc!(p, md.fixed_line)?,
            ];
            if !md.original.same_mobile_and_fixed_line_pattern() {
                types.push(desc!(p, md.mobile)?);
            }
            rules.push(Some(Rule { leading: p.pattern(md.leading_digits().pattern_base.as_deref(), true)?, general: desc!(p, md.general_desc)?, types }));
        }
        // `format` uses the main region's formats (the first sharing the code).
        let formats = regions.first().and_then(|&r| util.get_metadata_for_region_or_calling_code(cc, r)).and_then(|md| {
            md.number_format
                .iter()
                .map(|f| {
                    let leading = match f.leading_digits_pattern().last() {
                        None => Pat::Always,
                        Some(l) => p.pattern(l.pattern_base.as_deref(), true)?,
                    };
                    let base = f.pattern().pattern_base.as_deref();
                    let first = first(&f.original.format, f.original.national_prefix_formatting_rule(), base.unwrap_or(""));
                    Some(Format { leading, pattern: p.pattern(base, false)?, first })
                })
                .collect::<Option<Vec<Format>>>()
        });
        let dfa = dense::Builder::new()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .configure(dense::Config::new().match_kind(MatchKind::All).start_kind(StartKind::Anchored).dfa_size_limit(Some(DFA_LIMIT)).determinize_size_limit(Some(DFA_LIMIT)))
            .build_many(&p.strings)
            .ok()?;
        let start = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)).ok()?;
        Some(Code { dfa, start, regions: rules, formats })
    }

    /// The patterns that match the whole of `nsn` (`None` if the DFA cannot tell).
    fn matching(&self, nsn: &[u8]) -> Option<Set> {
        let mut set = [0u64; WORDS];
        let mut s = self.start;
        for &b in nsn {
            s = self.dfa.next_state(s, b);
            if self.dfa.is_dead_state(s) {
                return Some(set);
            }
        }
        s = self.dfa.next_eoi_state(s);
        if self.dfa.is_quit_state(s) {
            return None;
        }
        if self.dfa.is_match_state(s) {
            for i in 0..self.dfa.match_len(s) {
                let p = self.dfa.match_pattern(s, i).as_usize();
                set[p / 64] |= 1 << (p % 64);
            }
        }
        Some(set)
    }

    /// `is_valid_number` for a number of this code with a national significant number of `len`
    /// digits that matches the patterns in `set`.
    fn valid(&self, len: usize, set: &Set) -> bool {
        if let [only] = self.regions.as_slice() {
            return only.as_ref().is_some_and(|r| r.known(len, set));
        }
        // The first region whose leading digits match, or for which the number has a type,
        // is the number's region; the number is valid if it has a type there.
        for r in &self.regions {
            let Some(r) = r else { return false };
            let known = r.known(len, set);
            if known || r.leading.test(set) {
                return known;
            }
        }
        false
    }
}

/// What a number formatted with `format` (after the national prefix formatting `rule` is put
/// in for its first group, as `format_nsn_using_pattern` does) begins with, for a format whose
/// pattern is `base`.
fn first(format: &str, rule: &str, base: &str) -> First {
    let group = |s: &[u8], at: usize| s.get(at) == Some(&b'$') && s.get(at + 1).is_some_and(u8::is_ascii_digit);
    let f = format.as_bytes();
    let mut written: Vec<u8> = f.to_vec();
    if !rule.is_empty() {
        // The first `$n` of the format is replaced by the rule, whose `$1` is that `$n`.
        if let Some(at) = (0..f.len()).find(|&i| group(f, i)) {
            let r = rule.as_bytes();
            let mut expanded = Vec::new();
            let mut i = 0;
            while i < r.len() {
                if r[i] == b'$' {
                    if r.get(i + 1) == Some(&b'1') && !r.get(i + 2).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                        expanded.extend_from_slice(&f[at..at + 2]);
                        i += 2;
                        continue;
                    }
                    return First::Unknown;
                }
                expanded.push(r[i]);
                i += 1;
            }
            written = [&f[..at], &expanded[..], &f[at + 2..]].concat();
        }
    }
    match written.as_slice() {
        [b'$', b'1', rest @ ..] if !rest.first().is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') && group_one_leads(base) => First::Digits,
        [] | [b'$', ..] => First::Unknown,
        [c, ..] => First::Literal(*c == b'0'),
    }
}

/// Whether the pattern `base` begins with its first capture group and that group never matches
/// nothing: the formatted number then begins with the number's first digit.
fn group_one_leads(base: &str) -> bool {
    let Ok(h) = regex_syntax::parse(base) else { return false };
    let HirKind::Concat(items) = h.kind() else { return false };
    match items.iter().find(|h| !matches!(h.kind(), HirKind::Look(_))).map(Hir::kind) {
        Some(HirKind::Capture(c)) => c.index == 1 && c.sub.properties().minimum_len().is_some_and(|m| m >= 1),
        _ => false,
    }
}

#[cfg(test)]
#[path = "phone_metadata_tests.rs"]
mod tests;
