//! Fuzz the fail-closed paths: the input is analysed as a stream of pickles (raw, after a
//! benign pickle, after a legacy torch.save header, or as a stored/deflated zip member, possibly
//! nested), under tiny limits so that every limit (stack, memo, tracked bytes, opcodes, nesting,
//! inflate and held budgets, legacy storages, findings) is hit often. Properties: no panic;
//! top-level findings point inside the input; the findings list is capped; and tightening the
//! limits never lowers the verdict (high under the defaults ⇒ high under the tiny limits).
//! Run: cd crates/glassbox-scan/fuzz && cargo +nightly fuzz run scan_stream
#![no_main]

use glassbox_scan::{Limits, scan_bytes_with};
use libfuzzer_sys::fuzz_target;

const LEGACY_HEAD: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}q\x00.";

fn tiny() -> Limits {
    Limits {
        stack: 64,
        memo: 64,
        value_bytes: 4096,
        opcodes: 20_000,
        depth: 2,
        inflate_base: 1 << 20,
        inflate_per_byte: 2,
        held_base: 64 << 10,
        member_base: 1 << 20,
        member_per_byte: 2,
        storages: 16,
        findings: 32,
    }
}

/// A one-member zip around `data` (`flags` bit 3: sizes in a data descriptor, as PyTorch writes).
fn zip(name: &str, data: &[u8], deflate: bool, flags: u16, listed: bool) -> Vec<u8> {
    let body = if deflate { miniz_oxide::deflate::compress_to_vec(data, 1) } else { data.to_vec() };
    let n = body.len() as u32;
    let local_size = if flags & 8 != 0 { 0 } else { n };
    let method: u16 = if deflate { 8 } else { 0 };
    let mut out = Vec::new();
    out.extend_from_slice(b"PK\x03\x04\x14\x00");
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&method.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&local_size.to_le_bytes());
    out.extend_from_slice(&local_size.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&body);
    if flags & 8 != 0 {
        out.extend_from_slice(b"PK\x07\x08\0\0\0\0");
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
    }
    let cd = out.len() as u32;
    let mut entries = 0u16;
    if listed {
        entries = 1;
        out.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00");
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(name.as_bytes());
    }
    let cd_len = out.len() as u32 - cd;
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    let mut data = match mode & 3 {
        0 => rest.to_vec(),
        1 => [&b"\x80\x02}q\x00."[..], rest].concat(),
        2 => [LEGACY_HEAD, rest].concat(),
        _ => [rest, &b"cos\nsystem\n(S'id'\ntR."[..]].concat(),
    };
    for level in 0..(mode >> 2 & 3) {
        let name = if level == 0 { "archive/data.pkl" } else { "inner.zip" };
        data = zip(name, &data, mode & 0x10 != 0, if mode & 0x20 != 0 { 0x808 } else { 0 }, mode & 0x40 == 0);
    }
    let lim = tiny();
    let small = scan_bytes_with(&data, "fuzz", &lim);
    for f in &small.findings {
        if !f.location.contains('!') {
            assert!(f.offset.unwrap_or(0) <= data.len() as u64, "{f:?}");
        }
    }
    assert!(small.findings.len() <= lim.findings + 1);
    let full = glassbox_scan::scan_bytes(&data, "fuzz");
    assert!(!full.has_high() || small.has_high(), "tighter limits lowered the verdict:\n{:?}\n{:?}", full.findings, small.findings);
});
