//! File trust: nothing of a model file is used before its SHA-256 matches a pin.
//!
//! The file is read once into anonymous memory owned by this process and the digest is computed
//! over that copy — the very bytes the parser and inference will read. Nothing is read from the
//! file system after that: overwriting or truncating the file later changes nothing in a
//! running model (a shared file mapping would re-read released pages from disk, and fault with
//! SIGBUS past a truncation). Pins come from a lockfile (`glassbox.lock`, sorted TOML, paths
//! relative to it), from an explicit `--sha256`, or from the user's trust-on-first-use store
//! (pinned and announced on first use, refused if the file later changes). Every source that
//! pins the file must agree; `locked` mode refuses unpinned files.
//!
//! This crate never parses model formats and never touches the network.

mod certs;
mod digest;
mod lockfile;
pub mod manifest;
pub mod signing;
pub mod sigstore;
mod store;

use std::path::{Path, PathBuf};

pub use digest::{hash_files, sha256_hex, sha256_of};
pub use lockfile::{Lockfile, Pin};
pub use store::TrustStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: sha256 mismatch: pinned {expected} ({source_of_pin}), file has {actual}; refusing to use it")]
    Mismatch { path: PathBuf, expected: String, actual: String, source_of_pin: String },
    #[error("{path}: size mismatch: pinned {expected} bytes ({source_of_pin}), file has {actual}; refusing to use it")]
    SizeMismatch { path: PathBuf, expected: u64, actual: u64, source_of_pin: String },
    #[error("{path} is not pinned{where_} and --locked refuses unpinned files (run `glassbox lock`)")]
    Unpinned { path: PathBuf, where_: String },
    #[error("invalid sha256 {0:?}: expected 64 hex digits")]
    BadDigest(String),
    #[error("lockfile {path}: {msg}")]
    Lockfile { path: PathBuf, msg: String },
    #[error("trust store {path}: {msg}")]
    Store { path: PathBuf, msg: String },
    #[error("{path}: pins disagree: {a_source} pins {a}, {b_source} pins {b}; refusing to choose (fix or remove the stale pin)")]
    ConflictingPins { path: PathBuf, a_source: String, a: String, b_source: String, b: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where pins come from, in priority order: explicit digest, lockfile, trust store.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub sha256: Option<String>,
    pub lockfile: Option<Lockfile>,
    /// Refuse files without a pin in `sha256` or `lockfile`.
    pub locked: bool,
    /// Trust-on-first-use store; `None` disables it.
    pub store: Option<PathBuf>,
}

/// How a file was found trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    ExplicitDigest,
    Lockfile(PathBuf),
    /// Matched a pin recorded on an earlier first use.
    TrustStore,
    /// Not pinned before: pinned now (trust on first use).
    PinnedOnFirstUse,
}

#[derive(Debug)]
pub struct Verified {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub verdict: Verdict,
    /// The bytes that were hashed, in anonymous read-only memory (not a file mapping); parse
    /// this, never a fresh read.
    pub map: memmap2::Mmap,
}

pub fn normalize_digest(d: &str) -> Result<String> {
    let d = d.trim().to_ascii_lowercase();
    let d = d.strip_prefix("sha256:").unwrap_or(&d).to_owned();
    if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadDigest(d));
    }
    Ok(d)
}

/// One pin of a file and where it came from.
struct PinFrom {
    sha256: String,
    size: Option<u64>,
    source: String,
    verdict: Verdict,
}

/// Every pin the policy holds for `canonical`, in priority order: `--sha256`, lockfile, trust
/// store. They must all agree.
fn pins_for(path: &Path, canonical: &Path, policy: &Policy) -> Result<(Vec<PinFrom>, Option<TrustStore>)> {
    let mut pins = Vec::new();
    if let Some(d) = policy.sha256.as_deref() {
        pins.push(PinFrom { sha256: normalize_digest(d)?, size: None, source: "--sha256".into(), verdict: Verdict::ExplicitDigest });
    }
    if let Some(l) = &policy.lockfile
        && let Some(p) = l.pin_for(canonical)
    {
        let source = format!("lockfile {}", l.path().display());
        pins.push(PinFrom { sha256: p.sha256.clone(), size: Some(p.size), source, verdict: Verdict::Lockfile(l.path().to_owned()) });
    }
    let store = policy.store.as_deref().map(TrustStore::load).transpose()?;
    if let (Some(s), Some(sp)) = (&store, &policy.store)
        && let Some(p) = s.get(canonical)
    {
        let source = format!("trust store {}", sp.display());
        pins.push(PinFrom { sha256: p.sha256.clone(), size: Some(p.size), source, verdict: Verdict::TrustStore });
    }
    for w in pins.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let size = |p: &PinFrom| p.size.map(|s| format!(" ({s} bytes)")).unwrap_or_default();
        if a.sha256 != b.sha256 || matches!((a.size, b.size), (Some(x), Some(y)) if x != y) {
            return Err(Error::ConflictingPins {
                path: path.to_owned(),
                a_source: a.source.clone(),
                a: format!("sha256 {}{}", a.sha256, size(a)),
                b_source: b.source.clone(),
                b: format!("sha256 {}{}", b.sha256, size(b)),
            });
        }
    }
    Ok((pins, store))
}

