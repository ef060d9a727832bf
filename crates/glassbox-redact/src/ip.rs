//! IP addresses as Presidio's `IpRecognizer` finds them: its five patterns, each match kept only
//! when Python's `ipaddress.ip_interface` accepts it (no leading zeros in IPv4, prefix lengths
//! in range, IPv6 zone ids allowed).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use crate::patterns::fancy;
use crate::{Entity, Error, Finding};

const V4: &str = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)";

static V4_SHAPE: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new("[0-9][.][0-9]").expect("a fixed pattern compiles"));

static PATTERNS: LazyLock<Vec<(fancy_regex::Regex, f64)>> = LazyLock::new(|| {
    let v6 = r"(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|:(?::[0-9A-Fa-f]{1,4}){1,7}|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|:(?::[0-9A-Fa-f]{1,4}){1,6})";
    let p128 = r"(?:/(?:12[0-8]|1[01]\d|[1-9]?\d))?";
    vec![
        (fancy(&format!(r"(?<![\w:])::(?:ffff(?::0{{1,4}})?:)?(?:{V4}\.){{3}}{V4}{p128}\b")), 0.6),
        (fancy(&format!(r"(?<![\w:])(?:(?:[0-9A-Fa-f]{{1,4}}:){{1,5}}:(?:[0-9A-Fa-f]{{1,4}}:){{0,4}}|(?:[0-9A-Fa-f]{{1,4}}:){{6}})(?:{V4}\.){{3}}{V4}{p128}\b")), 0.6),
        (fancy(&format!(r"\b{V4}\.{V4}\.{V4}\.{V4}(?:/(?:[0-2]?\d|3[0-2]))?\b")), 0.6),
        (fancy(&format!(r"(?<![\w:]){v6}(?:%[0-9a-zA-Z]+)?{p128}(?![\w:]|\.\d)")), 0.6),
        (fancy(r"(?<![\w:])::(?:/(?:12[0-8]|1[01]\d|[1-9]?\d))?(?![\w:])"), 0.1),
    ]
});

/// Whether Python's `ipaddress.ip_interface` accepts `s` (address, optional `/prefix`).
fn interface_ok(s: &str) -> bool {
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

pub(crate) fn find(text: &str) -> Result<Vec<Finding>, Error> {
    let mut out = Vec::new();
    // Every pattern needs a literal character (IPv6 ':', IPv4 '.'): skipped when the text has
    // none — the same findings, without running a backtracking search over prose.
    // (IPv4: a digit, a dot and a digit in a row.)
    const NEEDS: [char; 5] = [':', ':', '.', ':', ':'];
    for ((re, score), needs) in PATTERNS.iter().zip(NEEDS) {
        if !text.contains(needs) || (needs == '.' && !V4_SHAPE.is_match(text)) {
            continue;
        }
        for m in re.find_iter(text) {
            let m = m.map_err(|_| Error::Budget("IP address"))?;
            if interface_ok(m.as_str()) {
                out.push(Finding { entity: Entity::IpAddress, start: m.start(), end: m.end(), score: *score });
            }
        }
    }
    Ok(out)
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
