//! Loading and unloading LoRA adapters in a running server (`serve --adapter-dir DIR`, which
//! requires API keys): `POST /v1/load_lora_adapter {"lora_name", "lora_path"[, "scale",
//! "base_model"]}` and `POST /v1/unload_lora_adapter {"lora_name"}`, as vLLM names them. A path
//! must resolve (symbolic links followed) to a file inside DIR; the file is verified against its
//! pin and checked by the same audit hook as adapters given at start, then attached to the base's
//! scheduler between two steps. Unloading removes the model id at once and frees the weights
//! when no request uses the adapter any more.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use glassbox_engine::Control;
use serde_json::{Value, json};

use crate::openai::ApiError;
use crate::record::{Client, RequestRecord};
use crate::{AppState, ModelHandle, handlers::error_response};

fn bad(param: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid(param, msg)
}

fn fail(status: u16, msg: impl Into<String>) -> ApiError {
    ApiError { status, message: msg.into(), kind: "invalid_request_error", param: None, code: None }
}

fn body_json(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(bad("body", "the body must be a JSON object")),
        Err(e) => Err(bad("body", format!("the body is not JSON: {e}"))),
    }
}

/// A model id for an adapter: 1 to 256 characters, no whitespace or control characters (as
/// `serve --lora NAME=…`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// An audit record for an adapter change (503 when the log cannot take it).
fn record(st: &AppState, client: Option<&Client>, what: &str) -> Result<RequestRecord, Box<Response>> {
    let id = st.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    RequestRecord::open(st, client, id, what, std::time::Instant::now()).map_err(|e| {
        let mut r = error_response(&e);
        crate::retry_after(&mut r);
        Box::new(r)
    })
}

pub(crate) async fn load(State(st): State<Arc<AppState>>, client: Option<axum::Extension<Client>>, body: Bytes) -> Response {
    let Some(dir) = st.cfg.adapter_dir.clone() else { return crate::handlers::not_found().await };
    let rec = match record(&st, client.as_ref().map(|c| &c.0), "load_lora_adapter") {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match load_inner(st, dir, body).await {
        Ok((r, outcome)) => {
            rec.finish(200, outcome);
            r
        }
        Err(e) => {
            rec.finish(e.status, json!({"error": e.message}));
            error_response(&e)
        }
    }
}

async fn load_inner(st: Arc<AppState>, dir: std::path::PathBuf, body: Bytes) -> Result<(Response, Value), ApiError> {
    let o = body_json(&body)?;
    let Some(name) = o.get("lora_name").and_then(Value::as_str).map(str::to_string) else { return Err(bad("lora_name", "lora_name (a string) is required")) };
    if !valid_name(&name) {
        return Err(bad("lora_name", "lora_name must be 1 to 256 characters without spaces or control characters"));
    }
    let Some(rel) = o.get("lora_path").and_then(Value::as_str).map(str::to_string) else { return Err(bad("lora_path", "lora_path (a string) is required")) };
    let scale = match o.get("scale") {
        None => 1.0,
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() && (s as f32).is_finite() => s as f32,
            _ => return Err(bad("scale", "scale must be a finite number")),
        },
    };
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "lora_name" | "lora_path" | "scale" | "base_model")) {
        return Err(bad(k, format!("unknown field {k:?}")));
    }
    // The base: the one named, or the only base served.
    let base = {
        let models = st.models.read().unwrap();
        if models.contains_key(&name) {
            return Err(fail(409, format!("the model id {name:?} is already taken")));
        }
        let bases: Vec<Arc<ModelHandle>> = models.values().filter(|m| m.parent.is_none()).cloned().collect();
        match o.get("base_model").and_then(Value::as_str) {
            Some(b) => match bases.into_iter().find(|m| m.name == b) {
                Some(m) => m,
                None => return Err(bad("base_model", format!("no base model {b:?} is served"))),
            },
            None if bases.len() == 1 => bases.into_iter().next().expect("one base"),
            None => return Err(bad("base_model", format!("{} base models are served; name one in base_model", bases.len()))),
        }
    };
    let st2 = Arc::clone(&st);
    let base2 = Arc::clone(&base);
    let name2 = name.clone();
    let done = tokio::task::spawn_blocking(move || -> Result<(usize, String), ApiError> {
        let root = dir.canonicalize().map_err(|e| fail(500, format!("adapter directory {}: {e}", dir.display())))?;
        let path = root.join(&rel).canonicalize().map_err(|e| bad("lora_path", format!("{rel}: {e}")))?;
        if !path.starts_with(&root) || !path.is_file() {
            return Err(bad("lora_path", format!("{rel} is not a file inside the adapter directory")));
        }
        let (adapter, v) = glassbox_engine::open_adapter(&path, &st2.cfg.trust).map_err(|e| bad("lora_path", e.to_string()))?;
        if let Some(check) = &st2.cfg.adapter_check {
            let summary = (check.0)(&path).map_err(|e| fail(403, e))?;
            crate::say!("audit   adapter {name2:?} ({}): {summary}", path.display());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let msg = Control::Attach { adapter: Box::new(adapter), sha256: v.sha256.clone(), scale, base_name: base2.name.clone(), reply: tx };
        base2.control.lock().unwrap().send(msg).map_err(|_| fail(503, "the base model's scheduler has stopped"))?;
        let id = rx.recv().map_err(|_| fail(503, "the base model's scheduler has stopped"))?.map_err(|e| bad("lora_path", e.to_string()))?;
        Ok((id, v.sha256))
    })
    .await;
    let (id, sha) = done.map_err(|e| fail(500, format!("loading failed: {e}")))??;
    let handle = ModelHandle {
        name: name.clone(),
        frontend: base.frontend.clone(),
        tx: std::sync::Mutex::new(base.tx.lock().unwrap().clone()),
        control: std::sync::Mutex::new(base.control.lock().unwrap().clone()),
        stats: Arc::clone(&base.stats),
        in_flight: AtomicUsize::new(0),
        created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        sha256: base.sha256.clone(),
        adapter_sha256: Some(sha.clone()),
        adapter: Some(id),
        parent: Some(base.name.clone()),
        vocab: Arc::clone(&base.vocab),
    };
    {
        let mut models = st.models.write().unwrap();
        if models.contains_key(&name) {
            // Lost a race with another load of the same name: keep theirs, free ours.
            drop(models);
            let (tx, _rx) = std::sync::mpsc::channel();
            let _ = base.control.lock().unwrap().send(Control::Detach { id, reply: tx });
            return Err(fail(409, format!("the model id {name:?} is already taken")));
        }
        models.insert(name.clone(), Arc::new(handle));
        st.order.write().unwrap().push(name.clone());
    }
    tracing::info!(adapter = ?name, base = ?base.name, sha256 = %sha, "adapter loaded");
    let v = json!({"object": "lora_adapter", "lora_name": name, "parent": base.name, "sha256": sha, "scale": scale});
    Ok((Json(v.clone()).into_response(), json!({"adapter_loaded": v})))
}

