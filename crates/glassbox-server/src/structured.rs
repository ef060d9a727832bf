//! `response_format` and `tools` against the served model: schemas compiled to grammars (a 400
//! naming what cannot be enforced), the tool-call format read from the model's chat template
//! (a 400 when the template renders no tools: never guessed), and the reply's calls in
//! OpenAI's shapes, whole or as stream deltas.

use std::sync::Arc;

use glassbox_constrain::{compile_schema, json_object, Limits};
use glassbox_engine::Constraint;
use glassbox_tools::{call_grammar, parse_choice, parse_tools, Call, CallStream, Choice, Delta, Format, Function};
use serde_json::{json, Value};

use crate::openai::{ApiError, Extras};
use crate::ModelHandle;

/// How a request's calls are read back.
pub(crate) struct ToolPlan {
    pub format: Format,
    pub names: Vec<String>,
    /// Every reply is calls (`required`, a named function).
    pub forced: bool,
}

#[derive(Default)]
pub(crate) struct Plan {
    pub constraint: Option<Constraint>,
    /// The `tools` variable for the chat template.
    pub template_tools: Option<Value>,
    pub tools: Option<ToolPlan>,
}

fn vocab(h: &ModelHandle) -> Arc<glassbox_constrain::VocabIndex> {
    Arc::clone(h.vocab.get_or_init(|| Arc::new(glassbox_engine::vocab_index(&h.frontend.tokenizer))))
}

/// Check the request's structured-output and tool fields against the model (blocking: the
/// first use builds the model's vocabulary index, about 0.1 s for 150k tokens).
pub(crate) fn plan(h: &ModelHandle, ex: &Extras) -> Result<Plan, ApiError> {
    let limits = Limits::default();
    let tools: Vec<Function> = match &ex.tools {
        Some(t) => parse_tools(t).map_err(|e| ApiError::invalid(&e.param, e.to_string()))?,
        None => Vec::new(),
    };
    let choice = parse_choice(ex.tool_choice.as_ref(), &tools).map_err(|e| ApiError::invalid(&e.param, e.to_string()))?;
    if choice == Choice::None && !tools.is_empty() {
        // Every definition's schema is checked whatever the choice; with one, the call grammar
        // below compiles (and so checks) them all.
        call_grammar(Format::Hermes, &tools, &Choice::None, ex.parallel_tool_calls, &limits).map_err(|e| ApiError::invalid(&e.param, e.to_string()))?;
    }
    if let Some(rf) = &ex.response_format {
        if choice != Choice::None {
            return Err(ApiError::invalid("response_format", "response_format cannot be combined with tools in one request here (set tool_choice to none, or drop one)"));
        }
        let grammar = if rf["type"] == "json_object" {
            json_object()
        } else {
            compile_schema(&rf["json_schema"]["schema"], &limits).map_err(|e| ApiError::invalid("response_format.json_schema.schema", e.to_string()))?
        };
        return Ok(Plan { constraint: Some(Constraint { grammar: Arc::new(grammar), vocab: vocab(h), trigger: None }), ..Plan::default() });
    }
    if choice == Choice::None {
        // Tools are neither offered nor read back (tool definitions still checked above).
        return Ok(Plan::default());
    }
    let source = h.frontend.template_source().unwrap_or_default();
    let format = Format::detect(source)
        .ok_or_else(|| ApiError::invalid("tools", format!("model `{}`'s chat template does not render tools in a call format this server knows (Hermes/Qwen <tool_call>, Llama 3.x JSON, Mistral [TOOL_CALLS]); the format is not guessed", h.name)))?;
    let cg = call_grammar(format, &tools, &choice, ex.parallel_tool_calls, &limits).map_err(|e| ApiError::invalid(&e.param, e.to_string()))?;
    let constraint = cg.map(|c| Constraint { grammar: Arc::new(c.grammar), vocab: vocab(h), trigger: c.trigger });
    Ok(Plan {
        constraint,
        // The definitions as the client sent them (checked above): the template sees what
        // transformers would pass it.
        template_tools: ex.tools.clone(),
        tools: Some(ToolPlan { format, names: tools.iter().map(|f| f.name.clone()).collect(), forced: matches!(choice, Choice::Required | Choice::Named(_)) }),
    })
}

impl ToolPlan {
    fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    pub(crate) fn stream(&self) -> CallStream {
        CallStream::new(self.format, &self.names(), self.forced)
    }

    /// A whole reply as a chat message, and whether it holds calls.
    pub(crate) fn message(&self, text: &str, seed: u64) -> (Value, bool) {
        let p = glassbox_tools::parse_output(self.format, text, &self.names());
        if p.calls.is_empty() {
            return (json!({"role": "assistant", "content": text}), false);
        }
        let calls: Vec<Value> = p.calls.iter().enumerate().map(|(k, c)| call_json(c, seed.wrapping_add(k as u64), None)).collect();
        (json!({"role": "assistant", "content": p.content, "tool_calls": calls}), true)
    }
}

/// A call as OpenAI returns it (with `index` in stream deltas).
fn call_json(c: &Call, seed: u64, index: Option<usize>) -> Value {
    let mut v = json!({"id": glassbox_tools::call_id(seed), "type": "function", "function": {"name": c.name, "arguments": c.arguments}});
    if let Some(i) = index {
        v["index"] = i.into();
    }
    v
}

/// Stream deltas of choice `index` as chunk choices; calls numbered from `first_call`.
pub(crate) fn delta_choices(index: usize, ds: Vec<Delta>, first_call: usize, seed: u64) -> Vec<Value> {
    let mut k = first_call;
    ds.into_iter()
        .map(|d| {
            let delta = match d {
                Delta::Content(t) => json!({"content": t}),
                Delta::Call(c) => {
                    let v = json!({"tool_calls": [call_json(&c, seed.wrapping_add(k as u64), Some(k))]});
                    k += 1;
                    v
                }
            };
            json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": null})
        })
        .collect()
}

/// The template's view of an assistant message's calls: arguments as objects, as transformers
/// passes them (text that is not JSON stays text).
pub(crate) fn template_calls(calls: &[crate::openai::ToolCall]) -> Option<Value> {
    (!calls.is_empty()).then(|| {
        Value::Array(
            calls
                .iter()
                .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": serde_json::from_str::<Value>(&c.arguments).unwrap_or_else(|_| Value::String(c.arguments.clone()))}}))
                .collect(),
        )
    })
}
