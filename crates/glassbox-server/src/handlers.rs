//! HTTP handlers: validate, tokenize, admit (or 429), run the choices on the model's scheduler
//! and answer in OpenAI's shapes, as one JSON body or as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use glassbox_engine::{EventSink, GenerateRequest, SamplingParams, SchedRequest, SeqEvent, TokenLogprob};
use glassbox_template::Message;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};

use crate::openai::{self, ApiError, Common, Input, Validated};
use crate::record::{Client, RequestRecord};
use crate::{AppState, ModelHandle, retry_after, status};

pub(crate) fn error_response(e: &ApiError) -> Response {
    let mut r = (status(e.status), Json(e.body())).into_response();
    if e.status == 429 {
        retry_after(&mut r);
    }
    r
}

pub(crate) async fn not_found() -> Response {
    error_response(&ApiError { status: 404, message: "unknown route".into(), kind: "invalid_request_error", param: None, code: Some("not_found") })
}

pub(crate) async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.draining.load(Ordering::SeqCst) || st.shutdown.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else if st.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "loading").into_response()
    }
}

pub(crate) async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let models: Vec<_> = st.models.read().unwrap().values().map(|m| (m.name.clone(), Arc::clone(&m.stats))).collect();
    let mut text = st.metrics.render(&models, st.conns.len());
    crate::metrics::render_keys(&mut text, &st.keys);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub(crate) async fn list_models(State(st): State<Arc<AppState>>) -> Response {
    let models = st.models.read().unwrap();
    let data: Vec<Value> = st
        .order
        .read()
        .unwrap()
        .iter()
        .filter_map(|n| models.get(n))
        .map(|m| match &m.parent {
            // As vLLM lists a LoRA adapter: its own id, the base as parent.
            Some(p) => json!({"id": m.name, "object": "model", "created": m.created, "owned_by": "glassbox", "parent": p}),
            None => json!({"id": m.name, "object": "model", "created": m.created, "owned_by": "glassbox"}),
        })
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat_completions",
            Endpoint::Completion => "completions",
        }
    }
}

struct Prepared {
    handle: Arc<ModelHandle>,
    common: Common,
    sampling: SamplingParams,
    prompt: Vec<u32>,
    max_tokens: usize,
    /// The prompt as text, only with `--log-content`.
    prompt_text: Option<String>,
    /// The request's redactor (`--redact`), and what its input redaction replaced.
    redactor: Option<std::sync::Mutex<glassbox_redact::Redactor>>,
    input_redactions: std::collections::BTreeMap<&'static str, usize>,
    /// The grammar the output is held to (structured output, tool calls).
    constraint: Option<glassbox_engine::Constraint>,
    /// How tool calls are read back from the output.
    tools: Option<crate::structured::ToolPlan>,
    /// Seeds the request's tool-call ids.
    call_seed: u64,
}

impl Prepared {
    /// A filter for one choice's output, when output is redacted or placeholders restored.
    fn filter(&self, st: &AppState) -> Option<glassbox_redact::StreamFilter> {
        let rc = st.cfg.redact.as_ref()?;
        (rc.output || (rc.input && rc.restore)).then(|| glassbox_redact::StreamFilter::new(rc.output, rc.input && rc.restore))
    }

    /// Pass `text` of a choice through its filter (all of it when `finish`).
    fn filtered(&self, f: &mut Option<glassbox_redact::StreamFilter>, text: &str, finish: bool) -> String {
        match (f, &self.redactor) {
            (Some(f), Some(r)) => {
                let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
                let mut out = f.push(text, &mut r);
                if finish {
                    out.push_str(&f.finish(&mut r));
                }
                out
            }
            _ => text.to_string(),
        }
    }

    /// Replacements per type, input and output, for the audit record.
    fn redactions(&self) -> Value {
        let Some(r) = &self.redactor else { return Value::Null };
        let r = r.lock().unwrap_or_else(|e| e.into_inner());
        let output: serde_json::Map<String, Value> = r.replaced.iter().map(|(k, n)| (k.to_string(), (n - self.input_redactions.get(k).copied().unwrap_or(0)).into())).filter(|(_, v): &(String, Value)| v.as_u64() != Some(0)).collect();
        json!({"input": self.input_redactions, "output": output})
    }
}

