//! Personal data in text, found as Microsoft Presidio's analyzer finds it (2.2.366, its
//! predefined recognisers run with no NLP model): the same patterns, the same validation
//! (Luhn for card numbers, ISO 13616 mod-97 and the per-country formats for IBANs, Presidio's
//! SSN rules, Python's `ipaddress` rules for IPs, a known public suffix for e-mail domains,
//! libphonenumber's matcher for phone numbers),
//! the same scores and the same removal of duplicates per entity type. Offsets are byte offsets
//! into the text (Presidio's are character indices; `tests/presidio.rs` converts and compares
//! against spans Presidio itself produced, `tests/fixtures/redact/`).
//!
//! Used by the PII-leakage evaluation and by the server's redaction: one set of recognisers.
//! Text is untrusted: every pattern runs on the regex crate's linear-time engines (Presidio's
//! look-arounds, all at a pattern's ends, are checked by hand), each only inside the runs of
//! characters it is made of (`window`), and a text longer than [`MAX_TEXT`] is refused rather than
//! cut.

mod anonymize;
mod crypto;
mod deny;
mod iban;
mod ip;
mod mac;
mod patterns;
mod phone;
mod phone_metadata;
mod phone_screen;
#[cfg(any(test, feature = "reference"))]
pub mod reference;
mod window;

use serde::{Deserialize, Serialize};

pub use deny::{DenyList, MAX_TERMS, MAX_TERM_CHARS};
pub use anonymize::{Mode, Redactor, Replaced, StreamFilter, anonymize};
pub use patterns::luhn;

/// Longest text analysed (bytes).
pub const MAX_TEXT: usize = 16 << 20;

/// The entity types, named as Presidio names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Entity {
    #[serde(rename = "EMAIL_ADDRESS")]
    EmailAddress,
    #[serde(rename = "CREDIT_CARD")]
    CreditCard,
    #[serde(rename = "IBAN_CODE")]
    IbanCode,
    #[serde(rename = "US_SSN")]
    UsSsn,
    #[serde(rename = "IP_ADDRESS")]
    IpAddress,
    #[serde(rename = "PHONE_NUMBER")]
    PhoneNumber,
    #[serde(rename = "MAC_ADDRESS")]
    MacAddress,
    #[serde(rename = "CRYPTO")]
    Crypto,
    /// A term from the user's deny list.
    #[serde(rename = "DENY_LIST")]
    DenyList,
}

impl Entity {
    pub const ALL: [Entity; 9] = [Entity::EmailAddress, Entity::CreditCard, Entity::IbanCode, Entity::UsSsn, Entity::IpAddress, Entity::PhoneNumber, Entity::MacAddress, Entity::Crypto, Entity::DenyList];

    pub fn name(self) -> &'static str {
        match self {
            Entity::EmailAddress => "EMAIL_ADDRESS",
            Entity::CreditCard => "CREDIT_CARD",
            Entity::IbanCode => "IBAN_CODE",
            Entity::UsSsn => "US_SSN",
            Entity::IpAddress => "IP_ADDRESS",
            Entity::PhoneNumber => "PHONE_NUMBER",
            Entity::MacAddress => "MAC_ADDRESS",
            Entity::Crypto => "CRYPTO",
            Entity::DenyList => "DENY_LIST",
        }
    }
}

/// One finding: the entity, its byte span and Presidio's confidence score.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub entity: Entity,
    pub start: usize,
    pub end: usize,
    pub score: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the text is {0} bytes; at most {MAX_TEXT} are analysed")]
    TooLong(usize),
    #[error("deny list: {0}")]
    DenyList(String),
}

/// Every finding in `text`, sorted by (start, end, entity).
pub fn analyze(text: &str) -> Result<Vec<Finding>, Error> {
    analyze_with(text, None)
}

/// [`analyze`], and the terms of a deny list.
pub fn analyze_with(text: &str, deny: Option<&DenyList>) -> Result<Vec<Finding>, Error> {
    if text.len() > MAX_TEXT {
        return Err(Error::TooLong(text.len()));
    }
    let digits = window::digits(text);
    let mut all = Vec::new();
    all.extend(patterns::email(text));
    all.extend(patterns::credit_card(text, &digits));
    all.extend(iban::find(text, &digits));
    all.extend(patterns::ssn(text, &digits));
    all.extend(ip::find(text, &digits));
    all.extend(phone::find(text, &digits));
    all.extend(mac::find(text));
    all.extend(crypto::find(text, &digits));
    if let Some(d) = deny {
        all.extend(d.find(text));
    }
    let mut out = remove_duplicates(all);
    out.sort_by_key(|f| (f.start, f.end, f.entity));
    Ok(out)
}

