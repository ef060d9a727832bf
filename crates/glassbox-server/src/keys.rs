//! API keys with a policy each (`--api-key-file keys.toml`): a name (what logs and metrics
//! show — never the key), the key's SHA-256 (the key itself is not stored), the models it may
//! use, and requests-per-minute and tokens-per-minute limits (token buckets; over a limit, 429
//! with `Retry-After`). A plain key file (one key per line) still works: its keys are named
//! `key-1`, `key-2`, … with no limits.
//!
//! ```toml
//! [[key]]
//! name = "analytics"
//! sha256 = "…64 hex…"          # printf %s "$KEY" | sha256sum
//! models = ["smollm2", "finance"]
//! requests_per_minute = 60
//! tokens_per_minute = 20000
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Deserialize;

/// One key's policy.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyPolicy {
    pub name: String,
    pub sha256: [u8; 32],
    /// Model ids it may use; `None`: all.
    pub models: Option<Vec<String>>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
}

impl KeyPolicy {
    /// A plain key: named by its place, no limits.
    pub fn plain(index: usize, key: &str) -> KeyPolicy {
        use sha2::Digest;
        KeyPolicy { name: format!("key-{}", index + 1), sha256: sha2::Sha256::digest(key.as_bytes()).into(), models: None, requests_per_minute: None, tokens_per_minute: None }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    key: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    sha256: String,
    models: Option<Vec<String>>,
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u64>,
}

/// Parse a keys file (TOML), refusing — naming the entry and field — unknown fields, a name
/// that is not 1–64 of `[A-Za-z0-9._-]` (it becomes a metric label), a duplicate name or key,
/// a `sha256` that is not 64 hex digits, an empty model list and zero limits.
pub fn parse_keys_toml(text: &str) -> Result<Vec<KeyPolicy>, String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    if f.key.is_empty() {
        return Err("no [[key]] entries".into());
    }
    let mut out: Vec<KeyPolicy> = Vec::with_capacity(f.key.len());
    for (i, e) in f.key.into_iter().enumerate() {
        let at = format!("key {} ({:?})", i + 1, e.name);
        if e.name.is_empty() || e.name.len() > 64 || !e.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Err(format!("{at}: name must be 1 to 64 of A-Z a-z 0-9 . _ -"));
        }
        let hex = e.sha256.trim().to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{at}: sha256 must be 64 hexadecimal digits (the SHA-256 of the key, not the key)"));
        }
        let mut sha = [0u8; 32];
        for (k, b) in sha.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * k..2 * k + 2], 16).map_err(|_| format!("{at}: sha256 is not hexadecimal"))?;
        }
        if e.models.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!("{at}: models is empty (leave it out to allow every model)"));
        }
        if e.requests_per_minute == Some(0) || e.tokens_per_minute == Some(0) {
            return Err(format!("{at}: a limit of 0 would refuse everything (leave it out for no limit)"));
        }
        if out.iter().any(|k| k.name == e.name) {
            return Err(format!("{at}: the name is used twice"));
        }
        if out.iter().any(|k| k.sha256 == sha) {
            return Err(format!("{at}: the same key is listed twice"));
        }
        out.push(KeyPolicy { name: e.name, sha256: sha, models: e.models, requests_per_minute: e.requests_per_minute, tokens_per_minute: e.tokens_per_minute });
    }
    Ok(out)
}

/// A token bucket of `per_minute` capacity, refilled continuously.
struct Bucket {
    level: f64,
    at: Instant,
}

/// A key's policy and its live state.
pub(crate) struct KeyState {
    pub policy: KeyPolicy,
    buckets: Mutex<(Bucket, Bucket)>,
    pub requests: AtomicU64,
    pub tokens: AtomicU64,
    pub limited: AtomicU64,
}

fn refill(b: &mut Bucket, per_minute: f64, now: Instant) {
    b.level = (b.level + now.duration_since(b.at).as_secs_f64() * per_minute / 60.0).min(per_minute);
    b.at = now;
}

impl KeyState {
    pub fn new(policy: KeyPolicy) -> KeyState {
        let now = Instant::now();
        let full = |n: Option<f64>| Bucket { level: n.unwrap_or(0.0), at: now };
        let b = (full(policy.requests_per_minute.map(f64::from)), full(policy.tokens_per_minute.map(|t| t as f64)));
        KeyState { policy, buckets: Mutex::new(b), requests: AtomicU64::new(0), tokens: AtomicU64::new(0), limited: AtomicU64::new(0) }
    }

