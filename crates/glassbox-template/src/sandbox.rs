//! Chat templates rendered in separate worker processes with a hard memory cap and a deadline.
//!
//! A chat template is code that came with the model. The in-process bounds (fuel, output and
//! emission budgets, capped filters) stop the attacks we know; a worker process bounds the rest.
//! The template engine has values it builds without asking us — the fuzzer found a
//! `cycler([…] * 46510003)` that materialises a 100 M-item sequence (~2 GB), and repeated `~`
//! concatenation doubles a string per instruction — so no list of refused operations is complete.
//! Here the kernel enforces the bound: a worker's address space is capped (`RLIMIT_AS`), a render
//! that outgrows it kills only that worker, and a render past its deadline is killed too. The
//! caller gets [`Error::Sandbox`] naming which, and the next render starts a fresh worker.
//!
//! The worker is the calling program itself, started with an argument the program dispatches
//! to [`worker_main`] before doing anything else (the `glassbox` binary does this first thing in
//! `main`). Workers get no environment, `/` as working directory, no stderr, only a pipe pair.
//! Frames are a 4-byte little-endian length and a JSON body, both ways, with size limits.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{ChatTemplate, Error, Limits, Message, RenderOptions};

/// How workers are started and bounded.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The program to start; it must call [`worker_main`] when given `args`.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Address-space cap of each worker, in bytes (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Longest one render may take, from request written to answer read.
    pub timeout: Duration,
    /// Most workers alive at once; renders beyond this wait for a free one.
    pub max_workers: usize,
}

impl SandboxConfig {
    /// Workers that run this very executable with `arg` (e.g. `__template-worker`).
    pub fn current_exe(arg: &str) -> std::io::Result<SandboxConfig> {
        Ok(SandboxConfig {
            program: std::env::current_exe()?,
            args: vec![arg.into()],
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(10),
            max_workers: 4,
        })
    }
}

static INSTALLED: OnceLock<Sandbox> = OnceLock::new();

/// Route every [`ChatTemplate::render`] in this process through worker processes. Call once,
/// early; a second call is refused (`false`) and the first configuration stays.
pub fn install(cfg: SandboxConfig) -> bool {
    INSTALLED.set(Sandbox::new(cfg)).is_ok()
}

pub(crate) fn installed() -> Option<&'static Sandbox> {
    INSTALLED.get()
}

/// Request frames carry the template source, so they may be as large as the source limit allows
/// plus the messages; answers carry at most the output limit, JSON-escaped.
const MAX_REQUEST_FRAME: usize = 256 << 20;
const FRAME_SLACK: usize = 64 << 10;

/// What the worker reads.
#[derive(Deserialize)]
struct Request {
    source: String,
    limits: Limits,
    messages: Vec<Message>,
    opts: RenderOptions,
}

/// The same fields, borrowed: what the caller writes, without copying the messages first.
#[derive(Serialize)]
struct RequestRef<'a> {
    source: &'a str,
    limits: &'a Limits,
    messages: &'a [Message],
    opts: &'a RenderOptions,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Ok(String),
    Err(Error),
}

/// A pool of workers under one configuration.
pub struct Sandbox {
    cfg: SandboxConfig,
    idle: Mutex<Pool>,
    freed: Condvar,
}

struct Pool {
    workers: Vec<Worker>,
    alive: usize,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Sandbox {
    pub fn new(cfg: SandboxConfig) -> Sandbox {
        Sandbox { cfg, idle: Mutex::new(Pool { workers: Vec::new(), alive: 0 }), freed: Condvar::new() }
    }

    /// Render `source` with `limits` in a worker. Template errors come back as they would in
    /// process; a worker that dies, overruns its deadline or answers nonsense is killed and
    /// reported as [`Error::Sandbox`].
    pub fn render(&self, source: &str, limits: &Limits, messages: &[Message], opts: &RenderOptions) -> Result<String, Error> {
        let req = RequestRef { source, limits, messages, opts };
        let body = serde_json::to_vec(&req).map_err(|e| Error::Sandbox(format!("cannot encode the render request: {e}")))?;
        if body.len() > MAX_REQUEST_FRAME {
            return Err(Error::Sandbox(format!("render request is {} bytes, over the {MAX_REQUEST_FRAME}-byte limit", body.len())));
        }
        let max_reply = limits.max_output_bytes.saturating_mul(6).saturating_add(FRAME_SLACK);
        let mut worker = self.checkout()?;
        match worker.call(&body, max_reply, self.cfg.timeout) {
            Ok(reply) => {
                self.checkin(worker);
                match reply {
                    Reply::Ok(s) => Ok(s),
                    Reply::Err(e) => Err(e),
                }
            }
            Err(failure) => {
                let why = worker.stop(failure, &self.cfg);
                self.retire();
                Err(Error::Sandbox(why))
            }
        }
    }

    fn checkout(&self) -> Result<Worker, Error> {
        let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(w) = pool.workers.pop() {
                return Ok(w);
            }
            if pool.alive < self.cfg.max_workers.max(1) {
                pool.alive += 1;
                drop(pool);
                return Worker::spawn(&self.cfg).inspect_err(|_| self.retire());
            }
            pool = self.freed.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn checkin(&self, w: Worker) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).workers.push(w);
        self.freed.notify_one();
    }

