//! Model manifests as OpenSSF model-signing computes them: every file under the model folder
//! (sorted, `/`-separated relative names, ignore paths skipped), hashed whole (`files`) or in
//! fixed-size shards (`shards`, names `path:start:end`, empty files omitted).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::Digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashType {
    Sha256,
    Blake2b,
    Blake3,
}

impl HashType {
    pub fn parse(s: &str) -> Option<HashType> {
        match s {
            "sha256" => Some(HashType::Sha256),
            "blake2b" => Some(HashType::Blake2b),
            "blake3" => Some(HashType::Blake3),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            HashType::Sha256 => "sha256",
            HashType::Blake2b => "blake2b",
            HashType::Blake3 => "blake3",
        }
    }
}

enum Hasher {
    Sha256(sha2::Sha256),
    Blake2b(Box<blake2::Blake2b512>),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn new(t: HashType) -> Hasher {
        match t {
            HashType::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashType::Blake2b => Hasher::Blake2b(Box::new(<blake2::Blake2b512 as blake2::Digest>::new())),
            HashType::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Blake2b(h) => blake2::Digest::update(h.as_mut(), b),
            Hasher::Blake3(h) => {
                h.update(b);
            }
        }
    }
    fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Blake2b(h) => blake2::Digest::finalize(*h).to_vec(),
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Files,
    Shards(u64),
}

/// One signed resource: name, algorithm label and hex digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resource {
    pub name: String,
    pub algorithm: String,
    pub digest: String,
}

/// Relative `/` names of the files under `root` (or "." for a single file), sorted, skipping
/// any path equal to or below an ignore path. Symlinks are an error unless allowed.
pub fn list_files(root: &Path, ignore: &[PathBuf], allow_symlinks: bool) -> std::io::Result<Vec<(String, PathBuf)>> {
    let meta = std::fs::symlink_metadata(root)?;
    if meta.is_file() {
        return Ok(vec![(".".to_owned(), root.to_owned())]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let path = e.path();
            if ignore.iter().any(|ig| path.starts_with(ig)) {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_symlink() && !allow_symlinks {
                return Err(std::io::Error::other(format!("{} is a symbolic link, which the signature does not allow", path.display())));
            }
            let md = std::fs::metadata(&path)?;
            if md.is_dir() {
                stack.push(path);
            } else if md.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let name = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
                out.push((name, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hash_range(path: &Path, start: u64, len: u64, t: HashType) -> std::io::Result<String> {
    use std::io::Seek;
    let mut f = std::fs::File::open(path)?;
    f.seek(std::io::SeekFrom::Start(start))?;
    let mut h = Hasher::new(t);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let cap = left.min(buf.len() as u64) as usize;
        let n = f.read(&mut buf[..cap])?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{} shrank while hashing", path.display())));
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h.hex())
}

/// The resources of a model, sorted by name.
pub fn resources(files: &[(String, PathBuf)], method: Method, t: HashType) -> std::io::Result<Vec<Resource>> {
    let mut out = Vec::new();
    for (name, path) in files {
        let size = std::fs::metadata(path)?.len();
        match method {
            Method::Files => out.push(Resource { name: name.clone(), algorithm: t.name().to_owned(), digest: hash_range(path, 0, size, t)? }),
            Method::Shards(shard) => {
                let mut start = 0;
                while start < size {
                    let end = (start + shard).min(size);
                    out.push(Resource {
                        name: format!("{name}:{start}:{end}"),
                        algorithm: format!("{}-sharded-{shard}", t.name()),
                        digest: hash_range(path, start, end - start, t)?,
                    });
                    start = end;
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The statement subject digest: SHA-256 over the concatenated resource digests, by name.
pub fn subject_digest(resources: &[Resource]) -> Result<String, String> {
    let mut sorted = resources.to_vec();
    sorted.sort();
    let mut h = sha2::Sha256::new();
    for r in &sorted {
        let bytes: Vec<u8> = (0..r.digest.len())
            .step_by(2)
            .map(|i| r.digest.get(i..i + 2).and_then(|x| u8::from_str_radix(x, 16).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("resource {:?} has a digest that is not hex", r.name))?;
        h.update(&bytes);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