/// Returns in-flight slots to the model when a choice ends (or its owner goes away).
struct Slot(Arc<ModelHandle>);
impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct ChanSink(mpsc::UnboundedSender<SeqEvent>);
impl EventSink for ChanSink {
    fn send(&mut self, ev: SeqEvent) -> bool {
        self.0.send(ev).is_ok()
    }
    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

fn unavailable(message: &str, code: Option<&'static str>) -> ApiError {
    ApiError { status: 503, message: message.into(), kind: "server_error", param: None, code }
}

/// The served model named `model`; an empty name means the one served model, as
/// llama-server and llama-cpp-python answer.
pub(crate) fn find_model(st: &AppState, model: &str) -> Result<Arc<ModelHandle>, ApiError> {
    let models = st.models.read().unwrap();
    let handle = if model.is_empty() {
        match models.len() {
            1 => models.values().next().cloned(),
            n => return Err(ApiError::invalid("model", format!("you must provide a model parameter (this server serves {n} models, see /v1/models)"))),
        }
    } else {
        models.get(model).cloned()
    };
    drop(models);
    handle.ok_or_else(|| ApiError {
        status: 404,
        message: format!("the model `{model}` does not exist (see /v1/models)"),
        kind: "invalid_request_error",
        param: Some("model".into()),
        code: Some("model_not_found"),
    })
}

/// The served model a validated request names, if it can serve the endpoint. Cheap: no model
/// work happens before admission.
fn lookup(st: &AppState, v: &Validated, ep: Endpoint) -> Result<Arc<ModelHandle>, ApiError> {
    let handle = find_model(st, &v.common.model)?;
    if ep == Endpoint::Chat && !handle.frontend.has_chat_template() {
        return Err(ApiError::invalid("messages", format!("model `{}` has no chat template; use /v1/completions", handle.name)));
    }
    Ok(handle)
}

/// Render and tokenize the prompt and size the completion: the heavy part of preparing a
/// request, run on the blocking pool after admission.
fn tokenize(handle: &ModelHandle, input: &Input, max_tokens: Option<usize>, tools: Option<&Value>) -> Result<(Vec<u32>, usize), ApiError> {
    let fe = &handle.frontend;
    let (prompt, param) = match input {
        Input::Messages(msgs) => {
            let msgs: Vec<Message> = msgs
                .iter()
                .map(|m| Message { tool_calls: crate::structured::template_calls(&m.tool_calls), tool_call_id: m.tool_call_id.clone(), ..Message::new(&m.role, &m.content) })
                .collect();
            let text = fe.render_chat_with_tools(&msgs, tools).map_err(|e| ApiError::invalid("messages", e.to_string()))?;
            (fe.tokenize_chat(&text), "messages")
        }
        Input::Prompt(openai::Prompt::Text(p)) => (fe.tokenizer.encode(p), "prompt"),
        Input::Prompt(openai::Prompt::Tokens(ids)) => {
            let n_vocab = fe.tokenizer.n_vocab();
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= n_vocab) {
                return Err(ApiError::invalid("prompt", format!("prompt token {id} is outside the vocabulary ({n_vocab} tokens)")));
            }
            (ids.clone(), "prompt")
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid(param, "the prompt is empty"));
    }
    let ctx = fe.ctx_size;
    if prompt.len() + 1 > ctx {
        return Err(ApiError {
            status: 400,
            message: format!("this model's context is {ctx} tokens, but the prompt is {} tokens (at least one token must be generated)", prompt.len()),
            kind: "invalid_request_error",
            param: Some(param.into()),
            code: Some("context_length_exceeded"),
        });
    }
    let max_tokens = max_tokens.unwrap_or(ctx - prompt.len());
    if prompt.len() + max_tokens > ctx {
        return Err(ApiError {
            status: 400,
            message: format!("this model's context is {ctx} tokens; the prompt is {} tokens and max_tokens asks for {max_tokens} more", prompt.len()),
            kind: "invalid_request_error",
            param: Some("max_tokens".into()),
            code: Some("context_length_exceeded"),
        });
    }
    Ok((prompt, max_tokens))
}

