use proptest::prelude::*;
use rlibphonenumber::enums::PhoneNumberType;
use rlibphonenumber::{PhoneNumber, PHONE_NUMBER_UTIL};

use super::*;

const TYPES: [PhoneNumberType; 11] = [
    PhoneNumberType::FixedLine,
    PhoneNumberType::Mobile,
    PhoneNumberType::TollFree,
    PhoneNumberType::PremiumRate,
    PhoneNumberType::SharedCost,
    PhoneNumberType::VoIP,
    PhoneNumberType::PersonalNumber,
    PhoneNumberType::Pager,
    PhoneNumberType::UAN,
    PhoneNumberType::VoiceMail,
    PhoneNumberType::Unknown,
];

/// Every example number the library has: per region and type, and per non-geographic code.
fn examples() -> Vec<PhoneNumber> {
    let mut out: Vec<PhoneNumber> = PHONE_NUMBER_UTIL
        .get_supported_regions()
        .flat_map(|r| TYPES.iter().filter_map(move |&t| PHONE_NUMBER_UTIL.get_example_number_for_type_and_region(r, t).ok()))
        .collect();
    out.extend(PHONE_NUMBER_UTIL.get_supported_global_network_calling_codes().filter_map(|cc| PHONE_NUMBER_UTIL.get_example_number_for_non_geo_entity(cc).ok()));
    out
}

/// Numbers near `n`: each digit changed to every other, one digit fewer and more, another
/// calling code, and leading zeros.
fn near(n: &PhoneNumber, codes: &[i32], k: usize) -> Vec<PhoneNumber> {
    let digits = n.national_number.to_string();
    let mut nsns: Vec<String> = Vec::new();
    for i in 0..digits.len() {
        for d in b'0'..=b'9' {
            let mut s = digits.clone().into_bytes();
            s[i] = d;
            nsns.push(String::from_utf8(s).expect("digits"));
        }
    }
    nsns.push(digits[..digits.len() - 1].to_string());
    nsns.push(format!("{digits}7"));
    nsns.push(format!("{digits}00"));
    let mut out = Vec::new();
    for (j, s) in nsns.iter().enumerate() {
        let Ok(v) = s.parse::<u64>() else { continue };
        let mut m = n.clone();
        m.national_number = v;
        out.push(m.clone());
        if j % 7 == 0 {
            m.italian_leading_zero = Some(true);
            m.number_of_leading_zeros = Some(1 + (j % 3) as i32);
            out.push(m.clone());
        }
        if j % 5 == 0 {
            let mut o = n.clone();
            o.national_number = v;
            o.country_code = codes[(j + k) % codes.len()];
            out.push(o);
        }
    }
    out
}

#[test]
fn every_calling_code_is_compiled() {
    let codes: Vec<i32> = PHONE_NUMBER_UTIL.get_supported_calling_codes().collect();
    assert!(codes.len() > 200);
    for cc in codes {
        let c = code(cc).unwrap_or_else(|| panic!("+{cc}: not compiled"));
        assert!(c.formats.is_some(), "+{cc}: formats not compiled");
    }
    // The screen's regions need no library formatting.
    for cc in [1, 44, 49, 33, 972, 91, 55] {
        for f in code(cc).expect("compiled").formats.as_ref().expect("formats") {
            assert_ne!(f.first, First::Unknown, "+{cc}: {f:?}");
        }
    }
}

/// Both answers equal the library's on every example number and on about 300,000 numbers
/// made from them (valid and not), for every calling code.
#[test]
fn answers_equal_the_library() {
    let codes: Vec<i32> = PHONE_NUMBER_UTIL.get_supported_calling_codes().collect();
    let (mut checked, mut valid) = (0, 0);
    for (k, e) in examples().iter().enumerate() {
        for n in std::iter::once(e.clone()).chain(near(e, &codes, k)) {
            let lib = PHONE_NUMBER_UTIL.is_valid_number(&n);
            assert_eq!(is_valid(&n), lib, "validity of {n:?}");
            valid += usize::from(lib);
            let lib = PHONE_NUMBER_UTIL.format(&n, PhoneNumberFormat::National).starts_with('0');
            assert_eq!(national_format_starts_with_zero(&n), lib, "national format of {n:?}");
            checked += 1;
        }
    }
    eprintln!("{checked} numbers, {valid} valid");
    assert!(checked > 100_000 && valid > 10_000, "{checked} numbers, {valid} valid");
}

