use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// SHA-256 of a byte slice, fed in 4 MiB pieces (touching a mapping's pages in order).
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

fn hash_one(path: &Path) -> Result<(PathBuf, u64, String)> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size == 0 {
        return Ok((path.to_owned(), 0, sha256_hex(&sha256_of(&[]))));
    }
    // SAFETY: read-only map, only hashed.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok((path.to_owned(), size, sha256_hex(&sha256_of(&map))))
}