/// Reserve `n` in-flight slots, or fail fast when running + waiting would exceed the bound.
fn admit(st: &AppState, h: &Arc<ModelHandle>, n: usize) -> Result<Vec<Slot>, ApiError> {
    let cap = st.cfg.parallel + st.cfg.max_queue;
    let mut cur = h.in_flight.load(Ordering::SeqCst);
    loop {
        if cur + n > cap {
            return Err(ApiError { status: 429, message: format!("server busy: {cur} requests in flight for this model (limit {cap}); retry later"), kind: "rate_limit_error", param: None, code: Some("overloaded") });
        }
        match h.in_flight.compare_exchange(cur, cur + n, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return Ok((0..n).map(|_| Slot(Arc::clone(h))).collect()),
            Err(v) => cur = v,
        }
    }
}

fn submit(p: &Prepared, slots: Vec<Slot>) -> Result<Vec<(Slot, mpsc::UnboundedReceiver<SeqEvent>)>, ApiError> {
    let tx = p.handle.tx.lock().unwrap().clone();
    let mut out = Vec::with_capacity(slots.len());
    for (i, slot) in slots.into_iter().enumerate() {
        let (etx, erx) = mpsc::unbounded_channel();
        let mut sampling = p.sampling.clone();
        sampling.seed = sampling.seed.wrapping_add(i as u64);
        let req = SchedRequest {
            request: GenerateRequest { constraint: p.constraint.clone(), prompt: p.prompt.clone(), max_tokens: p.max_tokens, sampling, stop: p.common.stop.clone() },
            top_logprobs: p.common.logprobs.then_some(p.common.top_logprobs),
            prompt_logprobs: (p.common.echo && p.common.logprobs).then_some(p.common.top_logprobs),
            sink: Box::new(ChanSink(etx)),
            adapter: p.handle.adapter,
        };
        tx.send(req).map_err(|_| unavailable("the model's scheduler has stopped", None))?;
        out.push((slot, erx));
    }
    Ok(out)
}

pub(crate) async fn chat_completions(State(st): State<Arc<AppState>>, client: Option<axum::Extension<Client>>, body: Bytes) -> Response {
    handle(st, client.map(|c| c.0), body, Endpoint::Chat).await
}

pub(crate) async fn completions(State(st): State<Arc<AppState>>, client: Option<axum::Extension<Client>>, body: Bytes) -> Response {
    handle(st, client.map(|c| c.0), body, Endpoint::Completion).await
}

type Choices = Vec<(Slot, mpsc::UnboundedReceiver<SeqEvent>)>;

/// A rejected request: the error, the configured model it named ("" if none: the metrics
/// label), and the model name the client sent (logged escaped).
struct Rejected(ApiError, String, Option<String>);

