//! Chat-template analysis without executing anything: the Jinja blocks (`{{ }}`, `{% %}`) are
//! tokenised and checked for what server-side template injection needs — dunder attributes,
//! the `attr` filter, the globals that reach Python internals (`lipsum`, `cycler`, `joiner`,
//! `self`, `config`, `request`), dunders assembled from string pieces — and the whole text for
//! hidden or bidirectional-control characters that make a template read differently than it runs.

use crate::{Finding, Severity};

const GADGETS: &[&str] = &["lipsum", "cycler", "joiner", "self", "config", "request", "url_for", "get_flashed_messages", "_TemplateReference__context"];

fn hidden(c: char) -> bool {
    matches!(c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x2069 | 0xFEFF | 0x00AD)
}

/// Code inside Jinja delimiters, with its byte offset.
fn blocks(src: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(rel) = src[i..].find(['{']) {
        let start = i + rel;
        let close = match src.get(start + 1..start + 2) {
            Some("{") => "}}",
            Some("%") => "%}",
            _ => {
                i = start + 1;
                continue;
            }
        };
        let body_start = start + 2;
        let end = src[body_start..].find(close).map(|e| body_start + e).unwrap_or(src.len());
        out.push((body_start, &src[body_start..end]));
        i = (end + 2).min(src.len());
        if i >= src.len() {
            break;
        }
    }
    out
}

enum Tok<'a> {
    Ident(&'a str),
    Str(String),
    Punct(char),
}

fn tokens(code: &str) -> Vec<(usize, Tok<'_>)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((s, Tok::Ident(&code[s..i])));
        } else if c == b'\'' || c == b'"' {
            let s = i;
            i += 1;
            let mut text = String::new();
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                text.push(b[i] as char);
                i += 1;
            }
            i += 1;
            out.push((s, Tok::Str(text)));
        } else {
            if !c.is_ascii_whitespace() {
                out.push((i, Tok::Punct(c as char)));
            }
            i += 1;
        }
    }
    out
}

pub fn analyse(src: &str, location: &str, base: u64, findings: &mut Vec<Finding>) {
    let mut push = |sev, rule, at: usize, msg: String| findings.push(Finding::new(sev, rule, location, Some(base + at as u64), msg));
    if let Some((at, c)) = src.char_indices().find(|&(_, c)| hidden(c)) {
        push(Severity::High, "template-hidden-char", at, format!("chat template contains the invisible or bidirectional-control character U+{:04X}: it may read differently than it runs", c as u32));
    }
    for (off, code) in blocks(src) {
        let toks = tokens(code);
        for (k, (at, t)) in toks.iter().enumerate() {
            let prev_dot = k > 0 && matches!(toks[k - 1].1, Tok::Punct('.'));
            match t {
                Tok::Ident(id) if id.starts_with("__") && id.ends_with("__") && id.len() > 4 => {
                    push(Severity::High, "template-dunder", off + at, format!("chat template accesses `{id}`: Python internals, the first step of template injection"));
                }
                Tok::Ident("attr") if k > 0 && matches!(toks[k - 1].1, Tok::Punct('|')) => {
                    push(Severity::High, "template-attr-filter", off + at, "chat template uses the `attr` filter, which reaches attributes by computed name (template injection gadget)".into());
                }
                Tok::Ident(id) if !prev_dot && GADGETS.contains(id) && matches!(toks.get(k + 1).map(|t| &t.1), Some(Tok::Punct('.' | '[' | '|'))) => {
                    push(Severity::High, "template-gadget", off + at, format!("chat template reaches into `{id}`, a global whose attributes lead to Python internals (template injection)"));
                }
                Tok::Str(s) if s.contains("__") => {
                    push(Severity::High, "template-dunder-string", off + at, format!("chat template builds the name {s:?}: a dunder assembled from strings (obfuscated template injection)"));
                }
                Tok::Str(s) if ["popen", "system", "subprocess", "eval", "exec", "import", "os."].iter().any(|w| s.contains(w)) && toks.iter().any(|(_, t)| matches!(t, Tok::Punct('~'))) => {
                    push(Severity::Medium, "template-suspicious-string", off + at, format!("chat template concatenates the suspicious string {s:?}"));
                }
                _ => {}
            }
        }
    }
}