    fn retire(&self) {
        let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        pool.alive = pool.alive.saturating_sub(1);
        drop(pool);
        self.freed.notify_one();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let pool = self.idle.get_mut().unwrap_or_else(|e| e.into_inner());
        for mut w in pool.workers.drain(..) {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

/// Why a call to a worker failed, before the worker is stopped and examined.
enum Failure {
    Timeout,
    Io(std::io::Error),
    Protocol(String),
}

impl Worker {
    fn spawn(cfg: &SandboxConfig) -> Result<Worker, Error> {
        let mut cmd = Command::new(&cfg.program);
        cmd.args(&cfg.args).env_clear().current_dir("/").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let cap = cfg.memory_bytes as libc::rlim_t;
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // `setrlimit`, which is async-signal-safe; it touches no memory of the parent's state.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: cap, rlim_max: cap };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| Error::Sandbox(format!("cannot start template worker {}: {e}", cfg.program.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Sandbox("template worker has no pipes".into()));
        };
        Ok(Worker { child, stdin, stdout })
    }

    fn call(&mut self, body: &[u8], max_reply: usize, timeout: Duration) -> Result<Reply, Failure> {
        let deadline = Instant::now() + timeout;
        let len = u32::try_from(body.len()).map_err(|_| Failure::Protocol("request too large".into()))?;
        self.stdin.write_all(&len.to_le_bytes()).map_err(Failure::Io)?;
        self.stdin.write_all(body).map_err(Failure::Io)?;
        self.stdin.flush().map_err(Failure::Io)?;
        let mut head = [0u8; 4];
        read_exact_by(&mut self.stdout, &mut head, deadline)?;
        let n = u32::from_le_bytes(head) as usize;
        if n > max_reply {
            return Err(Failure::Protocol(format!("worker answered {n} bytes, over the {max_reply}-byte limit")));
        }
        let mut buf = vec![0u8; n];
        read_exact_by(&mut self.stdout, &mut buf, deadline)?;
        serde_json::from_slice(&buf).map_err(|e| Failure::Protocol(format!("worker answer does not parse: {e}")))
    }

    /// Kill the worker and say why it failed, in words a user can act on.
    fn stop(mut self, failure: Failure, cfg: &SandboxConfig) -> String {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        let mib = cfg.memory_bytes >> 20;
        match failure {
            Failure::Timeout => format!("chat template took longer than {:.1} s to render; its worker was stopped", cfg.timeout.as_secs_f64()),
            Failure::Protocol(m) => format!("chat template worker misbehaved ({m}); it was stopped"),
            Failure::Io(e) => match status.and_then(|s| s.signal()) {
                // Allocation failure under RLIMIT_AS aborts the worker (Rust's alloc error handler).
                Some(libc::SIGABRT) | Some(libc::SIGSEGV) | Some(libc::SIGKILL) => {
                    format!("chat template ran out of its {mib} MiB memory cap while rendering; its worker was stopped")
                }
                Some(sig) => format!("chat template worker died from signal {sig} while rendering"),
                None => format!("chat template worker stopped while rendering ({e}; exit {})", status.map_or("unknown".into(), |s| s.to_string())),
            },
        }
    }
}

fn read_exact_by(r: &mut ChildStdout, mut buf: &mut [u8], deadline: Instant) -> Result<(), Failure> {
    while !buf.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Timeout);
        }
        let mut pfd = libc::pollfd { fd: r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Failure::Io(e));
        }
        if ready == 0 {
            continue;
        }
        match r.read(buf) {
            Ok(0) => return Err(Failure::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(k) => buf = &mut buf[k..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Io(e)),
        }
    }
    Ok(())
}

/// The worker side: read requests from stdin, render each in process, answer on stdout, until
/// stdin closes. Never returns. The program calls this before anything else when started with
/// the worker argument.
pub fn worker_main() -> ! {
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut cached: Option<(String, Limits, Result<ChatTemplate, Error>)> = None;
    loop {
        let mut head = [0u8; 4];
        if stdin.read_exact(&mut head).is_err() {
            std::process::exit(0);
        }
        let n = u32::from_le_bytes(head) as usize;
        if n > MAX_REQUEST_FRAME {
            std::process::exit(2);
        }
        let mut body = vec![0u8; n];
        if stdin.read_exact(&mut body).is_err() {
            std::process::exit(0);
        }
        let reply = match serde_json::from_slice::<Request>(&body) {
            Err(e) => Reply::Err(Error::Sandbox(format!("worker cannot parse the request: {e}"))),
            Ok(req) => {
                let hit = matches!(&cached, Some((s, l, _)) if *s == req.source && *l == req.limits);
                if !hit {
                    let t = ChatTemplate::new_in_process(&req.source, req.limits.clone());
                    cached = Some((req.source, req.limits, t));
                }
                match &cached {
                    Some((_, _, Ok(t))) => match t.render_in_process(&req.messages, &req.opts) {
                        Ok(s) => Reply::Ok(s),
                        Err(e) => Reply::Err(e),
                    },
                    Some((_, _, Err(e))) => Reply::Err(e.clone()),
                    None => Reply::Err(Error::Sandbox("worker lost its template".into())),
                }
            }
        };
        let out = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"Err\":{\"Sandbox\":\"worker cannot encode its answer\"}}".to_vec());
        let Ok(len) = u32::try_from(out.len()) else { std::process::exit(3) };
        if stdout.write_all(&len.to_le_bytes()).and_then(|()| stdout.write_all(&out)).and_then(|()| stdout.flush()).is_err() {
            std::process::exit(0);
        }
    }
}
