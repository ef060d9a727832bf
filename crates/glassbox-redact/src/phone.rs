//! Phone numbers as Presidio's `PhoneRecognizer` finds them: libphonenumber's matcher at its
//! `VALID` leniency, run once per default region (US, GB, DE, FR, IL, IN, CA, BR), the union of
//! the spans, score 0.4. Matching uses `rlibphonenumber` (a port of Google's C++ library with
//! its bundled metadata); Presidio uses python-phonenumbers (a port of the Java one).

use rlibphonenumber::enums::Region;
use rlibphonenumber::phonenumber_matcher::{Leniency, PHONE_MATCHER_FACTORY};

use crate::{Entity, Finding};

/// The regions Presidio tries by default, in its order.
const REGIONS: [Region; 8] = [Region::US, Region::GB, Region::DE, Region::FR, Region::IL, Region::IN, Region::CA, Region::BR];

/// libphonenumber's own bound on candidates tried per text (Presidio passes the same).
const MAX_TRIES: usize = 65_535;

pub(crate) fn find(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for region in REGIONS {
        for m in PHONE_MATCHER_FACTORY.create_matcher(text, Leniency::Valid, MAX_TRIES as _, Some(region)) {
            let (start, end) = (m.start, m.end());
            // The matcher works in bytes of this text; a span off a character boundary would
            // be a bug there, and is dropped rather than trusted.
            if start < end && end <= text.len() && text.is_char_boundary(start) && text.is_char_boundary(end) {
                out.push(Finding { entity: Entity::PhoneNumber, start, end, score: 0.4 });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_several_formats() {
        let t = "call (212) 555-0187 or +44 20 7946 0958, not 12";
        let f: Vec<&str> = find(t).iter().map(|f| &t[f.start..f.end]).collect();
        assert!(f.contains(&"(212) 555-0187"), "{f:?}");
        assert!(f.contains(&"+44 20 7946 0958"), "{f:?}");
        assert!(!f.contains(&"12"));
    }
}
