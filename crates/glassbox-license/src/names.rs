//! Licence *names* as metadata states them: Hugging Face model-card short names (`llama3.1`,
//! `gemma`, `apache-2.0`, `other`), SPDX ids and expressions (`Apache-2.0`, `MIT OR
//! Apache-2.0`), registry ids (`LicenseRef-scancode-llama-2-license-2023`) and free-form names
//! (`Llama 3.1 Community License`).

use crate::normalize::words;
use crate::registry::{Entry, builtin};

/// What a stated licence name denotes.
#[derive(Debug, Clone)]
pub enum Named {
    /// Exactly one registry licence.
    Entry(&'static Entry),
    /// A licence family whose version the name does not pin (e.g. HF `gemma`: the 2024 or the
    /// 2025 terms); a licence text, if present, decides.
    Family { family: String, candidates: Vec<&'static Entry> },
    /// A valid SPDX id or expression outside the registry (canonical form).
    Spdx(String),
    /// HF `other`: the real licence is in `license_name` / `license_link` or a file.
    Other,
    /// Nothing we recognise (kept verbatim).
    Unknown(String),
}

impl Named {
    /// The family this name belongs to, if any.
    pub fn family(&self) -> Option<&str> {
        match self {
            Named::Entry(e) => Some(&e.family),
            Named::Family { family, .. } => Some(family),
            _ => None,
        }
    }

    /// An id for reports: the registry id, the SPDX expression, or `unknown`.
    pub fn id(&self) -> String {
        match self {
            Named::Entry(e) => e.id_or_unknown().to_owned(),
            Named::Spdx(s) => s.clone(),
            _ => "unknown".into(),
        }
    }

    /// Whether an identified text (registry key or SPDX id) is consistent with this name.
    pub fn agrees_with(&self, key: Option<&str>, id: &str) -> bool {
        match self {
            Named::Entry(e) => Some(e.key.as_str()) == key,
            Named::Family { candidates, .. } => candidates.iter().any(|c| Some(c.key.as_str()) == key),
            Named::Spdx(expr) => expr.split([' ', '(', ')']).any(|t| t == id),
            Named::Other | Named::Unknown(_) => false,
        }
    }
}

/// Interpret a stated licence name.
pub fn parse_name(raw: &str) -> Named {
    let name = raw.trim();
    let lower = name.to_ascii_lowercase();
    if lower.is_empty() || lower == "unknown" || lower == "none" || lower == "noassertion" {
        return Named::Unknown(name.to_owned());
    }
    if lower == "other" {
        return Named::Other;
    }
    let reg = builtin();
    if let Some(e) = reg.iter().find(|e| e.id.as_deref().is_some_and(|id| id.eq_ignore_ascii_case(name)) || e.key.eq_ignore_ascii_case(name)) {
        return Named::Entry(e);
    }
    let hf: Vec<&'static Entry> = reg.iter().filter(|e| e.hf_names.iter().any(|h| h.eq_ignore_ascii_case(name))).collect();
    match hf.len() {
        1 => return Named::Entry(hf[0]),
        n if n > 1 => return Named::Family { family: hf[0].family.clone(), candidates: hf },
        _ => {}
    }
    // Free-form names: "Llama 3.1 Community License Agreement", "Gemma Terms of Use".
    let w = words(name);
    let by_name: Vec<&'static Entry> = reg.iter().filter(|e| e.document == "license" && words(&e.name).starts_with(&w)).collect();
    if by_name.len() == 1 {
        return Named::Entry(by_name[0]);
    }
    if by_name.len() > 1 && by_name.iter().all(|e| e.family == by_name[0].family) {
        return Named::Family { family: by_name[0].family.clone(), candidates: by_name };
    }
    if let Ok(Some(canon)) = spdx::Expression::canonicalize(name)
        && spdx::Expression::parse(&canon).is_ok() {
            return spdx_or_entry(canon);
        }
    if spdx::Expression::parse(name).is_ok() {
        return spdx_or_entry(name.to_owned());
    }
    if let Some((id, len)) = spdx::imprecise_license_id(name)
        && len == name.len() {
            return spdx_or_entry(id.name.to_owned());
        }
    Named::Unknown(name.to_owned())
}

fn spdx_or_entry(expr: String) -> Named {
    match builtin().iter().find(|e| e.id.as_deref() == Some(expr.as_str())) {
        Some(e) => Named::Entry(e),
        None => Named::Spdx(expr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: Named) -> String {
        match n {
            Named::Entry(e) => e.key.clone(),
            Named::Family { family, .. } => format!("family:{family}"),
            Named::Spdx(s) => format!("spdx:{s}"),
            Named::Other => "other".into(),
            Named::Unknown(s) => format!("unknown:{s}"),
        }
    }

    #[test]
    fn hugging_face_short_names() {
        assert_eq!(key(parse_name("llama3.1")), "llama-3.1-license-2024");
        assert_eq!(key(parse_name("llama2")), "llama-2-license-2023");
        assert_eq!(key(parse_name("gemma")), "family:gemma");
        assert_eq!(key(parse_name("apache-2.0")), "apache-2.0");
        assert_eq!(key(parse_name("mit")), "mit");
        assert_eq!(key(parse_name("other")), "other");
        assert_eq!(key(parse_name("deepseek")), "deepseek-la-1.0");
    }

    #[test]
    fn spdx_ids_expressions_and_free_names() {
        assert_eq!(key(parse_name("Apache-2.0")), "apache-2.0");
        assert_eq!(key(parse_name("MIT OR Apache-2.0")), "spdx:MIT OR Apache-2.0");
        assert_eq!(key(parse_name("BSD-2-Clause")), "spdx:BSD-2-Clause");
        assert_eq!(key(parse_name("LicenseRef-scancode-llama-2-license-2023")), "llama-2-license-2023");
        assert_eq!(key(parse_name("Llama 3.3 Community License Agreement")), "llama-3.3-license-2024");
        assert_eq!(key(parse_name("Gemma Terms of Use")), "family:gemma");
        assert_eq!(key(parse_name("my special licence")), "unknown:my special licence");
    }
}
