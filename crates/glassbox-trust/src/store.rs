//! The trust-on-first-use store: absolute path → pin, in the same format as a lockfile.

use std::path::Path;

use crate::lockfile::{Pin, parse_pins, render};
use crate::{Error, Result};

pub struct TrustStore {
    pins: Vec<Pin>,
}

fn store_err(path: std::path::PathBuf, msg: String) -> Error {
    Error::Store { path, msg }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl TrustStore {
    pub fn load(path: &Path) -> Result<TrustStore> {
        if !path.exists() {
            return Ok(TrustStore { pins: vec![] });
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        Ok(TrustStore { pins: parse_pins(path, &text, store_err)? })
    }
    pub fn get(&self, canonical: &Path) -> Option<&Pin> {
        let key = canonical.display().to_string();
        self.pins.iter().find(|p| p.path == key)
    }
    pub fn insert(&mut self, canonical: &Path, pin: Pin) {
        let key = canonical.display().to_string();
        self.pins.retain(|p| p.path != key);
        self.pins.push(pin);
    }
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = "# glassbox trust store: files pinned on first use (absolute paths).\n# A pinned file that changes is refused; delete its entry to trust the new content.\n";
        write_atomic(path, render(header, &self.pins).as_bytes())
    }
}
