//! Checking a log: every record's hash, and the chain (`seq` without gaps, each `prev` the
//! hash before it) across the rotated files in order.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::{Error, GENESIS, Result, parse_line};

/// Longest record read (a longer line is refused, not buffered).
pub const MAX_LINE: usize = 1 << 20;

/// What a verified log holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    pub files: Vec<PathBuf>,
    pub records: u64,
    /// `seq` of the first and last records (`None` for an empty log).
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Hash of the last record (`GENESIS` for an empty log): record it elsewhere to catch a
    /// rewrite of the whole chain.
    pub head: String,
    /// Bytes of an incomplete last line of the active file (a crash while writing), not counted.
    pub partial_tail: u64,
}

/// The files of the log whose active file is `path`: its rotated predecessors `path.<N>` in
/// order of N, then `path` itself (when it exists).
pub fn files_of(path: &Path) -> Result<Vec<PathBuf>> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(num) = n.strip_prefix(&name).and_then(|r| r.strip_prefix('.')).and_then(|r| r.parse::<u64>().ok()) {
            rotated.push((num, e.path()));
        }
    }
    rotated.sort();
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    Ok(out)
}

/// Verify `files` as one chain, oldest first. The first record must be `seq` 0 with the
/// genesis `prev` unless `from_any` (older files deleted by retention). Only the last file may
/// end in an incomplete line.
pub fn verify(files: &[PathBuf], from_any: bool) -> Result<Verified> {
    let mut v = Verified { files: files.to_vec(), records: 0, first_seq: None, last_seq: None, head: GENESIS.to_string(), partial_tail: 0 };
    for (fi, path) in files.iter().enumerate() {
        let p = path.display().to_string();
        let ioe = |source| Error::Io { path: p.clone(), source };
        let meta = std::fs::metadata(path).map_err(ioe)?;
        if !meta.is_file() {
            return Err(ioe(std::io::Error::other("not a regular file")));
        }
        let mut r = BufReader::new(std::fs::File::open(path).map_err(ioe)?);
        let last_file = fi + 1 == files.len();
        let mut raw = Vec::new();
        for i in 0.. {
            let broken = |msg: String| Error::Broken { path: p.clone(), line: i + 1, msg };
            raw.clear();
            let n = (&mut r).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut raw).map_err(ioe)?;
            if n == 0 {
                break;
            }
            let Some(line) = raw.strip_suffix(b"\n") else {
                if raw.len() > MAX_LINE {
                    return Err(broken(format!("a record longer than {MAX_LINE} bytes")));
                }
                // No newline: the last bytes of the file.
                if last_file {
                    v.partial_tail = raw.len() as u64;
                    break;
                }
                return Err(broken(format!("incomplete record of {} bytes at the end of a rotated file", raw.len())));
            };
            let (seq, prev, hash) = parse_line(line).map_err(broken)?;
            match v.last_seq {
                None if from_any => {}
                None if seq != 0 || prev != GENESIS => {
                    return Err(broken(format!("the log starts at seq {seq}, not 0 (earlier records or files are missing; --from-any accepts that)")));
                }
                None => {}
                Some(last) if seq != last + 1 => {
                    return Err(broken(format!("seq {seq} follows {last}: records were deleted, inserted or reordered")));
                }
                Some(_) if prev != v.head => {
                    return Err(broken(format!("prev {prev} is not the hash of the record before ({}): records were deleted, inserted or reordered", v.head)));
                }
                Some(_) => {}
            }
            v.first_seq.get_or_insert(seq);
            v.last_seq = Some(seq);
            v.head = hash;
            v.records += 1;
        }
    }
    Ok(v)
}
