//! The server against slow and hostile clients, in process on the real SmolLM2 file: connection
//! cap and eviction, header/body/idle timeouts, slowloris, Host and Content-Type policy,
//! metric labels, unimplemented fields, per-request bounds, and admission before tokenizing;
//! LoRA adapters served over the model as their own ids.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use glassbox_server::{ModelSpec, ServerConfig};
use serde_json::{Value, json};

const NAME: &str = "smollm2";

struct Server {
    addr: SocketAddr,
    /// An `Authorization` header line when the server has keys.
    auth: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), glassbox_server::Error>>>,
    rt: tokio::runtime::Runtime,
}

fn config() -> ServerConfig {
    let mut cfg = ServerConfig { parallel: 2, max_queue: 4, shutdown_grace: Duration::from_secs(1), ..ServerConfig::default() };
    cfg.engine.threads = 1;
    cfg.engine.ctx_size = 512;
    cfg
}

fn start(cfg: ServerConfig) -> Server {
    start_with(cfg, 2)
}

fn start_with(cfg: ServerConfig, workers: usize) -> Server {
    start_models(cfg, workers, vec![])
}

/// The SmolLM2 server with `adapters` served over it.
fn start_models(cfg: ServerConfig, workers: usize, adapters: Vec<glassbox_server::AdapterSpec>) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let auth = cfg.api_keys.first().map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let models = vec![ModelSpec { path: glassbox_testdata::model(glassbox_testdata::SMOLLM2), name: NAME.into(), steering: None, adapters }];
    let done = rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        glassbox_server::serve_on(listener, models, cfg, async {
            let _ = rx.await;
        })
        .await
    });
    let s = Server { addr, auth, stop: Some(tx), done: Some(done), rt };
    let deadline = Instant::now() + Duration::from_secs(120);
    while s.get("/ready").status != 200 {
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            let r = self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), done).await });
            if !std::thread::panicking() {
                assert!(matches!(r, Ok(Ok(Ok(())))), "server did not stop cleanly: {r:?}");
            }
        }
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
    fn param(&self) -> String {
        self.json()["error"]["param"].as_str().unwrap_or_default().to_owned()
    }
}

/// Send raw bytes and read the whole reply (the request asks the server to close).
fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse(&out)
}

fn parse(out: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Reply { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
}

impl Server {
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }
    fn get(&self, path: &str) -> Reply {
        raw(self.addr, format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{}Connection: close\r\n\r\n", self.host(), self.auth).as_bytes())
    }
    fn post_with(&self, path: &str, headers: &str, body: &[u8]) -> Reply {
        let mut req = format!("POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n", self.host(), body.len()).into_bytes();
        req.extend_from_slice(body);
        raw(self.addr, &req)
    }
    fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_with(path, "Content-Type: application/json\r\n", body.to_string().as_bytes())
    }
    fn metric(&self, line_prefix: &str) -> Option<f64> {
        self.get("/metrics").body.lines().find_map(|l| l.strip_prefix(line_prefix).and_then(|v| v.trim().parse().ok()))
    }
    /// A streaming completion that runs until dropped: returns once its first event arrived.
    fn hold_a_slot(&self) -> TcpStream {
        let body = json!({"model": NAME, "prompt": "Once upon a time", "max_tokens": 480, "stream": true}).to_string();
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(s, "POST /v1/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", self.host(), body.len()).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("data: {") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "stream ended early: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        s
    }
}

