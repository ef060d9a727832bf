//! IP addresses as Presidio's `IpRecognizer` finds them: its five patterns, each match kept only
//! when Python's `ipaddress.ip_interface` accepts it (no leading zeros in IPv4, prefix lengths
//! in range, IPv6 zone ids allowed).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use crate::patterns::linear;
use crate::window::{self, char_before, is_word};
use crate::{Entity, Finding};

const V4: &str = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)";
const V6: &str = r"(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|:(?::[0-9A-Fa-f]{1,4}){1,7}|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|:(?::[0-9A-Fa-f]{1,4}){1,6})";
const P128: &str = r"(?:/(?:12[0-8]|1[01]\d|[1-9]?\d))?";

/// Presidio's five patterns (case-insensitive), each as (pattern, score, whether it starts with
/// the look-behind `(?<![\w:])`). Look-aheads at the end are consumed instead: the address is
/// group 1, then one more character that the look-ahead allows, or the end.
pub(crate) fn patterns() -> Vec<(String, f64, bool)> {
    vec![
        (format!(r"::(?:ffff(?::0{{1,4}})?:)?(?:{V4}\.){{3}}{V4}{P128}\b"), 0.6, true),
        (format!(r"(?:(?:[0-9A-Fa-f]{{1,4}}:){{1,5}}:(?:[0-9A-Fa-f]{{1,4}}:){{0,4}}|(?:[0-9A-Fa-f]{{1,4}}:){{6}})(?:{V4}\.){{3}}{V4}{P128}\b"), 0.6, true),
        (format!(r"\b{V4}\.{V4}\.{V4}\.{V4}(?:/(?:[0-2]?\d|3[0-2]))?\b"), 0.6, false),
        // (?![\w:]|\.\d)
        (format!(r"({V6}(?:%[0-9a-zA-Z]+)?{P128})(?:$|[^\w:.]|\.(?:$|\D))"), 0.6, true),
        // (?![\w:])
        (format!(r"(::{P128})(?:$|[^\w:])"), 0.1, true),
    ]
}

static PATTERNS: LazyLock<Vec<(regex::Regex, f64, bool)>> = LazyLock::new(|| patterns().into_iter().map(|(p, s, b)| (linear(&p), s, b)).collect());

/// Characters of an address (hex digits, `:`, `.`, a prefix length, a zone id) — all word
/// characters, to keep it simple — and `:`, `.`, `/`, `%`.
pub(crate) fn joins(c: char) -> bool {
    is_word(c) || matches!(c, ':' | '.' | '/' | '%')
}

/// Whether Python's `ipaddress.ip_interface` accepts `s` (address, optional `/prefix`).
pub(crate) fn interface_ok(s: &str) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let prefix_ok = |max: u32| prefix.is_none_or(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|n| n <= max));
    if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        // Rust's parser already refuses leading zeros, as Python's does.
        return v4.to_string().len() == addr.len() && prefix_ok(32);
    }
    let (host, zone) = match addr.split_once('%') {
        Some((h, z)) => (h, Some(z)),
        None => (addr, None),
    };
    if zone.is_some_and(|z| z.is_empty() || z.contains('/')) {
        return false;
    }
    host.parse::<Ipv6Addr>().is_ok() && prefix_ok(128)
}

pub(crate) fn find(text: &str, digits: &[usize]) -> Vec<Finding> {
    // IPv6 patterns hold a ':', the IPv4 one three dots between digits.
    let colons = text.match_indices(':').map(|(i, _)| i);
    let v6 = window::runs(text, colons, joins, |_| true);
    // An IPv4 address holds an ASCII digit followed by a dot and another.
    let b = text.as_bytes();
    let v4_seeds = digits.iter().copied().filter(|&d| b.get(d + 1) == Some(&b'.') && b.get(d + 2).is_some_and(u8::is_ascii_digit));
    let v4 = window::runs(text, v4_seeds, joins, |r| r.bytes().filter(|&b| b == b'.').count() >= 3);
    let mut out = Vec::new();
    for (i, (re, score, behind)) in PATTERNS.iter().enumerate() {
        let windows = if i == 2 { &v4 } else { &v6 };
        // Patterns 4 and 5 keep the address in group 1 (the rest is the consumed look-ahead).
        let group = usize::from(i >= 3);
        let found = window::find_unless(re, text, windows, group, |t, s| *behind && char_before(t, s).is_some_and(|c| is_word(c) || c == ':'));
        for m in found {
            if interface_ok(&text[m.clone()]) {
                out.push(Finding { entity: Entity::IpAddress, start: m.start, end: m.end, score: *score });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_as_python_accepts_them() {
        for ok in ["192.168.0.1", "10.0.0.0/8", "::1", "::", "fe80::1%eth0", "::ffff:192.0.2.1", "2001:db8::/32", "1:2:3:4:5:6:7:8"] {
            assert!(interface_ok(ok), "{ok}");
        }
        for bad in ["01.2.3.4", "192.168.001.1", "10.0.0.1/33", "1::2::3", "256.1.1.1", "fe80::1%"] {
            assert!(!interface_ok(bad), "{bad}");
        }
    }
}
