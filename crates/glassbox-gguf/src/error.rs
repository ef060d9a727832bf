use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can be wrong with a GGUF file. Messages name the key, tensor or field at
/// fault and the byte offset where parsing stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("not a gguf file: magic is {0:?}, expected \"GGUF\"")]
    BadMagic([u8; 4]),
    #[error("big-endian gguf files are not supported")]
    BigEndian,
    #[error("unsupported gguf version {0} (supported: 2, 3)")]
    UnsupportedVersion(u32),
    #[error("truncated gguf: {what} needs {needed} bytes at offset {offset}, file has {len}")]
    Truncated { what: String, offset: u64, needed: u64, len: u64 },
    #[error("gguf limit exceeded: {what} is {value}, limit is {limit}")]
    Limit { what: String, value: u64, limit: u64 },
    #[error("invalid gguf: {0}")]
    Invalid(String),
    #[error("gguf metadata key {key:?}: {msg}")]
    Key { key: String, msg: String },
    #[error("gguf tensor {tensor:?}: {msg}")]
    Tensor { tensor: String, msg: String },
    #[error("arithmetic overflow computing {0}")]
    Overflow(String),
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn key(key: &str, msg: impl Into<String>) -> Self {
        Error::Key { key: key.to_owned(), msg: msg.into() }
    }
    pub(crate) fn tensor(tensor: &str, msg: impl Into<String>) -> Self {
        Error::Tensor { tensor: tensor.to_owned(), msg: msg.into() }
    }
}
