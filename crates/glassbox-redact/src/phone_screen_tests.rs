use proptest::prelude::*;
use rlibphonenumber::{PhoneNumber, PHONE_NUMBER_UTIL};

use super::*;
use crate::phone::{find, find_every_region};

fn spans(f: Vec<crate::Finding>) -> Vec<(usize, usize)> {
    let mut v: Vec<_> = f.into_iter().map(|f| (f.start, f.end)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn same_as_every_region(text: &str) -> Result<(), String> {
    let d = crate::window::digits(text);
    let (a, b) = (spans(find(text, &d)), spans(find_every_region(text, &d)));
    if a == b { Ok(()) } else { Err(format!("{text:?}: screened {a:?}, every region {b:?}")) }
}

/// Numbers as people write them in the default regions and elsewhere, with and without
/// prefixes, and digit runs that are not numbers.
fn numbers() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("+44 20 7946 0958".to_string()),
        Just("020 7946 0958".to_string()),
        Just("(212) 555-0187".to_string()),
        Just("1-212-555-0187".to_string()),
        Just("011 44 20 7946 0958".to_string()),
        Just("0044 20 7946 0958".to_string()),
        Just("+1 (415) 555-0100".to_string()),
        Just("030 12345678".to_string()),
        Just("+49 30 1234567".to_string()),
        Just("01 23 45 67 89".to_string()),
        Just("+33 1 23 45 67 89".to_string()),
        Just("03-1234567".to_string()),
        Just("+972 3-123-4567".to_string()),
        Just("098765 43210".to_string()),
        Just("+91 98765 43210".to_string()),
        Just("(11) 91234-5678".to_string()),
        Just("+55 11 91234 5678".to_string()),
        Just("0 (11) 91234-5678".to_string()),
        Just("1800 200 300".to_string()),
        Just("4/18/1960".to_string()),
        Just("2020-01-02 10:30".to_string()),
        Just("604 555 0123".to_string()),
        Just("555 0123".to_string()),
        "\\+?[0-9]{1,4}([-. /()\\[\\]+]{1,3}[0-9]{1,5}){0,6}",
        "[(\\[+]{0,2}[0-9]{2,12}",
        "0[0-9]{6,12}",
        "[2-9][0-9]{6,11}",
        "[(+/x]{0,4}\\(?[0-9]{3}\\)? [0-9]{3}-[0-9]{4}(/[0-9])?",
        "\\+?[0-9 ]{3,10}[~x][0-9]{1,4}[ -]{1,7}[0-9]{1,3}#?",
    ]
}

fn texts() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![numbers(), "[ ,;:/.()\\[\\]+#~-]{0,3}", "[a-zX ]{0,4}", "( ?(ext|x|#|int|anexo) ?[0-9]{1,4}#?)"], 1..8).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn screened_equals_every_region(text in texts()) {
        prop_assert!(same_as_every_region(&text).is_ok(), "{}", same_as_every_region(&text).unwrap_err());
    }
}

/// The screen on the evaluation sentences and the Presidio fixtures: the same numbers as every
/// region's matcher.
#[test]
fn screened_equals_every_region_on_the_fixtures() {
    for f in ["evaluator.json", "presidio.json"] {
        let p = format!("{}/../../tests/fixtures/redact/{f}", env!("CARGO_MANIFEST_DIR"));
        let Ok(s) = std::fs::read_to_string(&p) else { continue };
        let fx: serde_json::Value = serde_json::from_str(&s).expect("fixture json");
        let cases = fx["cases"].as_array().expect("cases");
        for c in cases {
            if let Some(t) = c["text"].as_str() {
                same_as_every_region(t).unwrap();
            }
        }
    }
}

#[test]
fn screened_runs() {
    // Card numbers, IBAN digits, years and amounts: no region's matcher runs.
    for t in [" 4111 1111 1111 1111 ", " 89 3704 0044 0532 0130 00 ", " 2024 ", " 10.20.30.40 ", " 2243150983930104 "] {
        assert_eq!(regions_to_search(t, 1..t.len() - 1), vec![], "{t}");
    }
    // A number with its country code: one matcher for all regions. A national number of the
    // United States: one for the United States and Canada.
    assert_eq!(regions_to_search(" +44 20 7946 0958 ", 1..17).len(), 1);
    assert_eq!(regions_to_search(" (212) 555-0187 ", 1..15), vec![Region::US, Region::IN, Region::BR]);
    // An extension label between digits is not screened; words around the digits are, and so
    // is an `x` the pattern takes as punctuation.
    assert_eq!(regions_to_search(" 212-555-0187 ext 12 ", 1..20).len(), 8);
    assert_eq!(regions_to_search(" 212-555-0187x12 ", 1..16), vec![Region::US, Region::IN, Region::BR]);
    assert!(regions_to_search(" Fax: (07700) 547887 ", 1..20).len() < 8);
    // Found by review: an extension after a wide gap, where the parse then reads a `~` as
    // punctuation; a `/` and an `x` in the lead, which cut the candidate short.
    for t in ["2125550~187     1#", "+33 8012345~67  -  12#", "(/x(212) 555-0187/1", "+/x(212) 555-0187/1"] {
        same_as_every_region(t).unwrap();
    }
    // German numbers need their national prefix when written nationally.
    assert!(!regions_to_search(" 30 12345678 ", 1..12).contains(&Region::DE));
    assert!(regions_to_search(" 030 12345678 ", 1..13).contains(&Region::DE));
    assert_eq!(regions_to_search(" to 4111 1111 1111 1111 is ", 1..26), vec![]);
    assert_eq!(regions_to_search(" 0130 00. In 2024 a ", 1..19), vec![]);
    assert_eq!(regions_to_search(" 0130 00 In 2024 a ", 1..18).len(), 8);
}

