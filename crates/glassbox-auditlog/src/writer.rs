//! Writing the log on its own thread, with capacity reserved per request.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::{Error, Result, line, parse_line};

#[derive(Clone, Debug)]
pub struct Options {
    /// Rotate the active file once it would grow past this many bytes.
    pub max_bytes: u64,
    /// Records reserved and not yet written, at most (then [`AuditLog::reserve`] refuses).
    pub capacity: usize,
    /// `fsync` after each batch of records (off: flushed to the OS only).
    pub sync: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { max_bytes: 64 << 20, capacity: 4096, sync: true }
    }
}

/// Why a permit was refused: answer the request with 503.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Unavailable {
    #[error("the audit log has failed: {0}")]
    Failed(String),
    #[error("the audit log is behind ({0} records waiting)")]
    Full(usize),
}

struct Shared {
    reserved: AtomicUsize,
    capacity: usize,
    failed: Mutex<Option<String>>,
    written: AtomicU64,
    head: Mutex<(Option<u64>, String)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

enum Msg {
    Record(serde_json::Value),
}

/// An open log (cheap to clone; the last clone dropped, or [`AuditLog::close`], finishes the
/// writes and stops the thread).
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
    tx: SyncSender<Msg>,
}

/// Capacity for one record, reserved before a request runs.
pub struct Permit {
    log: AuditLog,
    used: bool,
}

