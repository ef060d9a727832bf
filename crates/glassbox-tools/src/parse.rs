//! Model output → content and calls, in the format the template taught. Only calls of defined
//! functions with object arguments count; anything else stays text, so a reply that merely
//! looks like a call is never turned into one.

use serde_json::Value;

use crate::format::Format;

/// One parsed call; `arguments` is JSON text, as OpenAI returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// The text outside calls (`None` when only whitespace is left).
    pub content: Option<String>,
    pub calls: Vec<Call>,
}

pub(crate) const HERMES_OPEN: &str = "<tool_call>";
pub(crate) const HERMES_CLOSE: &str = "</tool_call>";
pub(crate) const MISTRAL_TAG: &str = "[TOOL_CALLS]";
pub(crate) const PYTHON_TAG: &str = "<|python_tag|>";

/// A call object `{"name": ..., <args_key>: {...}}` of a known function.
pub(crate) fn call_of(v: &Value, names: &[&str]) -> Option<Call> {
    let o = v.as_object()?;
    let name = o.get("name")?.as_str()?;
    if !names.contains(&name) {
        return None;
    }
    let args = o.get("arguments").or_else(|| o.get("parameters"))?;
    // Some models write the arguments as a JSON string holding the object.
    let args = match args {
        Value::String(s) => serde_json::from_str::<Value>(s).ok().filter(Value::is_object)?,
        Value::Object(_) => args.clone(),
        _ => return None,
    };
    Some(Call { name: name.to_owned(), arguments: args.to_string() })
}

/// The calls in a whole-reply JSON (Llama 3.x object, Mistral array), if it is one.
pub(crate) fn whole_reply(format: Format, text: &str, names: &[&str]) -> Option<Vec<Call>> {
    let t = text.trim();
    let t = t.strip_prefix(PYTHON_TAG).or_else(|| t.strip_prefix(MISTRAL_TAG)).unwrap_or(t).trim();
    let v: Value = serde_json::from_str(t).ok()?;
    let items: Vec<&Value> = match (&v, format) {
        (Value::Array(a), _) => a.iter().collect(),
        (Value::Object(_), _) => vec![&v],
        _ => return None,
    };
    let calls: Option<Vec<Call>> = items.into_iter().map(|c| call_of(c, names)).collect();
    calls.filter(|c| !c.is_empty())
}

fn content(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// A Markdown code fence: Qwen2.5-Coder (and other Hermes-format models) often write a call as
/// a fenced JSON block instead of `<tool_call>`; llama.cpp's Hermes parser reads those too.
pub(crate) const FENCE: &str = "```";

/// The calls in the body of a `<tool_call>` block or a code fence (after its language tag).
pub(crate) fn block_calls(opener: &str, body: &str, names: &[&str]) -> Option<Vec<Call>> {
    let body = if opener == FENCE { body.strip_prefix("json").unwrap_or(body) } else { body };
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    let items: Vec<&Value> = match &v {
        Value::Array(a) if opener == FENCE => a.iter().collect(),
        Value::Object(_) => vec![&v],
        _ => return None,
    };
    let calls: Option<Vec<Call>> = items.into_iter().map(|c| call_of(c, names)).collect();
    calls.filter(|c| !c.is_empty())
}

/// The opening tag nearest the start of `s` and where it is.
pub(crate) fn next_open(s: &str) -> Option<(usize, &'static str)> {
    [HERMES_OPEN, FENCE].into_iter().filter_map(|t| s.find(t).map(|i| (i, t))).min()
}

pub(crate) fn closer(opener: &str) -> &'static str {
    if opener == FENCE { FENCE } else { HERMES_CLOSE }
}