/// Whether the server closed this connection (EOF or reset) within `wait`.
fn closed_within(mut s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a timeout/refusal response before the close
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

/// Whether the server has closed this connection already (without waiting).
fn closed_now(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    closed
}

fn completion(max_tokens: usize) -> Value {
    json!({"model": NAME, "prompt": "The capital of France is", "max_tokens": max_tokens, "temperature": 0})
}

#[test]
fn slowloris_does_not_starve_a_normal_request() {
    // Defaults: 256 connections, 10 s to send headers.
    let s = start(config());
    let slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr).unwrap();
            write!(c, "POST /v1/completions HTTP/1.1\r\nHost: {}\r\nX-Slow: ", s.host()).unwrap();
            c
        })
        .collect();
    // Keep them trickling, as slowloris does.
    for mut c in &slow {
        let _ = c.write_all(b"a");
    }
    let t = Instant::now();
    let health = s.get("/health");
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let r = s.post("/v1/completions", &completion(2));
    assert_eq!(r.status, 200, "{}", r.body);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "normal requests took {took:?} behind 300 slowloris connections");
    std::thread::sleep(Duration::from_millis(300));
    let closed = slow.iter().filter(|c| closed_now(c)).count();
    // The 44 over the cap were evicted, plus one per normal request; the rest wait for the
    // 10 s header timeout.
    assert!((300 - 256..=300 - 256 + 8).contains(&closed), "{closed} of 300 stalled connections were evicted under a cap of 256");
    eprintln!("slowloris: /health + /v1/completions answered in {took:?}; {closed} stalled connections evicted");
    assert!(s.metric("glassbox_connections_evicted_total").unwrap() >= 44.0);
}

#[test]
fn header_timeout_closes_stalled_and_idle_connections() {
    let s = start(ServerConfig { header_timeout: Duration::from_secs(1), ..config() });
    // Part of a request line, then nothing.
    let mut stalled = TcpStream::connect(s.addr).unwrap();
    stalled.write_all(b"GET /hea").unwrap();
    let t = Instant::now();
    assert!(closed_within(&stalled, Duration::from_secs(5)), "a stalled request was not closed");
    assert!(t.elapsed() >= Duration::from_millis(800), "closed before the header timeout: {:?}", t.elapsed());
    // A keep-alive connection left idle after one response.
    let mut idle = TcpStream::connect(s.addr).unwrap();
    write!(idle, "GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", s.host()).unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    assert!(closed_within(&idle, Duration::from_secs(5)), "an idle keep-alive connection was not closed");
    assert!(t.elapsed() >= Duration::from_millis(800));
}