/// Validate (cheap, on the runtime), admit or refuse with 429, then render and tokenize on the
/// blocking pool, then hand the choices to the model's scheduler.
async fn prepare(st: &AppState, body: &[u8], ep: Endpoint, id: u64, key: Option<&crate::keys::KeyState>) -> Result<(Prepared, Choices), Rejected> {
    if !st.ready.load(Ordering::SeqCst) {
        return Err(Rejected(unavailable("models are still loading; retry when /ready returns 200", Some("not_ready")), String::new(), None));
    }
    if st.shutdown.load(Ordering::SeqCst) {
        return Err(Rejected(unavailable("server is shutting down", None), String::new(), None));
    }
    let v = openai::validate(body, ep == Endpoint::Chat, &st.limits).map_err(|e| Rejected(e, String::new(), None))?;
    if let Some(rc) = &st.cfg.redact {
        rc.check(&v).map_err(|e| Rejected(e, String::new(), Some(v.common.model.clone())))?;
    }
    let handle = lookup(st, &v, ep).map_err(|e| {
        let label = if e.status == 404 { String::new() } else { v.common.model.clone() };
        Rejected(e, label, Some(v.common.model.clone()))
    })?;
    let reject = |e: ApiError| Rejected(e, handle.name.clone(), Some(handle.name.clone()));
    if let Some(k) = key
        && !k.allows(&handle.name)
    {
        return Err(reject(ApiError { status: 403, message: format!("API key {:?} may not use model {:?}", k.policy.name, handle.name), kind: "invalid_request_error", param: Some("model".into()), code: Some("model_not_allowed") }));
    }
    let slots = admit(st, &handle, v.common.n).map_err(reject)?;
    let t = Instant::now();
    let (h, mut input, max_tokens, log_content, redact, extras) = (Arc::clone(&handle), v.input, v.common.max_tokens, st.cfg.log_content, st.cfg.redact.clone(), v.extras);
    let tokenized = tokio::task::spawn_blocking(move || {
        // Schemas and tools first: a request that cannot be enforced costs no rendering.
        let plan = crate::structured::plan(&h, &extras)?;
        // Input redaction next: the template and the model only ever see the placeholders.
        let redactor = redact.map(|rc| rc.start(&mut input)).transpose()?;
        let (prompt, max_tokens) = tokenize(&h, &input, max_tokens, plan.template_tools.as_ref())?;
        // Detokenized here too: no tokenizer work on the runtime.
        let text = log_content.then(|| h.frontend.tokenizer.decode(&prompt, true).unwrap_or_default());
        Ok((prompt, max_tokens, text, redactor, plan))
    })
    .await;
    st.metrics.tokenize(&handle.name, t.elapsed().as_secs_f64());
    let (prompt, max_tokens, text, redactor, plan) = tokenized.map_err(|_| reject(ApiError { status: 500, message: "internal error while preparing the prompt".into(), kind: "server_error", param: None, code: None }))?.map_err(reject)?;
    if let Some(text) = &text {
        tracing::info!(request_id = id, user = ?v.common.user.as_deref().unwrap_or_default(), prompt = ?text, "prompt");
    }
    if plan.tools.is_some() && v.common.stream && v.common.logprobs {
        // Streamed calls go out whole, not token by token: there is nothing to attach them to.
        return Err(reject(ApiError::invalid("logprobs", "logprobs with tools is supported without stream only")));
    }
    let c = v.common.sampling.clone();
    let n_vocab = handle.frontend.tokenizer.n_vocab();
    if let Some(&(t, _)) = c.logit_bias.iter().find(|(t, _)| *t as usize >= n_vocab) {
        return Err(reject(ApiError::invalid("logit_bias", format!("token {t} is not in the model's vocabulary ({n_vocab} tokens)"))));
    }
    let default_seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let sampling = SamplingParams {
        temperature: c.temperature,
        top_k: 0,
        top_p: c.top_p,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        presence_penalty: c.presence_penalty,
        frequency_penalty: c.frequency_penalty,
        seed: c.seed.unwrap_or(default_seed),
        logit_bias: c.logit_bias,
    };
    let input_redactions = redactor.as_ref().map(|r| r.replaced.clone()).unwrap_or_default();
    let redactor = redactor.map(std::sync::Mutex::new);
    let p = Prepared { handle: Arc::clone(&handle), common: v.common, sampling, prompt, max_tokens, prompt_text: text, redactor, input_redactions, constraint: plan.constraint, tools: plan.tools, call_seed: default_seed ^ id };
    let choices = submit(&p, slots).map_err(reject)?;
    Ok((p, choices))
}

