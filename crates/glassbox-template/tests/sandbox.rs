//! Renders in worker processes: templates that would exhaust memory or time in process stop
//! only their worker, with an error naming the cap, and the next render works. This test binary
//! is its own worker (`__template-worker`), as the `glassbox` binary is.

use std::time::{Duration, Instant};

use glassbox_template::sandbox::{Sandbox, SandboxConfig};
use glassbox_template::{ChatTemplate, Error, Limits, Message, RenderOptions};

const WORKER_ARG: &str = "__template-worker";

fn main() {
    if std::env::args().nth(1).as_deref() == Some(WORKER_ARG) {
        glassbox_template::sandbox::worker_main();
    }
    let tests: [(&str, fn()); 5] = [
        ("renders_like_in_process", renders_like_in_process),
        ("fuzzer_oom_is_a_memory_cap_error_and_the_next_render_works", fuzzer_oom_is_a_memory_cap_error_and_the_next_render_works),
        ("doubling_concatenation_hits_the_cap", doubling_concatenation_hits_the_cap),
        ("slow_render_hits_the_deadline", slow_render_hits_the_deadline),
        ("template_errors_come_back_as_template_errors", template_errors_come_back_as_template_errors),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut ran = 0;
    for (name, f) in tests {
        if filter.as_deref().is_some_and(|p| !name.contains(p)) {
            continue;
        }
        let t = Instant::now();
        f();
        ran += 1;
        println!("test {name} ... ok ({:.2} s)", t.elapsed().as_secs_f64());
    }
    println!("test result: ok. {ran} passed");
}

fn sandbox(memory_mib: u64, timeout: Duration) -> Sandbox {
    let mut cfg = SandboxConfig::current_exe(WORKER_ARG).expect("current exe");
    cfg.memory_bytes = memory_mib << 20;
    cfg.timeout = timeout;
    cfg.max_workers = 2;
    Sandbox::new(cfg)
}

fn msgs() -> Vec<Message> {
    vec![Message::new("system", "be brief"), Message::new("user", "hi ünïcödé")]
}

fn opts() -> RenderOptions {
    RenderOptions { add_generation_prompt: true, bos_token: "<s>".into(), eos_token: "</s>".into(), now: Some((2026, 11, 30, 12, 0, 0)), tools: None }
}

const CHATML: &str = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}{{ strftime_now('%Y-%m-%d') }}";

fn renders_like_in_process() {
    let sb = sandbox(512, Duration::from_secs(10));
    let t = ChatTemplate::new(CHATML, Limits::default()).unwrap();
    let here = t.render_in_process(&msgs(), &opts()).unwrap();
    for _ in 0..3 {
        assert_eq!(sb.render(CHATML, &Limits::default(), &msgs(), &opts()).unwrap(), here);
    }
    assert!(here.ends_with("assistant\n2026-11-30"), "{here}");
}

fn assert_memory_cap(r: Result<String, Error>) {
    match r {
        Err(Error::Sandbox(m)) => assert!(m.contains("memory cap"), "{m}"),
        other => panic!("expected the memory cap, got {other:?}"),
    }
}

/// The fuzzer's out-of-memory input (render_template, 2026-11-30): minijinja materialises a
/// 46.5 M-item sequence (~2 GB) that no in-process budget sees.
fn fuzzer_oom_is_a_memory_cap_error_and_the_next_render_works() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/regressions/fuzz-oom-cycler-repeat.jinja")).unwrap();
    let sb = sandbox(256, Duration::from_secs(30));
    let t = Instant::now();
    assert_memory_cap(sb.render(&src, &Limits::default(), &msgs(), &opts()));
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?}", t.elapsed());
    assert_eq!(sb.render("ok {{ messages|length }}", &Limits::default(), &msgs(), &opts()).unwrap(), "ok 2");
}

fn doubling_concatenation_hits_the_cap() {
    let mut src = String::from("{% set a = 'x' * 50000000 %}");
    for _ in 0..8 {
        src.push_str("{% set a = a ~ a %}");
    }
    src.push_str("{{ a|length }}");
    let sb = sandbox(256, Duration::from_secs(30));
    assert_memory_cap(sb.render(&src, &Limits::default(), &msgs(), &opts()));
}

fn slow_render_hits_the_deadline() {
    // Sorting 100 M lazily repeated items is one instruction for the fuel counter.
    let src = "{{ ([3, 1, 2] * 33000000)|sort|length }}";
    let sb = sandbox(4096, Duration::from_millis(300));
    match sb.render(src, &Limits::default(), &msgs(), &opts()) {
        Err(Error::Sandbox(m)) => assert!(m.contains("longer than 0.3 s") || m.contains("memory cap"), "{m}"),
        other => panic!("expected a deadline error, got {other:?}"),
    }
    assert_eq!(sb.render("{{ 1 + 1 }}", &Limits::default(), &msgs(), &opts()).unwrap(), "2");
}

fn template_errors_come_back_as_template_errors() {
    let sb = sandbox(512, Duration::from_secs(10));
    match sb.render("{{ raise_exception('no system role') }}", &Limits::default(), &msgs(), &opts()) {
        Err(Error::Raised(m)) => assert!(m.starts_with("no system role"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(sb.render("{% if %}", &Limits::default(), &msgs(), &opts()), Err(Error::Syntax(_))));
    let small = Limits { max_output_bytes: 10, ..Limits::default() };
    assert!(matches!(sb.render("{{ 'y' * 100 }}", &small, &msgs(), &opts()), Err(Error::OutputTooLarge(10))));
}
