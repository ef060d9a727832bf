//! File trust: nothing of a model file is used before its SHA-256 matches a pin.
//!
//! The file is memory-mapped once and the digest is computed over that mapping — the very bytes
//! the parser will read — so verification also warms the pages inference reads next. Pins come
//! from a lockfile (`glassbox.lock`, sorted TOML, paths relative to it), from an explicit
//! `--sha256`, or from the user's trust-on-first-use store (pinned and announced on first use,
//! refused if the file later changes). `locked` mode refuses unpinned files.
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
    /// The mapping that was hashed; parse this, not a fresh read.
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

/// Map `path`, hash the mapping, and check it against the policy's pin for it.
pub fn open_verified(path: &Path, policy: &Policy) -> Result<Verified> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    // The pin, from the first source that has one: --sha256, lockfile, trust store.
    let explicit = policy.sha256.as_deref().map(normalize_digest).transpose()?;
    let locked_pin = policy.lockfile.as_ref().and_then(|l| l.pin_for(&canonical).map(|p| (l.path().to_owned(), p.clone())));
    if policy.locked && explicit.is_none() && locked_pin.is_none() {
        let where_ = policy.lockfile.as_ref().map(|l| format!(" in {}", l.path().display())).unwrap_or_default();
        return Err(Error::Unpinned { path: path.to_owned(), where_ });
    }
    let store = match &policy.store {
        Some(p) if explicit.is_none() && locked_pin.is_none() => Some(TrustStore::load(p)?),
        _ => None,
    };
    // (verdict, expected sha256, expected size)
    let (verdict, expected, pin_size) = match (explicit, locked_pin, store.as_ref().and_then(|s| s.get(&canonical))) {
        (Some(d), _, _) => (Verdict::ExplicitDigest, Some(d), None),
        (None, Some((l, p)), _) => (Verdict::Lockfile(l), Some(p.sha256), Some(p.size)),
        (None, None, Some(p)) => (Verdict::TrustStore, Some(p.sha256.clone()), Some(p.size)),
        (None, None, None) => (Verdict::PinnedOnFirstUse, None, None),
    };
    let source_of_pin = match &verdict {
        Verdict::ExplicitDigest => "--sha256".to_owned(),
        Verdict::Lockfile(l) => format!("lockfile {}", l.display()),
        _ => "trust store, pinned on first use".to_owned(),
    };
    // Size first: a truncated or extended file fails before any hashing.
    if let Some(expected) = pin_size
        && expected != size
    {
        return Err(Error::SizeMismatch { path: path.to_owned(), expected, actual: size, source_of_pin });
    }
    // SAFETY: read-only map of a regular file; concurrent modification of model files by other
    // processes while loading is outside this tool's threat model (see SECURITY.md).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    // Read the whole file ahead asynchronously so disk reads overlap hashing; the same pages are
    // then resident for inference.
    #[cfg(unix)]
    {
        let _ = map.advise(memmap2::Advice::Sequential);
        let _ = map.advise(memmap2::Advice::WillNeed);
    }
    let actual = sha256_hex(&sha256_of(&map));
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Normal);
    match expected {
        Some(e) if e != actual => {
            return Err(Error::Mismatch { path: path.to_owned(), expected: e, actual, source_of_pin });
        }
        Some(_) => {}
        None => {
            if let (Some(mut s), Some(p)) = (store, &policy.store) {
                s.insert(&canonical, Pin { path: canonical.display().to_string(), size, sha256: actual.clone() });
                s.save(p)?;
            }
        }
    }
    Ok(Verified { path: path.to_owned(), sha256: actual, size, verdict, map })
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
