//! GGUF container: a hardened, order-preserving reader and a byte-exact writer.
//!
//! This crate knows the GGUF file layout (header, typed metadata, tensor infos, aligned tensor
//! data) and nothing else. It never interprets tensor bytes: quantised blocks are opaque slices,
//! and tensor types it does not know are passed through as bytes. It never allocates memory
//! sized by a count read from the file before checking that the file is large enough to hold
//! that many items, and every length, offset and size is computed with checked arithmetic.
//!
//! What this crate never does: run a model, tokenize text, render a template, or touch the
//! network. Reading a path is the only I/O (`GgufFile::open`, memory-mapped).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod error;
mod ggml_type;
mod read;
mod value;
mod write;

pub use error::{Error, Result};
pub use ggml_type::GgmlType;
pub use read::{Gguf, GgufFile, Limits, TensorInfo};
pub use value::{Array, Value, ValueType};
pub use write::{GgufWriter, WriterTensor};

/// Default alignment of the tensor data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The magic bytes at the start of every GGUF file.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Maximum number of dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
