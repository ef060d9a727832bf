//! Memory and time on adversarial inputs: peak heap allocated while scanning (counted by this
//! binary's global allocator; a reallocation counts old and new blocks together) must stay within
//! 2 × the input's size + 64 MiB, and each scan must end within seconds. The table printed
//! (`cargo test --test memory -- --nocapture`) is what SECURITY.md records.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::adversarial::{self, verdict_error};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(n: usize) {
    let now = CURRENT.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grow(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        grow(new);
        let q = unsafe { System.realloc(p, l, new) };
        CURRENT.fetch_sub(if q.is_null() { new } else { l.size() }, Relaxed);
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

const MIB: usize = 1 << 20;

#[test]
fn adversarial_inputs_stay_within_memory_and_time_bounds() {
    let mut failures = Vec::new();
    let mut worst: Option<(f64, String)> = None;
    eprintln!("{:<64} {:>12} {:>12} {:>9}  verdict", "input", "size", "peak heap", "time");
    for c in adversarial::all(1) {
        let base = CURRENT.load(Relaxed);
        PEAK.store(base, Relaxed);
        let t = Instant::now();
        let r = glassbox_scan::scan_bytes(&c.data, "adv");
        let took = t.elapsed();
        let peak = PEAK.load(Relaxed) - base;
        let bound = 2 * c.data.len() + 64 * MIB;
        let ratio = peak as f64 / bound as f64;
        let line = format!("{:<64} {:>12} {:>12} {:>8.2}s  {}", c.name, c.data.len(), peak, took.as_secs_f64(), if r.has_high() { "high" } else { "not high" });
        eprintln!("{line}");
        if worst.as_ref().is_none_or(|(w, _)| ratio > *w) {
            worst = Some((ratio, line.clone()));
        }
        if peak > bound {
            failures.push(format!("{}: peak {peak} > bound {bound}", c.name));
        }
        if took > Duration::from_secs(10) {
            failures.push(format!("{}: took {took:?}", c.name));
        }
        failures.extend(verdict_error(&c, &r));
    }
    if let Some((ratio, line)) = worst {
        eprintln!("worst peak / bound = {ratio:.3}: {line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
