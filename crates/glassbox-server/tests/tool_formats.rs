//! Tool calls in each format a chat template can teach, end to end through the server: a tiny
//! random-weight llama rebuilt with a real vocabulary (llama.cpp's `ggml-vocab-*.gguf`) and a
//! real chat template (Llama 3.1, Mistral Nemo, Qwen2.5: `tests/fixtures/templates/renders.json`).
//! The weights are noise, so every call comes from the grammar: `tool_choice` required and
//! named must give calls of the allowed functions with arguments that satisfy their schemas, in
//! the template's format, whole and streamed; tool results must render back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use glassbox_server::{ModelSpec, ServerConfig};
use serde_json::{Value, json};

#[path = "../../glassbox-testdata/shared/vocab_model.rs"]
mod vocab_model;

/// `tiny-llama31.gguf` with `ggml-vocab-{vocab}.gguf`'s tokenizer and the chat template
/// `template` from the rendering fixture.
fn tiny_with(vocab: &str, template: &str) -> PathBuf {
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture("templates/renders.json")).unwrap()).unwrap();
    let dst = std::env::temp_dir().join(format!("glassbox-tool-formats-{}-{vocab}.gguf", std::process::id()));
    vocab_model::with_vocab("tiny/tiny-llama31.gguf", vocab, fx["templates"][template].as_str(), &dst)
}

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    rt: tokio::runtime::Runtime,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        std::thread::sleep(Duration::from_millis(100));
        let _ = &self.rt;
    }
}

fn start(model: PathBuf) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut cfg = ServerConfig { parallel: 2, max_queue: 4, shutdown_grace: Duration::from_secs(1), ..ServerConfig::default() };
    cfg.engine.threads = 1;
    cfg.engine.ctx_size = 2048;
    let models = vec![ModelSpec { path: model, name: "tiny".into(), steering: None, adapters: vec![] }];
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        glassbox_server::serve_on(listener, models, cfg, async {
            let _ = rx.await;
        })
        .await
    });
    let s = Server { addr, stop: Some(tx), rt };
    let deadline = Instant::now() + Duration::from_secs(120);
    while post_raw(s.addr, "GET", "/ready", "").0 != 200 {
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

fn post_raw(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let _ = write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", addr.port(), body.len());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

fn chat(s: &Server, body: Value) -> Value {
    let (status, text) = post_raw(s.addr, "POST", "/v1/chat/completions", &body.to_string());
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "strict": true,
         "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "description": "Time in a zone",
         "parameters": {"type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"], "additionalProperties": false}}},
    ])
}

/// Calls of a reply, each checked against its function's schema.
fn checked_calls(msg: &Value) -> Vec<(String, Value)> {
    let calls = msg["tool_calls"].as_array().unwrap_or_else(|| panic!("no tool_calls in {msg}"));
    assert!(!calls.is_empty());
    calls
        .iter()
        .map(|c| {
            let id = c["id"].as_str().unwrap();
            assert!(id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
            assert_eq!(c["type"], "function");
            let name = c["function"]["name"].as_str().unwrap().to_owned();
            let args: Value = serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
            match name.as_str() {
                "get_weather" => {
                    assert!(args["city"].as_str().is_some_and(|c| c.chars().count() <= 12) && ["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()), "{args}");
                    assert_eq!(args.as_object().unwrap().len(), 2);
                }
                "get_time" => assert!(["UTC", "CET"].contains(&args["zone"].as_str().unwrap()), "{args}"),
                other => panic!("call of an unknown function {other}"),
            }
            (name, args)
        })
        .collect()
}

fn streamed_calls(s: &Server, mut body: Value) -> (Vec<(String, Value)>, String) {
    body["stream"] = json!(true);
    let (status, text) = post_raw(s.addr, "POST", "/v1/chat/completions", &body.to_string());
    assert_eq!(status, 200, "{text}");
    let mut acc: Vec<(String, String)> = Vec::new();
    let mut finish = String::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|l| *l != "[DONE]") {
        let v: Value = serde_json::from_str(line).unwrap();
        for ch in v["choices"].as_array().unwrap() {
            if let Some(f) = ch["finish_reason"].as_str() {
                finish = f.to_owned();
            }
            for tc in ch["delta"]["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().unwrap() as usize;
                if acc.len() <= i {
                    acc.resize(i + 1, Default::default());
                }
                acc[i].0.push_str(tc["function"]["name"].as_str().unwrap_or(""));
                acc[i].1.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
    }
    (acc.into_iter().map(|(n, a)| (n, serde_json::from_str(&a).unwrap())).collect(), finish)
}

fn check_format(vocab: &str, template: &str) {
    let model = tiny_with(vocab, template);
    let s = start(model.clone());
    let user = json!([{"role": "user", "content": "What is the weather in Paris?"}]);
    // One call per reply: noise weights would otherwise keep calling until max_tokens (parallel
    // calls are tested on Qwen2.5-Coder in tests/openai/test_structured.py).
    let base = json!({"model": "tiny", "messages": user, "tools": tools(), "temperature": 0, "max_tokens": 200, "parallel_tool_calls": false});
    for choice in [json!("required"), json!({"type": "function", "function": {"name": "get_time"}})] {
        let mut b = base.clone();
        b["tool_choice"] = choice.clone();
        let r = chat(&s, b.clone());
        let ch = &r["choices"][0];
        assert_eq!(ch["finish_reason"], "tool_calls", "{template}: {ch}");
        assert!(ch["message"]["content"].is_null(), "{ch}");
        let calls = checked_calls(&ch["message"]);
        if choice.is_object() {
            assert!(calls.iter().all(|(n, _)| n == "get_time") && calls.len() == 1, "{calls:?}");
        }
        let (streamed, finish) = streamed_calls(&s, b);
        assert_eq!((streamed, finish.as_str()), (calls.clone(), "tool_calls"), "{template}: stream");
        // The call and a tool result go back through the template.
        let mut msgs = user.as_array().unwrap().clone();
        msgs.push(ch["message"].clone());
        for c in ch["message"]["tool_calls"].as_array().unwrap() {
            msgs.push(json!({"role": "tool", "tool_call_id": c["id"], "content": "{\"ok\": true}"}));
        }
        let mut b = base.clone();
        b["messages"] = Value::Array(msgs);
        b["max_tokens"] = json!(4);
        b["tool_choice"] = json!("none");
        let r = chat(&s, b);
        assert!(r["choices"][0]["message"]["tool_calls"].is_null());
    }
    // Streamed calls carry no per-token log-probabilities: refused, not silently dropped.
    let mut b = base.clone();
    b["stream"] = json!(true);
    b["logprobs"] = json!(true);
    let (status, text) = post_raw(s.addr, "POST", "/v1/chat/completions", &b.to_string());
    assert!(status == 400 && text.contains("logprobs"), "{status} {text}");
    drop(s);
    let _ = std::fs::remove_file(model);
}

#[test]
fn llama3_json_calls() {
    check_format("llama-bpe", "meta-llama-Llama-3.1-8B-Instruct");
}

#[test]
fn mistral_tool_calls() {
    check_format("llama-spm", "mistralai-Mistral-Nemo-Instruct-2407");
}

#[test]
fn hermes_tool_calls() {
    check_format("qwen2", "Qwen-Qwen2.5-7B-Instruct");
}
