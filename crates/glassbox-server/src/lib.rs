//! `glassbox serve`: an OpenAI-compatible HTTP API over continuous-batching schedulers.
//!
//! Each model runs on its own scheduler thread. The connection layer (`conn`) caps open
//! connections, times out slow headers, bodies and writes, and checks `Host`, `Content-Type` and
//! API keys (constant-time) before a body is read. Handlers then validate the body (cheap, 400
//! naming the field), apply admission control (running + waiting bounded, 429 with
//! `Retry-After` at once when full), and only then render and tokenize the prompt on the
//! blocking pool, and exchange events with the scheduler over channels. Nothing here makes
//! outbound connections.
//!
//! This crate never runs model code on the async runtime and never logs prompt, completion or
//! `user` text unless `log_content` is set; client text that is logged is escaped.

pub mod adapters;
mod conn;
pub mod keys;
mod record;
pub mod redaction;
pub mod guard;
mod handlers;
mod legacy;
mod metrics;
pub mod openai;
mod structured;
mod tokenize;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
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
    #[error("max_connections must be at least 1")]
    NoConnections,
    #[error("cannot open the audit log: {0}")]
    AuditLog(String),
    #[error("loading adapters at run time (--adapter-dir) needs API keys (--api-key-file): the endpoint reads files on the server")]
    AdapterLoadingNeedsKeys,
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub path: PathBuf,
    pub name: String,
    /// Run-time residual-stream edits applied to this model (`serve --steer`).
    pub steering: Option<glassbox_engine::Steering>,
    /// LoRA adapters served over this model, each under its own model id (`serve --lora`).
    pub adapters: Vec<AdapterSpec>,
}

/// A LoRA adapter served as its own model id over a base model.
#[derive(Clone, Debug)]
pub struct AdapterSpec {
    pub name: String,
    pub path: PathBuf,
    pub scale: f32,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub api_keys: Vec<String>,
    /// Keys with names, model lists and rate limits (`--api-key-file keys.toml`), besides or
    /// instead of the plain `api_keys`.
    pub key_policies: Vec<keys::KeyPolicy>,
    pub insecure_no_auth: bool,
    /// Sequences decoded together per model.
    pub parallel: usize,
    /// Requests allowed to wait for a slot, per model.
    pub max_queue: usize,
    pub max_body_bytes: usize,
    /// Open connections at most; when full, the oldest connection not running a request is
    /// closed to make room, and when every one runs a request the newcomer gets 503.
    pub max_connections: usize,
    /// Time a client gets to send a request's headers; also the keep-alive idle timeout.
    pub header_timeout: Duration,
    /// Time a client gets to send a request's body.
    pub body_timeout: Duration,
    /// Time a write to a client may make no progress before the connection is closed.
    pub send_timeout: Duration,
    pub engine: EngineOptions,
    pub prefill_chunk: usize,
    /// Prompt-lookup speculative decoding: most drafts per sequence per step (0 = off).
    pub lookup_draft: usize,
    /// Speculative decoding with a draft model (file, most drafts per sequence per step),
    /// verified under `trust` like the model.
    pub draft: Option<(std::path::PathBuf, usize)>,
    /// Log prompt, completion and `user` text (escaped) — off by default.
    pub log_content: bool,
    /// Lifecycle lines as JSON events through `tracing` (`--log-format json`).
    pub json_logs: bool,
    /// After SIGTERM: /ready answers 503 at once, but new requests are still taken for this
    /// long (a load balancer or Kubernetes notices the failed readiness and stops sending),
    /// then accepting stops and in-flight work gets `shutdown_grace`.
    pub drain_delay: Duration,
    pub shutdown_grace: Duration,
    /// Redaction of personal data in requests and responses (`serve --redact`).
    pub redact: Option<redaction::RedactConfig>,
    /// The tamper-evident request log (one record per request; requests it cannot take get 503).
    pub audit_log: Option<PathBuf>,
    /// Rotate the audit log's active file past this many bytes.
    pub audit_log_max_bytes: u64,
    /// Loading and unloading adapters at run time, from files inside this directory (needs
    /// API keys); `None`: off (the endpoints answer 404).
    pub adapter_dir: Option<PathBuf>,
    /// The audit every adapter passes before it is served (licence against the policy, where
    /// one is set): a one-line summary, or why it is refused.
    pub adapter_check: Option<AdapterCheck>,
    /// Every model file is verified against its pin (lockfile, or trust on first use) before
    /// it is served.
    pub trust: glassbox_trust::Policy,
}

