//! vLLM's tokenizer endpoints: `POST /tokenize`, `POST /detokenize`, `GET /tokenizer_info`.
//! lm-evaluation-harness's `local-completions` looks for them and, when they answer, tokenizes
//! through the server ("remote" tokenizer backend) and sends token prompts to
//! `/v1/completions`: it then scores a glassbox server with the model's own tokenizer, offline,
//! with no Hugging Face download. Bodies are validated like the OpenAI endpoints' (size, types,
//! token ids inside the vocabulary) and answered with the same error shape.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::handlers::{error_response, find_model};
use crate::openai::{self, ApiError};
use crate::{AppState, ModelHandle};

fn model(st: &AppState, obj: &Map<String, Value>) -> Result<Arc<ModelHandle>, ApiError> {
    if !st.ready.load(Ordering::SeqCst) {
        return Err(ApiError { status: 503, message: "models are still loading; retry when /ready returns 200".into(), kind: "server_error", param: None, code: Some("not_ready") });
    }
    let name = match obj.get("model") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::invalid("model", "model must be a string")),
    };
    find_model(st, name)
}

fn reply(r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `{"prompt": "...", "add_special_tokens": true, "model"?}` → `{"count", "max_model_len",
/// "tokens"}`. With `add_special_tokens` (the default) BOS/EOS are added as the model's
/// metadata asks, as `/v1/completions` tokenizes a text prompt; special-token text is parsed
/// either way.
pub(crate) async fn tokenize(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let run = async {
        let obj = openai::parse_body(&body)?;
        let text = match obj.get("prompt") {
            Some(Value::String(s)) if s.len() <= st.limits.max_text_bytes => s.clone(),
            Some(Value::String(_)) => return Err(ApiError::invalid("prompt", format!("the prompt may be at most {} bytes", st.limits.max_text_bytes))),
            _ => return Err(ApiError::invalid("prompt", "prompt must be a string")),
        };
        let special = match obj.get("add_special_tokens") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ApiError::invalid("add_special_tokens", "add_special_tokens must be a boolean")),
        };
        let h = model(&st, &obj)?;
        let ctx = h.frontend.ctx_size;
        let tokens = tokio::task::spawn_blocking(move || {
            let t = &h.frontend.tokenizer;
            t.encode_with(&text, special && t.add_bos, special && t.add_eos, true)
        })
        .await
        .map_err(|_| ApiError { status: 500, message: "tokenization failed".into(), kind: "server_error", param: None, code: None })?;
        Ok(json!({"count": tokens.len(), "max_model_len": ctx, "tokens": tokens}))
    };
    reply(run.await)
}

/// `{"tokens": [...], "model"?}` → `{"prompt": "..."}` (special tokens spelled out).
pub(crate) async fn detokenize(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let run = || {
        let obj = openai::parse_body(&body)?;
        let ids: Vec<u32> = match obj.get("tokens") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_u64().and_then(|t| u32::try_from(t).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| ApiError::invalid("tokens", "tokens must be token ids: integers from 0 to 4294967295"))?,
            _ => return Err(ApiError::invalid("tokens", "tokens must be a list of token ids")),
        };
        let h = model(&st, &obj)?;
        let t = &h.frontend.tokenizer;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= t.n_vocab()) {
            return Err(ApiError::invalid("tokens", format!("token {id} is outside the vocabulary ({} tokens)", t.n_vocab())));
        }
        let text = t.decode(&ids, true).map_err(|e| ApiError::invalid("tokens", e.to_string()))?;
        Ok(json!({"prompt": text}))
    };
    reply(run())
}

/// The tokenizer's special tokens and limits, as vLLM's `/tokenizer_info` names them.
pub(crate) async fn tokenizer_info(State(st): State<Arc<AppState>>) -> Response {
    let run = || {
        let h = model(&st, &Map::new())?;
        let t = &h.frontend.tokenizer;
        let text = |id: Option<u32>| id.and_then(|i| t.token_text(i));
        Ok(json!({
            "tokenizer_class": "glassbox (GGUF)",
            "model": h.name,
            "bos_token": text(t.bos),
            "bos_token_id": t.bos,
            "eos_token": text(t.eos),
            "eos_token_id": t.eos,
            "pad_token": null,
            "add_bos_token": t.add_bos,
            "add_eos_token": t.add_eos,
            "model_max_length": h.frontend.ctx_size,
            "vocab_size": t.n_vocab(),
        }))
    };
    reply(run())
}