async fn handle(st: Arc<AppState>, client: Option<Client>, body: Bytes, ep: Endpoint) -> Response {
    let t0 = Instant::now();
    let id = st.next_id.fetch_add(1, Ordering::Relaxed);
    // Capacity in the audit log first: a request it cannot record does not run.
    let mut rec = match RequestRecord::open(&st, client.as_ref(), id, ep.name(), t0) {
        Ok(r) => r,
        Err(e) => {
            st.metrics.request("", ep.name(), e.status);
            let mut r = error_response(&e);
            retry_after(&mut r);
            return r;
        }
    };
    // The key's own limits, before anything else is spent on the request.
    let key = client.as_ref().and_then(|c| c.key_index).and_then(|i| st.keys.get(i)).cloned();
    if let Some(k) = &key
        && let Err(wait) = k.admit()
    {
        let e = ApiError { status: 429, message: format!("API key {:?} is over its rate limit; retry in {wait} s", k.policy.name), kind: "rate_limit_error", param: None, code: Some("key_rate_limited") };
        st.metrics.request("", ep.name(), 429);
        rec.finish(429, json!({"error": e.message}));
        let mut r = error_response(&e);
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return r;
    }
    let (p, choices) = match prepare(&st, &body, ep, id, key.as_deref()).await {
        Ok(x) => x,
        Err(Rejected(e, label, requested)) => {
            st.metrics.request(&label, ep.name(), e.status);
            // Client text goes to the log escaped (`?`): no forged lines, no terminal escapes.
            tracing::info!(request_id = id, model = ?requested.as_deref().unwrap_or_default(), endpoint = ep.name(), status = e.status, error = ?e.message, "rejected");
            rec.finish(e.status, json!({"model_requested": requested, "error": e.message}));
            return error_response(&e);
        }
    };
    rec.model(&p.handle);
    if let Some(t) = &p.prompt_text {
        rec.content("prompt", t);
    }
    if p.common.stream {
        stream_response(st, p, choices, ep, id, t0, rec)
    } else {
        collect_response(st, p, choices, ep, id, t0, rec).await
    }
}

fn piece(p: &Prepared, token: u32) -> (String, Vec<u8>) {
    let b = p.handle.frontend.tokenizer.token_bytes(token, true).unwrap_or_default();
    (String::from_utf8_lossy(&b).into_owned(), b)
}

fn chat_logprob(p: &Prepared, lp: &TokenLogprob) -> Value {
    let entry = |t: u32, l: f32| {
        let (s, b) = piece(p, t);
        json!({"token": s, "logprob": l, "bytes": b})
    };
    let mut v = entry(lp.token, lp.logprob);
    v["top_logprobs"] = Value::Array(lp.top.iter().map(|&(t, l)| entry(t, l)).collect());
    v
}

/// Time to first token, inter-token latency (of choice 0) and duration of one request.
struct Latency {
    t0: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Tokens of choice 0 after its first (the decode-speed numerator).
    after_first: u64,
}

impl Latency {
    fn new(t0: Instant) -> Latency {
        Latency { t0, first: None, last: None, after_first: 0 }
    }
    fn token(&mut self, st: &AppState, model: &str, choice: usize) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        if choice == 0 {
            if let Some(prev) = self.last {
                st.metrics.itl(model, (now - prev).as_secs_f64());
                self.after_first += 1;
            }
            self.last = Some(now);
        }
    }
    fn finish(&self, st: &AppState, model: &str) {
        if let Some(f) = self.first {
            st.metrics.ttft(model, (f - self.t0).as_secs_f64());
            if let Some(l) = self.last.filter(|&l| l > f && self.after_first > 0) {
                st.metrics.decode_rate(model, self.after_first as f64 / (l - f).as_secs_f64());
            }
        }
        st.metrics.duration(model, self.t0.elapsed().as_secs_f64());
    }
}

fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens})
}