/// Split a whole reply into content and calls.
pub fn parse_output(format: Format, text: &str, names: &[&str]) -> Parsed {
    match format {
        Format::Hermes => {
            let mut rest = text;
            let mut out = String::new();
            let mut calls = Vec::new();
            while let Some((i, open)) = next_open(rest) {
                let after = &rest[i + open.len()..];
                let close = closer(open);
                let (body, next, closed) = match after.find(close) {
                    Some(j) => (&after[..j], &after[j + close.len()..], true),
                    None => (after, "", false),
                };
                match block_calls(open, body, names) {
                    Some(c) => {
                        out.push_str(&rest[..i]);
                        calls.extend(c);
                    }
                    None => {
                        out.push_str(&rest[..i + open.len()]);
                        out.push_str(body);
                        if closed {
                            out.push_str(close);
                        }
                    }
                }
                rest = next;
            }
            out.push_str(rest);
            if calls.is_empty() {
                // A reply that is nothing but a call object.
                if let Some(c) = block_calls(HERMES_OPEN, text, names) {
                    return Parsed { content: None, calls: c };
                }
                return Parsed { content: Some(out), calls };
            }
            Parsed { content: content(out.trim().to_owned()), calls }
        }
        Format::Llama3 | Format::Mistral => match whole_reply(format, text, names) {
            Some(calls) => Parsed { content: None, calls },
            None => Parsed { content: Some(text.to_owned()), calls: Vec::new() },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &[&str] = &["get_weather", "time"];

    #[test]
    fn hermes_blocks() {
        let p = parse_output(Format::Hermes, "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"time\", \"arguments\": {}}\n</tool_call>", N);
        assert_eq!(p.content.as_deref(), Some("Let me check."));
        assert_eq!(p.calls, vec![Call { name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() }, Call { name: "time".into(), arguments: "{}".into() }]);
        // unknown function, bad JSON: text
        for t in ["<tool_call>\n{\"name\": \"rm\", \"arguments\": {}}\n</tool_call>", "<tool_call>{oops</tool_call>", "plain"] {
            let p = parse_output(Format::Hermes, t, N);
            assert_eq!((p.content.as_deref(), p.calls.len()), (Some(t), 0), "{t}");
        }
        // cut off before the closing tag (max_tokens or a stop): still a call if complete JSON
        assert_eq!(parse_output(Format::Hermes, "<tool_call>\n{\"name\": \"time\", \"arguments\": {}}", N).calls.len(), 1);
        // a fenced JSON call (Qwen2.5-Coder's habit), or a bare one, as llama.cpp reads them
        let p = parse_output(Format::Hermes, "Here:\n```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n```", N);
        assert_eq!((p.content.as_deref(), p.calls.len()), (Some("Here:"), 1));
        assert_eq!(parse_output(Format::Hermes, "{\"name\": \"time\", \"arguments\": {}}", N).calls.len(), 1);
        for t in ["```python\nprint(1)\n```", "```json\n{\"name\": \"other\", \"arguments\": {}}\n```", "{\"a\": 1}"] {
            assert_eq!(parse_output(Format::Hermes, t, N), Parsed { content: Some(t.into()), calls: vec![] }, "{t}");
        }
    }

    #[test]
    fn llama3_and_mistral() {
        let p = parse_output(Format::Llama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", N);
        assert_eq!((p.content, p.calls[0].arguments.as_str()), (None, r#"{"city":"Oslo"}"#));
        assert_eq!(parse_output(Format::Llama3, "<|python_tag|>{\"name\": \"time\", \"parameters\": \"{}\"}", N).calls.len(), 1);
        assert_eq!(parse_output(Format::Llama3, "{\"answer\": 4}", N).content.as_deref(), Some("{\"answer\": 4}"));
        let p = parse_output(Format::Mistral, "[TOOL_CALLS][{\"name\": \"time\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]", N);
        assert_eq!(p.calls.len(), 2);
        assert_eq!(parse_output(Format::Mistral, "[{\"name\": \"time\", \"arguments\": {}}]", N).calls.len(), 1);
        assert_eq!(parse_output(Format::Mistral, "[1, 2]", N).calls.len(), 0);
    }
}
