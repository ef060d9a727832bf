//! Tool calling as OpenAI's API defines it, for models whose chat templates teach a call format.
//!
//! - [`parse_tools`] / [`parse_choice`] check `tools` and `tool_choice` (names, schemas).
//! - [`Format::detect`] reads the call format from the chat template's own text — the format
//!   the model was trained to write — and never guesses: a template that renders no tools
//!   means tools are refused.
//! - [`call_grammar`] builds the grammar that holds calls to their functions' schemas
//!   (`required`, a named function, or `strict` functions under `auto`, armed by the format's
//!   opening tag).
//! - [`parse_output`] and [`CallStream`] turn model output into content and calls.

mod format;
mod grammar;
mod parse;
mod stream;

pub use format::Format;
pub use grammar::{call_grammar, CallGrammar};
pub use parse::{parse_output, Call, Parsed};
pub use stream::{CallStream, Delta};

use serde_json::Value;

/// A request's tool definitions or choice is wrong: `param` names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {msg}")]
pub struct ToolError {
    pub param: String,
    pub msg: String,
}

fn err(param: impl Into<String>, msg: impl Into<String>) -> ToolError {
    ToolError { param: param.into(), msg: msg.into() }
}

/// At most this many tools per request.
pub const MAX_TOOLS: usize = 128;

/// One function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub name: String,
    /// The arguments' JSON schema (an empty object schema when the definition gives none).
    pub parameters: Value,
    /// Arguments must follow the schema exactly (`strict: true`): enforced under `auto` too.
    pub strict: bool,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    None,
    Auto,
    Required,
    Named(String),
}

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Check OpenAI's `tools` array: `[{"type": "function", "function": {"name", "description",
/// "parameters", "strict"}}]`.
pub fn parse_tools(v: &Value) -> Result<Vec<Function>, ToolError> {
    let list = v.as_array().ok_or_else(|| err("tools", "tools must be an array"))?;
    if list.len() > MAX_TOOLS {
        return Err(err("tools", format!("at most {MAX_TOOLS} tools, got {}", list.len())));
    }
    let mut out: Vec<Function> = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let p = |f: &str| format!("tools[{i}]{f}");
        let t = t.as_object().ok_or_else(|| err(p(""), "each tool must be an object"))?;
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(err(p(".type"), "only tools of type \"function\" are supported"));
        }
        let f = t.get("function").and_then(Value::as_object).ok_or_else(|| err(p(".function"), "function must be an object"))?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| err(p(".function.name"), "name must be a string"))?;
        if !valid_name(name) {
            return Err(err(p(".function.name"), format!("{name:?} is not a valid function name (1 to 64 of a-z, A-Z, 0-9, _ and -)")));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(err(p(".function.name"), format!("function {name:?} is defined twice")));
        }
        // The description reaches the model through the template, as the client sent it.
        if f.get("description").is_some_and(|d| !d.is_null() && !d.is_string()) {
            return Err(err(p(".function.description"), "description must be a string"));
        }
        let parameters = match f.get("parameters") {
            None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
            Some(Value::Object(o)) => {
                if o.get("type").is_some_and(|t| t != "object") {
                    return Err(err(p(".function.parameters"), "parameters must be a schema of type \"object\""));
                }
                // Arguments are an object whatever the schema says beside (OpenAI's definition).
                let mut o = o.clone();
                o.entry("type").or_insert_with(|| Value::String("object".into()));
                Value::Object(o)
            }
            Some(_) => return Err(err(p(".function.parameters"), "parameters must be a JSON schema object")),
        };
        let strict = match f.get("strict") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(err(p(".function.strict"), "strict must be a boolean")),
        };
        out.push(Function { name: name.to_owned(), parameters, strict });
    }
    Ok(out)
}

/// Check `tool_choice` against the defined functions.
pub fn parse_choice(v: Option<&Value>, tools: &[Function]) -> Result<Choice, ToolError> {
    let c = match v {
        None | Some(Value::Null) => return Ok(if tools.is_empty() { Choice::None } else { Choice::Auto }),
        Some(Value::String(s)) => match s.as_str() {
            "none" => Choice::None,
            "auto" => Choice::Auto,
            "required" => Choice::Required,
            other => return Err(err("tool_choice", format!("{other:?} is not a tool choice (none, auto, required, or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}})"))),
        },
        Some(Value::Object(o)) => {
            let name = (o.get("type").and_then(Value::as_str) == Some("function"))
                .then(|| o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str))
                .flatten()
                .ok_or_else(|| err("tool_choice", "a named tool choice is {\"type\": \"function\", \"function\": {\"name\": ...}}"))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(err("tool_choice", format!("function {name:?} is not among the tools")));
            }
            Choice::Named(name.to_owned())
        }
        Some(_) => return Err(err("tool_choice", "tool_choice must be a string or an object")),
    };
    if tools.is_empty() && c != Choice::None {
        return Err(err("tool_choice", "tool_choice is only allowed when tools are given"));
    }
    Ok(c)
}

/// A call id: nine letters and digits (Mistral's templates require exactly that; OpenAI's
/// clients only echo it back).
pub fn call_id(seed: u64) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..9)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            A[(x % A.len() as u64) as usize] as char
        })
        .collect()
}
