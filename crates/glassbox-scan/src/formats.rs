//! Non-pickle formats: GGUF (structure through the hardened container parser, then its chat
//! templates) and safetensors (strict header validation).

use glassbox_gguf::{Gguf, Limits, Value};

use crate::{Finding, Severity, template};

pub(crate) fn gguf(data: &[u8], location: &str, findings: &mut Vec<Finding>) {
    let g = match Gguf::parse(data, &Limits::default()) {
        Ok(g) => g,
        Err(e) => {
            findings.push(Finding::new(Severity::High, "malformed-gguf", location, Some(0), format!("structurally invalid GGUF: {e}")));
            return;
        }
    };
    for (k, v) in g.metadata() {
        if (k == "tokenizer.chat_template" || k.starts_with("tokenizer.chat_template.")) && let Value::String(src) = v {
            // Offset of the template text: search the (unique) bytes in the file for reporting.
            let base = memfind(data, src.as_bytes()).unwrap_or(0) as u64;
            template::analyse(src, &format!("{location}#{k}"), base, findings);
        }
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

const MAX_HEADER: u64 = 100 << 20;

fn dtype_size(d: &str) -> Option<u64> {
    Some(match d {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

/// Strict safetensors validation: a JSON object header (starting with `{`, no duplicate keys,
/// under the size limit) whose tensors' dtype × shape equals their byte ranges, and whose ranges
/// tile the data section exactly (no overlap, no gap, nothing past the end).
pub(crate) fn safetensors(data: &[u8], location: &str, findings: &mut Vec<Finding>) {
    let mut bad = |msg: String| findings.push(Finding::new(Severity::High, "malformed-safetensors", location, Some(0), msg));
    let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER || n > (data.len() as u64).saturating_sub(8) {
        return bad(format!("header length {n} is over the limit or past the end of the file"));
    }
    let header = &data[8..8 + n as usize];
    if header.first() != Some(&b'{') {
        return bad("header does not start with '{'".into());
    }
    let entries: Vec<(String, serde_json::Value)> = match serde_json::from_slice::<Entries>(header) {
        Ok(e) => e.0,
        Err(e) => return bad(format!("header is not a JSON object: {e}")),
    };
    let mut seen = std::collections::HashSet::new();
    let mut ranges = Vec::new();
    let data_len = data.len() as u64 - 8 - n;
    for (name, v) in &entries {
        if !seen.insert(name.as_str()) {
            return bad(format!("duplicate key {name:?} in the header"));
        }
        if name == "__metadata__" {
            continue;
        }
        let dtype = v.get("dtype").and_then(|d| d.as_str()).unwrap_or("");
        let Some(size) = dtype_size(dtype) else { return bad(format!("tensor {name:?}: unknown dtype {dtype:?}")) };
        let shape: Option<Vec<u64>> = v.get("shape").and_then(|s| s.as_array()).map(|a| a.iter().filter_map(|x| x.as_u64()).collect());
        let offs: Option<Vec<u64>> = v.get("data_offsets").and_then(|s| s.as_array()).map(|a| a.iter().filter_map(|x| x.as_u64()).collect());
        let (Some(shape), Some(offs)) = (shape, offs) else { return bad(format!("tensor {name:?}: missing shape or data_offsets")) };
        if offs.len() != 2 || offs[0] > offs[1] {
            return bad(format!("tensor {name:?}: data_offsets {offs:?} are not [begin, end]"));
        }
        let elems = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        match elems.and_then(|e| e.checked_mul(size)) {
            Some(bytes) if bytes == offs[1] - offs[0] => {}
            _ => return bad(format!("tensor {name:?}: {dtype} × {shape:?} does not equal its {} bytes", offs[1] - offs[0])),
        }
        ranges.push((offs[0], offs[1], name.clone()));
    }
    ranges.sort();
    let mut cursor = 0;
    for (b, e, name) in &ranges {
        if *b != cursor {
            return bad(format!("tensor {name:?}: data starts at {b}, expected {cursor} (gap or overlap)"));
        }
        cursor = *e;
    }
    if cursor != data_len {
        bad(format!("tensors cover {cursor} bytes but the data section has {data_len}"));
    }
}

/// A JSON object read as an ordered list of entries, so duplicate keys are visible.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, serde_json::Value>()? {
                    v.push((k, val));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}
