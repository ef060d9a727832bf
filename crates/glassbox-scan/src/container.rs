//! Recognise formats by content and route bytes to the right analyser: zip archives (walked
//! by their local headers, so central-directory, flag and CRC tricks cannot hide a member),
//! numpy `.npy` (pickle only for object arrays), 7z (cannot be inspected: refused), raw pickles.

use crate::{Finding, Severity, pickle};

const ZIP_LOCAL: &[u8] = b"PK\x03\x04";
const NPY_MAGIC: &[u8] = b"\x93NUMPY";
const SEVEN_Z: &[u8] = b"7z\xbc\xaf\x27\x1c";
/// Limits against archive bombs.
const MAX_MEMBER_BYTES: usize = 4 << 30;
const MAX_DEPTH: usize = 4;

pub(crate) fn scan_bytes(data: &[u8], location: &str, depth: usize, findings: &mut Vec<Finding>) {
    if data.starts_with(ZIP_LOCAL) {
        if depth >= MAX_DEPTH {
            findings.push(Finding::new(Severity::High, "nested-archive", location, Some(0), "archives nested too deeply to inspect".into()));
            return;
        }
        zip(data, location, depth, findings);
    } else if data.starts_with(NPY_MAGIC) {
        npy(data, location, findings);
    } else if data.starts_with(b"GGUF") {
        crate::formats::gguf(data, location, findings);
    } else if (data.len() >= 8 && location.to_ascii_lowercase().ends_with(".safetensors"))
        || (data.len() >= 10 && data[8] == b'{' && data[9] == b'"')
    {
        crate::formats::safetensors(data, location, findings);
    } else if data.starts_with(SEVEN_Z) {
        findings.push(Finding::new(Severity::High, "uninspectable-archive", location, Some(0), "7z archive: its members cannot be inspected here, so pickles inside it cannot be ruled out; refusing".into()));
    } else {
        pickle::analyse(data, location, findings);
    }
}

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn looks_like_pickle(name: &str, data: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    [".pkl", ".pickle", ".npy"].iter().any(|e| lower.ends_with(e))
        || (data.len() > 2 && data[0] == 0x80 && (2..=5).contains(&data[1]))
        || data.starts_with(ZIP_LOCAL)
        || data.starts_with(NPY_MAGIC)
}

fn zip(data: &[u8], location: &str, depth: usize, findings: &mut Vec<Finding>) {
    let mut pos = 0;
    let mut any = false;
    while let Some(rel) = data[pos..].windows(4).position(|w| w == ZIP_LOCAL) {
        let h = pos + rel;
        pos = h + 4;
        let (Some(flags), Some(method), Some(csize), Some(nlen), Some(xlen)) =
            (u16le(data, h + 6), u16le(data, h + 8), u32le(data, h + 18), u16le(data, h + 26), u16le(data, h + 28))
        else {
            continue;
        };
        let name_start = h + 30;
        let Some(name) = data.get(name_start..name_start + nlen as usize) else { continue };
        let name = String::from_utf8_lossy(name).into_owned();
        let body = name_start + nlen as usize + xlen as usize;
        if body > data.len() {
            continue;
        }
        any = true;
        let member = format!("{location}!{name}");
        // The "encrypted" flag is only a claim: loaders such as PyTorch's ignore it, so the
        // content is read regardless and judged by what it is.
        let claims_encrypted = flags & 1 != 0;
        let content: Vec<u8> = match method {
            0 => {
                let end = if csize > 0 { (body + csize as usize).min(data.len()) } else { data.len() };
                data[body..end].to_vec()
            }
            8 => match miniz_oxide::inflate::decompress_to_vec_with_limit(&data[body..], MAX_MEMBER_BYTES) {
                Ok(v) => v,
                Err(e) => match e.status {
                    miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
                        findings.push(Finding::new(Severity::High, "oversized-member", &member, Some(h as u64), format!("member inflates past {MAX_MEMBER_BYTES} bytes (archive bomb?); refusing")));
                        continue;
                    }
                    _ => e.output,
                },
            },
            other => {
                if name.to_ascii_lowercase().ends_with(".pkl") {
                    findings.push(Finding::new(Severity::High, "uninspectable-member", &member, Some(h as u64), format!("pickle member compressed with method {other}, which cannot be inspected; refusing")));
                }
                continue;
            }
        };
        let readable = !claims_encrypted || (data.len() > 2 && (content.starts_with(&[0x80]) || content.starts_with(ZIP_LOCAL) || content.starts_with(NPY_MAGIC) || content.first().is_some_and(|c| b"c(]}".contains(c))));
        if !readable {
            findings.push(Finding::new(Severity::Info, "encrypted-member", &member, Some(h as u64), "encrypted archive member: its content cannot be read (nor unpickled without the password)".into()));
            continue;
        }
        if looks_like_pickle(&name, &content) {
            scan_bytes(&content, &member, depth + 1, findings);
        }
    }
    if !any {
        findings.push(Finding::new(Severity::Medium, "malformed-archive", location, Some(0), "zip signature but no readable member".into()));
    }
}

fn npy(data: &[u8], location: &str, findings: &mut Vec<Finding>) {
    let major = data.get(6).copied().unwrap_or(0);
    let (hlen, start) = match major {
        1 => (u16le(data, 8).map(|v| v as usize), 10),
        2 | 3 => (u32le(data, 8).map(|v| v as usize), 12),
        _ => (None, 0),
    };
    let Some(header) = hlen.and_then(|n| data.get(start..start + n)) else {
        findings.push(Finding::new(Severity::Medium, "malformed-npy", location, Some(0), "numpy header is truncated or of an unknown version".into()));
        return;
    };
    let header = String::from_utf8_lossy(header);
    // Object arrays ('|O') are stored as a pickle after the header.
    let descr = header.split("'descr':").nth(1).unwrap_or("");
    if descr.trim_start().starts_with("'|O'") || descr.trim_start().starts_with("\"|O\"") || descr.contains("'O'") {
        pickle::analyse(&data[start + hlen.unwrap_or(0)..], location, findings);
    }
}
