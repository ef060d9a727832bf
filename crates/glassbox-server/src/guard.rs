//! Header checks made before a request's body is read: the `Content-Type` and `Host` policies
//! of an open (no API key) server. Pure functions over header bytes, so the fuzz target can
//! include this file as it is.
//!
//! Without API keys, a browser on the same machine could reach the server from any web page:
//! - a page may POST `text/plain` (or a form) cross-origin without a CORS preflight, so a body
//!   must be `application/json` (anything else: 415), which a browser only sends after a
//!   preflight this server never approves;
//! - DNS rebinding points an attacker's name at 127.0.0.1, so on loopback the `Host` header must
//!   name the bound address (anything else: 403).

use std::net::{IpAddr, SocketAddr};

/// Whether a `Content-Type` value is `application/json`, with optional parameters
/// (`; charset=utf-8`); media types compare case-insensitively.
pub fn is_json_content_type(value: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(value) else { return false };
    let media = s.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
}

/// The `Host` values a loopback server answers: `localhost` or the bound IP literal (IPv6 in
/// brackets), each with the bound port; without a port only when the bound port is 80. A server
/// bound to the name `localhost` also answers `127.0.0.1` and `[::1]`.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    names: Vec<String>,
    port: u16,
}

impl HostPolicy {
    pub fn new(bound_host: &str, bound: SocketAddr) -> HostPolicy {
        let literal = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let mut names = vec!["localhost".to_owned(), literal(bound.ip())];
        if bound_host.eq_ignore_ascii_case("localhost") {
            names.push("127.0.0.1".to_owned());
            names.push("[::1]".to_owned());
        }
        names.dedup();
        HostPolicy { names, port: bound.port() }
    }

    /// Whether a `Host` header value (or a request target's authority) names this server.
    pub fn allows(&self, host: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(host) else { return false };
        let Some((name, port)) = split_host_port(s) else { return false };
        let port_ok = match port {
            Some(p) => p == self.port,
            None => self.port == 80,
        };
        port_ok && self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// `name[:port]` or `[v6][:port]`; `None` when malformed (empty name, bare IPv6, bad port).
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (name, rest) = if s.starts_with('[') {
        let end = s.find(']')?;
        (&s[..=end], &s[end + 1..])
    } else {
        match s.find(':') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    };
    if name.is_empty() {
        return None;
    }
    let port = match rest {
        "" => None,
        r => {
            let digits = r.strip_prefix(':')?;
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(digits.parse::<u16>().ok()?)
        }
    };
    Some((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type() {
        assert!(is_json_content_type(b"application/json"));
        assert!(is_json_content_type(b"Application/JSON; charset=utf-8"));
        assert!(!is_json_content_type(b"text/plain"));
        assert!(!is_json_content_type(b"application/x-www-form-urlencoded"));
        assert!(!is_json_content_type(b"application/jsonx"));
        assert!(!is_json_content_type(b"\xff"));
        assert!(!is_json_content_type(b""));
    }

    #[test]
    fn hosts_on_ipv4_loopback() {
        let p = HostPolicy::new("127.0.0.1", "127.0.0.1:8080".parse().unwrap());
        for ok in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080"] {
            assert!(p.allows(ok.as_bytes()), "{ok}");
        }
        for bad in ["evil.example:8080", "127.0.0.1", "localhost", "127.0.0.1:8081", "[::1]:8080", "localhost.:8080", "127.0.0.1:+8080", "127.0.0.1:08080x", ":8080", "127.0.0.1:", "localhost:8080:8080", ""] {
            assert!(!p.allows(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn hosts_on_ipv6_and_localhost_and_port_80() {
        let p = HostPolicy::new("::1", "[::1]:9000".parse().unwrap());
        assert!(p.allows(b"[::1]:9000") && p.allows(b"localhost:9000"));
        assert!(!p.allows(b"::1:9000") && !p.allows(b"127.0.0.1:9000") && !p.allows(b"[::1"));
        let p = HostPolicy::new("localhost", "127.0.0.1:80".parse().unwrap());
        assert!(p.allows(b"localhost") && p.allows(b"127.0.0.1") && p.allows(b"[::1]:80") && p.allows(b"localhost:80"));
        assert!(!p.allows(b"example.com"));
    }
}
