//! Forward passes of decoder-only transformers whose weights live in a GGUF file.
//!
//! One decoder implementation serves every supported architecture; an [`ArchSpec`] says what
//! differs (RoPE layout, QK norms, biases, post-norms, activation, sliding-window layers). The
//! forward pass takes a *batch of sequences*, each with its own [`KvCache`] and position, so a
//! scheduler can run continuous batching without redesign.
//!
//! This crate never tokenizes, samples, renders templates or schedules requests; it never
//! copies weights out of the memory map (quantised matrices are used in place).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod config;
mod deepseek;
mod mla;
mod moe;
mod forward;
mod output;
mod kv;
mod rope;
mod lora;
mod steer;
mod weights;

pub use config::{Arch, ArchSpec, Config, Parallel};
pub use deepseek::Mla;
pub use moe::{Gating, Moe};
pub use forward::{Logits, Scratch, SeqBatch};
pub use kv::{KvCache, KvType};
pub use rope::{Rope, RopeScaling};
pub use lora::{LoraPart, LoraScratch, LoraTensor};
pub use steer::Steering;
pub use weights::Model;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Gguf(#[from] glassbox_gguf::Error),
    #[error("unsupported architecture {name:?} (supported: {})", Arch::ALL.map(Arch::name).join(", "), name = .0)]
    UnsupportedArch(String),
    /// EleutherAI's GPT-Neo (GPT-Neo 125M–2.7B, GPT-J's predecessor) has no GGUF architecture.
    #[error("architecture {0:?}: GPT-Neo has no GGUF architecture in llama.cpp (its local attention layers were never ported), so no file of it is a llama.cpp model and glassbox refuses it; its successors GPT-NeoX / Pythia run as `gptneox`")]
    GptNeo(String),
    #[error("missing metadata key {0:?}")]
    MissingKey(String),
    #[error("invalid metadata {key:?}: {msg}")]
    BadKey { key: String, msg: String },
    /// The file asks for computation this engine does not implement: refused, never ignored.
    #[error("{what} changes the computation and is not implemented ({why}); refusing the file rather than running it differently")]
    Unimplemented { what: String, why: String },
    #[error("missing tensor {0:?}")]
    MissingTensor(String),
    #[error("tensor {name:?}: {msg}")]
    BadTensor { name: String, msg: String },
    #[error("tensor {name:?} has type {ty}, which is not supported (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)")]
    UnsupportedType { name: String, ty: String },
    #[error("token id {id} is out of range (vocabulary has {n_vocab} tokens)")]
    BadToken { id: u32, n_vocab: usize },
    #[error("context full: {used} tokens cached + {new} new exceeds the context size {capacity}")]
    ContextFull { used: usize, new: usize, capacity: usize },
    #[error("kv cache does not fit this model: {0}")]
    CacheMismatch(String),
    #[error("residual capture: {0}")]
    Capture(String),
    #[error("lora adapter: {0}")]
    Lora(String),
    #[error("{which} cache type {ty}: {msg}")]
    BadCacheType { which: &'static str, ty: &'static str, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
