//! `glassbox serve` as a process, on the real SmolLM2 file: what reaches the log (no `user`
//! unless --log-content, client text escaped), the connection-limit flags, and SIGTERM still
//! stopping new connections, letting a running stream finish, and exiting 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

struct Serve {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

fn store() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("glassbox-serve-hardening-trust-{}.toml", std::process::id()))
}

fn serve(extra: &[&str]) -> Serve {
    serve_model(&glassbox_testdata::model(glassbox_testdata::SMOLLM2), extra)
}

fn serve_model(model: &std::path::Path, extra: &[&str]) -> Serve {
    serve_via(Command::new(env!("CARGO_BIN_EXE_glassbox")), model, extra)
}

/// `glassbox serve` under a file-size limit of `kib` KiB (bash's `ulimit -f`).
fn serve_limited(kib: u32, extra: &[&str]) -> Serve {
    let mut c = Command::new("bash");
    c.args(["-c", &format!("ulimit -f {kib}; exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_glassbox")]);
    serve_via(c, &glassbox_testdata::model(glassbox_testdata::SMOLLM2), extra)
}

fn serve_via(mut cmd: Command, model: &std::path::Path, extra: &[&str]) -> Serve {
    let mut child = cmd
        .args(["serve", &model.display().to_string(), "--alias", "smollm2", "--port", "0", "-c", "512", "-t", "1", "--parallel", "2"])
        .args(extra)
        .env("GLASSBOX_TRUST_STORE", store())
        .env("GLASSBOX_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let (log, stderr) = (Arc::clone(&log), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // A plain line, or the message of a JSON one (--log-format json).
                const AT: &str = "glassbox serving on http://127.0.0.1:";
                if let Some(port) = line.find(AT).and_then(|i| line[i + AT.len()..].split('/').next()).and_then(|p| p.parse::<u16>().ok()) {
                    let _ = tx.send(port);
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        })
    };
    let port = rx.recv_timeout(Duration::from_secs(60)).expect("the server did not print its address");
    let s = Serve { child, port, log, reader: Some(reader) };
    let deadline = Instant::now() + Duration::from_secs(120);
    while s.request("GET", "/ready", "").0 != 200 {
        assert!(Instant::now() < deadline, "server did not become ready: {}", s.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

impl Serve {
    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        self.request_with(method, path, "", body)
    }

    fn request_with(&self, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return (0, String::new()) };
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let _ = write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\n{headers}Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", self.port, body.len());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
    }

    fn sigterm(&self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Wait for the process to exit; its status and the whole log.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "the server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const USER: &str = "user-marker-5b1f9c";

fn exchange(s: &Serve) {
    let chat = json!({"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "user": USER}).to_string();
    assert_eq!(s.request("POST", "/v1/chat/completions", &chat).0, 200);
    // A model name made to forge a log line and colour the terminal.
    let forged = json!({"model": "nope\nFORGED-LINE level=ERROR \u{1b}[31mred", "prompt": "x", "user": USER}).to_string();
    let (status, body) = s.request("POST", "/v1/completions", &forged);
    assert_eq!(status, 404, "{body}");
}

#[test]
fn user_is_logged_only_with_log_content_and_client_text_always_escaped() {
    let s = serve(&[]);
    exchange(&s);
    s.sigterm();
    let (status, log) = s.finish();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(!log.contains(USER), "`user` was logged without --log-content:\n{log}");
    assert!(log.lines().all(|l| !l.starts_with("FORGED-LINE")), "a client forged a log line:\n{log}");
    assert!(!log.contains('\u{1b}'), "a client's escape sequence reached the log:\n{log}");
    assert!(log.contains("\\nFORGED-LINE"), "the rejected request is logged, escaped:\n{log}");

    let s = serve(&["--log-content"]);
    exchange(&s);
    s.sigterm();
    let (status, log) = s.finish();
    assert!(status.success());
    assert!(log.contains(USER), "--log-content logs `user`:\n{log}");
    assert!(!log.contains('\u{1b}') && log.lines().all(|l| !l.starts_with("FORGED-LINE")), "{log}");
}

#[test]
fn sigterm_refuses_new_connections_lets_a_stream_finish_and_exits_0() {
    let s = serve(&["--shutdown-grace", "20"]);
    let body = json!({"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0, "stream": true}).to_string();
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(c, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", s.port, body.len()).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: {") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    s.sigterm();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", s.port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.read_to_end(&mut seen);
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("data: [DONE]"), "the running stream was cut: {text}");
    let (status, log) = s.finish();
    assert!(status.success(), "{status:?}\n{log}");
}

#[test]
fn connection_limit_flags_are_documented_and_checked() {
    let help = Command::new(env!("CARGO_BIN_EXE_glassbox")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--max-connections", "--header-timeout", "--body-timeout", "--send-timeout", "--log-content"] {
        assert!(help.contains(flag), "{flag} missing from serve --help");
    }
    let model = glassbox_testdata::model(glassbox_testdata::SMOLLM2).display().to_string();
    for bad in [["--max-connections", "0"], ["--header-timeout", "0"], ["--body-timeout", "x"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_glassbox")).args(["serve", &model, "--port", "0"]).args(bad).env("GLASSBOX_TRUST_STORE", store()).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// SmolLM2 with its chat template replaced by the render_template fuzzer's out-of-memory input
/// (minijinja materialises a 46.5 M-item sequence, ~2 GB). Written once per test process.
fn hostile_template_model() -> std::path::PathBuf {
    let src = glassbox_testdata::model(glassbox_testdata::SMOLLM2);
    let dst = std::env::temp_dir().join(format!("glassbox-hostile-template-{}.gguf", std::process::id()));
    let bytes = std::fs::read(&src).unwrap();
    let gguf = glassbox_gguf::Gguf::parse(&bytes, &Default::default()).unwrap();
    let mut w = glassbox_gguf::GgufWriter::from_gguf(&gguf, &bytes);
    let hostile = std::fs::read_to_string(glassbox_testdata::repo_root().join("crates/glassbox-template/tests/regressions/fuzz-oom-cycler-repeat.jinja")).unwrap();
    let slot = w.metadata.iter_mut().find(|(k, _)| k == "tokenizer.chat_template").expect("SmolLM2 has a chat template");
    slot.1 = glassbox_gguf::Value::String(hostile);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&dst).unwrap());
    w.write(&mut out).unwrap();
    out.flush().unwrap();
    dst
}

#[test]
fn hostile_chat_template_stops_its_worker_not_the_cli_or_the_server() {
    let model = hostile_template_model();
    let m = model.display().to_string();
    // The CLI: a clear error naming the cap, exit 1, quickly, no panic.
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_glassbox")).args(["run", &m, "--prompt", "Hi", "-n", "1"]).env("GLASSBOX_TRUST_STORE", store()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("chat template ran out of its 512 MiB memory cap"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(60), "took {:?}", t.elapsed());
    // The server: the chat request fails with that error, twice (a fresh worker each time), and
    // the server keeps serving requests that need no template.
    let s = serve_model(&model, &[]);
    let chat = json!({"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}).to_string();
    for _ in 0..2 {
        let (status, body) = s.request("POST", "/v1/chat/completions", &chat);
        assert!((400..600).contains(&status), "{status} {body}");
        assert!(body.contains("memory cap"), "{body}");
    }
    let plain = json!({"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 2}).to_string();
    assert_eq!(s.request("POST", "/v1/completions", &plain).0, 200);
    assert_eq!(s.request("GET", "/health", "").0, 200);
    drop(s);
    let _ = std::fs::remove_file(&model);
}

#[test]
fn serve_with_lookup_or_a_draft_model_gives_the_same_completions() {
    let body = json!({"model": "smollm2", "prompt": "Repeat: red, green, blue, red, green, blue, red, green, blue, red,", "max_tokens": 24, "temperature": 0}).to_string();
    let seeded = json!({"model": "smollm2", "prompt": "a b c d a b c d a b c d a", "max_tokens": 24, "temperature": 0.8, "seed": 9}).to_string();
    let plain = serve(&[]);
    let want: Vec<(u16, String)> = [&body, &seeded].iter().map(|b| plain.request("POST", "/v1/completions", b)).collect();
    drop(plain);
    // Prompt lookup, and a draft model (the model itself: every greedy draft is accepted).
    let model = glassbox_testdata::model(glassbox_testdata::SMOLLM2).display().to_string();
    for extra in [&["--lookup", "--draft-max", "6"][..], &["--draft", &model, "--draft-max", "4"][..]] {
        let spec = serve(extra);
        for (b, (status, w)) in [&body, &seeded].iter().zip(&want) {
            assert_eq!(*status, 200, "{w}");
            let (s, got) = spec.request("POST", "/v1/completions", b);
            assert_eq!(s, 200, "{extra:?}: {got}");
            let text = |j: &str| serde_json::from_str::<serde_json::Value>(j).unwrap()["choices"][0]["text"].clone();
            assert_eq!(text(&got), text(w), "{extra:?}");
        }
    }
    // A draft with another vocabulary is refused before serving, naming it.
    let gemma = glassbox_testdata::model(glassbox_testdata::GEMMA3).display().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .args(["serve", &model, "--port", "0", "-t", "1", "--draft", &gemma])
        .env("GLASSBOX_TRUST_STORE", store())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("vocabularies must match"), "{err}");
}

fn audit_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("glassbox-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn verify_log(path: &std::path::Path) -> (i32, serde_json::Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_glassbox")).args(["audit-log", "verify", &path.display().to_string(), "--json"]).output().unwrap();
    (o.status.code().unwrap_or(-1), serde_json::from_slice(&o.stdout).unwrap_or_else(|_| json!({"stderr": String::from_utf8_lossy(&o.stderr)})))
}

/// `--audit-log`: a record per request naming the key (never the key), the client, the model
/// and its SHA-256, tokens and finish reasons, content only with --log-content and then
/// redacted; `kill -9` under load leaves a log that verifies up to its last complete record,
/// and a restarted server continues the chain.
#[test]
fn the_audit_log_records_each_request_and_survives_kill_9_under_load() {
    let dir = audit_dir("kill9");
    let (log, keys) = (dir.join("audit.jsonl"), dir.join("keys.txt"));
    let key = "sk-audit-0123456789abcdef";
    std::fs::write(&keys, format!("sk-other-0123456789abcdef\n{key}\n")).unwrap();
    let args = ["--audit-log", log.to_str().unwrap(), "--api-key-file", keys.to_str().unwrap(), "--log-content"];
    let s = serve(&args);
    let auth = format!("Authorization: Bearer {key}\r\n");
    let chat = json!({"model": "smollm2", "messages": [{"role": "user", "content": "Write to jane.doe@example.com about it"}], "max_tokens": 3}).to_string();
    assert_eq!(s.request_with("POST", "/v1/chat/completions", &auth, &chat).0, 200);
    let bad = json!({"model": "smollm2", "prompt": "x", "suffix": "y"}).to_string();
    assert_eq!(s.request_with("POST", "/v1/completions", &auth, &bad).0, 400);
    // Load: 6 clients streaming, then kill -9 while they run.
    let port = s.port;
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let auth = auth.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let body = json!({"model": "smollm2", "prompt": format!("Story {i}:"), "max_tokens": 16, "stream": true}).to_string();
                    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else { return };
                    let _ = write!(c, "POST /v1/completions HTTP/1.1\r\nHost: localhost:{port}\r\n{auth}Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    let mut out = String::new();
                    if c.read_to_string(&mut out).is_err() || out.is_empty() {
                        return;
                    }
                }
            })
        })
        .collect();
    let t = Instant::now();
    while std::fs::read_to_string(&log).map(|l| l.lines().count()).unwrap_or(0) < 8 {
        assert!(t.elapsed() < Duration::from_secs(120), "no records under load");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill").args(["-KILL", &s.child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    clients.into_iter().for_each(|c| {
        let _ = c.join();
    });
    drop(s);
    let (code, v) = verify_log(&log);
    assert_eq!(code, 0, "{v}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(key) && !text.contains("sk-other"), "an API key reached the log");
    assert!(!text.contains("jane.doe@example.com") && text.contains("<EMAIL_ADDRESS>"), "content is logged redacted");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let e = &first["event"];
    assert_eq!((e["key"].as_str(), e["status"].as_u64(), e["model"].as_str()), (Some("key-2"), Some(200), Some("smollm2")));
    assert_eq!(e["model_sha256"].as_str().map(str::len), Some(64));
    assert!(e["client"].as_str().unwrap().starts_with("127.0.0.1:") && e["finish_reasons"][0] == "length" && e["completion_tokens"] == 3);
    assert_eq!(e["content_redactions"]["EMAIL_ADDRESS"], 1);
    let second: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!((second["event"]["status"].as_u64(), second["event"]["error"].as_str().is_some()), (Some(400), true));
    assert_eq!((e["decision"].as_str(), second["event"]["decision"].as_str()), (Some("served"), Some("rejected")));
    assert!(e["policy"]["key"].is_object(), "{e}");
    // Restarted: the chain continues (an incomplete last line, if the kill left one, is cut and
    // the cut recorded).
    let records = v["records"].as_u64().unwrap();
    let s = serve(&args);
    assert_eq!(s.request_with("POST", "/v1/chat/completions", &auth, &chat).0, 200);
    s.sigterm();
    let (status, out) = s.finish();
    assert!(status.success() && out.contains("audit log closed at seq"), "{out}");
    let (code, v) = verify_log(&log);
    assert_eq!(code, 0, "{v}");
    assert!(v["records"].as_u64().unwrap() > records && v["partial_tail_bytes"] == 0, "{v}");
    // An edit is caught.
    let edited = std::fs::read_to_string(&log).unwrap().replacen("\"status\":200", "\"status\":201", 1);
    std::fs::write(&log, edited).unwrap();
    assert_eq!(verify_log(&log).0, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A log that cannot be written (here: the file-size limit reached) turns requests away with
/// 503 and Retry-After instead of running them unlogged; what was written still verifies.
#[test]
fn a_log_that_cannot_be_written_turns_requests_away_with_503() {
    let dir = audit_dir("full");
    let log = dir.join("audit.jsonl");
    let s = serve_limited(2, &["--audit-log", log.to_str().unwrap()]);
    let chat = json!({"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}).to_string();
    let mut refused = None;
    for i in 0..40 {
        let (status, body) = s.request("POST", "/v1/chat/completions", &chat);
        if status == 503 {
            refused = Some((i, body));
            break;
        }
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(30));
    }
    let (i, body) = refused.expect("the full log never refused a request");
    assert!(i > 0 && body.contains("audit_log_unavailable"), "{i}: {body}");
    drop(s);
    let (code, v) = verify_log(&log);
    assert_eq!(code, 0, "{v}");
    assert!(v["records"].as_u64().unwrap() >= i as u64 - 1, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Settings from `--config serve.toml` (here the log format, the queue and a drain delay), and
/// `--log-format json`: every line on stderr — lifecycle and request records — is one JSON
/// object a log collector can parse, with level, target and message.
#[test]
fn config_file_settings_and_json_logs() {
    let dir = std::env::temp_dir().join(format!("glassbox-serve-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("serve.toml");
    std::fs::write(&cfg, "log-format = \"json\"\nmax_queue = 3\ndrain-delay = 1\n").unwrap();
    let s = serve(&["--config", &cfg.display().to_string()]);
    exchange(&s);
    s.sigterm();
    let (status, log) = s.finish();
    std::fs::remove_dir_all(&dir).ok();
    assert!(status.success(), "{log}");
    let mut messages = Vec::new();
    for line in log.lines() {
        let j: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(j["level"].is_string() && j["target"].is_string(), "{line}");
        messages.push(j["fields"]["message"].as_str().unwrap_or_default().to_owned());
    }
    for want in ["ready", "completed", "rejected"] {
        assert!(messages.iter().any(|m| m == want), "no {want:?} event: {messages:?}");
    }
    assert!(messages.iter().any(|m| m.starts_with("draining")), "the drain delay from the file: {messages:?}");
}
