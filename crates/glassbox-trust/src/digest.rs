use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// SHA-256 of a byte slice, fed in 4 MiB pieces.
pub fn sha256_of(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for chunk in bytes.chunks(4 << 20) {
        h.update(chunk);
    }
    h.finalize().into()
}

pub fn sha256_hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// (path, size, sha256) of each file, hashed in parallel (one thread per file, at most
/// `threads` at once), in input order.
pub fn hash_files(paths: &[PathBuf], threads: usize) -> Result<Vec<(PathBuf, u64, String)>> {
    let threads = threads.max(1);
    let mut out: Vec<Option<Result<(PathBuf, u64, String)>>> = (0..paths.len()).map(|_| None).collect();
    for (chunk_paths, chunk_out) in paths.chunks(threads).zip(out.chunks_mut(threads)) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk_paths.iter().map(|p| s.spawn(move || hash_one(p))).collect();
            for (slot, h) in chunk_out.iter_mut().zip(handles) {
                *slot = Some(h.join().unwrap_or_else(|_| Err(Error::Io { path: PathBuf::new(), source: std::io::Error::other("hashing thread panicked") })));
            }
        });
    }
    out.into_iter().map(|r| r.expect("every file hashed")).collect()
}

/// Streams the file through SHA-256 (no mapping: a file truncated while it is hashed is a read
/// error, not a SIGBUS).
fn hash_one(path: &Path) -> Result<(PathBuf, u64, String)> {
    use std::io::Read;
    let io = |source| Error::Io { path: path.to_owned(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((path.to_owned(), size, sha256_hex(&h.finalize().into())))
}
