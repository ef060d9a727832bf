//! Scanners for unsafe model formats. GGUF files are checked structurally and their chat
//! templates analysed for injection; safetensors headers are validated strictly. Pickles (raw, several in a row as legacy PyTorch writes
//! them, inside zip archives such as PyTorch checkpoints and numpy `.npz`, inside `.npy` object
//! arrays) are analysed opcode by opcode; formats are recognised by content, never by file
//! extension. Findings carry severity, file and offset, as JSON or SARIF 2.1.0.
//!
//! This crate never executes, imports or unpickles anything, and never writes files.
//!
//! The analysis fails closed: every input is analysed within fixed budgets ([`Limits`]: pickle
//! stack, memo, tracked string bytes, opcodes, archive nesting, inflated bytes), and hitting any
//! of them is a high finding whose message starts "could not fully analyse: ", never a clean
//! verdict.

mod budget;
mod container;
mod formats;
pub mod pickle;
mod template;
mod sarif;
mod zip;

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

/// What the analysis of one file may use. Hitting a limit is a high finding ("could not fully
/// analyse: …"); the defaults keep any input's analysis within about 2 × its size + 64 MiB of
/// memory and time proportional to its size.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Entries on a pickle's stack.
    pub stack: usize,
    /// Memo entries (keys) of one pickle.
    pub memo: usize,
    /// Bytes of tracked values alive at once in one pickle: strings (each keeps at most 64 bytes of
    /// text) and the memo slots that hold them.
    pub value_bytes: usize,
    /// Pickle opcodes per file, all pickles and archive members together.
    pub opcodes: u64,
    /// Archives nested inside archives.
    pub depth: usize,
    /// Bytes inflated per file, all members and nesting levels together:
    /// `inflate_base + inflate_per_byte × file size`.
    pub inflate_base: u64,
    pub inflate_per_byte: u64,
    /// Inflated bytes held in memory at once for analysis (nesting levels together):
    /// `held_base + file size / 2`.
    pub held_base: u64,
    /// Bytes of archive members analysed per file (stored or inflated, nesting levels together;
    /// a member that several directory entries point at counts each time):
    /// `member_base + member_per_byte × file size`.
    pub member_base: u64,
    pub member_per_byte: u64,
    /// Storages a legacy (pre-zip) `torch.save` file may declare.
    pub storages: usize,
    /// Findings listed per file; the rest are summarised in one finding of their highest severity.
    pub findings: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            stack: 1 << 17,
            memo: 1 << 21,
            value_bytes: 24 << 20,
            opcodes: 1 << 28,
            depth: 4,
            inflate_base: 256 << 20,
            inflate_per_byte: 8,
            held_base: 16 << 20,
            member_base: 1 << 30,
            member_per_byte: 16,
            storages: 1 << 15,
            findings: 1000,
        }
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
        report.findings.extend(scan_one(&map, &name, &Limits::default()));
    }
    Ok(report)
}

/// Scan bytes already in memory (tests, fuzzing).
pub fn scan_bytes(data: &[u8], name: &str) -> Report {
    scan_bytes_with(data, name, &Limits::default())
}

/// Scan bytes already in memory under the given limits.
pub fn scan_bytes_with(data: &[u8], name: &str, limits: &Limits) -> Report {
    Report { files: 1, findings: scan_one(data, name, limits) }
}

fn scan_one(data: &[u8], name: &str, limits: &Limits) -> Vec<Finding> {
    let mut ctx = budget::Ctx::new(limits, data.len());
    container::scan_bytes(data, name, 0, &mut ctx);
    ctx.finish(name)
}

/// Analyse a chat template's text on its own (without executing it).
pub fn scan_template(src: &str, name: &str) -> Report {
    let mut findings = Vec::new();
    template::analyse(src, name, 0, &mut findings);
    Report { files: 1, findings }
}
