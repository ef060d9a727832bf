//! `tojson` as transformers defines it: Python's `json.dumps(x, ensure_ascii=False,
//! indent=indent, separators=separators, sort_keys=sort_keys)`. minijinja's built-in escapes
//! `<>&'` for HTML, which changes prompts; this one does not.

use minijinja::value::{Kwargs, Value};

fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn float_repr(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

struct Style<'a> {
    /// Stop writing once the output passes this many bytes (the caller reports it).
    limit: usize,
    indent: Option<String>,
    item_sep: &'a str,
    key_sep: &'a str,
    sort_keys: bool,
}

fn write(v: &serde_json::Value, st: &Style, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let nl = |out: &mut String, d: usize| {
        if let Some(ind) = &st.indent {
            out.push('\n');
            for _ in 0..d {
                out.push_str(ind);
            }
        }
    };
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&float_repr(f)),
            _ => out.push_str(&n.to_string()),
        },
        J::String(s) => escape(s, out),
        J::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if out.len() > st.limit {
                    return;
                }
                if i > 0 {
                    out.push_str(st.item_sep);
                }
                nl(out, depth + 1);
                write(x, st, depth + 1, out);
            }
            nl(out, depth);
            out.push(']');
        }
        J::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            let mut keys: Vec<&String> = m.keys().collect();
            if st.sort_keys {
                keys.sort();
            }
            for (i, k) in keys.into_iter().enumerate() {
                if out.len() > st.limit {
                    return;
                }
                if i > 0 {
                    out.push_str(st.item_sep);
                }
                nl(out, depth + 1);
                escape(k, out);
                out.push_str(st.key_sep);
                write(&m[k], st, depth + 1, out);
            }
            nl(out, depth);
            out.push('}');
        }
    }
}

/// Serialise like Python `json.dumps(v, ensure_ascii=False)` with optional indent.
pub fn to_python_json(v: &serde_json::Value, indent: Option<usize>, sort_keys: bool) -> String {
    let st = Style {
        limit: usize::MAX,
        indent: indent.map(|n| " ".repeat(n)),
        item_sep: if indent.is_some() { "," } else { ", " },
        key_sep: ": ",
        sort_keys,
    };
    let mut out = String::new();
    write(v, &st, 0, &mut out);
    out
}

const MAX_INDENT: usize = 256;

/// `tojson` as transformers' jinja2 environment defines it; refuses output over `limit` bytes
/// (checked while writing).
pub(crate) fn tojson_filter(v: Value, kwargs: Kwargs, limit: usize) -> Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let j = serde_json::to_value(&v).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("tojson: {e}"))
    })?;
    // Python accepts any indent; a template never needs more than a few spaces, and each level
    // of nesting repeats it (the fuzzer found `indent=20000000000`: a 20 GB allocation).
    if let Some(n) = indent
        && n > MAX_INDENT
    {
        return Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("tojson: indent {n} is over {MAX_INDENT}")));
    }
    let mut st = Style {
        limit,
        indent: indent.map(|n| " ".repeat(n)),
        item_sep: if indent.is_some() { "," } else { ", " },
        key_sep: ": ",
        sort_keys: sort_keys.unwrap_or(false),
    };
    let seps;
    if let Some(s) = separators {
        if s.len() != 2 {
            return Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "tojson: separators must be a pair"));
        }
        seps = s;
        st.item_sep = &seps[0];
        st.key_sep = &seps[1];
        return finish(&j, &st);
    }
    finish(&j, &st)
}

fn finish(j: &serde_json::Value, st: &Style) -> Result<Value, minijinja::Error> {
    let mut out = String::new();
    write(j, st, 0, &mut out);
    if out.len() > st.limit {
        return Err(crate::bounded::over_limit());
    }
    Ok(Value::from_safe_string(out))
}
