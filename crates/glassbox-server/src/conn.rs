//! Connections: an accept loop with a cap on open connections, per-connection timeouts, and the
//! checks made on a request's headers before its body is read.
//!
//! - Header timeout: a client must send a request's headers within `header_timeout` of the
//!   connection opening or of the previous response ending (so it is also the keep-alive idle
//!   timeout); hyper closes the connection otherwise.
//! - Body timeout: the whole body must arrive within `body_timeout` (else 408), and be at most
//!   `max_body_bytes` (else 413).
//! - Send timeout: a write that makes no progress for `send_timeout` (a client that stopped
//!   reading) closes the connection, which cancels its generation.
//! - Cap: at most `max_connections` open. When full, a new connection evicts the oldest one
//!   that is not running a request (idle, still sending headers, or still sending its body:
//!   what slowloris-style clients hold), so a well-behaved client is always served while any
//!   slot is held by a client doing nothing; when every slot runs a request, the newcomer gets
//!   503 with `Retry-After` and is closed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::guard::{HostPolicy, is_json_content_type};
use crate::handlers::error_response;
use crate::metrics::Metrics;
use crate::openai::ApiError;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub(crate) struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub send_timeout: Duration,
    pub max_body_bytes: usize,
}

/// Checks on a request's headers, made before its body is read.
pub(crate) struct Gate {
    /// SHA-256 of each API key: presented keys are hashed and compared in constant time, so
    /// neither a key's bytes nor its length shows in the timing.
    keys: Vec<[u8; 32]>,
    /// Without API keys on loopback: the `Host` values allowed (DNS-rebinding defence).
    hosts: Option<HostPolicy>,
    /// Without API keys: bodies must be `application/json` (cross-site form/text POSTs).
    json_only: bool,
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl Gate {
    /// `keys`: the SHA-256 of every accepted key (none: an open server).
    pub fn new(keys: Vec<[u8; 32]>, hosts: Option<HostPolicy>) -> Gate {
        let open = keys.is_empty();
        Gate { keys, hosts: if open { hosts } else { None }, json_only: open }
    }

    /// Which configured key a presented key is: every key is compared, in constant time,
    /// whatever matches.
    fn key_index(&self, presented: &[u8]) -> Option<usize> {
        use subtle::ConditionallySelectable;
        let d = digest(presented);
        let (mut ok, mut idx) = (subtle::Choice::from(0), 0u32);
        for (i, k) in self.keys.iter().enumerate() {
            let eq = k.ct_eq(&d);
            idx = u32::conditional_select(&idx, &(i as u32), eq);
            ok |= eq;
        }
        bool::from(ok).then_some(idx as usize)
    }

    /// Admit or refuse a request on its headers; returns the index of the API key it presented
    /// (for the audit log: keys are named by position, never logged).
    pub fn check<B>(&self, req: &axum::http::Request<B>) -> Result<Option<usize>, ApiError> {
        if let Some(hosts) = &self.hosts {
            let host = req.headers().get(header::HOST).map(|v| v.as_bytes());
            let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
            let ok = match (host, authority) {
                (None, None) => false,
                (h, a) => h.is_none_or(|h| hosts.allows(h)) && a.is_none_or(|a| hosts.allows(a)),
            };
            if !ok {
                return Err(ApiError {
                    status: 403,
                    message: "the host header must name this server's loopback address (for example localhost:PORT); other names are refused to defend against dns rebinding".into(),
                    kind: "invalid_request_error",
                    param: None,
                    code: Some("host_not_allowed"),
                });
            }
        }
        if self.json_only && req.method() == Method::POST && !req.headers().get(header::CONTENT_TYPE).is_some_and(|v| is_json_content_type(v.as_bytes())) {
            return Err(ApiError { status: 415, message: "request bodies must be sent with content-type: application/json".into(), kind: "invalid_request_error", param: None, code: Some("unsupported_media_type") });
        }
        if !self.keys.is_empty() && !matches!(req.uri().path(), "/health" | "/ready") {
            let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer ")).map(<[u8]>::trim_ascii);
            return match presented.and_then(|k| self.key_index(k)) {
                Some(i) => Ok(Some(i)),
                None => Err(ApiError { status: 401, message: "invalid or missing API key (send Authorization: Bearer <key>)".into(), kind: "invalid_request_error", param: None, code: Some("invalid_api_key") }),
            };
        }
        Ok(None)
    }
}

const IDLE: u8 = 0;
const READING: u8 = 1;
const BUSY: u8 = 2;

/// One open connection, as the registry sees it.
struct ConnState {
    /// The client's address.
    peer: std::net::SocketAddr,
    /// IDLE (no request, or headers still arriving), READING (body arriving), BUSY (running).
    phase: AtomicU8,
    evicting: AtomicBool,
    evict: Notify,
}

/// Open connections, oldest first (ids grow with time).
#[derive(Default)]
pub(crate) struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<ConnState>>>,
    next: AtomicU64,
}

enum Admission {
    Open(u64, Arc<ConnState>),
    Full,
}