impl ServerConfig {
    /// Whether requests need an API key.
    pub fn has_keys(&self) -> bool {
        !self.api_keys.is_empty() || !self.key_policies.is_empty()
    }

    /// Every key's policy: the plain keys (`key-1`, …) first, then the named ones.
    fn all_keys(&self) -> Vec<keys::KeyPolicy> {
        self.api_keys.iter().enumerate().map(|(i, k)| keys::KeyPolicy::plain(i, k)).chain(self.key_policies.iter().cloned()).collect()
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            api_keys: vec![],
            key_policies: vec![],
            insecure_no_auth: false,
            parallel: 8,
            max_queue: 64,
            max_body_bytes: 4 << 20,
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            engine: EngineOptions::default(),
            prefill_chunk: 256,
            lookup_draft: 0,
            draft: None,
            log_content: false,
            json_logs: false,
            drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(10),
            redact: None,
            audit_log: None,
            audit_log_max_bytes: 64 << 20,
            adapter_dir: None,
            adapter_check: None,
            trust: glassbox_trust::Policy::default(),
        }
    }
}

/// An audit hook for adapters (see [`ServerConfig::adapter_check`]).
#[derive(Clone)]
pub struct AdapterCheck(pub Arc<AdapterCheckFn>);

/// Audit one adapter file: a one-line summary, or why it is refused.
pub type AdapterCheckFn = dyn Fn(&std::path::Path) -> Result<String, String> + Send + Sync;

impl std::fmt::Debug for AdapterCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdapterCheck")
    }
}

pub(crate) struct ModelHandle {
    pub name: String,
    pub frontend: Frontend,
    pub tx: std::sync::Mutex<std::sync::mpsc::Sender<SchedRequest>>,
    /// The base's scheduler, for attaching and detaching adapters between steps.
    pub control: std::sync::Mutex<std::sync::mpsc::Sender<glassbox_engine::Control>>,
    pub stats: Arc<SchedulerStats>,
    pub in_flight: AtomicUsize,
    pub created: u64,
    /// SHA-256 of the model file (the base's, for an adapter's id) and of the adapter file.
    pub sha256: String,
    pub adapter_sha256: Option<String>,
    /// For an adapter's model id: the adapter's index in the base's engine, and the base's id.
    pub adapter: Option<usize>,
    pub parent: Option<String>,
    /// The vocabulary as bytes for constrained decoding, built on first use (shared with the
    /// base's adapters).
    pub vocab: Arc<std::sync::OnceLock<Arc<glassbox_constrain::VocabIndex>>>,
}

pub(crate) struct AppState {
    pub cfg: ServerConfig,
    pub limits: openai::Limits,
    pub models: std::sync::RwLock<HashMap<String, Arc<ModelHandle>>>,
    pub order: std::sync::RwLock<Vec<String>>,
    pub ready: AtomicBool,
    /// SIGTERM seen: /ready answers 503 (requests are still served during the drain delay).
    pub draining: AtomicBool,
    pub shutdown: Arc<AtomicBool>,
    pub metrics: metrics::Metrics,
    pub next_id: AtomicU64,
    pub audit: Option<glassbox_auditlog::AuditLog>,
    /// Every API key's policy and usage, in the gate's order.
    pub keys: Vec<Arc<keys::KeyState>>,
    /// Open connections.
    pub conns: conn::Registry,
}

