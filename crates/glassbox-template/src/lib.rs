//! Chat templates (`tokenizer.chat_template`) rendered the way Hugging Face transformers renders
//! them with jinja2 — `trim_blocks`, `lstrip_blocks`, `raise_exception`, `strftime_now`, a
//! `tojson` that matches Python's `json.dumps`, Python string methods — inside a sandbox: no
//! file, network or environment access exists in the engine, execution is bounded by fuel,
//! and template source and output sizes are limited.
//!
//! This crate never tokenizes and never decides what a model "means" by sniffing template text.

mod bounded;
mod pyjson;
pub mod sandbox;
mod strftime;

use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};

pub use pyjson::to_python_json;

/// Limits for untrusted templates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub max_source_bytes: usize,
    pub max_output_bytes: usize,
    /// minijinja fuel: roughly one unit per executed instruction.
    pub fuel: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_source_bytes: 1 << 20, max_output_bytes: 16 << 20, fuel: 50_000_000 }
    }
}

#[derive(Clone, Debug, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    #[error("chat template is {0} bytes, over the {1}-byte limit")]
    TooLarge(usize, usize),
    #[error("chat template does not parse: {0}")]
    Syntax(String),
    #[error("chat template raised an error: {0}")]
    Raised(String),
    #[error("chat template failed to render: {0}")]
    Render(String),
    #[error("chat template output is over the {0}-byte limit")]
    OutputTooLarge(usize),
    /// The worker process rendering the template failed: memory cap, deadline, or a crash.
    #[error("{0}")]
    Sandbox(String),
}

/// One chat message. `content` is a string or a list of `{type: "text", text}` parts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: serde_json::Value,
    /// An assistant message's tool calls (`[{id, type, function: {name, arguments}}]`, the
    /// arguments an object, as transformers passes them); absent, not null, when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// A tool message's answer to this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: serde_json::Value::String(content.into()), tool_calls: None, tool_call_id: None }
    }
}

/// What a template is rendered with, beyond the messages.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RenderOptions {
    pub add_generation_prompt: bool,
    pub bos_token: String,
    pub eos_token: String,
    /// Fixed "now" for `strftime_now` as (year, month, day, hour, minute, second); `None` = clock.
    pub now: Option<(i64, u32, u32, u32, u32, u32)>,
    /// Tool definitions (`[{type: "function", function: {name, description, parameters}}]`), the
    /// `tools` variable as transformers passes it; `None` leaves it undefined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Value>,
}

/// A parsed chat template, ready to render many times.
pub struct ChatTemplate {
    env: Environment<'static>,
    limits: Limits,
    source: String,
}

const NAME: &str = "chat_template";

/// Bytes every `{{ … }}` together may write (into the output or into captured blocks), as a
/// multiple of the output limit: a template may build text in a `{% set %}` block and print it.
const EMISSION_FACTOR: usize = 4;

impl ChatTemplate {
    /// Parse `source`. Parsing happens here, in process (it is bounded by the source limit);
    /// rendering happens in a worker process when a [`sandbox`] is installed.
    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn new(source: &str, limits: Limits) -> Result<ChatTemplate, Error> {
        Self::new_in_process(source, limits)
    }

    pub(crate) fn new_in_process(source: &str, limits: Limits) -> Result<ChatTemplate, Error> {
        if source.len() > limits.max_source_bytes {
            return Err(Error::TooLarge(source.len(), limits.max_source_bytes));
        }
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("default delimiters are valid"),
        );
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(64);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(bounded::checked_method_callback(limits.max_output_bytes));
        bounded::install_filter_checks(&mut env, limits.max_output_bytes);
        // Chat templates are plain text: jinja2 as transformers runs it has no autoescape.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_function("raise_exception", |msg: String| -> Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("raise_exception: {msg}")))
        });
        let limit = limits.max_output_bytes;
        env.add_filter("tojson", move |v: Value, kw: minijinja::value::Kwargs| pyjson::tojson_filter(v, kw, limit));
        env.add_template_owned(NAME, source.to_owned()).map_err(|e| Error::Syntax(describe(&e)))?;
        Ok(ChatTemplate { env, limits, source: source.to_owned() })
    }

    /// Render with the bounds above; in a memory-capped worker process when
    /// [`sandbox::install`] was called in this process, else here.
    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String, Error> {
        match sandbox::installed() {
            Some(sb) => sb.render(&self.source, &self.limits, messages, opts),
            None => self.render_in_process(messages, opts),
        }
    }

    /// Render in this process: bounded by fuel and the output and emission budgets, but not in
    /// the memory the template engine's own values take (see [`sandbox`]).
    pub fn render_in_process(&self, messages: &[Message], opts: &RenderOptions) -> Result<String, Error> {
        let mut env = self.env.clone();
        let now = opts.now;
        env.add_function("strftime_now", move |fmt: String| strftime::strftime_now(&fmt, now));
        let ctx = minijinja::context! {
            messages => Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => opts.add_generation_prompt,
            bos_token => opts.bos_token.clone(),
            eos_token => opts.eos_token.clone(),
            tools => opts.tools.as_ref().map(|t| Value::from(minijinja::value::Serde(t))),
        };
        // Every `{{ … }}` is counted as it is written, captured blocks and macro bodies
        // included (they bypass the output writer); the output writer itself refuses to grow
        // past the limit. Both stop rendering at the first byte over.
        let budget = bounded::Budget::new(self.limits.max_output_bytes.saturating_mul(EMISSION_FACTOR));
        env.set_formatter(budget.clone().formatter());
        let tmpl = env.get_template(NAME).map_err(|e| Error::Syntax(describe(&e)))?;
        let mut out = bounded::CappedBuf { buf: Vec::new(), limit: self.limits.max_output_bytes, exceeded: false };
        // minijinja is third-party code running model-supplied templates: a panic inside it (the
        // fuzzer found one in its `str.format` parser) becomes an error, never a crash.
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tmpl.render_captured_to(ctx, &mut out).map(drop)))
            .map_err(|p| {
                let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
                Error::Render(format!("template engine panicked: {what}"))
            })?;
        if out.exceeded || budget.exceeded() {
            return Err(Error::OutputTooLarge(self.limits.max_output_bytes));
        }
        rendered.map_err(|e| {
            let d = describe(&e);
            if d.contains(bounded::OVER_LIMIT) {
                return Error::OutputTooLarge(self.limits.max_output_bytes);
            }
            match d.find("raise_exception: ") {
                Some(i) => Error::Raised(d[i + 17..].to_owned()),
                None => Error::Render(d),
            }
        })?;
        // minijinja writes whole `str`s, so the bytes are UTF-8.
        let out = String::from_utf8(out.buf).map_err(|e| Error::Render(e.to_string()))?;
        Ok(out)
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