#[test]
fn body_timeout_answers_408() {
    let s = start(ServerConfig { body_timeout: Duration::from_secs(1), ..config() });
    let mut c = TcpStream::connect(s.addr).unwrap();
    write!(c, "POST /v1/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\":", s.host()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let r = parse(&out);
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&out));
    assert_eq!(r.json()["error"]["code"], "body_timeout");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn connection_cap_evicts_idle_connections_and_refuses_when_all_are_busy() {
    let s = start(ServerConfig { max_connections: 2, ..config() });
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.get("/health").status, 200, "a new client must evict an idle connection");
    assert!(idle.iter().any(|c| closed_within(c, Duration::from_secs(2))));
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    // Both slots running requests: a newcomer is refused with 503 + Retry-After.
    let busy = [s.hold_a_slot(), s.hold_a_slot()];
    let r = s.get("/health");
    assert_eq!(r.status, 503, "{} {}", r.head, r.body);
    assert!(r.head.contains("retry-after: 1"), "{}", r.head);
    assert_eq!(r.json()["error"]["code"], "too_many_connections");
    drop(busy);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get("/health").status != 200 {
        assert!(Instant::now() < deadline, "slots were not freed after the streams closed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.metric("glassbox_connections_refused_total").unwrap() >= 1.0);
}

#[test]
fn an_open_loopback_server_checks_content_type_and_host() {
    let s = start(config());
    let body = completion(1).to_string();
    let b = body.as_bytes();
    for headers in ["Content-Type: text/plain\r\n", "Content-Type: application/x-www-form-urlencoded\r\n", ""] {
        let r = s.post_with("/v1/completions", headers, b);
        assert_eq!(r.status, 415, "{headers:?}: {}", r.body);
    }
    assert_eq!(s.post_with("/v1/completions", "Content-Type: application/json; charset=utf-8\r\n", b).status, 200);
    let port = s.addr.port();
    let get = |host: &str| raw(s.addr, format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes());
    for good in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("LocalHost:{port}")] {
        assert_eq!(get(&good).status, 200, "{good}");
    }
    for bad in [format!("evil.example:{port}"), format!("127.0.0.1:{}", port.wrapping_add(1)), "127.0.0.1".into(), format!("[::1]:{port}"), format!("attacker.localhost:{port}")] {
        let r = get(&bad);
        assert_eq!(r.status, 403, "{bad}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "host_not_allowed");
    }
    // No Host at all (HTTP/1.0), and an absolute request target naming another host.
    assert_eq!(raw(s.addr, b"GET /health HTTP/1.0\r\n\r\n").status, 403);
    assert_eq!(raw(s.addr, format!("GET http://evil.example/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").as_bytes()).status, 403);
}

#[test]
fn with_api_keys_auth_decides_and_the_open_server_checks_are_off() {
    let key = "sk-test-0123456789abcdef";
    let s = start(ServerConfig { api_keys: vec!["another-key-0123456789".into(), key.into()], ..config() });
    let body = completion(1).to_string();
    let auth = format!("Authorization: Bearer {key}\r\n");
    assert_eq!(s.post_with("/v1/completions", &format!("{auth}Content-Type: text/plain\r\n"), body.as_bytes()).status, 200);
    for bad in ["Authorization: Bearer sk-test-0123456789abcdeF\r\n", "Authorization: Bearer sk-test-0123456789abcde\r\n", "Authorization: Bearer \r\n", ""] {
        assert_eq!(s.post_with("/v1/completions", &format!("{bad}Content-Type: application/json\r\n"), body.as_bytes()).status, 401, "{bad:?}");
    }
    let r = raw(s.addr, b"GET /health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn client_model_names_never_become_metric_labels() {
    let s = start(config());
    let evil = "no-such-model\"} 1\nglassbox_forged_total{x=\"";
    let r = s.post("/v1/completions", &json!({"model": evil, "prompt": "x"}));
    assert_eq!((r.status, r.param().as_str()), (404, "model"));
    assert_eq!(s.post("/v1/completions", &completion(1)).status, 200);
    let metrics = s.get("/metrics").body;
    assert!(!metrics.contains("no-such-model") && !metrics.contains("glassbox_forged_total"), "{metrics}");
    assert!(metrics.contains("glassbox_requests_total{model=\"\",endpoint=\"completions\",status=\"404\"} 1"), "{metrics}");
    assert!(metrics.contains(&format!("glassbox_requests_total{{model=\"{NAME}\",endpoint=\"completions\",status=\"200\"}} 1")), "{metrics}");
}

#[test]
fn tokenizing_runs_off_the_async_workers() {
    // One async worker: if a 4 MB prompt were tokenized on it, /health would wait for it.
    let s = start_with(config(), 1);
    let big = std::thread::spawn({
        let (addr, host) = (s.addr, s.host());
        move || {
            let body = json!({"model": NAME, "prompt": "word ".repeat(800_000), "max_tokens": 1}).to_string();
            let t = Instant::now();
            let r = raw(addr, format!("POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
            (r, t.elapsed())
        }
    });
    let mut worst = Duration::ZERO;
    while !big.is_finished() {
        let t = Instant::now();
        assert_eq!(s.get("/health").status, 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (r, took) = big.join().unwrap();
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (400, Some("context_length_exceeded")), "{}", r.body);
    eprintln!("a 4 MB prompt took {took:?} to refuse; /health answered within {worst:?} meanwhile");
    assert!(worst < Duration::from_millis(500) || worst < took / 4, "/health waited {worst:?} while a prompt was tokenized ({took:?})");
}

#[test]
fn unimplemented_fields_and_oversized_requests_get_400_naming_the_field() {
    let s = start(config());
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let chat = |extra: Value| {
        let mut b = json!({"model": NAME, "messages": msgs, "max_tokens": 1});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        s.post("/v1/chat/completions", &b)
    };
    // tools on a model whose template renders none, a tool choice without tools, the
    // deprecated functions API
    for (field, value) in [("tools", json!([{"type": "function", "function": {"name": "f", "parameters": {}}}])), ("tool_choice", json!("auto")), ("functions", json!([{"name": "f"}]))] {
        let r = chat(json!({ field: value }));
        assert_eq!((r.status, r.param()), (400, field.to_owned()), "{}", r.body);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains(field));
    }
    assert_eq!(chat(json!({"response_format": {"type": "json_object"}})).status, 200);
    // Nulls and "off" values are what some clients send by default.
    assert_eq!(chat(json!({"tools": null, "response_format": {"type": "text"}, "logit_bias": {}, "tool_choice": null})).status, 200);
    let r = s.post("/v1/chat/completions", &json!({"model": NAME, "messages": [{"role": "assistant", "content": "x", "tool_calls": [{"id": "1"}]}, {"role": "user", "content": "y"}]}));
    assert_eq!((r.status, r.param().as_str()), (400, "messages[0].tool_calls[0]"));
    let many: Vec<Value> = (0..1025).map(|_| json!({"role": "user", "content": "x"})).collect();
    let r = s.post("/v1/chat/completions", &json!({"model": NAME, "messages": many}));
    assert_eq!((r.status, r.param().as_str()), (400, "messages"));
    assert_eq!(chat(json!({"stop": ["a", "b", "c", "d", "e"]})).param(), "stop");
    assert_eq!(chat(json!({"stop": "x".repeat(257)})).param(), "stop");
    let r = s.post("/v1/completions", &json!({"model": NAME, "prompt": "x", "echo": true, "stream": true}));
    assert_eq!((r.status, r.param().as_str()), (400, "echo"));
}

#[test]
fn admission_429_comes_before_rendering_and_tokenizing() {
    let s = start(ServerConfig { parallel: 1, max_queue: 0, ..config() });
    let tokenized = format!("glassbox_tokenize_seconds_count{{model=\"{NAME}\"}}");
    let held = s.hold_a_slot();
    assert_eq!(s.metric(&tokenized), Some(1.0));
    // A 3 MB prompt, and a chat of 1000 messages, refused at once without any model work.
    let t = Instant::now();
    let r = s.post("/v1/completions", &json!({"model": NAME, "prompt": "word ".repeat(600_000), "max_tokens": 1}));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.head.contains("retry-after: 1"));
    let many: Vec<Value> = (0..1000).map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "hello there"})).collect();
    let r = s.post("/v1/chat/completions", &json!({"model": NAME, "messages": many}));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(t.elapsed() < Duration::from_secs(3), "429 took {:?}", t.elapsed());
    assert_eq!(s.metric(&tokenized), Some(1.0), "a refused request was tokenized");
    drop(held);
}

