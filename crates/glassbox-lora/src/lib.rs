//! LoRA adapters in llama.cpp's GGUF format (`general.type = adapter`, `adapter.type = lora`,
//! `adapter.lora.alpha`, tensors `<base tensor>.lora_a` / `.lora_b`), read with the hardened
//! container parser and checked before anything uses them: every pair complete, the ranks of A
//! and B agreeing, every value finite, and — against a base model — the same architecture and a
//! base tensor of the right shape for each pair. The engine applies them without merging
//! (y = Wx + s·B(Ax), s = user scale × alpha / rank, as llama.cpp computes it).

mod adapter;
pub mod merge;
pub mod peft;

pub use adapter::{Adapter, MAX_RANK, Part, Pair};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("adapter {path}: {msg}")]
    Adapter { path: String, msg: String },
    #[error("adapter {path} does not fit base model {base}: {msg}")]
    Base { path: String, base: String, msg: String },
    #[error(transparent)]
    Gguf(#[from] glassbox_gguf::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
