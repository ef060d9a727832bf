//! Prometheus text-format metrics: request counts by status, token counters, queue depth,
//! running sequences and KV-cache use (read from each scheduler), latency and decode-speed
//! histograms, and connection counts.
//!
//! Model labels only ever name configured models: callers pass `""` for a request whose model
//! is unknown, so a client cannot create label values (or series) at will.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket bounds of the latency histograms (seconds) and of the decode-speed one (tokens/s).
const SECONDS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
const TOKENS_PER_SECOND: [f64; 14] = [1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 500.0, 1000.0];

struct Histogram {
    bounds: &'static [f64; 14],
    counts: [u64; 14],
    sum: f64,
    n: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram { bounds: &SECONDS, counts: [0; 14], sum: 0.0, n: 0 }
    }
}

impl Histogram {
    fn rate() -> Histogram {
        Histogram { bounds: &TOKENS_PER_SECOND, ..Histogram::default() }
    }
    fn observe(&mut self, v: f64) {
        for (c, &b) in self.counts.iter_mut().zip(self.bounds) {
            if v <= b {
                *c += 1;
            }
        }
        self.sum += v;
        self.n += 1;
    }
    fn render(&self, out: &mut String, name: &str, model: &str) {
        for (c, b) in self.counts.iter().zip(self.bounds) {
            let _ = writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"+Inf\"}} {}", self.n);
        let _ = writeln!(out, "{name}_sum{{model=\"{model}\"}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{model=\"{model}\"}} {}", self.n);
    }
}

/// Name, type, help, and how to read it from a scheduler.
type Gauge = (&'static str, &'static str, &'static str, fn(&glassbox_engine::SchedulerStats) -> usize);

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    ttft: BTreeMap<String, Histogram>,
    itl: BTreeMap<String, Histogram>,
    duration: BTreeMap<String, Histogram>,
    tokenize: BTreeMap<String, Histogram>,
    decode_rate: BTreeMap<String, Histogram>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    evicted: AtomicU64,
    refused: AtomicU64,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn request(&self, model: &str, endpoint: &str, status: u16) {
        let mut g = self.inner.lock().unwrap();
        *g.requests.entry((escape(model), endpoint.to_owned(), status)).or_default() += 1;
    }
    pub fn ttft(&self, model: &str, secs: f64) {
        self.inner.lock().unwrap().ttft.entry(escape(model)).or_default().observe(secs);
    }
    pub fn itl(&self, model: &str, secs: f64) {
        self.inner.lock().unwrap().itl.entry(escape(model)).or_default().observe(secs);
    }
    pub fn duration(&self, model: &str, secs: f64) {
        self.inner.lock().unwrap().duration.entry(escape(model)).or_default().observe(secs);
    }
    /// A request's decode speed: tokens after the first over the time since the first.
    pub fn decode_rate(&self, model: &str, tokens_per_second: f64) {
        self.inner.lock().unwrap().decode_rate.entry(escape(model)).or_insert_with(Histogram::rate).observe(tokens_per_second);
    }
    /// Time spent rendering the chat template and tokenizing one request (off the runtime).
    pub fn tokenize(&self, model: &str, secs: f64) {
        self.inner.lock().unwrap().tokenize.entry(escape(model)).or_default().observe(secs);
    }
    pub fn conn_evicted(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }
    pub fn conn_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, models: &[(String, std::sync::Arc<glassbox_engine::SchedulerStats>)], open_connections: usize) -> String {
        let g = self.inner.lock().unwrap();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP glassbox_open_connections Open HTTP connections.\n# TYPE glassbox_open_connections gauge\nglassbox_open_connections {open_connections}");
        let _ = writeln!(out, "# HELP glassbox_connections_evicted_total Idle or stalled connections closed to make room for a new one.\n# TYPE glassbox_connections_evicted_total counter\nglassbox_connections_evicted_total {}", self.evicted.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP glassbox_connections_refused_total Connections refused (503) because every slot was running a request.\n# TYPE glassbox_connections_refused_total counter\nglassbox_connections_refused_total {}", self.refused.load(Ordering::Relaxed));
        out.push_str("# HELP glassbox_requests_total HTTP requests by model, endpoint and status.\n# TYPE glassbox_requests_total counter\n");
        for ((m, e, s), n) in &g.requests {
            let _ = writeln!(out, "glassbox_requests_total{{model=\"{m}\",endpoint=\"{e}\",status=\"{s}\"}} {n}");
        }
        let gauges: [Gauge; 6] = [
            ("glassbox_queue_depth", "gauge", "Requests waiting for a batch slot.", |s| s.waiting.load(Ordering::Relaxed)),
            ("glassbox_running_sequences", "gauge", "Sequences in the running batch.", |s| s.running.load(Ordering::Relaxed)),
            ("glassbox_kv_cache_tokens", "gauge", "Tokens held in the running sequences' KV caches.", |s| s.kv_tokens.load(Ordering::Relaxed)),
            ("glassbox_kv_cache_bytes", "gauge", "Bytes allocated to the running sequences' KV caches.", |s| s.kv_bytes.load(Ordering::Relaxed)),
            ("glassbox_prompt_tokens_total", "counter", "Prompt tokens processed.", |s| s.prompt_tokens.load(Ordering::Relaxed)),
            ("glassbox_generated_tokens_total", "counter", "Tokens generated.", |s| s.generated_tokens.load(Ordering::Relaxed)),
        ];
        for (name, ty, help, get) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {ty}");
            for (m, s) in models {
                let _ = writeln!(out, "{name}{{model=\"{}\"}} {}", escape(m), get(s));
            }
        }
        for (name, help, h) in [
            ("glassbox_time_to_first_token_seconds", "Time from request to first generated token.", &g.ttft),
            ("glassbox_inter_token_latency_seconds", "Time between consecutive generated tokens.", &g.itl),
            ("glassbox_request_duration_seconds", "Time from request to last token.", &g.duration),
            ("glassbox_tokenize_seconds", "Time spent rendering and tokenizing a prompt, after admission.", &g.tokenize),
            ("glassbox_decode_tokens_per_second", "A request's decode speed (tokens after the first per second since the first).", &g.decode_rate),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (m, hist) in h {
                hist.render(&mut out, name, m);
            }
        }
        out
    }
}

/// Usage per API key (by name — names are checked to be label-safe when the keys file is read).
pub(crate) fn render_keys(out: &mut String, keys: &[std::sync::Arc<crate::keys::KeyState>]) {
    if keys.is_empty() {
        return;
    }
    for (name, help, get) in [
        ("glassbox_key_requests_total", "Requests admitted per API key.", (|k: &crate::keys::KeyState| k.requests.load(Ordering::Relaxed)) as fn(&crate::keys::KeyState) -> u64),
        ("glassbox_key_tokens_total", "Prompt and completion tokens per API key.", |k| k.tokens.load(Ordering::Relaxed)),
        ("glassbox_key_rate_limited_total", "Requests refused (429) by an API key's own limits.", |k| k.limited.load(Ordering::Relaxed)),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for k in keys {
            let _ = writeln!(out, "{name}{{key=\"{}\"}} {}", escape(&k.policy.name), get(k));
        }
    }
}