/// A LoRA adapter is its own model id over the base (listed with the base as parent, as vLLM
/// lists adapters); requests for the base and the adapter share the scheduler and its batches,
/// and each gets what it gets alone.
#[test]
fn an_adapter_is_its_own_model_id_and_shares_batches_with_the_base() {
    let adapters = vec![glassbox_server::AdapterSpec { name: "tuned".into(), path: glassbox_testdata::fixture("lora/smollm2-lora.gguf"), scale: 1.0 }];
    let s = start_models(config(), 2, adapters);
    let models = s.get("/v1/models").json();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [NAME, "tuned"]);
    assert_eq!(models["data"][1]["parent"], NAME);
    let ask = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 12, "temperature": 0});
    let answer = |r: Reply| r.json()["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let (base, tuned) = (answer(s.post("/v1/chat/completions", &ask(NAME))), answer(s.post("/v1/chat/completions", &ask("tuned"))));
    assert!(tuned.starts_with("The capital of France is Paris"), "{tuned:?}");
    assert_ne!(base, tuned);
    // Both at once (parallel 2: one batch), same answers.
    let (b2, t2) = std::thread::scope(|sc| {
        let b = sc.spawn(|| answer(s.post("/v1/chat/completions", &ask(NAME))));
        let t = sc.spawn(|| answer(s.post("/v1/chat/completions", &ask("tuned"))));
        (b.join().unwrap(), t.join().unwrap())
    });
    assert_eq!((b2, t2), (base, tuned));
}