/// Read `path` into anonymous memory, hash exactly those bytes, and check them against every
/// pin the policy holds for the file.
pub fn open_verified(path: &Path, policy: &Policy) -> Result<Verified> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    let (pins, store) = pins_for(path, &canonical, policy)?;
    if policy.locked && !pins.iter().any(|p| p.verdict != Verdict::TrustStore) {
        let where_ = policy.lockfile.as_ref().map(|l| format!(" in {}", l.path().display())).unwrap_or_default();
        return Err(Error::Unpinned { path: path.to_owned(), where_ });
    }
    let pin = pins.first();
    let source_of_pin = pin.map(|p| p.source.clone()).unwrap_or_default();
    // Size first: a truncated or extended file fails before any reading.
    if let Some(expected) = pins.iter().find_map(|p| p.size)
        && expected != size
    {
        return Err(Error::SizeMismatch { path: path.to_owned(), expected, actual: size, source_of_pin });
    }
    let (map, actual) = read_and_hash(&mut file, size).map_err(io)?;
    match pin {
        Some(p) if p.sha256 != actual => {
            return Err(Error::Mismatch { path: path.to_owned(), expected: p.sha256.clone(), actual, source_of_pin });
        }
        Some(_) => {}
        None => {
            if let (Some(mut s), Some(p)) = (store, &policy.store) {
                s.insert(&canonical, Pin { path: canonical.display().to_string(), size, sha256: actual.clone() });
                s.save(p)?;
            }
        }
    }
    let verdict = pin.map_or(Verdict::PinnedOnFirstUse, |p| p.verdict.clone());
    Ok(Verified { path: path.to_owned(), sha256: actual, size, verdict, map })
}

/// Copy `size` bytes of `file` into a private anonymous mapping, hashing each piece as it
/// arrives (the piece is still in cache), then make the mapping read-only. Costs one copy of
/// the file in process memory (instead of shared page-cache pages) and one memcpy per byte;
/// reading stops at `size` even if the file grew, and fails if it shrank.
fn read_and_hash(file: &mut std::fs::File, size: u64) -> std::io::Result<(memmap2::Mmap, String)> {
    use sha2::Digest;
    use std::io::Read;
    let len = usize::try_from(size).map_err(|_| std::io::Error::other("file too large for this address space"))?;
    let mut anon = memmap2::MmapOptions::new().len(len).map_anon()?;
    #[cfg(target_os = "linux")]
    {
        // Large weight tensors are read sequentially by the kernels: huge pages cut TLB misses.
        let _ = anon.advise(memmap2::Advice::HugePage);
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // Ask for the whole file at once so disk reads run ahead of hashing (advice only: a
        // failure changes nothing).
        // SAFETY: plain syscall on a descriptor this function borrows for its whole duration.
        let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
        // SAFETY: as above.
        let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    }
    let mut h = sha2::Sha256::new();
    for chunk in anon.chunks_mut(4 << 20) {
        file.read_exact(chunk)?;
        h.update(&*chunk);
    }
    let digest: [u8; 32] = h.finalize().into();
    Ok((anon.make_read_only()?, sha256_hex(&digest)))
}

/// The default trust store: `$GLASSBOX_TRUST_STORE`, else `$XDG_DATA_HOME/glassbox/trust.toml`,
/// else `~/.local/share/glassbox/trust.toml`.
pub fn default_store() -> PathBuf {
    if let Some(p) = std::env::var_os("GLASSBOX_TRUST_STORE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local").join("share"));
    base.join("glassbox").join("trust.toml")
}