/// The lengths in [`CODES`] are libphonenumber's: every length its main region for the code
/// calls possible is listed, every listed length is possible or local-only there, and every
/// example number of every region sharing the code has a listed length.
#[test]
fn lengths_agree_with_the_library() {
    use rlibphonenumber::enums::PhoneNumberType as T;
    for (r, Code { code, lengths, .. }) in CODES.iter().enumerate() {
        let cc: i32 = code.parse().unwrap();
        assert_eq!(PHONE_NUMBER_UTIL.get_country_code_for_region(REGIONS[r]), Some(cc));
        for n in 1..=17u32 {
            let p = PhoneNumber { country_code: cc, national_number: 2 * 10u64.pow(n - 1), ..Default::default() };
            let reason = PHONE_NUMBER_UTIL.is_possible_number_with_reason(&p);
            let listed = lengths.contains(&(n as usize));
            match reason {
                Ok(rlibphonenumber::enums::NumberLengthType::IsPossible) => assert!(listed, "+{cc}: {n}"),
                Ok(rlibphonenumber::enums::NumberLengthType::IsPossibleLocalOnly) => {}
                _ => assert!(!listed, "+{cc}: {n} ({reason:?})"),
            }
        }
        for region in PHONE_NUMBER_UTIL.get_regions_for_country_calling_code(cc).into_iter().flatten() {
            for ty in [T::FixedLine, T::Mobile, T::TollFree, T::PremiumRate, T::SharedCost, T::VoIP, T::PersonalNumber, T::Pager, T::UAN, T::VoiceMail] {
                if let Ok(e) = PHONE_NUMBER_UTIL.get_example_number_for_type_and_region(region, ty) {
                    let nsn = e.national_number.to_string().len();
                    assert!(lengths.contains(&nsn), "{region:?} {ty:?}: {nsn} digits");
                }
            }
        }
    }
}

/// Digits [`plain`] for a region parse, when they parse at all, to the region's code and the
/// digits themselves, read as national: nothing is stripped and no country code is taken.
#[test]
fn plain_digits_parse_whole() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for (r, c) in CODES.iter().enumerate() {
        for lead in 0..1000u32 {
            for len in [4usize, 7, 8, 9, 10, 11, 12, 13, 15] {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut d = format!("{lead:03}{seed:020}");
                d.truncate(len.max(3));
                let digits = d.as_bytes();
                if !plain(digits, r) {
                    continue;
                }
                if let Ok(n) = PHONE_NUMBER_UTIL.parse_and_keep_raw_input(&d, Some(REGIONS[r])) {
                    assert_eq!(n.country_code.to_string(), c.code, "{d} in {:?}", REGIONS[r]);
                    assert_eq!(n.national_number.to_string(), d, "{:?}", REGIONS[r]);
                    assert_eq!(n.country_code_source, Some(CountryCodeSource::FromDefaultCountry as i32));
                }
            }
        }
    }
}

#[test]
fn the_candidate_pattern() {
    fn c(s: &str, at: usize) -> Option<&str> {
        candidate(s.as_bytes(), at, s.len()).map(|(a, b)| &s[a..b])
    }
    assert_eq!(c("tel (+44) 20 7946 0958.", 0), Some("(+44) 20 7946 0958"));
    assert_eq!(c("a 12- -34", 0), Some("12- -34"));
    assert_eq!(c("a 12 - - 34", 0), Some("12"));
    assert_eq!(c("12,34", 2), Some("34"));
    assert_eq!(c("+ - 1", 0), Some("+ - 1"));
    assert_eq!(c("-1", 0), Some("1"));
    assert!(lead_part(b"(+") && lead_part(b"( - +") && !lead_part(b"+++") && !lead_part(b"-("));
}


/// libphonenumber's own candidate pattern: what [`candidate`] models.
static PATTERN: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(&crate::phone::candidate_pattern()).expect("the pattern compiles"));

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, max_global_rejects: 100_000, ..ProptestConfig::default() })]

    /// On every run the screen models, [`candidate`] finds what the pattern finds, from every
    /// position.
    #[test]
    fn candidates_are_the_patterns(s in prop::collection::vec(("[ ().\\[\\]/+,:;-]{0,6}|[ (.-]?[x~][ ).-]{0,2}", "[0-9]{1,4}"), 1..26)
        .prop_map(|v| v.into_iter().map(|(g, d)| g + &d).collect::<String>())) {
        let b = s.as_bytes();
        prop_assume!(screen(&s, 0..s.len()).is_some());
        let re = &*PATTERN;
        for at in 0..s.len() {
            let want = re.find_at(&s, at).map(|m| (m.start(), m.end()));
            prop_assert_eq!(candidate(b, at, s.len()), want, "{} from {}", s, at);
        }
    }
}
