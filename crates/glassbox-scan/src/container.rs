//! Recognise formats by content and route bytes to the right analyser: zip archives (see
//! `zip.rs`), numpy `.npy` (pickle only for object arrays), GGUF, safetensors, 7z (cannot be
//! inspected: refused), raw pickles.

use crate::budget::Ctx;
use crate::zip::LOCAL;
use crate::{Finding, Severity, pickle};

pub(crate) const NPY_MAGIC: &[u8] = b"\x93NUMPY";
const SEVEN_Z: &[u8] = b"7z\xbc\xaf\x27\x1c";

pub(crate) fn scan_bytes(data: &[u8], location: &str, depth: usize, ctx: &mut Ctx) {
    if data.starts_with(LOCAL) {
        if depth >= ctx.lim.depth {
            let d = ctx.lim.depth;
            ctx.incomplete(location, Some(0), &format!("archives nested more than {d} deep (the nesting limit); this inner archive was not analysed"));
            return;
        }
        crate::zip::zip(data, location, depth, ctx);
    } else if data.starts_with(NPY_MAGIC) {
        npy(data, location, ctx);
    } else if data.starts_with(b"GGUF") {
        let mut findings = Vec::new();
        crate::formats::gguf(data, location, &mut findings);
        findings.into_iter().for_each(|f| ctx.push(f));
    } else if (data.len() >= 8 && location.to_ascii_lowercase().ends_with(".safetensors"))
        || (data.len() >= 10 && data[8] == b'{' && data[9] == b'"')
    {
        let mut findings = Vec::new();
        crate::formats::safetensors(data, location, &mut findings);
        findings.into_iter().for_each(|f| ctx.push(f));
    } else if data.starts_with(SEVEN_Z) {
        ctx.push(Finding::new(Severity::High, "uninspectable-archive", location, Some(0), "7z archive: its members cannot be inspected here, so pickles inside it cannot be ruled out; refusing".into()));
    } else {
        pickle::analyse_in(data, 0, location, ctx);
    }
}

/// Whether an archive member may be unpickled (or holds something that may be), by its name or
/// its first bytes.
pub(crate) fn looks_like_pickle(name: &str, data: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    [".pkl", ".pickle", ".npy"].iter().any(|e| lower.ends_with(e))
        || (data.len() > 2 && data[0] == 0x80 && (2..=5).contains(&data[1]))
        || data.starts_with(LOCAL)
        || data.starts_with(NPY_MAGIC)
}

/// A `.npy` header's (start, length). `Err(Some(n))`: `n` bytes are needed to read it;
/// `Err(None)`: unknown version.
fn npy_header(data: &[u8]) -> Result<(usize, usize), Option<usize>> {
    let (len_bytes, start) = match data.get(6) {
        None => return Err(Some(12)),
        Some(1) => (2, 10),
        Some(2 | 3) => (4, 12),
        Some(_) => return Err(None),
    };
    let Some(b) = data.get(8..8 + len_bytes) else { return Err(Some(start)) };
    let hlen = b.iter().rev().fold(0usize, |v, &x| (v << 8) | x as usize);
    let total = start.checked_add(hlen).ok_or(None)?;
    if data.len() < total {
        return Err(Some(total));
    }
    Ok((start, hlen))
}

/// Whether numpy would unpickle the array data: its dtype holds Python objects. Anything but a
/// plain (non-object) type string counts as possibly holding objects: numpy accepts 'O', 'O8',
/// 'object', '<O', and lists/tuples of fields that contain them.
fn npy_is_object(header: &[u8]) -> bool {
    let h = String::from_utf8_lossy(header);
    let Some((_, rest)) = h.split_once("'descr'").or_else(|| h.split_once("\"descr\"")) else { return true };
    let Some(rest) = rest.trim_start().strip_prefix(':') else { return true };
    let rest = rest.trim_start();
    match rest.chars().next() {
        Some(q @ ('\'' | '"')) => {
            let v = rest[1..].split(q).next().unwrap_or("");
            let v = v.trim_start_matches(['<', '>', '|', '=']);
            v.starts_with('O') || v.starts_with("object")
        }
        _ => rest.contains('O') || rest.contains("object"),
    }
}

/// For an archive member that starts like a `.npy`: does it need a pickle analysis?
pub(crate) fn npy_needs_pickle(data: &[u8]) -> Result<bool, Option<usize>> {
    let (s, n) = npy_header(data)?;
    Ok(npy_is_object(&data[s..s + n]))
}

fn npy(data: &[u8], location: &str, ctx: &mut Ctx) {
    let Ok((start, hlen)) = npy_header(data) else {
        ctx.push(Finding::new(Severity::Medium, "malformed-npy", location, Some(0), "numpy header is truncated or of an unknown version".into()));
        return;
    };
    // Object arrays are stored as a pickle after the header.
    if npy_is_object(&data[start..start + hlen]) {
        let body = start + hlen;
        pickle::analyse_in(&data[body..], body as u64, location, ctx);
    }
}
