//! A tamper-evident request log. Each record is one line of JSON:
//!
//! ```text
//! {"seq":7,"prev":"<SHA-256 of record 6, hex>","time":"2026-12-01T13:45:10.1Z","event":{…},"hash":"<hex>"}
//! ```
//!
//! `hash` is the SHA-256 of the line's bytes up to (not including) `,"hash":`; `prev` is the
//! previous record's `hash` (64 zeros before the first); `seq` counts from 0 without gaps. So
//! editing a record breaks its own hash, deleting or inserting one breaks `seq` and the next
//! `prev`, and reordering breaks both; rotation by size (`FILE` → `FILE.<first seq>`) keeps the
//! chain across files. A partial last line — a crash mid-write — is reported, and the records
//! before it still verify. (Without a key, someone who rewrites every record after an edit can
//! recompute the chain; record the head hash elsewhere — the server logs it — to catch that.)
//!
//! [`AuditLog`] writes on its own thread. A request first takes a [`Permit`] (capacity reserved,
//! and refused once the log has failed or is full, so the server answers 503 instead of running
//! a request it cannot log); writing the record then never blocks.

mod verify;
mod writer;

pub use verify::{Verified, files_of, verify};
pub use writer::{AuditLog, Options, Permit, Unavailable};

use sha2::{Digest, Sha256};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bytes of the fixed suffix `,"hash":"<64 hex>"}`.
const SUFFIX: usize = 9 + 64 + 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("audit log {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("audit log {path}, record {line}: {msg}")]
    Broken { path: String, line: usize, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The line for record `seq` (without its newline) and its hash.
pub(crate) fn line(seq: u64, prev: &str, time: &str, event: &serde_json::Value) -> (String, String) {
    let mut body = format!("{{\"seq\":{seq},\"prev\":\"{prev}\",\"time\":{},\"event\":", serde_json::Value::from(time));
    body.push_str(&event.to_string());
    let hash = hex(&Sha256::digest(body.as_bytes()));
    body.push_str(",\"hash\":\"");
    body.push_str(&hash);
    body.push_str("\"}");
    (body, hash)
}

/// Parse and check one line on its own: well-formed JSON, the fixed fields, and its hash.
/// Returns (seq, prev, hash).
pub(crate) fn parse_line(line: &[u8]) -> std::result::Result<(u64, String, String), String> {
    if line.len() < SUFFIX + 2 || !line.ends_with(b"\"}") {
        return Err("not a complete record".into());
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX);
    let Some(h) = suffix.strip_prefix(b",\"hash\":\"").and_then(|s| s.strip_suffix(b"\"}")) else { return Err("no hash at the end of the record".into()) };
    let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let seq = v.get("seq").and_then(serde_json::Value::as_u64).ok_or("no seq")?;
    let prev = v.get("prev").and_then(serde_json::Value::as_str).filter(|p| p.len() == 64).ok_or("no prev")?.to_string();
    let hash = std::str::from_utf8(h).map_err(|_| "hash is not text")?.to_string();
    if v.get("hash").and_then(serde_json::Value::as_str) != Some(hash.as_str()) || v.get("time").is_none() || v.get("event").is_none() {
        return Err("the fields are not seq, prev, time, event, hash".into());
    }
    let want = hex(&Sha256::digest(body));
    if want != hash {
        return Err(format!("hash {hash} does not match the record's content ({want}): the record was edited"));
    }
    Ok((seq, prev, hash))
}

#[cfg(test)]
mod tests;
