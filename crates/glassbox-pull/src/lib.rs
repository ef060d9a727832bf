//! `glassbox pull`: the only part of glassbox that touches the network, and only when asked.
//! A download goes to `.NAME.partial` beside the destination, hashed (SHA-256) as it arrives;
//! an interrupted download resumes with an HTTP Range request; the file is renamed to its final
//! name only after its digest matches the one the user gave, and is deleted if it does not.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is neither an http(s) URL nor a Hugging Face `org/repo/file` shorthand")]
    BadSource(String),
    #[error("invalid sha256 {0:?}: expected 64 hex digits")]
    BadDigest(String),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("download of {url} failed: {msg}")]
    Http { url: String, msg: String },
    #[error("download of {url} stopped at {got} of {total} bytes; run the same command again to resume")]
    Incomplete { url: String, got: u64, total: String },
    #[error("{url}: sha256 mismatch: expected {expected}, downloaded bytes have {actual}; the download was deleted")]
    Mismatch { url: String, expected: String, actual: String },
    #[error("{path} already exists with sha256 {actual}, not {expected}; refusing to overwrite it")]
    Exists { path: PathBuf, expected: String, actual: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `https://…` as is; `org/repo/path/to/file[@revision]` → the Hugging Face resolve URL.
pub fn resolve(source: &str) -> Result<String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        return Ok(source.to_owned());
    }
    let (path, rev) = source.split_once('@').unwrap_or((source, "main"));
    let parts: Vec<&str> = path.split('/').collect();
    let ok_part = |p: &&str| !p.is_empty() && *p != ".." && *p != "." && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if parts.len() < 3 || !parts.iter().all(ok_part) || rev.is_empty() || !rev.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(Error::BadSource(source.to_owned()));
    }
    Ok(format!("https://huggingface.co/{}/{}/resolve/{rev}/{}", parts[0], parts[1], parts[2..].join("/")))
}

pub fn file_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_owned())
}

pub struct Pulled {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub resumed_from: u64,
    pub already_present: bool,
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_file(path: &Path) -> std::io::Result<(sha2::Sha256, u64)> {
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            return Ok((h, n));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// Download `url` into `dir` (as `name`), verifying `sha256`. `progress(done, total)` is
/// called as bytes arrive.
pub fn pull(url: &str, sha256: &str, dir: &Path, name: &str, mut progress: impl FnMut(u64, Option<u64>)) -> Result<Pulled> {
    let expected = sha256.trim().to_ascii_lowercase();
    let expected = expected.strip_prefix("sha256:").unwrap_or(&expected).to_owned();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadDigest(sha256.to_owned()));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dest = dir.join(name);
    if dest.exists() {
        let (h, n) = hash_file(&dest).map_err(io(&dest))?;
        let actual = hex(&h.finalize());
        if actual == expected {
            return Ok(Pulled { path: dest, size: n, sha256: actual, resumed_from: 0, already_present: true });
        }
        return Err(Error::Exists { path: dest, expected, actual });
    }
    let partial = dir.join(format!(".{name}.partial"));
    let (mut hasher, mut have) = if partial.exists() { hash_file(&partial).map_err(io(&partial))? } else { (sha2::Sha256::new(), 0) };
    let agent: ureq::Agent = ureq::Agent::config_builder().max_redirects(5).http_status_as_error(false).build().into();
    let mut req = agent.get(url).header("User-Agent", concat!("glassbox/", env!("CARGO_PKG_VERSION")));
    if have > 0 {
        req = req.header("Range", &format!("bytes={have}-"));
    }
    let http = |msg: String| Error::Http { url: url.to_owned(), msg };
    let resp = req.call().map_err(|e| http(e.to_string()))?;
    let status = resp.status().as_u16();
    let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let resumed_from = have;
    let total: Option<u64>;
    match status {
        206 => {
            let cr = header("content-range").unwrap_or_default();
            let start = cr.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u64>().ok());
            if start != Some(have) {
                return Err(http(format!("server resumed at {cr:?}, expected byte {have}")));
            }
            total = cr.rsplit('/').next().and_then(|t| t.parse().ok());
        }
        200 => {
            // Full body (no resume support, or a fresh start).
            hasher = sha2::Sha256::new();
            have = 0;
            total = header("content-length").and_then(|l| l.parse().ok());
        }
        416 if have > 0 => total = Some(have), // already complete
        s => return Err(http(format!("HTTP status {s}"))),
    }
    let mut file = std::fs::OpenOptions::new().create(true).write(true).truncate(have == 0).open(&partial).map_err(io(&partial))?;
    file.seek(std::io::SeekFrom::Start(have)).map_err(io(&partial))?;
    file.set_len(have).map_err(io(&partial))?;
    if status != 416 {
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => {
                    file.flush().map_err(io(&partial))?;
                    return Err(Error::Incomplete { url: url.to_owned(), got: have, total: total.map_or("an unknown number of".into(), |t| t.to_string()) });
                }
            };
            file.write_all(&buf[..n]).map_err(io(&partial))?;
            hasher.update(&buf[..n]);
            have += n as u64;
            progress(have, total);
        }
    }
    file.sync_all().map_err(io(&partial))?;
    drop(file);
    if let Some(t) = total
        && have < t
    {
        return Err(Error::Incomplete { url: url.to_owned(), got: have, total: t.to_string() });
    }
    let actual = hex(&hasher.finalize());
    if actual != expected {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::Mismatch { url: url.to_owned(), expected, actual });
    }
    std::fs::rename(&partial, &dest).map_err(io(&dest))?;
    Ok(Pulled { path: dest, size: have, sha256: actual, resumed_from, already_present: false })
}