impl Registry {
    pub fn len(&self) -> usize {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn admit(&self, max: usize, metrics: &Metrics, peer: std::net::SocketAddr) -> Admission {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() >= max {
            let victim = [IDLE, READING].into_iter().find_map(|phase| conns.values().find(|c| c.phase.load(Ordering::SeqCst) == phase && !c.evicting.load(Ordering::SeqCst)));
            match victim {
                Some(v) => {
                    v.evicting.store(true, Ordering::SeqCst);
                    v.evict.notify_one();
                    metrics.conn_evicted();
                }
                None => return Admission::Full,
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(ConnState { peer, phase: AtomicU8::new(IDLE), evicting: AtomicBool::new(false), evict: Notify::new() });
        conns.insert(id, Arc::clone(&c));
        Admission::Open(id, c)
    }

    fn remove(&self, id: u64) {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

/// What every connection task shares.
pub(crate) struct Shared {
    pub app: Router,
    pub gate: Gate,
    pub limits: ConnLimits,
    pub st: Arc<crate::AppState>,
}

/// Accept connections until `stop` resolves, then ask every connection to close (idle ones at
/// once, running ones after their response) and return; the caller waits for `Registry::len`
/// to reach zero.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        match shared.st.conns.admit(shared.limits.max_connections, &shared.st.metrics, peer) {
            Admission::Open(id, cs) => {
                let shared = Arc::clone(&shared);
                let stop_rx = stop_rx.clone();
                tokio::spawn(async move {
                    serve_connection(stream, Arc::clone(&cs), &shared, stop_rx).await;
                    shared.st.conns.remove(id);
                });
            }
            Admission::Full => {
                shared.st.metrics.conn_refused();
                let body = r#"{"error":{"message":"too many open connections; retry later","type":"server_error","param":null,"code":"too_many_connections"}}"#;
                let resp = format!("HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = stream.try_write(resp.as_bytes());
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
}

async fn serve_connection(stream: TcpStream, cs: Arc<ConnState>, shared: &Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let io = TokioIo::new(SendTimeout::new(stream, shared.limits.send_timeout));
    let svc = {
        let (shared, cs) = (Arc::clone(shared), Arc::clone(&cs));
        hyper::service::service_fn(move |req| handle(req, Arc::clone(&shared), Arc::clone(&cs)))
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_timeout)
        .max_buf_size(64 << 10)
        .serve_connection(io, svc);
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection closed");
                }
                return;
            }
            _ = cs.evict.notified(), if !closing => {}
            _ = stop.wait_for(|s| *s), if !closing => {}
        }
        // Evicted, or the server is stopping: a connection doing nothing closes now, one running
        // a request closes after its response.
        if cs.phase.load(Ordering::SeqCst) != BUSY {
            return;
        }
        conn.as_mut().graceful_shutdown();
        closing = true;
    }
}

async fn handle(req: hyper::Request<Incoming>, shared: Arc<Shared>, cs: Arc<ConnState>) -> Result<Response, Infallible> {
    cs.phase.store(READING, Ordering::SeqCst);
    let resp = respond(req, &shared, &cs).await;
    Ok(resp.map(|b| Body::new(Tracked { inner: b, cs: Some(cs) })))
}

async fn respond(req: hyper::Request<Incoming>, shared: &Shared, cs: &ConnState) -> Response {
    let key = match shared.gate.check(&req) {
        Ok(k) => k,
        Err(e) => return error_response(&e),
    };
    let (mut parts, body) = req.into_parts();
    let key = key.and_then(|i| shared.st.keys.get(i).map(|k| (i, k.policy.name.clone())));
    parts.extensions.insert(crate::record::Client { addr: cs.peer, key: key.as_ref().map(|k| k.1.clone()), key_index: key.map(|k| k.0) });
    let limits = &shared.limits;
    let bytes = match tokio::time::timeout(limits.body_timeout, read_body(body, limits.max_body_bytes)).await {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => {
            let mut r = error_response(&ApiError { status: 413, message: format!("the request body is larger than {} bytes", limits.max_body_bytes), kind: "invalid_request_error", param: None, code: Some("body_too_large") });
            r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            return r;
        }
        Ok(Err(BodyError::Read)) => return error_response(&ApiError::invalid("body", "cannot read the request body")),
        Err(_) => {
            let mut r = error_response(&ApiError { status: 408, message: format!("the request body did not arrive within {} s", limits.body_timeout.as_secs_f64()), kind: "invalid_request_error", param: None, code: Some("body_timeout") });
            r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            return r;
        }
    };
    cs.phase.store(BUSY, Ordering::SeqCst);
    let mut app = shared.app.clone();
    let req = Request::from_parts(parts, Body::from(bytes));
    let _ = std::future::poll_fn(|cx| tower_service::Service::<Request>::poll_ready(&mut app, cx)).await;
    match tower_service::Service::call(&mut app, req).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

enum BodyError {
    TooLarge,
    Read,
}

/// The request body, at most `max` bytes. A larger one is read on and discarded — up to four
/// times the limit, within the caller's body timeout — before the 413 goes out: closing a
/// socket with unread data resets it, and the client would see a broken pipe instead of the
/// answer (a lingering close, as nginx does).
async fn read_body(mut body: Incoming, max: usize) -> Result<Bytes, BodyError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut over: Option<usize> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Read)?.into_data() else { continue };
        match &mut over {
            Some(seen) => {
                *seen = seen.saturating_add(data.len());
                if *seen > max.saturating_mul(4) {
                    break;
                }
            }
            None if buf.len() + data.len() > max => {
                over = Some(buf.len() + data.len());
                buf = Vec::new();
            }
            None => buf.extend_from_slice(&data),
        }
    }
    match over {
        Some(_) => Err(BodyError::TooLarge),
        None => Ok(Bytes::from(buf)),
    }
}

/// A response body that marks its connection idle again when it has been sent (or dropped).
struct Tracked {
    inner: Body,
    cs: Option<Arc<ConnState>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(cs) = self.cs.take() {
            cs.phase.store(IDLE, Ordering::SeqCst);
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A socket whose writes fail with `TimedOut` after making no progress for `limit`.
struct SendTimeout {
    inner: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl SendTimeout {
    fn new(inner: TcpStream, limit: Duration) -> SendTimeout {
        SendTimeout { inner, limit, stalled: None }
    }

    fn track<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for SendTimeout {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendTimeout {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(cx, r)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(cx, r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(cx, r)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.track(cx, r)
    }
}