impl Permit {
    /// Hand the record to the writer (never blocks: its slot was reserved).
    pub fn write(mut self, event: serde_json::Value) {
        self.used = true;
        if self.log.tx.try_send(Msg::Record(event)).is_err() {
            // Only if the writer thread is gone: the failure is already recorded.
            self.log.shared.reserved.fetch_sub(1, Ordering::SeqCst);
            self.log.fail("the writer thread stopped".into());
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.used {
            self.log.shared.reserved.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// The chain's head in the active file: (last seq, last hash), after cutting an incomplete last
/// line (a crash mid-write) off — reported as the number of bytes cut. The predecessors' heads
/// come from [`crate::verify`].
fn recover(path: &Path) -> Result<(Option<u64>, String, u64)> {
    let files = crate::files_of(path)?;
    let v = crate::verify(&files, true)?;
    if v.partial_tail > 0 {
        let len = std::fs::metadata(path).map_err(io(path))?.len();
        let f = OpenOptions::new().write(true).open(path).map_err(io(path))?;
        f.set_len(len - v.partial_tail).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
    }
    Ok((v.last_seq, v.head, v.partial_tail))
}

impl AuditLog {
    /// Open (or create) the log whose active file is `path`, verifying what is there first:
    /// a broken chain is refused (nothing is appended to a log that no longer verifies); an
    /// incomplete last line is cut and the cut recorded as the first new record.
    pub fn open(path: &Path, opts: Options) -> Result<AuditLog> {
        if let Ok(m) = std::fs::metadata(path)
            && !m.is_file()
        {
            return Err(Error::Io { path: path.display().to_string(), source: std::io::Error::other("not a regular file") });
        }
        let (last, head, cut) = recover(path)?;
        let mut file = OpenOptions::new().create(true).append(true).open(path).map_err(io(path))?;
        let size = file.seek(SeekFrom::End(0)).map_err(io(path))?;
        let capacity = opts.capacity.max(1);
        let (tx, rx) = sync_channel(capacity + 1);
        let shared = Arc::new(Shared {
            reserved: AtomicUsize::new(0),
            capacity,
            failed: Mutex::new(None),
            written: AtomicU64::new(0),
            head: Mutex::new((last, head.clone())),
            thread: Mutex::new(None),
        });
        let state = State { path: path.to_path_buf(), file: Some(file.try_clone().map_err(io(path))?), size, next: last.map_or(0, |s| s + 1), head, opts };
        drop(file);
        let sh = Arc::clone(&shared);
        let handle = std::thread::Builder::new().name("glassbox-auditlog".into()).spawn(move || state.run(rx, &sh)).map_err(io(path))?;
        *shared.thread.lock().unwrap() = Some(handle);
        let log = AuditLog { shared, tx };
        if cut > 0 {
            let p = log.reserve().map_err(|e| Error::Io { path: path.display().to_string(), source: std::io::Error::other(e.to_string()) })?;
            p.write(serde_json::json!({"type": "recovered", "cut_bytes": cut, "reason": "incomplete last record (the writer stopped mid-line)"}));
        }
        Ok(log)
    }

    /// Reserve capacity for one record, or say why the log cannot take it.
    pub fn reserve(&self) -> std::result::Result<Permit, Unavailable> {
        if let Some(e) = self.shared.failed.lock().unwrap().clone() {
            return Err(Unavailable::Failed(e));
        }
        let n = self.shared.reserved.fetch_add(1, Ordering::SeqCst);
        if n >= self.shared.capacity {
            self.shared.reserved.fetch_sub(1, Ordering::SeqCst);
            return Err(Unavailable::Full(n));
        }
        Ok(Permit { log: self.clone(), used: false })
    }

    /// Records written so far by this process.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::SeqCst)
    }

    /// (last seq, its hash) as written so far.
    pub fn head(&self) -> (Option<u64>, String) {
        self.shared.head.lock().unwrap().clone()
    }

    /// The failure that stopped the log, if any.
    pub fn failure(&self) -> Option<String> {
        self.shared.failed.lock().unwrap().clone()
    }

    fn fail(&self, msg: String) {
        self.shared.failed.lock().unwrap().get_or_insert(msg);
    }

    /// Write everything handed over so far and stop the thread (other clones then fail).
    pub fn close(self) {
        let shared = Arc::clone(&self.shared);
        drop(self);
        // The thread ends once every sender is gone; clones held elsewhere keep it running.
        if Arc::strong_count(&shared) <= 2
            && let Some(h) = shared.thread.lock().unwrap().take()
        {
            let _ = h.join();
        }
    }
}

/// Tests: make writes to files whose path contains "failing" fail, as a full disk would.
#[cfg(test)]
pub(crate) static FAIL_WRITES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct State {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    next: u64,
    head: String,
    opts: Options,
}

impl State {
    fn run(mut self, rx: Receiver<Msg>, sh: &Shared) {
        let mut buf = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while let Ok(m) = rx.try_recv() {
                batch.push(m);
            }
            let n = batch.len();
            let result = self.write_batch(batch, &mut buf, sh);
            sh.reserved.fetch_sub(n, Ordering::SeqCst);
            if let Err(e) = result {
                sh.failed.lock().unwrap().get_or_insert(e.to_string());
                self.file = None;
            }
        }
    }

    fn write_batch(&mut self, batch: Vec<Msg>, buf: &mut Vec<u8>, sh: &Shared) -> Result<()> {
        if sh.failed.lock().unwrap().is_some() {
            return Ok(()); // already failed: requests get 503; nothing is half-written after
        }
        buf.clear();
        let start = (self.next, self.head.clone());
        for Msg::Record(event) in batch {
            let time = jiff::Timestamp::now().to_string();
            let (l, hash) = line(self.next, &self.head, &time, &event);
            if self.size + (buf.len() + l.len() + 1) as u64 > self.opts.max_bytes && self.size + buf.len() as u64 > 0 {
                self.flush(buf)?;
                self.rotate()?;
            }
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
            self.next += 1;
            self.head = hash;
        }
        let r = self.flush(buf);
        if r.is_err() {
            // Nothing after `start` is known to be on disk.
            (self.next, self.head) = start;
        } else {
            sh.written.fetch_add(self.next - start.0, Ordering::SeqCst);
            *sh.head.lock().unwrap() = (self.next.checked_sub(1), self.head.clone());
        }
        r
    }

    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        #[cfg(test)]
        if FAIL_WRITES.load(Ordering::SeqCst) && path.to_string_lossy().contains("failing") {
            return Err(Error::Io { path: path.display().to_string(), source: std::io::Error::other("no space left on device (simulated)") });
        }
        let f = self.file.as_mut().ok_or_else(|| Error::Io { path: path.display().to_string(), source: std::io::Error::other("no open file") })?;
        f.write_all(buf).map_err(io(&path))?;
        if self.opts.sync {
            f.sync_data().map_err(io(&path))?;
        }
        self.size += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// The active file becomes `FILE.<seq of its first record>`; a new one continues the chain.
    fn rotate(&mut self) -> Result<()> {
        let data = std::fs::read(&self.path).map_err(io(&self.path))?;
        let first = data.split(|&b| b == b'\n').next().and_then(|l| parse_line(l).ok()).map_or(self.next, |(s, _, _)| s);
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(format!(".{first}"));
        let rotated = PathBuf::from(rotated);
        if rotated.exists() {
            return Err(Error::Io { path: rotated.display().to_string(), source: std::io::Error::other("exists already; not overwriting a rotated log") });
        }
        std::fs::rename(&self.path, &rotated).map_err(io(&self.path))?;
        let f = OpenOptions::new().create_new(true).append(true).open(&self.path).map_err(io(&self.path))?;
        if self.opts.sync
            && let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.file = Some(f);
        self.size = 0;
        Ok(())
    }
}
