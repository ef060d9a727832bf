//! Scanners for unsafe model formats. GGUF files are checked structurally and their chat
//! templates analysed for injection; safetensors headers are validated strictly. Pickles (raw, several in a row as legacy PyTorch writes
//! them, inside zip archives such as PyTorch checkpoints and numpy `.npz`, inside `.npy` object
//! arrays) are analysed opcode by opcode; formats are recognised by content, never by file
//! extension. Findings carry severity, file and offset, as JSON or SARIF 2.1.0.
//!
//! This crate never executes, imports or unpickles anything, and never writes files.

mod container;
mod formats;
pub mod pickle;
mod template;
mod sarif;

use std::path::Path;

use serde::Serialize;

pub use sarif::to_sarif;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Medium,
    High,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub rule: &'static str,
    /// File path, and `!member` for an archive member.
    pub location: String,
    pub offset: Option<u64>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<String>,
}

impl Finding {
    pub fn new(severity: Severity, rule: &'static str, location: &str, offset: Option<u64>, message: String) -> Finding {
        Finding { severity, rule, location: location.to_owned(), offset, message, import: None }
    }
    pub fn with_import(mut self, module: &str, name: &str) -> Finding {
        self.import = Some(format!("{module}.{name}"));
        self
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub files: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
    pub fn has_high(&self) -> bool {
        self.max_severity() == Some(Severity::High)
    }
}

/// Scan a file, or every file under a folder.
pub fn scan_path(path: &Path) -> std::io::Result<Report> {
    let mut report = Report::default();
    let mut stack = vec![path.to_owned()];
    let mut files = Vec::new();
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p)?;
        if md.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&p)?.collect::<Result<_, _>>()?;
            entries.sort_by_key(|e| e.path());
            stack.extend(entries.into_iter().rev().map(|e| e.path()));
        } else if md.is_file() {
            files.push(p);
        }
    }
    for f in files {
        let file = std::fs::File::open(&f)?;
        let len = file.metadata()?.len();
        report.files += 1;
        let name = f.display().to_string();
        if len == 0 {
            continue;
        }
        // SAFETY: read-only map, only read.
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        container::scan_bytes(&map, &name, 0, &mut report.findings);
    }
    Ok(report)
}

/// Scan bytes already in memory (tests, fuzzing).
pub fn scan_bytes(data: &[u8], name: &str) -> Report {
    let mut findings = Vec::new();
    container::scan_bytes(data, name, 0, &mut findings);
    Report { files: 1, findings }
}

/// Analyse a chat template's text on its own (without executing it).
pub fn scan_template(src: &str, name: &str) -> Report {
    let mut findings = Vec::new();
    template::analyse(src, name, 0, &mut findings);
    Report { files: 1, findings }
}