#[derive(Default)]
struct ChoiceOut {
    text: String,
    tokens: usize,
    finish: Option<&'static str>,
    logprobs: Vec<TokenLogprob>,
    prompt_logprobs: Vec<TokenLogprob>,
    /// The end-of-generation token that stopped the choice, when log-probabilities were asked.
    eog: Option<TokenLogprob>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn completion_logprobs(p: &Prepared, lps: &[TokenLogprob]) -> Value {
    crate::legacy::generated(&p.handle.frontend.tokenizer, lps)
}

/// A completion choice's text and legacy log-probabilities: with `echo`, the prompt (scored
/// when log-probabilities are asked for) comes first.
fn completion_choice(p: &Prepared, o: &ChoiceOut) -> (String, Value) {
    if !p.common.echo {
        return (o.text.clone(), if p.common.logprobs { completion_logprobs(p, &o.logprobs) } else { Value::Null });
    }
    let tok = &p.handle.frontend.tokenizer;
    let mut l = crate::legacy::Legacy::default();
    let mut text = l.echo(tok, &p.prompt, &o.prompt_logprobs);
    text.push_str(&o.text);
    if !p.common.logprobs {
        return (text, Value::Null);
    }
    // Scoring clients (lm-eval's gguf model) expect one generated entry after the prompt even
    // when the model ends at once: the end-of-generation token is listed, as OpenAI did.
    for lp in o.logprobs.iter().chain(&o.eog) {
        l.push(tok, lp.token, Some(lp));
    }
    (text, l.json())
}

#[allow(clippy::too_many_arguments)] // the request's parts, its timing and its record
async fn collect_response(st: Arc<AppState>, p: Prepared, choices: Vec<(crate::handlers::Slot, mpsc::UnboundedReceiver<SeqEvent>)>, ep: Endpoint, id: u64, t0: Instant, mut rec: RequestRecord) -> Response {
    let model = p.handle.name.clone();
    let mut outs = Vec::with_capacity(choices.len());
    let mut latency = Latency::new(t0);
    for (i, (slot, mut rx)) in choices.into_iter().enumerate() {
        let mut o = ChoiceOut::default();
        while let Some(ev) = rx.recv().await {
            match ev {
                SeqEvent::Token { text, logprob, .. } => {
                    latency.token(&st, &model, i);
                    o.text.push_str(&text);
                    o.tokens += 1;
                    if let Some(lp) = logprob {
                        o.logprobs.push(lp);
                    }
                }
                SeqEvent::Text(t) => o.text.push_str(&t),
                SeqEvent::PromptLogprobs(l) => o.prompt_logprobs = l,
                SeqEvent::Done { finish_reason, eog, .. } => {
                    o.finish = Some(finish_reason.as_str());
                    o.eog = eog;
                    break;
                }
                SeqEvent::Error(e) => {
                    rec.finish(503, json!({"error": e, "prompt_tokens": p.prompt.len()}));
                    let err = ApiError { status: 503, message: e, kind: "server_error", param: None, code: None };
                    st.metrics.request(&model, ep.name(), 503);
                    return error_response(&err);
                }
            }
        }
        drop(slot);
        let mut f = p.filter(&st);
        if f.is_some() {
            o.text = p.filtered(&mut f, &o.text, true);
        }
        if o.finish.is_none() {
            st.metrics.request(&model, ep.name(), 500);
            rec.finish(500, json!({"error": "generation ended unexpectedly", "prompt_tokens": p.prompt.len()}));
            return error_response(&ApiError { status: 500, message: "generation ended unexpectedly".into(), kind: "server_error", param: None, code: None });
        }
        outs.push(o);
    }
    latency.finish(&st, &model);
    let completion_tokens: usize = outs.iter().map(|o| o.tokens).sum();
    let usage = usage(p.prompt.len(), completion_tokens);
    let choices: Vec<Value> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| match ep {
            Endpoint::Chat => {
                let (message, calls) = match &p.tools {
                    Some(t) => t.message(&o.text, p.call_seed.wrapping_add((i as u64) << 16)),
                    None => (json!({"role": "assistant", "content": o.text}), false),
                };
                json!({
                    "index": i,
                    "message": message,
                    "logprobs": if p.common.logprobs { json!({"content": o.logprobs.iter().map(|lp| chat_logprob(&p, lp)).collect::<Vec<_>>()}) } else { Value::Null },
                    // A reply cut by max_tokens keeps "length", whatever calls it holds.
                    "finish_reason": if calls && o.finish == Some("stop") { Some("tool_calls") } else { o.finish },
                })
            }
            Endpoint::Completion => {
                let (text, logprobs) = completion_choice(&p, o);
                json!({"index": i, "text": text, "logprobs": logprobs, "finish_reason": o.finish})
            }
        })
        .collect();
    let (prefix, object) = match ep {
        Endpoint::Chat => ("chatcmpl", "chat.completion"),
        Endpoint::Completion => ("cmpl", "text_completion"),
    };
    st.metrics.request(&model, ep.name(), 200);
    tracing::info!(request_id = id, model = ?model, endpoint = ep.name(), status = 200, prompt_tokens = p.prompt.len(), completion_tokens, latency_ms = t0.elapsed().as_millis() as u64, "completed");
    if rec.enabled() {
        if st.cfg.log_content {
            rec.content("completion", &outs.iter().map(|o| o.text.as_str()).collect::<Vec<_>>().join(" | "));
        }
        rec.finish(200, json!({"prompt_tokens": p.prompt.len(), "completion_tokens": completion_tokens, "finish_reasons": outs.iter().map(|o| o.finish).collect::<Vec<_>>(), "redactions": p.redactions()}));
    }
    if st.cfg.log_content {
        tracing::info!(request_id = id, user = ?p.common.user.as_deref().unwrap_or_default(), completion = ?outs.iter().map(|o| o.text.as_str()).collect::<Vec<_>>().join(" | "), "completion");
    }
    Json(json!({
        "id": format!("{prefix}-{id}"), "object": object, "created": now_secs(), "model": model,
        "system_fingerprint": concat!("glassbox-", env!("CARGO_PKG_VERSION")),
        "choices": choices, "usage": usage,
    }))
    .into_response()
}

