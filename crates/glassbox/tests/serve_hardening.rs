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
    let mut child = Command::new(env!("CARGO_BIN_EXE_glassbox"))
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
                if let Some(port) = line.strip_prefix("glassbox serving on http://127.0.0.1:").and_then(|r| r.split('/').next()).and_then(|p| p.parse::<u16>().ok()) {
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
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return (0, String::new()) };
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let _ = write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", self.port, body.len());
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