pub(crate) async fn unload(State(st): State<Arc<AppState>>, client: Option<axum::Extension<Client>>, body: Bytes) -> Response {
    if st.cfg.adapter_dir.is_none() {
        return crate::handlers::not_found().await;
    }
    let rec = match record(&st, client.as_ref().map(|c| &c.0), "unload_lora_adapter") {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let name = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("lora_name").and_then(Value::as_str).map(str::to_string));
    let r = unload_inner(&st, body).await;
    rec.finish(r.status().as_u16(), json!({"lora_name": name}));
    r
}

async fn unload_inner(st: &Arc<AppState>, body: Bytes) -> Response {
    let o = match body_json(&body) {
        Ok(o) => o,
        Err(e) => return error_response(&e),
    };
    let Some(name) = o.get("lora_name").and_then(Value::as_str).map(str::to_string) else { return error_response(&bad("lora_name", "lora_name (a string) is required")) };
    if let Some(k) = o.keys().find(|k| k.as_str() != "lora_name") {
        return error_response(&bad(k, format!("unknown field {k:?}")));
    }
    // The id disappears first: no new request can pick the adapter while it drains.
    let handle = {
        let mut models = st.models.write().unwrap();
        match models.get(&name) {
            None => return error_response(&fail(404, format!("no adapter {name:?} is served"))),
            Some(h) if h.adapter.is_none() => return error_response(&bad("lora_name", format!("{name:?} is a base model, not an adapter"))),
            Some(_) => {}
        }
        st.order.write().unwrap().retain(|n| n != &name);
        models.remove(&name).expect("present")
    };
    let id = handle.adapter.expect("an adapter");
    let h2 = Arc::clone(&handle);
    let done = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let (tx, rx) = std::sync::mpsc::channel();
        h2.control.lock().unwrap().send(Control::Detach { id, reply: tx }).map_err(|_| "the base model's scheduler has stopped".to_string())?;
        rx.recv().map_err(|_| "the base model's scheduler has stopped".to_string())?.map_err(|e| e.to_string())
    })
    .await;
    match done {
        Ok(Ok(())) => {
            tracing::info!(adapter = ?name, "adapter unloaded");
            Json(json!({"object": "lora_adapter", "lora_name": name, "unloaded": true})).into_response()
        }
        Ok(Err(e)) => error_response(&fail(503, format!("adapter {name:?} was withdrawn but not freed: {e}"))),
        Err(e) => error_response(&fail(500, format!("unloading failed: {e}"))),
    }
}
