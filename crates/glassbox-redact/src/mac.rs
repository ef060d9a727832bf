//! MAC addresses as Presidio's `MacAddressRecognizer` finds them: six pairs of hex digits
//! separated all by `:` or all by `-`, or three groups of four separated by `.` (Cisco); the
//! broadcast (all `F`) and all-zero addresses dropped; score 0.6.

use std::sync::LazyLock;

use crate::patterns::linear;
use crate::window;
use crate::{Entity, Finding};

/// Presidio's two patterns (case-insensitive). Its first uses a back-reference for "the same
/// separator throughout"; written here as one alternative per separator, which the leftmost-
/// first search tries in the same order (the third character decides).
pub(crate) const MAC_PATTERNS: [&str; 2] = [
    r"\b(?:[0-9A-F]{2}:(?:[0-9A-F]{2}:){4}[0-9A-F]{2}|[0-9A-F]{2}-(?:[0-9A-F]{2}-){4}[0-9A-F]{2})\b",
    r"\b[0-9A-F]{4}\.[0-9A-F]{4}\.[0-9A-F]{4}\b",
];

static PATTERNS: LazyLock<Vec<regex::Regex>> = LazyLock::new(|| MAC_PATTERNS.iter().map(|p| linear(p)).collect());

pub(crate) fn joins(c: char) -> bool {
    c.is_ascii_hexdigit() || matches!(c, ':' | '-' | '.')
}

/// Presidio's `invalidate_result`, negated: not the broadcast or the all-zero address.
pub(crate) fn valid(m: &str) -> bool {
    let hex = m.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_ascii_uppercase();
    hex != "FFFFFFFFFFFF" && hex != "000000000000"
}

pub(crate) fn find(text: &str) -> Vec<Finding> {
    // Every address has a separator with two hex digits before it and one after.
    let b = text.as_bytes();
    let hex = |i: Option<usize>| i.and_then(|i| b.get(i)).is_some_and(u8::is_ascii_hexdigit);
    let seeds = memchr::memchr3_iter(b':', b'-', b'.', b).filter(|&i| hex(i.checked_sub(1)) && hex(i.checked_sub(2)) && hex(Some(i + 1)));
    let windows = window::runs(text, seeds, joins, |r| r.bytes().filter(u8::is_ascii_hexdigit).count() >= 12);
    let mut out = Vec::new();
    for re in PATTERNS.iter() {
        for m in window::find_in(re, text, &windows) {
            if valid(&text[m.clone()]) {
                out.push(Finding { entity: Entity::MacAddress, start: m.start, end: m.end, score: 0.6 });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_reserved_addresses() {
        let t = "a 00:1A:2B:3C:4D:5E b 00-1a-2b-3c-4d-5e c 0012.3456.789a d 00:1A-2B:3C:4D:5E e FF:FF:FF:FF:FF:FF f 00:00:00:00:00:00 g x00:1A:2B:3C:4D:5E";
        let got: Vec<&str> = find(t).iter().map(|f| &t[f.start..f.end]).collect();
        assert_eq!(got, ["00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5e", "0012.3456.789a"]);
    }
}
