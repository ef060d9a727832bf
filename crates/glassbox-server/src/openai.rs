//! OpenAI request parsing and validation. Bodies are parsed from JSON values field by field so
//! every invalid value gets a 400 naming the field (`param`), and nothing is accepted silently
//! out of range. OpenAI fields this server does not implement (`functions`, `audio`, ...) get a
//! 400 naming the field unless their value means "off" (`null`, `[]`, `{}`, ...); fields that
//! are bookkeeping only (`user`, `metadata`, `service_tier`, ...) and other vendors' extensions
//! are ignored. `response_format`, `tools` and `tool_choice` are checked for shape here and
//! against the model (schemas, the template's call format) in `structured`.
//!
//! This file depends on nothing but `serde_json`, so the fuzz target includes it as it is.

use serde_json::{Map, Value, json};

/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}` plus its status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError { status: 400, message: message.into(), kind: "invalid_request_error", param: Some(param.into()), code: None }
    }
    fn unsupported(param: &str, message: impl Into<String>) -> ApiError {
        ApiError { code: Some("unsupported_parameter"), ..ApiError::invalid(param, message) }
    }
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

/// Per-request bounds, checked before any model work.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_messages: usize,
    /// Message contents together, or the prompt, in bytes.
    pub max_text_bytes: usize,
    pub max_stop: usize,
    pub max_stop_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_messages: MAX_MESSAGES, max_text_bytes: 4 << 20, max_stop: MAX_STOP, max_stop_bytes: MAX_STOP_BYTES }
    }
}

pub const MAX_N: usize = 8;
pub const MAX_STOP: usize = 4;
pub const MAX_STOP_BYTES: usize = 256;
pub const MAX_MESSAGES: usize = 1024;
pub const MAX_TOP_LOGPROBS: usize = 20;
pub const MAX_MODEL_BYTES: usize = 256;

/// Sampling settings as requested; the seed is drawn by the server when absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub seed: Option<u64>,
    /// `logit_bias`: token id → bias in [-100, 100], added to the logits before sampling.
    pub logit_bias: Vec<(u32, f32)>,
}

/// What both endpoints share once validated.
#[derive(Debug, Clone)]
pub struct Common {
    pub model: String,
    pub max_tokens: Option<usize>,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    pub logprobs: bool,
    pub top_logprobs: usize,
    /// Completions: return the prompt before the completion (with `logprobs`, scored).
    pub echo: bool,
    pub user: Option<String>,
}

/// One chat message: role (`developer` mapped to `system`) and its text; an assistant's tool
/// calls, a tool's answer's call id.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub tool_call_id: Option<String>,
}

/// A tool call in an assistant message, as the client sends it back (`arguments` is JSON text).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Structured output and tool fields as sent (chat only); `None` where absent or off.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// `{"type": "json_object"}` or `{"type": "json_schema", ...}`.
    pub response_format: Option<Value>,
    pub tools: Option<Value>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: bool,
}

#[derive(Debug, Clone)]
pub enum Input {
    Messages(Vec<ChatMessage>),
    Prompt(Prompt),
}

/// A completions prompt: text, or token ids (OpenAI's token-array form, which
/// lm-evaluation-harness's `local-completions` sends after tokenizing through `/tokenize`).
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

/// A request that passed every check that needs no model.
#[derive(Debug, Clone)]
pub struct Validated {
    pub common: Common,
    pub input: Input,
    pub extras: Extras,
}

/// Parse and validate a `/v1/chat/completions` (`chat`) or `/v1/completions` body.
pub fn validate(body: &[u8], chat: bool, limits: &Limits) -> Result<Validated, ApiError> {
    let obj = parse_body(body)?;
    unsupported(&obj, chat)?;
    let common = common(&obj, chat, limits)?;
    if !chat {
        best_of(&obj, common.n)?;
    }
    let input = if chat { Input::Messages(messages(&obj, limits)?) } else { Input::Prompt(prompt(&obj, limits)?) };
    let extras = if chat { extras(&obj)? } else { Extras::default() };
    Ok(Validated { common, input, extras })
}

fn extras(obj: &Map<String, Value>) -> Result<Extras, ApiError> {
    let response_format = match obj.get("response_format") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("text") => None,
            Some("json_object") => Some(v.clone()),
            Some("json_schema") => {
                let js = o.get("json_schema").and_then(Value::as_object).ok_or_else(|| ApiError::invalid("response_format.json_schema", "json_schema must be an object with a schema"))?;
                match js.get("schema") {
                    Some(Value::Object(_) | Value::Bool(_)) => {}
                    _ => return Err(ApiError::invalid("response_format.json_schema.schema", "schema must be a JSON schema object")),
                }
                if let Some(n) = js.get("name")
                    && !n.as_str().is_some_and(|n| (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
                {
                    return Err(ApiError::invalid("response_format.json_schema.name", "name must be 1 to 64 of a-z, A-Z, 0-9, _ and -"));
                }
                if js.get("strict").is_some_and(|s| !s.is_boolean() && !s.is_null()) {
                    return Err(ApiError::invalid("response_format.json_schema.strict", "strict must be a boolean"));
                }
                Some(v.clone())
            }
            _ => return Err(ApiError::invalid("response_format.type", "response_format.type must be text, json_object or json_schema")),
        },
        Some(_) => return Err(ApiError::invalid("response_format", "response_format must be an object")),
    };
    let tools = match obj.get("tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(v @ Value::Array(_)) => Some(v.clone()),
        Some(_) => return Err(ApiError::invalid("tools", "tools must be an array")),
    };
    let tool_choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::String(_) | Value::Object(_))) => Some(v.clone()),
        Some(_) => return Err(ApiError::invalid("tool_choice", "tool_choice must be a string or an object")),
    };
    let parallel_tool_calls = boolean(obj, "parallel_tool_calls")?.unwrap_or(true);
    Ok(Extras { response_format, tools, tool_choice, parallel_tool_calls })
}

fn num(obj: &Map<String, Value>, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            if !(v >= lo && v <= hi) {
                return Err(ApiError::invalid(key, format!("{key} must be between {lo} and {hi}, got {v}")));
            }
            Ok(Some(v))
        }
        Some(_) => Err(ApiError::invalid(key, format!("{key} must be a number"))),
    }
}

fn int(obj: &Map<String, Value>, key: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if v >= lo && v <= hi => Ok(Some(v)),
            _ => Err(ApiError::invalid(key, format!("{key} must be an integer between {lo} and {hi}, got {n}"))),
        },
        Some(_) => Err(ApiError::invalid(key, format!("{key} must be an integer"))),
    }
}

fn boolean(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(key, format!("{key} must be a boolean"))),
    }
}

pub fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("body", "the request body must be a json object")),
        Err(e) => Err(ApiError::invalid("body", format!("the request body is not valid json: {e}"))),
    }
}

fn empty_array(v: &Value) -> bool {
    v.as_array().is_some_and(Vec::is_empty)
}

/// An OpenAI field this server does not implement, and the values that mean "not used".
struct Unsupported {
    field: &'static str,
    chat: bool,
    completion: bool,
    off: fn(&Value) -> bool,
    what: &'static str,
}

const UNSUPPORTED: &[Unsupported] = &[
    Unsupported { field: "functions", chat: true, completion: false, off: empty_array, what: "function calling is not implemented" },
    Unsupported { field: "function_call", chat: true, completion: false, off: |v| v == "none", what: "function calling is not implemented" },
    Unsupported { field: "audio", chat: true, completion: false, off: |_| false, what: "audio output is not implemented" },
    Unsupported { field: "modalities", chat: true, completion: false, off: |v| *v == json!(["text"]), what: "only [\"text\"] is" },
    Unsupported { field: "prediction", chat: true, completion: false, off: |_| false, what: "predicted outputs are not implemented" },
    Unsupported { field: "web_search_options", chat: true, completion: false, off: |_| false, what: "web search is not implemented" },
    Unsupported { field: "reasoning_effort", chat: true, completion: false, off: |_| false, what: "no served model reasons" },
    Unsupported { field: "verbosity", chat: true, completion: false, off: |_| false, what: "not implemented" },
    Unsupported { field: "store", chat: true, completion: false, off: |v| *v == Value::Bool(false), what: "it stores nothing; only false is" },
    Unsupported { field: "suffix", chat: false, completion: true, off: |v| v == "", what: "insertion is not implemented; only \"\" is" },
];

fn unsupported(obj: &Map<String, Value>, chat: bool) -> Result<(), ApiError> {
    for u in UNSUPPORTED {
        if (chat && !u.chat) || (!chat && !u.completion) {
            continue;
        }
        match obj.get(u.field) {
            None | Some(Value::Null) => {}
            Some(v) if (u.off)(v) => {}
            Some(_) => return Err(ApiError::unsupported(u.field, format!("{} is not supported by this server ({})", u.field, u.what))),
        }
    }
    Ok(())
}

/// `best_of` equal to `n` returns the same choices as `n`; anything else would need ranking.
fn best_of(obj: &Map<String, Value>, n: usize) -> Result<(), ApiError> {
    match obj.get("best_of") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(b)) if b.as_u64() == Some(n as u64) => Ok(()),
        Some(_) => Err(ApiError::unsupported("best_of", format!("best_of is not supported by this server (it may only equal n, here {n})"))),
    }
}

pub fn common(obj: &Map<String, Value>, chat: bool, limits: &Limits) -> Result<Common, ApiError> {
    let model = match obj.get("model") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_MODEL_BYTES => s.clone(),
        Some(Value::String(s)) if !s.is_empty() => return Err(ApiError::invalid("model", format!("model may be at most {MAX_MODEL_BYTES} bytes"))),
        Some(_) => return Err(ApiError::invalid("model", "model must be a non-empty string")),
        // Resolved by the server: allowed when it serves exactly one model (as llama-server).
        None => String::new(),
    };
    let mut max_tokens = int(obj, "max_tokens", 1, 1 << 20)?;
    if chat && let Some(v) = int(obj, "max_completion_tokens", 1, 1 << 20)? {
        max_tokens = Some(v);
    }
    let temperature = num(obj, "temperature", 0.0, 2.0)?.unwrap_or(1.0) as f32;
    let top_p = num(obj, "top_p", 0.0, 1.0)?.unwrap_or(1.0) as f32;
    if top_p == 0.0 {
        return Err(ApiError::invalid("top_p", "top_p must be greater than 0"));
    }
    let presence = num(obj, "presence_penalty", -2.0, 2.0)?.unwrap_or(0.0) as f32;
    let frequency = num(obj, "frequency_penalty", -2.0, 2.0)?.unwrap_or(0.0) as f32;
    let seed = int(obj, "seed", i64::MIN, i64::MAX)?;
    let n = int(obj, "n", 1, MAX_N as i64)?.unwrap_or(1) as usize;
    let stream = boolean(obj, "stream")?.unwrap_or(false);
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => boolean(o, "include_usage").map_err(|_| ApiError::invalid("stream_options.include_usage", "include_usage must be a boolean"))?.unwrap_or(false),
        Some(_) => return Err(ApiError::invalid("stream_options", "stream_options must be an object")),
    };
    let stop = stop(obj, limits)?;
    let (logprobs, top_logprobs) = if chat {
        let lp = boolean(obj, "logprobs")?.unwrap_or(false);
        let top = int(obj, "top_logprobs", 0, MAX_TOP_LOGPROBS as i64)?;
        if top.is_some() && !lp {
            return Err(ApiError::invalid("top_logprobs", "top_logprobs requires logprobs to be true"));
        }
        (lp, top.unwrap_or(0) as usize)
    } else {
        // completions: logprobs is an integer count of alternatives (OpenAI allows 0..=5;
        // lm-eval's gguf client asks for 10)
        match int(obj, "logprobs", 0, MAX_TOP_LOGPROBS as i64)? {
            Some(k) => (true, k as usize),
            None => (false, 0),
        }
    };
    let user = match obj.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::invalid("user", "user must be a string")),
    };
    let echo = if chat { false } else { boolean(obj, "echo")?.unwrap_or(false) };
    if echo && stream {
        return Err(ApiError::unsupported("echo", "echo is not supported with stream (score prompts without streaming)"));
    }
    let logit_bias = logit_bias(obj)?;
    let sampling = Sampling { temperature, top_p, presence_penalty: presence, frequency_penalty: frequency, seed: seed.map(|s| s as u64), logit_bias };
    Ok(Common { model, max_tokens: max_tokens.map(|v| v as usize), sampling, stop, n, stream, include_usage, logprobs, top_logprobs, echo, user })
}

/// Most entries of a `logit_bias` map.
pub const MAX_LOGIT_BIAS: usize = 1024;

/// `logit_bias` as OpenAI defines it: an object from token ids (decimal strings) to biases in
/// [-100, 100]; ids are checked against the model's vocabulary once it is known.
fn logit_bias(obj: &Map<String, Value>) -> Result<Vec<(u32, f32)>, ApiError> {
    let map = match obj.get("logit_bias") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::invalid("logit_bias", "logit_bias must be an object from token ids to numbers")),
    };
    if map.len() > MAX_LOGIT_BIAS {
        return Err(ApiError::invalid("logit_bias", format!("logit_bias may hold at most {MAX_LOGIT_BIAS} tokens, got {}", map.len())));
    }
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let id: u32 = k.parse().ok().filter(|_| k.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| ApiError::invalid("logit_bias", format!("key {k:?} is not a token id")))?;
        let b = v.as_f64().filter(|b| (-100.0..=100.0).contains(b)).ok_or_else(|| ApiError::invalid("logit_bias", format!("the bias of token {id} must be a number in [-100, 100]")))?;
        out.push((id, b as f32));
    }
    out.sort_unstable_by_key(|e| e.0);
    Ok(out)
}

fn stop(obj: &Map<String, Value>, limits: &Limits) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = match obj.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            if a.len() > limits.max_stop {
                return Err(ApiError::invalid("stop", format!("stop may hold at most {} sequences, got {}", limits.max_stop, a.len())));
            }
            a.iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ApiError::invalid("stop", "stop must be a string or a list of strings")))
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(ApiError::invalid("stop", "stop must be a string or a list of strings")),
    };
    if let Some(s) = list.iter().find(|s| s.len() > limits.max_stop_bytes) {
        return Err(ApiError::invalid("stop", format!("each stop sequence may be at most {} bytes, got {}", limits.max_stop_bytes, s.len())));
    }
    Ok(list)
}

/// Message fields OpenAI defines that this server cannot honour when set.
const UNSUPPORTED_MESSAGE_FIELDS: &[&str] = &["name", "function_call", "audio", "refusal"];

/// An assistant message's `tool_calls`: `[{id, type: "function", function: {name, arguments}}]`.
fn tool_calls(v: Option<&Value>, at: &str) -> Result<Vec<ToolCall>, ApiError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid(at, "tool_calls must be an array")),
    };
    list.iter()
        .enumerate()
        .map(|(j, c)| {
            let bad = || ApiError::invalid(&format!("{at}[{j}]"), "a tool call is {\"id\": ..., \"type\": \"function\", \"function\": {\"name\": ..., \"arguments\": \"<JSON text>\"}}");
            let f = c.get("function").ok_or_else(bad)?;
            if c.get("type").is_some_and(|t| t != "function") {
                return Err(bad());
            }
            let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned).ok_or_else(bad);
            Ok(ToolCall { id: s(c.get("id"))?, name: s(f.get("name"))?, arguments: s(f.get("arguments"))? })
        })
        .collect()
}

pub fn messages(obj: &Map<String, Value>, limits: &Limits) -> Result<Vec<ChatMessage>, ApiError> {
    let Some(Value::Array(list)) = obj.get("messages") else {
        return Err(ApiError::invalid("messages", "messages must be a non-empty array"));
    };
    if list.is_empty() {
        return Err(ApiError::invalid("messages", "messages must be a non-empty array"));
    }
    if list.len() > limits.max_messages {
        return Err(ApiError::invalid("messages", format!("messages may hold at most {} messages, got {}", limits.max_messages, list.len())));
    }
    let mut out = Vec::with_capacity(list.len());
    let mut total = 0usize;
    for (i, m) in list.iter().enumerate() {
        let p = |f: &str| format!("messages[{i}].{f}");
        let Value::Object(m) = m else { return Err(ApiError::invalid(&format!("messages[{i}]"), "each message must be an object")) };
        for f in UNSUPPORTED_MESSAGE_FIELDS {
            match m.get(*f) {
                None | Some(Value::Null) => {}
                Some(_) => return Err(ApiError::unsupported(&p(f), format!("{} is not supported by this server", p(f)))),
            }
        }
        let role = match m.get("role") {
            Some(Value::String(r)) if matches!(r.as_str(), "system" | "developer" | "user" | "assistant" | "tool") => {
                if r == "developer" { "system".to_owned() } else { r.clone() }
            }
            _ => return Err(ApiError::invalid(&p("role"), "role must be one of system, developer, user, assistant, tool")),
        };
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.iter().enumerate() {
                    match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(t)) => text.push_str(t),
                        _ => return Err(ApiError::invalid(&format!("messages[{i}].content[{j}]"), "only text content parts are supported")),
                    }
                }
                text
            }
            None | Some(Value::Null) if role == "assistant" => String::new(),
            _ => return Err(ApiError::invalid(&p("content"), "content must be a string or a list of text parts")),
        };
        let calls = tool_calls(m.get("tool_calls"), &p("tool_calls"))?;
        if !calls.is_empty() && role != "assistant" {
            return Err(ApiError::invalid(&p("tool_calls"), "only assistant messages carry tool_calls"));
        }
        let tool_call_id = match m.get("tool_call_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if role == "tool" => Some(id.clone()),
            Some(_) => return Err(ApiError::invalid(&p("tool_call_id"), "tool_call_id is a string, on tool messages only")),
        };
        total = total.saturating_add(content.len()).saturating_add(calls.iter().map(|c| c.arguments.len() + c.name.len() + c.id.len()).sum());
        if total > limits.max_text_bytes {
            return Err(ApiError::invalid("messages", format!("the messages' text may be at most {} bytes", limits.max_text_bytes)));
        }
        out.push(ChatMessage { role, content, tool_calls: calls, tool_call_id });
    }
    Ok(out)
}

pub fn prompt(obj: &Map<String, Value>, limits: &Limits) -> Result<Prompt, ApiError> {
    const BATCH: &str = "batched prompts are not supported; send one request per prompt";
    let tokens = |a: &[Value]| -> Result<Prompt, ApiError> {
        if a.len() > limits.max_text_bytes {
            return Err(ApiError::invalid("prompt", format!("a token prompt may have at most {} tokens", limits.max_text_bytes)));
        }
        a.iter()
            .map(|v| v.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect::<Option<Vec<u32>>>()
            .map(Prompt::Tokens)
            .ok_or_else(|| ApiError::invalid("prompt", "a token prompt must be token ids: integers from 0 to 4294967295"))
    };
    let p = match obj.get("prompt") {
        Some(Value::String(s)) => Prompt::Text(s.clone()),
        Some(Value::Array(a)) if a.is_empty() => return Err(ApiError::invalid("prompt", "the prompt is empty")),
        Some(Value::Array(a)) if a[0].is_number() => tokens(a)?,
        Some(Value::Array(a)) if a.len() > 1 => return Err(ApiError::invalid("prompt", BATCH)),
        Some(Value::Array(a)) => match &a[0] {
            Value::String(s) => Prompt::Text(s.clone()),
            Value::Array(t) if t.is_empty() => return Err(ApiError::invalid("prompt", "the prompt is empty")),
            Value::Array(t) => tokens(t)?,
            _ => return Err(ApiError::invalid("prompt", "prompt must be a string, token ids, or a list of one of them")),
        },
        _ => return Err(ApiError::invalid("prompt", "prompt must be a string or token ids")),
    };
    if let Prompt::Text(t) = &p
        && t.len() > limits.max_text_bytes
    {
        return Err(ApiError::invalid("prompt", format!("the prompt may be at most {} bytes", limits.max_text_bytes)));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Result<Validated, ApiError> {
        validate(body.to_string().as_bytes(), true, &Limits::default())
    }

    fn completion(body: Value) -> Result<Validated, ApiError> {
        validate(body.to_string().as_bytes(), false, &Limits::default())
    }

    fn param(r: Result<Validated, ApiError>) -> String {
        let e = r.expect_err("expected a 400");
        assert_eq!(e.status, 400, "{e:?}");
        e.param.unwrap_or_default()
    }

    fn msgs() -> Value {
        json!([{"role": "user", "content": "hi"}])
    }

    #[test]
    fn logit_bias_is_token_ids_to_bounded_numbers() {
        let ok = chat(json!({"model": "m", "messages": msgs(), "logit_bias": {"50256": -100, "7": 2.5}})).unwrap();
        assert_eq!(ok.common.sampling.logit_bias, vec![(7, 2.5), (50256, -100.0)]);
        for bad in [json!({"x": 1}), json!({"-1": 1}), json!({"1": 101}), json!({"1": "5"}), json!([1]), json!({" 1": 1})] {
            assert_eq!(param(chat(json!({"model": "m", "messages": msgs(), "logit_bias": bad.clone()}))), "logit_bias", "{bad}");
        }
        let many: serde_json::Map<String, Value> = (0..=MAX_LOGIT_BIAS).map(|i| (i.to_string(), json!(1))).collect();
        assert_eq!(param(completion(json!({"model": "m", "prompt": "p", "logit_bias": many}))), "logit_bias");
    }

    #[test]
    fn unimplemented_fields_are_named() {
        for (field, value) in [
            ("functions", json!([{"name": "f"}])),
            ("function_call", json!("auto")),
            ("audio", json!({"voice": "alloy"})),
            ("modalities", json!(["text", "audio"])),
            ("prediction", json!({"type": "content", "content": "x"})),
            ("web_search_options", json!({})),
            ("reasoning_effort", json!("low")),
            ("store", json!(true)),
        ] {
            let mut b = json!({"model": "m", "messages": msgs()});
            b[field] = value;
            let e = chat(b).expect_err(field);
            assert_eq!((e.status, e.param.as_deref(), e.code), (400, Some(field), Some("unsupported_parameter")));
            assert!(e.message.contains(field), "{}", e.message);
        }
        for (field, value) in [("suffix", json!("end")), ("best_of", json!(3))] {
            let mut b = json!({"model": "m", "prompt": "p"});
            b[field] = value;
            assert_eq!(param(completion(b)), field);
        }
        // echo scores the prompt; it cannot stream, and must be a boolean.
        assert!(completion(json!({"model": "m", "prompt": "p", "echo": true, "logprobs": 1, "max_tokens": 1})).unwrap().common.echo);
        assert_eq!(param(completion(json!({"model": "m", "prompt": "p", "echo": true, "stream": true}))), "echo");
        assert_eq!(param(completion(json!({"model": "m", "prompt": "p", "echo": "yes"}))), "echo");
    }

    #[test]
    fn off_values_and_nulls_are_accepted() {
        let b = json!({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [], "name": null, "refusal": null}, {"role": "user", "content": "x"}],
            "tools": [], "tool_choice": "none", "functions": null, "function_call": null, "response_format": {"type": "text"}, "logit_bias": {},
            "audio": null, "modalities": ["text"], "store": false, "parallel_tool_calls": null, "metadata": {"k": "v"}, "service_tier": "auto", "user": "u"});
        chat(b).unwrap();
        completion(json!({"model": "m", "prompt": "p", "echo": false, "suffix": null, "best_of": 2, "n": 2, "logit_bias": null})).unwrap();
        completion(json!({"model": "m", "prompt": "p", "best_of": 1})).unwrap();
    }

    #[test]
    fn message_fields_we_cannot_honour_are_named() {
        for f in ["name", "tool_calls", "tool_call_id", "function_call"] {
            let mut m = json!({"role": "assistant", "content": "x"});
            m[f] = json!("v");
            assert_eq!(param(chat(json!({"model": "m", "messages": [m]}))), format!("messages[0].{f}"));
        }
        let call = json!({"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}});
        let ok = chat(json!({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [call]}, {"role": "tool", "tool_call_id": "c1", "content": "3"}]})).unwrap();
        let Input::Messages(m) = ok.input else { panic!() };
        assert_eq!((m[0].tool_calls[0].name.as_str(), m[1].tool_call_id.as_deref()), ("f", Some("c1")));
        assert_eq!(param(chat(json!({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "function": {"name": "f"}}]}]}))), "messages[0].tool_calls[0]");
        assert_eq!(param(chat(json!({"model": "m", "messages": [{"role": "user", "content": "x", "tool_calls": [call]}]}))), "messages[0].tool_calls");
    }

    #[test]
    fn structured_output_and_tools_are_shape_checked() {
        let ok = chat(json!({"model": "m", "messages": msgs(), "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}},
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required", "parallel_tool_calls": false})).unwrap();
        assert!(ok.extras.response_format.is_some() && ok.extras.tools.is_some() && !ok.extras.parallel_tool_calls);
        for (f, v, p) in [
            ("response_format", json!({"type": "xml"}), "response_format.type"),
            ("response_format", json!({"type": "json_schema"}), "response_format.json_schema"),
            ("response_format", json!({"type": "json_schema", "json_schema": {"schema": 3}}), "response_format.json_schema.schema"),
            ("response_format", json!({"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}), "response_format.json_schema.name"),
            ("tools", json!({"a": 1}), "tools"),
            ("tool_choice", json!(3), "tool_choice"),
            ("parallel_tool_calls", json!("yes"), "parallel_tool_calls"),
        ] {
            let mut b = json!({"model": "m", "messages": msgs()});
            b[f] = v;
            assert_eq!(param(chat(b)), p);
        }
    }

    #[test]
    fn bounds() {
        let many: Vec<Value> = (0..=MAX_MESSAGES).map(|_| json!({"role": "user", "content": "x"})).collect();
        assert_eq!(param(chat(json!({"model": "m", "messages": many}))), "messages");
        assert_eq!(param(chat(json!({"model": "m", "messages": msgs(), "stop": ["a", "b", "c", "d", "e"]}))), "stop");
        assert_eq!(param(chat(json!({"model": "m", "messages": msgs(), "stop": "x".repeat(MAX_STOP_BYTES + 1)}))), "stop");
        chat(json!({"model": "m", "messages": msgs(), "stop": ["x".repeat(MAX_STOP_BYTES), "a", "b", "c"]})).unwrap();
        assert_eq!(param(chat(json!({"model": "m", "messages": msgs(), "n": MAX_N + 1}))), "n");
        assert_eq!(param(chat(json!({"model": "x".repeat(MAX_MODEL_BYTES + 1), "messages": msgs()}))), "model");
        let small = Limits { max_text_bytes: 10, ..Limits::default() };
        let two = json!({"model": "m", "messages": [{"role": "user", "content": "123456"}, {"role": "user", "content": [{"type": "text", "text": "12345"}]}]});
        assert_eq!(param(validate(two.to_string().as_bytes(), true, &small)), "messages");
        let p = json!({"model": "m", "prompt": "12345678901"});
        assert_eq!(param(validate(p.to_string().as_bytes(), false, &small)), "prompt");
    }

    #[test]
    fn garbage_is_a_400_naming_the_body() {
        for b in [&b""[..], b"[]", b"{", b"\xff", b"null", b"{\"model\":1}"] {
            let e = validate(b, true, &Limits::default()).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.param.is_some());
        }
    }
}