/// Lifecycle lines (loading, verified digests, ready, draining, shutdown) as JSON events
/// through `tracing` (`serve --log-format json`) instead of plain stderr lines.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// A lifecycle line: plain on stderr, or a JSON event (`error:`/`warning:` lines at that level).
macro_rules! say {
    ($($t:tt)*) => {{
        let msg = format!($($t)*);
        if crate::JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
            match msg.split_once(": ") {
                Some(("error", m)) => tracing::error!(target: "glassbox::lifecycle", "{m}"),
                Some(("warning", m)) => tracing::warn!(target: "glassbox::lifecycle", "{m}"),
                _ => tracing::info!(target: "glassbox::lifecycle", "{msg}"),
            }
        } else {
            eprintln!("{msg}");
        }
    }};
}
pub(crate) use say;

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Bind, load and verify every model (readiness turns on when all are loaded), then serve until
/// SIGTERM/SIGINT: readiness off, new requests still taken for the drain delay, then stop
/// accepting, let in-flight work finish for the grace period, cancel the rest, and return.
pub async fn serve(models: Vec<ModelSpec>, cfg: ServerConfig) -> Result<(), Error> {
    if !cfg.has_keys() && !is_loopback(&cfg.host) && !cfg.insecure_no_auth {
        return Err(Error::OpenBind(cfg.host.clone()));
    }
    // An IPv6 literal needs brackets before the port.
    let addr = if cfg.host.contains(':') && !cfg.host.starts_with('[') { format!("[{}]:{}", cfg.host, cfg.port) } else { format!("{}:{}", cfg.host, cfg.port) };
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|source| Error::Bind { addr: addr.clone(), source })?;
    serve_on(listener, models, cfg, wait_for_signal()).await
}

