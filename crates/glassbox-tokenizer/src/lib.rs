//! Tokenizers built from the vocabulary a GGUF file carries, producing the same ids as
//! llama.cpp's tokenizer: byte-level BPE (`tokenizer.ggml.model = gpt2`) with the
//! pre-tokenizer named by `tokenizer.ggml.pre`, and SentencePiece (`llama`) with byte fallback.
//! Special-token text (e.g. `<|im_start|>`) is matched longest-first before pre-tokenization.
//!
//! This crate never guesses: an unknown tokenizer model or pre-tokenizer is an error naming
//! it. It does not read files or run models.

mod bpe;
mod merge;
mod pretok;
mod spm;
mod vocab;

pub use vocab::{Decoder, TokenType, Tokenizer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Gguf(#[from] glassbox_gguf::Error),
    #[error("missing metadata key {0:?}")]
    MissingKey(String),
    #[error("unsupported tokenizer model {0:?} (supported: gpt2, llama)")]
    UnsupportedModel(String),
    #[error("unknown pre-tokenizer {0:?} in tokenizer.ggml.pre; refusing to guess its splitting rules")]
    UnknownPre(String),
    #[error("invalid tokenizer metadata {key:?}: {msg}")]
    Invalid { key: String, msg: String },
    #[error("token id {0} is out of range")]
    BadId(u32),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
