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

/// Strict safetensors validation (glassbox-safetensors): a JSON object header (starting with `{`,
/// no duplicate keys, under the size limit) whose tensors' dtype × shape equals their byte ranges,
/// and whose ranges tile the data section exactly (no overlap, no gap, nothing past the end).
pub(crate) fn safetensors(data: &[u8], location: &str, findings: &mut Vec<Finding>) {
    if let Err(e) = glassbox_safetensors::parse(data) {
        findings.push(Finding::new(Severity::High, "malformed-safetensors", location, Some(0), e.to_string()));
    }
}