/// [`serve`] on a bound listener, until `stop` resolves (then as after SIGTERM). `cfg.host`
/// names the bound address for the `Host` check (`localhost` also admits `127.0.0.1` and
/// `[::1]`); `cfg.port` is not used.
pub async fn serve_on(listener: tokio::net::TcpListener, models: Vec<ModelSpec>, cfg: ServerConfig, stop: impl Future<Output = ()> + Send) -> Result<(), Error> {
    JSON_LOGS.store(cfg.json_logs, Ordering::Relaxed);
    let local: SocketAddr = listener.local_addr()?;
    let loopback = local.ip().is_loopback();
    if !cfg.has_keys() && !loopback && !cfg.insecure_no_auth {
        return Err(Error::OpenBind(local.ip().to_string()));
    }
    if cfg.max_connections == 0 {
        return Err(Error::NoConnections);
    }
    if cfg.adapter_dir.is_some() && !cfg.has_keys() {
        return Err(Error::AdapterLoadingNeedsKeys);
    }
    let mut seen = std::collections::HashSet::new();
    for m in &models {
        if !seen.insert(m.name.clone()) {
            return Err(Error::DuplicateName(m.name.clone()));
        }
    }
    let audit = match &cfg.audit_log {
        None => None,
        Some(path) => {
            let opts = glassbox_auditlog::Options { max_bytes: cfg.audit_log_max_bytes, ..Default::default() };
            let log = glassbox_auditlog::AuditLog::open(path, opts).map_err(|e| Error::AuditLog(e.to_string()))?;
            let (seq, head) = log.head();
            say!("audit log {}: continuing after seq {} (head {head})", path.display(), seq.map_or("-".into(), |s| s.to_string()));
            Some(log)
        }
    };
    say!("glassbox serving on http://{local}/v1 (models loading; /ready turns 200 when done)");
    let shutdown = Arc::new(AtomicBool::new(false));
    let st = Arc::new(AppState {
        cfg: cfg.clone(),
        limits: openai::Limits { max_text_bytes: cfg.max_body_bytes, ..openai::Limits::default() },
        models: Default::default(),
        order: Default::default(),
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        shutdown: Arc::clone(&shutdown),
        metrics: Default::default(),
        next_id: AtomicU64::new(1),
        audit,
        keys: cfg.all_keys().into_iter().map(|k| Arc::new(keys::KeyState::new(k))).collect(),
        conns: Default::default(),
    });
    // Load models off the async runtime; each gets its own scheduler thread.
    let loader = {
        let st = Arc::clone(&st);
        tokio::task::spawn_blocking(move || {
            for spec in models {
                match load_model(&spec, &st.cfg, Arc::clone(&st.shutdown)) {
                    Ok(handles) => {
                        for h in handles {
                            match &h.parent {
                                None => say!("loaded {} as {:?} (ctx {})", spec.path.display(), h.name, h.frontend.ctx_size),
                                Some(p) => say!("adapter {:?} over {p:?}", h.name),
                            }
                            st.order.write().unwrap().push(h.name.clone());
                            st.models.write().unwrap().insert(h.name.clone(), Arc::new(h));
                        }
                    }
                    Err(e) => {
                        say!("error: cannot load {}: {e}", spec.path.display());
                        std::process::exit(1);
                    }
                }
            }
            // The recognisers' one-off set-up (about 70 ms) before the first request, not in it.
            if st.cfg.redact.is_some() || st.cfg.log_content {
                glassbox_redact::warm_up();
            }
            st.ready.store(true, Ordering::SeqCst);
            say!("ready");
        })
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/load_lora_adapter", post(adapters::load))
        .route("/v1/unload_lora_adapter", post(adapters::unload))
        .route("/tokenize", post(tokenize::tokenize))
        .route("/detokenize", post(tokenize::detokenize))
        .route("/tokenizer_info", get(tokenize::tokenizer_info))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        // The body was read (and bounded) before routing; this only lifts axum's own default.
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .with_state(Arc::clone(&st));
    let hosts = (!cfg.has_keys() && loopback).then(|| guard::HostPolicy::new(&cfg.host, local));
    let shared = Arc::new(conn::Shared {
        app,
        gate: conn::Gate::new(st.keys.iter().map(|k| k.policy.sha256).collect(), hosts),
        limits: conn::ConnLimits {
            max_connections: cfg.max_connections,
            header_timeout: cfg.header_timeout,
            body_timeout: cfg.body_timeout,
            send_timeout: cfg.send_timeout,
            max_body_bytes: cfg.max_body_bytes,
        },
        st: Arc::clone(&st),
    });
    // Drain: readiness flips first; accepting stops after the drain delay.
    let stop = {
        let (st, delay) = (Arc::clone(&st), cfg.drain_delay);
        async move {
            stop.await;
            st.draining.store(true, Ordering::SeqCst);
            if !delay.is_zero() {
                say!("draining: /ready answers 503; new requests still taken for {delay:?}");
                tokio::time::sleep(delay).await;
            }
        }
    };
    conn::accept_loop(listener, Arc::clone(&shared), stop).await;
    // Stopped accepting; idle connections are closed, running ones finish their response.
    let grace = cfg.shutdown_grace;
    say!("shutting down: no new requests; in-flight work has {grace:?} to finish");
    let deadline = Instant::now() + grace;
    let mut cancelled = false;
    loop {
        if st.conns.len() == 0 {
            break;
        }
        if !cancelled && Instant::now() >= deadline {
            // Grace over: cancel what still runs; its connections close as their streams end.
            shutdown.store(true, Ordering::SeqCst);
            cancelled = true;
        }
        if Instant::now() >= deadline + Duration::from_secs(5) {
            tracing::warn!(open = st.conns.len(), "connections still open after the grace period; closing them");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    st.shutdown.store(true, Ordering::SeqCst);
    let _ = loader.await;
    if let Some(log) = &st.audit {
        // The head hash on stderr too: a copy outside the file to check a rewrite against.
        let (seq, head) = log.head();
        say!("audit log closed at seq {} (head {head}){}", seq.map_or("-".into(), |s| s.to_string()), log.failure().map(|f| format!("; it had failed: {f}")).unwrap_or_default());
    }
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

/// Load a model, its adapters and its scheduler: the base's handle, then one per adapter
/// (sharing the base's scheduler, each sequence with its adapter).
fn load_model(spec: &ModelSpec, cfg: &ServerConfig, shutdown: Arc<AtomicBool>) -> Result<Vec<ModelHandle>, glassbox_engine::Error> {
    let (mut engine, v) = Engine::load_verified(&spec.path, &cfg.engine, &cfg.trust)?;
    say!("verified {} sha256 {} ({:?})", spec.path.display(), v.sha256, v.verdict);
    if let Some(s) = &spec.steering {
        engine.set_steering(s.clone())?;
    }
    let mut adapter_ids = Vec::with_capacity(spec.adapters.len());
    for a in &spec.adapters {
        let (adapter, av) = glassbox_engine::open_adapter(&a.path, &cfg.trust)?;
        adapter_ids.push((engine.attach_adapter(&adapter, &av.sha256, a.scale, &spec.name)?, av.sha256.clone()));
        say!("verified adapter {} sha256 {} ({:?})", a.path.display(), av.sha256, av.verdict);
        if let Some(check) = &cfg.adapter_check {
            let summary = (check.0)(&a.path).map_err(glassbox_engine::Error::Other)?;
            say!("audit   adapter {:?} ({}): {summary}", a.name, a.path.display());
        }
        for t in &adapter.ignored {
            say!("warning: adapter {}: tensor {t} is not applied (norm vectors are skipped, as llama.cpp skips them)", a.path.display());
        }
    }
    let draft = match &cfg.draft {
        Some((path, max)) => {
            // The scheduler gives each sequence its own draft cache: none needed here.
            let (d, dv) = glassbox_engine::DraftModel::load_verified(path, &cfg.trust, &engine, 0)?;
            say!("verified draft {} sha256 {} ({:?})", path.display(), dv.sha256, dv.verdict);
            Some((d, *max))
        }
        None => None,
    };
    let (sched, frontend) = engine.into_scheduler(cfg.parallel, cfg.prefill_chunk);
    let mut sched = sched.with_lookup(cfg.lookup_draft);
    if let Some((d, max)) = draft {
        sched = sched.with_draft(d, max);
    }
    let stats = Arc::clone(&sched.stats);
    let (tx, rx) = std::sync::mpsc::channel();
    let (ctl, ctl_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("glassbox-sched-{}", spec.name))
        .spawn(move || sched.run_controlled(rx, ctl_rx, shutdown))
        .map_err(|e| glassbox_engine::Error::Other(format!("cannot start scheduler thread: {e}")))?;
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let base_sha = v.sha256.clone();
    let vocab = Arc::new(std::sync::OnceLock::new());
    let handle = |name: &str, adapter: Option<(usize, String)>, parent: Option<String>| ModelHandle {
        name: name.to_string(),
        sha256: base_sha.clone(),
        adapter_sha256: adapter.as_ref().map(|(_, s)| s.clone()),
        frontend: frontend.clone(),
        tx: std::sync::Mutex::new(tx.clone()),
        control: std::sync::Mutex::new(ctl.clone()),
        stats: Arc::clone(&stats),
        in_flight: AtomicUsize::new(0),
        created,
        adapter: adapter.map(|(i, _)| i),
        parent,
        vocab: Arc::clone(&vocab),
    };
    let mut out = vec![handle(&spec.name, None, None)];
    for (a, id) in spec.adapters.iter().zip(adapter_ids) {
        out.push(handle(&a.name, Some(id), Some(spec.name.clone())));
    }
    Ok(out)
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
