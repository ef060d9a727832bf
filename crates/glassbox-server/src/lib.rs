//! `glassbox serve`: an OpenAI-compatible HTTP API over continuous-batching schedulers.
//!
//! Each model runs on its own scheduler thread; HTTP handlers validate and tokenize requests,
//! apply admission control (running + waiting bounded, 429 with `Retry-After` immediately when
//! full), then exchange events with the scheduler over channels. Auth is by bearer key with a
//! constant-time compare; bodies are size-limited; nothing here makes outbound connections.
//!
//! This crate never runs model code on the async runtime and never logs prompt or completion
//! text unless `log_content` is set.

mod handlers;
mod metrics;
mod openai;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use glassbox_engine::{Engine, EngineOptions, Frontend, SchedRequest, SchedulerStats};

pub use openai::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refusing to bind {0} without API keys: pass --api-key-file, or --insecure-no-auth to serve an open endpoint on a non-loopback address")]
    OpenBind(String),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("model names must be unique: {0:?} appears twice (use --alias)")]
    DuplicateName(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub path: PathBuf,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub api_keys: Vec<String>,
    pub insecure_no_auth: bool,
    /// Sequences decoded together per model.
    pub parallel: usize,
    /// Requests allowed to wait for a slot, per model.
    pub max_queue: usize,
    pub max_body_bytes: usize,
    pub engine: EngineOptions,
    pub prefill_chunk: usize,
    pub log_content: bool,
    pub shutdown_grace: Duration,
    /// Every model file is verified against its pin (lockfile, or trust on first use) before
    /// it is served.
    pub trust: glassbox_trust::Policy,
}

pub(crate) struct ModelHandle {
    pub name: String,
    pub frontend: Frontend,
    pub tx: std::sync::Mutex<std::sync::mpsc::Sender<SchedRequest>>,
    pub stats: Arc<SchedulerStats>,
    pub in_flight: AtomicUsize,
    pub created: u64,
}

pub(crate) struct AppState {
    pub cfg: ServerConfig,
    pub models: std::sync::RwLock<HashMap<String, Arc<ModelHandle>>>,
    pub order: std::sync::RwLock<Vec<String>>,
    pub ready: AtomicBool,
    pub shutdown: Arc<AtomicBool>,
    pub metrics: metrics::Metrics,
    pub next_id: AtomicU64,
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Constant-time comparison of a presented key with each configured key.
fn key_ok(presented: &[u8], keys: &[String]) -> bool {
    let mut ok = false;
    for k in keys {
        let k = k.as_bytes();
        let mut diff = (k.len() != presented.len()) as u8;
        for i in 0..k.len() {
            diff |= k[i] ^ presented.get(i).copied().unwrap_or(0);
        }
        ok |= diff == 0;
    }
    ok
}

async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if st.cfg.api_keys.is_empty() || req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().as_bytes().to_vec());
    match presented {
        Some(k) if key_ok(&k, &st.cfg.api_keys) => next.run(req).await,
        _ => {
            let e = ApiError { status: 401, message: "invalid or missing API key (send Authorization: Bearer <key>)".into(), kind: "invalid_request_error", param: None, code: Some("invalid_api_key") };
            handlers::error_response(&e)
        }
    }
}

/// Bind, load and verify every model (readiness turns on when all are loaded), then serve until
/// SIGTERM/SIGINT: stop accepting, let in-flight work finish for the grace period, cancel the
/// rest, and return.
pub async fn serve(models: Vec<ModelSpec>, cfg: ServerConfig) -> Result<(), Error> {
    if cfg.api_keys.is_empty() && !is_loopback(&cfg.host) && !cfg.insecure_no_auth {
        return Err(Error::OpenBind(cfg.host.clone()));
    }
    let mut seen = std::collections::HashSet::new();
    for m in &models {
        if !seen.insert(m.name.clone()) {
            return Err(Error::DuplicateName(m.name.clone()));
        }
    }
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|source| Error::Bind { addr: addr.clone(), source })?;
    let local: SocketAddr = listener.local_addr()?;
    eprintln!("glassbox serving on http://{local}/v1 (models loading; /ready turns 200 when done)");
    let shutdown = Arc::new(AtomicBool::new(false));
    let st = Arc::new(AppState {
        cfg: cfg.clone(),
        models: Default::default(),
        order: Default::default(),
        ready: AtomicBool::new(false),
        shutdown: Arc::clone(&shutdown),
        metrics: Default::default(),
        next_id: AtomicU64::new(1),
    });
    // Load models off the async runtime; each gets its own scheduler thread.
    let loader = {
        let st = Arc::clone(&st);
        tokio::task::spawn_blocking(move || {
            for spec in models {
                match load_model(&spec, &st.cfg, Arc::clone(&st.shutdown)) {
                    Ok(h) => {
                        eprintln!("loaded {} as \"{}\" (ctx {})", spec.path.display(), h.name, h.frontend.ctx_size);
                        st.order.write().unwrap().push(h.name.clone());
                        st.models.write().unwrap().insert(h.name.clone(), Arc::new(h));
                    }
                    Err(e) => {
                        eprintln!("error: cannot load {}: {e}", spec.path.display());
                        std::process::exit(1);
                    }
                }
            }
            st.ready.store(true, Ordering::SeqCst);
            eprintln!("ready");
        })
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/models", get(handlers::list_models))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(Arc::clone(&st), auth))
        .with_state(Arc::clone(&st));
    let grace = cfg.shutdown_grace;
    let stop = async move {
        wait_for_signal().await;
        eprintln!("shutting down: no new requests; in-flight work has {grace:?} to finish");
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            shutdown.store(true, Ordering::SeqCst);
        });
    };
    axum::serve(listener, app).with_graceful_shutdown(stop).await?;
    st.shutdown.store(true, Ordering::SeqCst);
    let _ = loader.await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn load_model(spec: &ModelSpec, cfg: &ServerConfig, shutdown: Arc<AtomicBool>) -> Result<ModelHandle, glassbox_engine::Error> {
    let (engine, v) = Engine::load_verified(&spec.path, &cfg.engine, &cfg.trust)?;
    eprintln!("verified {} sha256 {} ({:?})", spec.path.display(), v.sha256, v.verdict);
    let (sched, frontend) = engine.into_scheduler(cfg.parallel, cfg.prefill_chunk);
    let stats = Arc::clone(&sched.stats);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("glassbox-sched-{}", spec.name))
        .spawn(move || sched.run(rx, shutdown))
        .map_err(|e| glassbox_engine::Error::Other(format!("cannot start scheduler thread: {e}")))?;
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok(ModelHandle { name: spec.name.clone(), frontend, tx: std::sync::Mutex::new(tx), stats, in_flight: AtomicUsize::new(0), created })
}

pub(crate) fn retry_after(resp: &mut Response) {
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
}

pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        handlers::error_response(&self)
    }
}