/// `--adapter-dir`: adapters loaded and unloaded at run time (vLLM's endpoints), only with API
/// keys, only from files inside the directory; a loaded adapter answers what one given at start
/// answers; an unloaded one is gone.
#[test]
fn adapters_load_and_unload_at_run_time_behind_a_key_and_a_directory() {
    let dir = std::env::temp_dir().join(format!("glassbox-adapter-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(glassbox_testdata::fixture("lora/smollm2-lora.gguf"), dir.join("tuned.gguf")).unwrap();
    std::fs::write(dir.join("..").join(format!("outside-{}.gguf", std::process::id())), b"x").unwrap();
    // Without keys the server refuses to start.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let open = ServerConfig { adapter_dir: Some(dir.clone()), ..config() };
    let e = rt.block_on(glassbox_server::serve_on(listener, vec![], open, async {})).unwrap_err();
    assert!(e.to_string().contains("needs API keys"), "{e}");
    // Off by default: 404.
    let key = "sk-test-0123456789abcdef";
    let s = start(ServerConfig { api_keys: vec![key.into()], ..config() });
    let post = |s: &Server, path: &str, v: &Value| s.post_with(path, &format!("{}Content-Type: application/json\r\n", s.auth), v.to_string().as_bytes());
    assert_eq!(post(&s, "/v1/load_lora_adapter", &json!({"lora_name": "x", "lora_path": "tuned.gguf"})).status, 404);
    drop(s);
    let s = start(ServerConfig { api_keys: vec![key.into()], adapter_dir: Some(dir.clone()), ..config() });
    // Refused: no key, a path outside the directory, a missing file, a taken name, unknown fields.
    let body = json!({"lora_name": "tuned", "lora_path": "tuned.gguf"}).to_string();
    assert_eq!(s.post_with("/v1/load_lora_adapter", "Content-Type: application/json\r\n", body.as_bytes()).status, 401);
    let outside = format!("../outside-{}.gguf", std::process::id());
    let r = post(&s, "/v1/load_lora_adapter", &json!({"lora_name": "x", "lora_path": outside}));
    assert_eq!((r.status, r.param()), (400, "lora_path".to_string()), "{}", r.body);
    assert_eq!(post(&s, "/v1/load_lora_adapter", &json!({"lora_name": "x", "lora_path": "missing.gguf"})).status, 400);
    assert_eq!(post(&s, "/v1/load_lora_adapter", &json!({"lora_name": NAME, "lora_path": "tuned.gguf"})).status, 409);
    assert_eq!(post(&s, "/v1/load_lora_adapter", &json!({"lora_name": "x", "lora_path": "tuned.gguf", "bogus": 1})).param(), "bogus");
    // Loaded: listed with its parent, and it answers as the adapter does.
    let r = post(&s, "/v1/load_lora_adapter", &json!({"lora_name": "tuned", "lora_path": "tuned.gguf"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["parent"], NAME);
    let models = s.get("/v1/models").json();
    assert_eq!(models["data"][1]["id"], "tuned");
    let ask = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 12, "temperature": 0});
    let r = post(&s, "/v1/chat/completions", &ask("tuned"));
    let tuned = r.json()["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(tuned.starts_with("The capital of France is Paris"), "{tuned:?}");
    // Unloaded: gone from the list and from requests; a base cannot be unloaded.
    assert_eq!(post(&s, "/v1/unload_lora_adapter", &json!({"lora_name": NAME})).status, 400);
    let r = post(&s, "/v1/unload_lora_adapter", &json!({"lora_name": "tuned"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.get("/v1/models").json()["data"].as_array().unwrap().len(), 1);
    assert_eq!(post(&s, "/v1/chat/completions", &ask("tuned")).status, 404);
    assert_eq!(post(&s, "/v1/unload_lora_adapter", &json!({"lora_name": "tuned"})).status, 404);
    // And loaded again under the same name.
    assert_eq!(post(&s, "/v1/load_lora_adapter", &json!({"lora_name": "tuned", "lora_path": "tuned.gguf", "scale": 1.0})).status, 200);
    drop(s);
    let _ = std::fs::remove_file(dir.join("..").join(format!("outside-{}.gguf", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Named keys with policies: a model list (403 otherwise), requests per minute (429 with
/// Retry-After over it), usage per key in /metrics; plain keys keep working beside them.
#[test]
fn key_policies_limit_models_and_rates_per_key() {
    use sha2::Digest;
    let (limited, plain) = ("sk-limited-0123456789abcdef", "sk-plain-0123456789abcdef");
    let hex: String = sha2::Sha256::digest(limited.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let policies = glassbox_server::keys::parse_keys_toml(&format!("[[key]]\nname = \"team-a\"\nsha256 = \"{hex}\"\nmodels = [\"{NAME}\"]\nrequests_per_minute = 2\n")).unwrap();
    let s = start(ServerConfig { api_keys: vec![plain.into()], key_policies: policies, ..config() });
    let post = |key: &str, body: &Value| s.post_with("/v1/completions", &format!("Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"), body.to_string().as_bytes());
    let ok = completion(1);
    assert_eq!(post(limited, &ok).status, 200);
    let other = json!({"model": "tuned", "prompt": "x", "max_tokens": 1});
    // An unknown model is still a 404 for any key (and counts as a request); a known one outside
    // the list is 403 (below).
    assert_eq!(post(limited, &other).status, 404);
    let r = post(limited, &ok);
    assert_eq!(r.status, 429, "{}", r.body);
    let wait: u64 = r.head.lines().find_map(|l| l.strip_prefix("retry-after: ")).and_then(|v| v.trim().parse().ok()).unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert!(r.body.contains("team-a") && !r.body.contains(limited));
    assert_eq!(post(plain, &ok).status, 200, "other keys are not limited by it");
    let m = s.get("/metrics").body;
    assert!(m.contains("glassbox_key_requests_total{key=\"team-a\"} 2") && m.contains("glassbox_key_rate_limited_total{key=\"team-a\"} 1"), "{m}");
    assert!(m.contains("glassbox_key_requests_total{key=\"key-1\"} 1") && !m.contains(limited) && !m.contains(plain));
}

/// A key limited to one model gets 403 for another served model.
#[test]
fn a_key_may_only_use_its_models() {
    use sha2::Digest;
    let key = "sk-onlytuned-0123456789abcdef";
    let hex: String = sha2::Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let policies = glassbox_server::keys::parse_keys_toml(&format!("[[key]]\nname = \"tuned-only\"\nsha256 = \"{hex}\"\nmodels = [\"tuned\"]\n")).unwrap();
    let adapters = vec![glassbox_server::AdapterSpec { name: "tuned".into(), path: glassbox_testdata::fixture("lora/smollm2-lora.gguf"), scale: 1.0 }];
    let s = start_models(ServerConfig { key_policies: policies, ..config() }, 2, adapters);
    let post = |model: &str| s.post_with("/v1/completions", &format!("Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"), json!({"model": model, "prompt": "x", "max_tokens": 1}).to_string().as_bytes());
    assert_eq!(post("tuned").status, 200);
    let r = post(NAME);
    assert_eq!((r.status, r.param()), (403, "model".to_string()), "{}", r.body);
}

/// `--redact input,output`: the model sees placeholders (the prompt it counts is the redacted
/// one), streamed and unstreamed outputs agree through the output filter, and what the filter
/// cannot cover is refused by name.
#[test]
fn redaction_keeps_personal_data_from_the_model() {
    let deny = glassbox_redact::DenyList::new(&["Blue Falcon"]).unwrap();
    let rc = glassbox_server::redaction::RedactConfig { input: true, output: true, restore: true, entities: glassbox_redact::Entity::ALL.to_vec(), mode: glassbox_redact::Mode::Placeholder, deny: Some(std::sync::Arc::new(deny)) };
    let s = start(ServerConfig { redact: Some(rc), ..config() });
    let prompt = "Contact jane.doe@example.com or 4111 1111 1111 1111 now";
    // A deny-list term is a placeholder too.
    let r = s.post("/v1/completions", &json!({"model": NAME, "prompt": "Project blue falcon", "max_tokens": 1}));
    let seen = s.post("/tokenize", &json!({"model": NAME, "prompt": "Project [TERM_1]"})).json()["count"].as_u64().unwrap();
    assert_eq!(r.json()["usage"]["prompt_tokens"].as_u64(), Some(seen), "{}", r.body);
    let r = s.post("/v1/completions", &json!({"model": NAME, "prompt": prompt, "max_tokens": 8, "temperature": 0}));
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = s.post("/tokenize", &json!({"model": NAME, "prompt": "Contact [EMAIL_1] or [CARD_1] now"})).json()["count"].as_u64().unwrap();
    let raw = s.post("/tokenize", &json!({"model": NAME, "prompt": prompt})).json()["count"].as_u64().unwrap();
    assert_ne!(seen, raw);
    assert_eq!(r.json()["usage"]["prompt_tokens"].as_u64(), Some(seen), "the model saw the placeholders");
    let text = r.json()["choices"][0]["text"].as_str().unwrap().to_string();
    // Streamed: the same text, whatever the chunks.
    let body = json!({"model": NAME, "prompt": prompt, "max_tokens": 8, "temperature": 0, "stream": true}).to_string();
    let sse = s.post_with("/v1/completions", "Content-Type: application/json\r\n", body.as_bytes());
    let streamed: String = sse
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(streamed, text);
    for (body, param) in [
        (json!({"model": NAME, "prompt": prompt, "max_tokens": 1, "logprobs": 2}), "logprobs"),
        (json!({"model": NAME, "prompt": [1, 2, 3], "max_tokens": 1}), "prompt"),
        (json!({"model": NAME, "prompt": prompt, "max_tokens": 1, "echo": true}), "echo"),
    ] {
        let r = s.post("/v1/completions", &body);
        assert_eq!((r.status, r.param()), (400, param.to_string()), "{}", r.body);
    }
}

/// SIGTERM with a drain delay: /ready answers 503 at once while requests are still served (a
/// load balancer stops routing here first), an in-flight stream runs to its end, and only after
/// the delay are new connections refused.
#[test]
fn drain_flips_readiness_first_then_stops_accepting() {
    let mut s = start(ServerConfig { drain_delay: Duration::from_secs(2), shutdown_grace: Duration::from_secs(20), ..config() });
    let mut stream = s.hold_a_slot();
    let _ = s.stop.take().unwrap().send(());
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(1);
    let mut r = s.get("/ready");
    while r.status == 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        r = s.get("/ready");
    }
    assert_eq!((r.status, r.body.as_str()), (503, "draining"));
    let c = s.post("/v1/completions", &completion(2));
    assert_eq!(c.status, 200, "a request during the drain delay is served: {}", c.body);
    assert!(t0.elapsed() < Duration::from_secs(2), "the checks above ran inside the delay");
    // The in-flight stream finishes with its [DONE] event.
    let mut rest = String::new();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = stream.read_to_string(&mut rest);
    assert!(rest.contains("data: [DONE]"), "stream cut during the drain: {}", &rest[rest.len().saturating_sub(300)..]);
    // After the delay: no new connections.
    while t0.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = match TcpStream::connect_timeout(&s.addr, Duration::from_secs(1)) {
        Err(_) => true,
        Ok(mut c) => {
            let _ = write!(c, "GET /ready HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", s.host());
            closed_within(&c, Duration::from_secs(2))
        }
    };
    assert!(refused, "still accepting after the drain delay");
}

/// /metrics follows Prometheus's conventions (one HELP and TYPE per family, `glassbox_` prefix,
/// snake case, counters `_total`, histograms in base units), and reports KV-cache use while a
/// sequence runs and each request's decode speed.
#[test]
fn metrics_follow_prometheus_conventions() {
    let s = start(config());
    assert_eq!(s.post("/v1/completions", &completion(8)).status, 200);
    let stream = s.hold_a_slot();
    let m = s.get("/metrics").body;
    let mut families = std::collections::BTreeMap::new();
    for l in m.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut it = l.split_whitespace().skip(2);
        let (name, ty) = (it.next().unwrap(), it.next().unwrap());
        assert!(families.insert(name.to_owned(), ty.to_owned()).is_none(), "{name} declared twice");
        assert!(m.contains(&format!("# HELP {name} ")), "{name} has no HELP");
        assert!(name.starts_with("glassbox_") && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
        match ty {
            "counter" => assert!(name.ends_with("_total"), "counter {name}"),
            "gauge" => assert!(!name.ends_with("_total"), "gauge {name}"),
            "histogram" => assert!(name.ends_with("_seconds") || name.ends_with("_per_second"), "histogram {name}"),
            other => panic!("{name}: type {other}"),
        }
    }
    // Every sample belongs to a declared family.
    for l in m.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name = l.split(['{', ' ']).next().unwrap();
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).filter(|b| families.get(*b).is_some_and(|t| t == "histogram")).unwrap_or(name);
        assert!(families.contains_key(base), "sample {name} has no family");
    }
    let value = |m: &str, prefix: &str| m.lines().find_map(|l| l.strip_prefix(prefix).and_then(|v| v.trim().parse::<f64>().ok()));
    assert_eq!(value(&m, &format!("glassbox_decode_tokens_per_second_count{{model=\"{NAME}\"}}")), Some(1.0), "{m}");
    // The running stream's cache, as the scheduler publishes it after a step.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = s.get("/metrics").body;
        let (t, b) = (value(&m, &format!("glassbox_kv_cache_tokens{{model=\"{NAME}\"}}")), value(&m, &format!("glassbox_kv_cache_bytes{{model=\"{NAME}\"}}")));
        if t.unwrap() > 0.0 && b.unwrap() > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no KV-cache use reported while a sequence runs: {m}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stream);
    // The Grafana dashboard (deploy/grafana-dashboard.json) plots only metrics that exist
    // (per-key ones appear once keys are configured).
    let dash = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana-dashboard.json")).unwrap();
    let used: std::collections::BTreeSet<&str> = dash.match_indices("glassbox_").map(|(i, _)| &dash[i..]).map(|t| &t[..t.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(t.len())]).collect();
    for name in used {
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|x| name.strip_suffix(x)).unwrap_or(name);
        assert!(families.contains_key(base) || base.starts_with("glassbox_key_"), "the dashboard plots {name}, which /metrics does not have");
    }
}

/// `logit_bias` (OpenAI's bounds): −100 bans the greedy token, +100 forces a token at every
/// step; an id outside the vocabulary, a bias out of range or a key that is not an id is a 400
/// naming the field.
#[test]
fn logit_bias_bans_and_forces_tokens() {
    let s = start(config());
    let with = |max_tokens: usize, bias: Value| {
        let mut b = completion(max_tokens);
        b["logit_bias"] = bias;
        s.post("/v1/completions", &b)
    };
    let greedy = s.post("/v1/completions", &completion(1)).json()["choices"][0]["text"].as_str().unwrap().to_owned();
    let ids = s.post("/tokenize", &json!({"model": NAME, "prompt": greedy, "add_special_tokens": false})).json();
    let g = ids["tokens"][0].as_u64().unwrap();
    let banned = with(1, json!({g.to_string(): -100}));
    assert_eq!(banned.status, 200, "{}", banned.body);
    assert_ne!(banned.json()["choices"][0]["text"].as_str().unwrap(), greedy, "the banned token was chosen");
    let forced = with(3, json!({"42": 100}));
    let want = s.post("/detokenize", &json!({"model": NAME, "tokens": [42, 42, 42]})).json()["prompt"].as_str().unwrap().to_owned();
    assert_eq!(forced.json()["choices"][0]["text"].as_str().unwrap(), want);
    for bad in [json!({"49152": 1}), json!({"1": -101}), json!({"one": 1})] {
        let r = with(1, bad.clone());
        assert_eq!((r.status, r.param().as_str()), (400, "logit_bias"), "{bad}: {}", r.body);
    }
}
