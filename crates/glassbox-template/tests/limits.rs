//! Hostile templates cannot exhaust memory: output and every `{{ … }}` emission are bounded
//! while rendering (not after), amplifying filters and string methods are refused before they
//! allocate. A counting allocator records this test binary's peak heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use glassbox_template::{ChatTemplate, Error, Limits, Message, RenderOptions};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` was allocated by `alloc` above with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Renders `src` with default limits; returns the result, the time taken and the heap peak
/// above what was live before.
fn render(src: &str) -> (Result<String, Error>, Duration, usize) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = ChatTemplate::new(src, Limits::default()).expect("parses");
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let r = t.render(&[Message::new("user", "hi")], &RenderOptions::default());
    (r, start.elapsed(), PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn assert_refused(src: &str) {
    let (r, took, peak) = render(src);
    assert!(matches!(r, Err(Error::OutputTooLarge(_))), "{src}: {r:?}");
    assert!(took < Duration::from_secs(5), "{src}: took {took:?}");
    assert!(peak < 512 << 20, "{src}: heap peak {} MiB", peak >> 20);
    eprintln!("{src}: refused in {took:?}, heap peak {} MiB", peak >> 20);
}

#[test]
fn regression_output_bounded_while_rendering_not_after() {
    // Today's code renders all 200 × 100 MB = 20 GB before checking the size. (minijinja folds
    // constant expressions when it compiles, so the literal case allocates before rendering;
    // the loop-variable case allocates while rendering.)
    assert_refused("{% for i in range(200) %}{{ 'x' * 100000000 }}{% endfor %}");
    assert_refused("{% for i in range(200) %}{{ ('x' ~ (i % 10)) * 50000000 }}{% endfor %}");
}

#[test]
fn captured_blocks_and_macros_are_bounded() {
    assert_refused("{% set s %}{% for i in range(200) %}{{ 'x' * 100000000 }}{% endfor %}{% endset %}ok");
    assert_refused("{% filter upper %}{% for i in range(200) %}{{ 'x' * 100000000 }}{% endfor %}{% endfilter %}");
    assert_refused("{% macro m() %}{% for i in range(200) %}{{ 'x' * 100000000 }}{% endfor %}{% endmacro %}{% set y = m() %}");
    assert_refused("{% set s %}{% for i in range(200) %}{{ ('x' ~ (i % 10)) * 50000000 }}{% endfor %}{% endset %}ok");
    assert_refused("{% macro m(c) %}{% for i in range(200) %}{{ c * 100000000 }}{% endfor %}{% endmacro %}{{ m(messages[0].content[:1]) }}");
}

#[test]
fn amplifying_filters_and_methods_are_refused_before_they_allocate() {
    assert_refused("{{ 'a'|indent(100000000000) }}");
    assert_refused("{{ 'a\\n'|indent(width=100000000000) }}");
    assert_refused("{{ (['y' * 1000000] * 100000)|join }}");
    assert_refused("{% set s = 'a' * 10000000 %}{{ s|replace('a', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb') }}");
    assert_refused("{{ '{:>1000000000}'.format('a') }}");
    assert_refused("{{ '%1000000000d'|format(1) }}");
    assert_refused("{{ ','.join(['y' * 1000000] * 100000) }}");
    // Found by the fuzzer (slow unit, 777 s): joining 20 M undefined items by an attribute.
    assert_refused("{{ ([joane000] * 2000* 10000)|join('', ')0') }}");
    assert_refused("{{ ([0] * 2000000)|join }}");
    assert_refused("{% set s = 'a' * 10000000 %}{{ s.replace('a', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb') }}");
}

#[test]
fn ordinary_uses_of_the_checked_filters_still_work() {
    let ok = |src: &str, want: &str| {
        let (r, _, _) = render(src);
        assert_eq!(r.unwrap(), want, "{src}");
    };
    ok("{{ 'a\\nb'|indent(2) }}", "a\n  b");
    ok("{{ 'a\\nb'|indent(width=2, first=true) }}", "  a\n  b");
    ok("{{ ['a', 'b']|join(', ') }}", "a, b");
    ok("{{ 'abc'|replace('b', 'xx') }}", "axxc");
    ok("{{ '{:>3}'.format('a') }}", "  a");
    ok("{{ '%03d'|format(7) }}", "007");
    ok("{{ '-'.join(['x', 'y']) }}", "x-y");
    ok("{{ 'a b'.replace(' ', '_') }}", "a_b");
    ok("{% set s %}{{ 'x' * 3 }}{% endset %}[{{ s }}]", "[xxx]");
}

/// Fuzzer crash (2026-11-30): minijinja's `str.format` parser sliced a string inside a
/// multi-byte character and panicked; a render must fail with an error instead.
#[test]
fn regression_fuzz_format_char_boundary_panic_is_an_error() {
    let src = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/regressions/fuzz-format-char-boundary.jinja")).unwrap();
    let src = String::from_utf8_lossy(&src);
    let (src, _) = src.split_once('\0').unwrap_or((&src, ""));
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(t) = ChatTemplate::new(src, Limits::default()) {
        let r = t.render(&[Message::new("user", "hello")], &RenderOptions::default());
        assert!(r.is_err() || r.is_ok(), "no panic");
    }
    let t = ChatTemplate::new("{{ '{\u{616}}'.format('a') }}", Limits::default()).unwrap();
    let r = t.render(&[], &RenderOptions::default());
    assert!(r.is_err(), "{r:?}");
}

/// The fuzzer's input (render_template, 2026-11-30): `tojson(indent=20000000000)` asked our
/// own filter for a 20 GB indent string; now refused before allocating. Large JSON output is
/// bounded while it is written.
#[test]
fn regression_fuzz_tojson_huge_indent_is_refused() {
    let raw = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/regressions/fuzz-oom-tojson-indent.jinja")).unwrap();
    let src = raw.split_once('\0').map_or(raw.as_str(), |(s, _)| s);
    let (r, took, peak) = render(src);
    match r {
        Err(Error::Render(m)) => assert!(m.contains("tojson: indent 20000000000 is over 256"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(took < Duration::from_secs(1) && peak < 16 << 20, "{took:?}, {peak} bytes");
    let (r, _, peak) = render("{{ (range(100000)|list) | tojson(indent=200) }}");
    assert!(matches!(r, Err(Error::OutputTooLarge(_))), "{r:?}");
    assert!(peak < 128 << 20, "peak {peak}");
    let (r, _, _) = render("{{ {'a': [1, 2]} | tojson(indent=2) }}");
    assert_eq!(r.unwrap(), "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
}
