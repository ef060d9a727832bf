//! OpenAI request parsing and validation. Bodies are parsed from JSON values field by field so
//! every invalid value gets a 400 naming the field (`param`), unknown fields are ignored, and
//! nothing is accepted silently out of range.

use glassbox_engine::SamplingParams;
use glassbox_template::Message;
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
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

/// What both endpoints share once validated.
#[derive(Debug, Clone)]
pub struct Common {
    pub model: String,
    pub max_tokens: Option<usize>,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    pub logprobs: bool,
    pub top_logprobs: usize,
    pub user: Option<String>,
}

pub const MAX_N: usize = 8;
pub const MAX_STOP: usize = 4;
pub const MAX_TOP_LOGPROBS: usize = 20;

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
        Ok(_) => Err(ApiError::invalid("body", "the request body must be a JSON object")),
        Err(e) => Err(ApiError::invalid("body", format!("the request body is not valid JSON: {e}"))),
    }
}

pub fn common(obj: &Map<String, Value>, chat: bool, default_seed: u64) -> Result<Common, ApiError> {
    let model = match obj.get("model") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(ApiError::invalid("model", "model must be a non-empty string")),
        None => return Err(ApiError::invalid("model", "you must provide a model parameter")),
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
    let stop = match obj.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            if a.len() > MAX_STOP {
                return Err(ApiError::invalid("stop", format!("stop may hold at most {MAX_STOP} sequences")));
            }
            a.iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ApiError::invalid("stop", "stop must be a string or a list of strings")))
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(ApiError::invalid("stop", "stop must be a string or a list of strings")),
    };
    let (logprobs, top_logprobs) = if chat {
        let lp = boolean(obj, "logprobs")?.unwrap_or(false);
        let top = int(obj, "top_logprobs", 0, MAX_TOP_LOGPROBS as i64)?;
        if top.is_some() && !lp {
            return Err(ApiError::invalid("top_logprobs", "top_logprobs requires logprobs to be true"));
        }
        (lp, top.unwrap_or(0) as usize)
    } else {
        // completions: logprobs is an integer count of alternatives (0..=5)
        match int(obj, "logprobs", 0, 5)? {
            Some(k) => (true, k as usize),
            None => (false, 0),
        }
    };
    let user = match obj.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::invalid("user", "user must be a string")),
    };
    let sampling = SamplingParams {
        temperature,
        top_k: 0,
        top_p,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        presence_penalty: presence,
        frequency_penalty: frequency,
        seed: seed.map(|s| s as u64).unwrap_or(default_seed),
    };
    Ok(Common { model, max_tokens: max_tokens.map(|v| v as usize), sampling, stop, n, stream, include_usage, logprobs, top_logprobs, user })
}

pub fn messages(obj: &Map<String, Value>) -> Result<Vec<Message>, ApiError> {
    let Some(Value::Array(list)) = obj.get("messages") else {
        return Err(ApiError::invalid("messages", "messages must be a non-empty array"));
    };
    if list.is_empty() {
        return Err(ApiError::invalid("messages", "messages must be a non-empty array"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let p = |f: &str| format!("messages[{i}].{f}");
        let Value::Object(m) = m else { return Err(ApiError::invalid(&format!("messages[{i}]"), "each message must be an object")) };
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
        out.push(Message::new(&role, &content));
    }
    Ok(out)
}

pub fn prompt(obj: &Map<String, Value>) -> Result<String, ApiError> {
    match obj.get("prompt") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => Ok(a[0].as_str().unwrap_or("").to_owned()),
        Some(Value::Array(_)) => Err(ApiError::invalid("prompt", "prompt must be a string (batched prompts are not supported; send one request per prompt)")),
        _ => Err(ApiError::invalid("prompt", "prompt must be a string")),
    }
}