/// A text with one of everything the recognisers find — a phone number for each default region,
/// written nationally and internationally — for [`warm_up`].
const WARM_UP_TEXT: &str = "Write to jane.doe@example.com. Call +1 212 555 0187 or (212) 555-0187, \
    020 7946 0958 or +44 20 7946 0958, 030 1234567 or +49 30 1234567, 01 23 45 67 89 or \
    +33 1 23 45 67 89, 03-123-4567 or +972 3-123-4567, 098765 43210 or +91 98765 43210, \
    (613) 555-0123 or +1 613 555 0123, (11) 91234-5678 or +55 11 91234 5678. Card \
    4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN 536-22-8726, hosts 10.1.2.3 and \
    fe80::1ff:fe23:4567:890a, MAC 00:1A:2B:3C:4D:5E, wallet 1BoatSLRHtKNngkdXEeobR76b53LETtpyT. \
    A list: +1 212 555 0187, 020 7946 0958, +49 30 1234567, 01 23 45 67 89, +972 3-123-4567, \
    098765 43210, +55 11 91234 5678, 4111 1111 1111 1111.";

/// Does the work every recogniser does once per process — libphonenumber's metadata, the patterns
/// and per-calling-code automata compiled at first use — so that the first request a server
/// redacts does not pay for it (about 70 ms on the EPYC of `docs/benchmarks.md`).
pub fn warm_up() {
    let _ = analyze(WARM_UP_TEXT);
}

/// `text` with every finding replaced by `<ENTITY>` (Presidio's default anonymiser); where
/// findings overlap, their union is replaced once, named by the first.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    // Spans that do not fit this text (findings from another text) are ignored, never a panic.
    Redactor::new(Mode::TypeName, Entity::ALL.to_vec()).apply(text, findings).0
}

/// Presidio's `EntityRecognizer.remove_duplicates`: exact duplicates merged; per entity type, a
/// finding inside a longer (or equal) one that scores at least as high is dropped; zero scores
/// dropped. Different types are never merged.
pub(crate) fn remove_duplicates(mut v: Vec<Finding>) -> Vec<Finding> {
    v.retain(|f| f.score > 0.0);
    v.sort_by(|a, b| {
        (a.entity, a.start)
            .cmp(&(b.entity, b.start))
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(b.score.total_cmp(&a.score))
    });
    v.dedup_by(|a, b| a == b);
    let mut kept: Vec<Finding> = Vec::with_capacity(v.len());
    for f in v {
        let inside = kept.iter().any(|k| k.entity == f.entity && f.start >= k.start && f.end <= k.end && k.score >= f.score);
        if !inside {
            kept.push(f);
        }
    }
    kept
}

#[cfg(test)]
mod warm_up_tests {
    use super::*;

    /// The warm-up text keeps exercising every recogniser and every default region.
    #[test]
    fn the_warm_up_text_holds_one_of_everything() {
        let found = analyze(WARM_UP_TEXT).unwrap();
        for e in Entity::ALL.into_iter().filter(|&e| e != Entity::DenyList) {
            assert!(found.iter().any(|f| f.entity == e), "no {e:?} in the warm-up text");
        }
        let phones = found.iter().filter(|f| f.entity == Entity::PhoneNumber).count();
        assert!(phones >= 16, "{phones} phone numbers");
        warm_up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_each_span_once() {
        let t = "mail a@example.com, ip 10.0.0.1.";
        let f = analyze(t).unwrap();
        assert_eq!(redact(t, &f), "mail <EMAIL_ADDRESS>, ip <IP_ADDRESS>.");
        let overlapping = [
            Finding { entity: Entity::UsSsn, start: 0, end: 5, score: 0.5 },
            Finding { entity: Entity::CreditCard, start: 3, end: 8, score: 1.0 },
        ];
        assert_eq!(redact("0123456789", &overlapping), "<US_SSN>89");
        assert!(matches!(analyze(&"x".repeat(MAX_TEXT + 1)), Err(Error::TooLong(_))));
    }
}

#[cfg(test)]
mod breakdown {
    #[test]
    #[ignore]
    fn per_recogniser() {
        let s = ["The committee reviewed the quarterly figures and agreed to postpone the decision until the next meeting. ",
        "Please send the signed form to maria.rossi@example.org before Friday, or call +44 20 7946 0958. ",
        "Our engineers measured latency across three regions and found no regression after the upgrade. ",
        "Payment failed for card 4111 1111 1111 1111; the refund goes to DE89 3704 0044 0532 0130 00. ",
        "In 2024 the team shipped 12 releases, fixed 340 bugs and moved the service to 10.20.30.40. "];
        let mut text = String::new();
        while text.len() < 1 << 20 { for x in s { text.push_str(x); } }
        let pieces: Vec<&str> = text.as_bytes().chunks(4096).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let t = |name: &str, f: &dyn Fn(&str)| { let i = std::time::Instant::now(); for p in &pieces { f(p) } let e = i.elapsed().as_secs_f64(); eprintln!("{name}: {:.1} MB/s", text.len() as f64 / e / 1e6); };
        let d = |p: &str| super::window::digits(p);
        t("digits", &|p| { d(p); });
        t("email", &|p| { super::patterns::email(p); });
        t("card", &|p| { super::patterns::credit_card(p, &d(p)); });
        t("iban", &|p| { super::iban::find(p, &d(p)); });
        t("ssn", &|p| { super::patterns::ssn(p, &d(p)); });
        t("ip", &|p| { super::ip::find(p, &d(p)); });
        t("phone", &|p| { super::phone::find(p, &d(p)); });
    }
}