#[test]
fn first_character_of_a_format() {
    let base = "^(?:(\\d{3})(\\d{4}))$";
    assert_eq!(first("$1 $2", "0$1", base), First::Literal(true));
    assert_eq!(first("$1 $2", "($1)", base), First::Literal(false));
    assert_eq!(first("$1 $2", "", base), First::Digits);
    assert_eq!(first("$1 $2", "", "^(?:\\d(\\d{3})(\\d{3}))$"), First::Unknown);
    assert_eq!(first("$2 $1", "", base), First::Unknown);
    assert_eq!(first("$1 $2", "$NP$FG", base), First::Unknown);
}

fn parse_agrees(attempt: &str) -> Result<usize, String> {
    let digits: Vec<u8> = attempt.bytes().filter(u8::is_ascii_digit).collect();
    let mut modelled = 0;
    for region in crate::phone::REGIONS {
        if let Some(ours) = parse(attempt, &digits, region) {
            let lib = PHONE_NUMBER_UTIL.parse_and_keep_raw_input(attempt, Some(region)).ok();
            if ours != lib {
                return Err(format!("{attempt:?} for {region:?}: ours {ours:?}, library {lib:?}"));
            }
            modelled += 1;
        }
    }
    Ok(modelled)
}

/// National numbers as written: every example number of every region in its national format,
/// with a digit changed, one fewer or more, and other punctuation; parsed for each default region.
#[test]
fn parse_equals_the_library() {
    let (mut tried, mut modelled) = (0, 0);
    for e in examples() {
        for format in [PhoneNumberFormat::National, PhoneNumberFormat::International, PhoneNumberFormat::E164] {
        let national = PHONE_NUMBER_UTIL.format(&e, format).to_string();
        if !national.bytes().all(|c| c.is_ascii_digit() || b" -.()/[]+".contains(&c)) {
            continue;
        }
        let mut variants = vec![national.clone(), national.replace(' ', "-"), national.replace(' ', ""), format!("({national})"), format!("0{national}"), format!("1 {national}"), format!("{national}1")];
        let at = national.rfind(|c: char| c.is_ascii_digit()).unwrap_or(0);
        for d in ["0", "5", "9"] {
            variants.push(format!("{}{d}{}", &national[..at], &national[at + 1..]));
        }
        variants.push(national[..at].to_string());
        for v in variants {
            tried += 1;
            modelled += parse_agrees(&v).unwrap_or_else(|e| panic!("{e}"));
        }
        }
    }
    eprintln!("{tried} attempts, {modelled} parses written out");
    assert!(modelled > 10_000, "{modelled}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    /// Random national-looking attempts: the prefixes the default regions strip or dial out
    /// with, then groups of digits with punctuation.
    #[test]
    fn parse_equals_the_library_on_random_attempts(
        lead in prop_oneof![Just(""), Just("+"), Just("+1"), Just("+44 "), Just("(+"), Just("+0"), Just("0"), Just("00"), Just("1"), Just("011"), Just("01"), Just("44"), Just("180020"), Just("90"), Just("0 "), Just("(0)"), Just("1-")],
        groups in prop::collection::vec(("[0-9]{1,5}", prop_oneof![Just(" "), Just("-"), Just("."), Just("/"), Just(""), Just(") "), Just(" ("), Just("["), Just("]")]), 1..5),
    ) {
        let mut a = lead.to_string();
        for (g, sep) in &groups {
            a.push_str(g);
            a.push_str(sep);
        }
        prop_assert!(parse_agrees(a.trim()).is_ok(), "{:?}", parse_agrees(a.trim()));
    }
}