    /// Admit one request, or the seconds until one would be admitted.
    pub fn admit(&self) -> Result<(), u64> {
        let now = Instant::now();
        let mut g = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (req, tok) = &mut *g;
        if let Some(t) = self.policy.tokens_per_minute {
            refill(tok, t as f64, now);
            if tok.level <= 0.0 {
                self.limited.fetch_add(1, Ordering::Relaxed);
                return Err(((-tok.level + 1.0) * 60.0 / t as f64).ceil().max(1.0) as u64);
            }
        }
        if let Some(r) = self.policy.requests_per_minute {
            refill(req, f64::from(r), now);
            if req.level < 1.0 {
                self.limited.fetch_add(1, Ordering::Relaxed);
                return Err(((1.0 - req.level) * 60.0 / f64::from(r)).ceil().max(1.0) as u64);
            }
            req.level -= 1.0;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Tokens a finished request used (prompt + completion): taken from the bucket, which may
    /// go below zero — later requests then wait until it refills.
    pub fn spend(&self, tokens: u64) {
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
        if let Some(t) = self.policy.tokens_per_minute {
            let mut g = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            refill(&mut g.1, t as f64, Instant::now());
            g.1.level -= tokens as f64;
        }
    }

    /// Whether the key may use `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.policy.models.as_ref().is_none_or(|m| m.iter().any(|x| x == model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

    #[test]
    fn a_keys_file_is_parsed_strictly() {
        let ok = format!("[[key]]\nname = \"a\"\nsha256 = \"{SHA}\"\nmodels = [\"m\"]\nrequests_per_minute = 2\n");
        let k = parse_keys_toml(&ok).unwrap();
        assert_eq!((k[0].name.as_str(), k[0].requests_per_minute, k[0].sha256[0]), ("a", Some(2), 0x5e));
        for (bad, want) in [
            (format!("[[key]]\nname = \"a b\"\nsha256 = \"{SHA}\"\n"), "name must be"),
            ("[[key]]\nname = \"a\"\nsha256 = \"password\"\n".to_string(), "64 hexadecimal"),
            (format!("[[key]]\nname = \"a\"\nsha256 = \"{SHA}\"\nrpm = 3\n"), "unknown field"),
            (format!("[[key]]\nname = \"a\"\nsha256 = \"{SHA}\"\nmodels = []\n"), "models is empty"),
            (format!("[[key]]\nname = \"a\"\nsha256 = \"{SHA}\"\ntokens_per_minute = 0\n"), "limit of 0"),
            (format!("[[key]]\nname = \"a\"\nsha256 = \"{SHA}\"\n[[key]]\nname = \"a\"\nsha256 = \"{}\"\n", SHA.replace('5', "6")), "used twice"),
            (format!("[[key]]\nname = \"a\"\nsha256 = \"{SHA}\"\n[[key]]\nname = \"b\"\nsha256 = \"{SHA}\"\n"), "listed twice"),
            (String::new(), "no [[key]]"),
        ] {
            let e = parse_keys_toml(&bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn buckets_limit_requests_and_tokens_per_minute() {
        let k = KeyState::new(KeyPolicy { requests_per_minute: Some(2), tokens_per_minute: Some(600), ..KeyPolicy::plain(0, "x") });
        assert!(k.admit().is_ok() && k.admit().is_ok());
        let wait = k.admit().unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        let t = KeyState::new(KeyPolicy { tokens_per_minute: Some(600), ..KeyPolicy::plain(0, "x") });
        assert!(t.admit().is_ok());
        t.spend(1200); // 600 over: 60 s at 10 tokens/s
        let wait = t.admit().unwrap_err();
        assert!((59..=61).contains(&wait), "{wait}");
        assert_eq!((t.requests.load(Ordering::Relaxed), t.tokens.load(Ordering::Relaxed), t.limited.load(Ordering::Relaxed)), (1, 1200, 1));
        let m = KeyState::new(KeyPolicy { models: Some(vec!["a".into()]), ..KeyPolicy::plain(0, "x") });
        assert!(m.allows("a") && !m.allows("b"));
    }
}