#[allow(clippy::too_many_arguments)] // the request's parts, its timing and its record
fn stream_response(st: Arc<AppState>, p: Prepared, choices: Vec<(Slot, mpsc::UnboundedReceiver<SeqEvent>)>, ep: Endpoint, id: u64, t0: Instant, mut rec: RequestRecord) -> Response {
    let (out_tx, out_rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    let n = choices.len();
    tokio::spawn(async move {
        let model = p.handle.name.clone();
        let (prefix, object) = match ep {
            Endpoint::Chat => ("chatcmpl", "chat.completion.chunk"),
            Endpoint::Completion => ("cmpl", "text_completion"),
        };
        let created = now_secs();
        let include_usage = p.common.include_usage;
        let chunk = |choices: Value, usage: Option<Value>| {
            let mut v = json!({"id": format!("{prefix}-{id}"), "object": object, "created": created, "model": model, "system_fingerprint": concat!("glassbox-", env!("CARGO_PKG_VERSION")), "choices": choices});
            if include_usage {
                v["usage"] = usage.unwrap_or(Value::Null);
            }
            Event::default().data(v.to_string())
        };
        let (slots, rxs): (Vec<Slot>, Vec<_>) = choices.into_iter().unzip();
        let mut slots: Vec<Option<Slot>> = slots.into_iter().map(Some).collect();
        if ep == Endpoint::Chat {
            for i in 0..n {
                let c = json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]);
                if out_tx.send(Ok(chunk(c, None))).await.is_err() {
                    rec.finish(499, json!({"outcome": "client disconnected", "prompt_tokens": p.prompt.len(), "completion_tokens": 0}));
                    return;
                }
            }
        }
        let mut merged = futures_util::stream::select_all(rxs.into_iter().enumerate().map(|(i, rx)| UnboundedReceiverStream::new(rx).map(move |ev| (i, ev))));
        let (mut completion_tokens, mut finished) = (0usize, 0usize);
        let mut latency = Latency::new(t0);
        // For the audit record: finish reasons, and the text only with --log-content.
        let keep_text = rec.enabled() && st.cfg.log_content;
        let mut texts = vec![String::new(); n];
        let mut filters: Vec<_> = (0..n).map(|_| p.filter(&st)).collect();
        let mut reasons: Vec<Option<&'static str>> = vec![None; n];
        let mut calls: Vec<Option<glassbox_tools::CallStream>> = (0..n).map(|_| p.tools.as_ref().map(|t| t.stream())).collect();
        // A choice's text (after the output filter) as chunk choices: content as it comes, or
        // content and completed calls when tools are on.
        let seed = p.call_seed;
        let pieces = |i: usize, text: String, lp: Value, cs: &mut Option<glassbox_tools::CallStream>| -> Vec<Value> {
            match (ep, cs) {
                (Endpoint::Chat, Some(cs)) => {
                    let first = cs.calls;
                    let ds = cs.push(&text);
                    crate::structured::delta_choices(i, ds, first, seed.wrapping_add((i as u64) << 16))
                }
                _ if text.is_empty() && lp.is_null() => vec![],
                (Endpoint::Chat, None) => vec![json!({"index": i, "delta": {"content": text}, "logprobs": lp, "finish_reason": null})],
                (Endpoint::Completion, _) => vec![json!({"index": i, "text": text, "logprobs": lp, "finish_reason": null})],
            }
        };
        while let Some((i, ev)) = merged.next().await {
            let out: Vec<Value> = match ev {
                SeqEvent::Token { text, logprob, .. } => {
                    completion_tokens += 1;
                    latency.token(&st, &model, i);
                    let text = if filters[i].is_some() { p.filtered(&mut filters[i], &text, false) } else { text };
                    let lp = match (&logprob, ep) {
                        (Some(lp), Endpoint::Chat) => json!({"content": [chat_logprob(&p, lp)]}),
                        (Some(lp), Endpoint::Completion) => completion_logprobs(&p, std::slice::from_ref(lp)),
                        (None, _) => Value::Null,
                    };
                    if keep_text {
                        texts[i].push_str(&text);
                    }
                    pieces(i, text, lp, &mut calls[i])
                }
                // Streams never score prompts (echo with stream is refused).
                SeqEvent::PromptLogprobs(_) => continue,
                SeqEvent::Text(text) => {
                    let text = if filters[i].is_some() { p.filtered(&mut filters[i], &text, false) } else { text };
                    if keep_text {
                        texts[i].push_str(&text);
                    }
                    pieces(i, text, Value::Null, &mut calls[i])
                }
                SeqEvent::Done { finish_reason, .. } => {
                    finished += 1;
                    // What the filter held back goes out before the finish reason, then what
                    // the call reader held back.
                    let rest = if filters[i].is_some() { p.filtered(&mut filters[i], "", true) } else { String::new() };
                    if keep_text {
                        texts[i].push_str(&rest);
                    }
                    let mut out = pieces(i, rest, Value::Null, &mut calls[i]);
                    let mut reason = finish_reason.as_str();
                    if let Some(cs) = &mut calls[i] {
                        let first = cs.calls;
                        let ds = cs.finish();
                        out.extend(crate::structured::delta_choices(i, ds, first, seed.wrapping_add((i as u64) << 16)));
                        if cs.calls > 0 && reason == "stop" {
                            reason = "tool_calls";
                        }
                    }
                    reasons[i] = Some(reason);
                    slots[i] = None;
                    out.push(match ep {
                        Endpoint::Chat => json!({"index": i, "delta": {}, "logprobs": null, "finish_reason": reason}),
                        Endpoint::Completion => json!({"index": i, "text": "", "logprobs": null, "finish_reason": reason}),
                    });
                    out
                }
                SeqEvent::Error(e) => {
                    let err = ApiError { status: 503, message: e, kind: "server_error", param: None, code: None };
                    let _ = out_tx.send(Ok(Event::default().data(err.body().to_string()))).await;
                    st.metrics.request(&model, ep.name(), 503);
                    rec.finish(503, json!({"error": err.message, "prompt_tokens": p.prompt.len(), "completion_tokens": completion_tokens}));
                    return;
                }
            };
            for choice in out {
                if out_tx.send(Ok(chunk(json!([choice]), None))).await.is_err() {
                    // Client gone: dropping the receivers tells the scheduler to free the slots.
                    tracing::info!(request_id = id, model = ?model, "client disconnected mid-stream");
                    st.metrics.request(&model, ep.name(), 499);
                    rec.finish(499, json!({"outcome": "client disconnected", "prompt_tokens": p.prompt.len(), "completion_tokens": completion_tokens}));
                    return;
                }
            }
            if finished == n {
                break;
            }
        }
        latency.finish(&st, &model);
        if include_usage {
            let _ = out_tx.send(Ok(chunk(json!([]), Some(usage(p.prompt.len(), completion_tokens))))).await;
        }
        let _ = out_tx.send(Ok(Event::default().data("[DONE]"))).await;
        st.metrics.request(&model, ep.name(), 200);
        tracing::info!(request_id = id, model = ?model, endpoint = ep.name(), status = 200, prompt_tokens = p.prompt.len(), completion_tokens, latency_ms = t0.elapsed().as_millis() as u64, "streamed");
        if keep_text {
            rec.content("completion", &texts.join(" | "));
        }
        rec.finish(200, json!({"prompt_tokens": p.prompt.len(), "completion_tokens": completion_tokens, "finish_reasons": reasons, "stream": true, "redactions": p.redactions()}));
    });
    Sse::new(ReceiverStream::new(out_rx)).into_response()
}
