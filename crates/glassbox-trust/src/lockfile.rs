//! `glassbox.lock`: SHA-256 pins in a stable, sorted, human-diffable TOML file.
//!
//! ```toml
//! # glassbox.lock: SHA-256 pins of model files, written by `glassbox lock`.
//! # Paths are relative to this file. Review changes to it like code.
//! version = 1
//!
//! [[file]]
//! path = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
//! size = 98362432
//! sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result, normalize_digest};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pin {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Deserialize)]
struct Raw {
    version: u32,
    #[serde(default)]
    file: Vec<Pin>,
}

#[derive(Debug, Clone)]
pub struct Lockfile {
    path: PathBuf,
    dir: PathBuf,
    pins: Vec<Pin>,
}

pub(crate) const MAX_LOCKFILE_BYTES: u64 = 16 << 20;

pub(crate) fn parse_pins(path: &Path, text: &str, what: fn(PathBuf, String) -> Error) -> Result<Vec<Pin>> {
    let raw: Raw = toml::from_str(text).map_err(|e| what(path.to_owned(), e.to_string()))?;
    if raw.version != 1 {
        return Err(what(path.to_owned(), format!("unsupported version {} (this glassbox reads version 1)", raw.version)));
    }
    let mut pins = raw.file;
    for p in &mut pins {
        p.sha256 = normalize_digest(&p.sha256).map_err(|_| what(path.to_owned(), format!("entry {:?}: sha256 {:?} is not 64 hex digits", p.path, p.sha256)))?;
    }
    let mut seen = std::collections::HashSet::new();
    for p in &pins {
        if !seen.insert(&p.path) {
            return Err(what(path.to_owned(), format!("entry {:?} appears twice", p.path)));
        }
    }
    Ok(pins)
}

pub(crate) fn render(header: &str, pins: &[Pin]) -> String {
    let mut pins = pins.to_vec();
    pins.sort_by(|a, b| a.path.cmp(&b.path));
    let mut s = String::from(header);
    s.push_str("version = 1\n");
    for p in &pins {
        let path = toml::Value::String(p.path.clone()).to_string();
        s.push_str(&format!("\n[[file]]\npath = {path}\nsize = {}\nsha256 = \"{}\"\n", p.size, p.sha256));
    }
    s
}

fn read_limited(path: &Path, what: fn(PathBuf, String) -> Error) -> Result<String> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_LOCKFILE_BYTES {
        return Err(what(path.to_owned(), format!("{len} bytes is over the {MAX_LOCKFILE_BYTES}-byte limit")));
    }
    std::fs::read_to_string(path).map_err(io)
}

fn lock_err(path: PathBuf, msg: String) -> Error {
    Error::Lockfile { path, msg }
}

impl Lockfile {
    pub fn load(path: &Path) -> Result<Lockfile> {
        let text = read_limited(path, lock_err)?;
        let pins = parse_pins(path, &text, lock_err)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = std::fs::canonicalize(if dir.as_os_str().is_empty() { Path::new(".") } else { &dir }).map_err(|source| Error::Io { path: dir.clone(), source })?;
        Ok(Lockfile { path: path.to_owned(), dir, pins })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn pins(&self) -> &[Pin] {
        &self.pins
    }

    /// The pin whose path (relative to the lockfile) resolves to `canonical`.
    pub fn pin_for(&self, canonical: &Path) -> Option<&Pin> {
        self.pins.iter().find(|p| {
            let candidate = self.dir.join(&p.path);
            std::fs::canonicalize(&candidate).map(|c| c == canonical).unwrap_or(false)
        })
    }

    /// Add or replace pins for `files` in the lockfile at `path` (created if missing).
    pub fn add(path: &Path, files: &[(PathBuf, u64, String)]) -> Result<()> {
        let mut all: Vec<(PathBuf, u64, String)> = Vec::new();
        if path.exists() {
            let l = Lockfile::load(path)?;
            for p in &l.pins {
                let abs = l.dir.join(&p.path);
                let abs = std::fs::canonicalize(&abs).unwrap_or(abs);
                all.push((abs, p.size, p.sha256.clone()));
            }
        }
        for (f, size, sha) in files {
            let c = std::fs::canonicalize(f).map_err(|source| Error::Io { path: f.clone(), source })?;
            all.retain(|(p, _, _)| *p != c);
            all.push((c, *size, sha.clone()));
        }
        let existing: Vec<_> = all.into_iter().filter(|(p, _, _)| p.exists()).collect();
        Lockfile::write(path, &existing)
    }

    /// Write pins for `files` (path, size, sha256) to `path`, paths relative to its folder.
    pub fn write(path: &Path, files: &[(PathBuf, u64, String)]) -> Result<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = std::fs::canonicalize(dir).map_err(|source| Error::Io { path: dir.to_owned(), source })?;
        let mut pins = Vec::new();
        for (f, size, sha) in files {
            let c = std::fs::canonicalize(f).map_err(|source| Error::Io { path: f.clone(), source })?;
            let rel = relative(&dir, &c);
            pins.push(Pin { path: rel, size: *size, sha256: sha.clone() });
        }
        let header = "# glassbox.lock: SHA-256 pins of model files, written by `glassbox lock`.\n# Paths are relative to this file. Review changes to it like code.\n";
        crate::store::write_atomic(path, render(header, &pins).as_bytes())
    }
}

/// `target` relative to `base` (both canonical), using `..` where needed.
fn relative(base: &Path, target: &Path) -> String {
    let b: Vec<_> = base.components().collect();
    let t: Vec<_> = target.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_owned(), b.len() - common).collect();
    parts.extend(t[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    parts.join("/")
}
