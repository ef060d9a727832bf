//! A small fork-join pool tuned for many short parallel sections (one per matmul): workers
//! spin briefly between sections and fall back to sleeping on a condvar, so dispatch costs
//! well under a microsecond while decoding and nothing while idle.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    epoch: AtomicU64,
    job: Mutex<Option<SendJob>>,
    remaining: AtomicUsize,
    panicked: AtomicBool,
    quit: AtomicBool,
    sleeping: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

#[derive(Clone, Copy)]
struct SendJob(Job);
// SAFETY: the pointee is `Sync` (so `&` to it may cross threads) and outlives every use:
// `run` does not return before every worker has finished with it.
unsafe impl Send for SendJob {}

/// A fork-join pool: [`ThreadPool::run`] runs a closure on every thread and waits.
///
/// One parallel section at a time: the pool is `Send` but not `Sync`, so it cannot be shared
/// by reference between threads, nor captured by the (`Sync`) closure it runs; and `run`
/// panics if entered again while a section is in progress (e.g. via a thread-local pool).
///
/// ```
/// let pool = glassbox_kernels::ThreadPool::new(2);
/// // Moving it to another thread is fine.
/// std::thread::spawn(move || pool.run(&|_tid| {})).join().unwrap();
/// ```
///
/// ```compile_fail
/// // Not `Sync`: two threads cannot enter the same pool.
/// let pool = glassbox_kernels::ThreadPool::new(2);
/// std::thread::scope(|s| {
///     s.spawn(|| pool.run(&|_tid| {}));
///     pool.run(&|_tid| {});
/// });
/// ```
///
/// ```compile_fail
/// // The job must be `Sync`, so it cannot capture the pool to nest a section.
/// let pool = glassbox_kernels::ThreadPool::new(2);
/// pool.run(&|_tid| pool.run(&|_| {}));
/// ```
pub struct ThreadPool {
    n_threads: usize,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    /// Set while `run` is in progress. Being a `Cell`, it also makes the pool `!Sync`.
    busy: Cell<bool>,
}

// A panic in a section leaves the pool consistent (the busy flag is cleared while unwinding,
// after every worker has finished), so a `&ThreadPool` may cross `catch_unwind`.
impl std::panic::RefUnwindSafe for ThreadPool {}

/// Clears the busy flag when `run` ends, also by unwinding.
struct Busy<'a>(&'a Cell<bool>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Busy-wait this many iterations before yielding the CPU on each check (keeps dispatch fast
/// when cores are free, and lets other work run when the machine is oversubscribed).
const SPIN_BEFORE_YIELD: u32 = 2_000;
/// Total iterations (spins + yields) before a worker sleeps on the condvar.
const SPIN_ITERS: u32 = 100_000;

impl ThreadPool {
    /// A pool of `n_threads` (≥ 1) threads in total; the caller's thread is thread 0.
    pub fn new(n_threads: usize) -> ThreadPool {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            remaining: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            quit: AtomicBool::new(false),
            sleeping: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let handles = (1..n_threads)
            .map(|tid| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("glassbox-worker-{tid}"))
                    .spawn(move || worker(s, tid))
                    .expect("spawn worker thread")
            })
            .collect();
        ThreadPool { n_threads, shared, handles, busy: Cell::new(false) }
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Run `f(tid)` on every thread (tid in 0..n_threads) and wait for all to finish.
    /// A panic in any thread is propagated to the caller.
    ///
    /// Panics if called while this pool is already running a section (re-entry from `f`).
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        assert!(!self.busy.replace(true), "ThreadPool::run re-entered while a parallel section is running");
        let _busy = Busy(&self.busy);
        if self.n_threads == 1 {
            f(0);
            return;
        }
        let s = &*self.shared;
        // SAFETY: only erases the lifetime of `f` (same fat-pointer layout). Workers dereference
        // the pointer only between the epoch bump below and their decrement of `remaining`,
        // and this function does not return (or unwind) before `remaining` is zero; the busy
        // flag above guarantees no second section overwrites `job`/`remaining` meanwhile.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f) };
        *s.job.lock().unwrap() = Some(SendJob(job));
        s.remaining.store(self.n_threads - 1, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleeping.load(Ordering::SeqCst) > 0 {
            // No unwinding from here until the workers are done (they may be using `f`): a
            // poisoned lock is still a lock (nothing it guards can be left inconsistent).
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let main = catch_unwind(AssertUnwindSafe(|| f(0)));
        let mut spins = 0u32;
        while s.remaining.load(Ordering::Acquire) != 0 {
            spins += 1;
            if spins < SPIN_BEFORE_YIELD {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        *s.job.lock().unwrap() = None;
        if let Err(p) = main {
            std::panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a glassbox worker thread panicked");
        }
    }
}

fn worker(s: Arc<Shared>, tid: usize) {
    let mut seen = 0u64;
    loop {
        let mut spins = 0u32;
        loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            if s.quit.load(Ordering::Acquire) {
                return;
            }
            spins += 1;
            if spins < SPIN_BEFORE_YIELD {
                std::hint::spin_loop();
                continue;
            }
            if spins < SPIN_ITERS {
                std::thread::yield_now();
                continue;
            }
            let g = s.lock.lock().unwrap();
            s.sleeping.fetch_add(1, Ordering::SeqCst);
            if s.epoch.load(Ordering::SeqCst) == seen && !s.quit.load(Ordering::SeqCst) {
                let _g = s.wake.wait(g).unwrap();
            }
            s.sleeping.fetch_sub(1, Ordering::SeqCst);
            spins = 0;
        }
        let job = s.job.lock().unwrap().expect("job set before epoch bump");
        // SAFETY: `run` set this job before bumping the epoch we just observed and keeps the
        // closure alive until this worker decrements `remaining` below.
        let f = unsafe { &*job.0 };
        if catch_unwind(AssertUnwindSafe(|| f(tid))).is_err() {
            s.panicked.store(true, Ordering::SeqCst);
        }
        s.remaining.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap();
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
