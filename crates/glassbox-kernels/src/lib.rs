//! CPU kernels for quantised inference: block formats (dequantisation), activation
//! quantisation that rounds exactly as ggml does, dot products and matrix multiplication with
//! runtime-dispatched SIMD (AVX2 + FMA + F16C, AVX-VNNI, AVX-512 VNNI, scalar fallback), element-wise ops
//! (RMS norm, RoPE, softmax, activations) and a low-latency thread pool.
//!
//! This crate takes byte slices and f32 slices and returns numbers. It never reads files,
//! never parses GGUF and knows nothing about model architectures. Every SIMD path is tested
//! against the scalar path, which is written to follow ggml's reference semantics.
//!
//! Safety: the public API is safe. SIMD code runs only with an [`Isa`] that CPU detection
//! created; the structures the unchecked loops index into ([`WeightMatrix`], [`ActBuf`],
//! [`PackedMatrix`]) have private fields set by validating constructors, and every kernel
//! entry asserts the lengths it relies on. [`ThreadPool`] is `!Sync` and refuses re-entry.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod act;
mod attn;
mod dot;
mod isa;
pub mod lowrank;
mod lse;
mod matmul;
pub mod ops;
mod packed;
mod pool;
mod quant;
mod simd;

pub use attn::{AttnHead, CacheRows, Q8_0_BLOCK, attend, quantize_row_q8_0};
pub use act::{ActBuf, ActFormat, Q8Block, Q8KBlock, quantize_q8, quantize_q8k};
pub use isa::{Isa, IsaKind};
pub use lse::{max_exp_sum, row_max, units_at_least};
pub use matmul::{MatRef, MatmulJob, WeightMatrix, matmul, matmul_many, matmul_units};
pub use packed::PackedMatrix;
pub use pool::ThreadPool;
pub use quant::{QType, dequantize_row};

/// Errors for inputs that do not fit the kernels (shape/type mismatches).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tensor type {0} is not supported by the kernels")]
    UnsupportedType(String),
    #[error("{what}: {msg}")]
    Shape { what: String, msg: String },
}
