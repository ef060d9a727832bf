//! Quantisers: rows of `f32` into every GGUF block type the kernels read (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, Q2_K … Q6_K, F16, BF16), bit-identical to ggml's reference
//! quantisers (`quantize_row_*_ref` in ggml-quants.c, the path `llama-quantize` takes for these
//! types without an importance matrix) — the same per-block scale, the same rounding (C's
//! truncating casts and `roundf`, f32 arithmetic in the same order, f16 scales rounded to
//! nearest-even). Checked byte for byte against ggml itself (`tests/fixtures/quants/`, made by
//! `scripts/gen_fixtures.py quantize` through the library llama-cpp-python builds).
//!
//! The inverse (`dequantize_row`) lives with the kernels (`glassbox_kernels::dequantize_row`).

pub mod file;
mod float;
mod kquants;
mod legacy;
pub mod mixture;
pub mod rewrite;

pub use file::{TensorPlan, ggml_type, quantize_file, quantize_rows};
pub use mixture::FileType;

pub use glassbox_kernels::QType;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("a {ty} row needs a whole number of {block}-element blocks; this row has {cols} elements")]
    Shape { ty: &'static str, block: usize, cols: usize },
    #[error("the row holds a non-finite value at element {0}")]
    NonFinite(usize),
    #[error("{0}")]
    Metadata(String),
    #[error("tensor {tensor} is already quantised ({from}); quantising it again loses precision — start from an F32/F16/BF16 file, or allow it explicitly (--allow-requantize)")]
    Requantize { tensor: String, from: &'static str },
}

/// The types [`quantize_row`] writes.
pub const SUPPORTED: [QType; 13] = [
    QType::F32, QType::F16, QType::Bf16, QType::Q4_0, QType::Q4_1, QType::Q5_0, QType::Q5_1, QType::Q8_0,
    QType::Q2K, QType::Q3K, QType::Q4K, QType::Q5K, QType::Q6K,
];

/// Quantise one row into `ty`'s bytes (`ty.row_bytes(src.len())` of them). A non-finite input
/// is refused (ggml would write a NaN or infinite scale into the block); F32 is copied as is.
pub fn quantize_row(ty: QType, src: &[f32]) -> Result<Vec<u8>, Error> {
    let (block, _) = ty.block();
    let Some(n) = ty.row_bytes(src.len()) else { return Err(Error::Shape { ty: ty.name(), block, cols: src.len() }) };
    if let Some(i) = src.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite(i));
    }
    let mut out = Vec::with_capacity(n);
    match ty {
        QType::F32 => src.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        QType::F16 => float::f16_row(src, &mut out),
        QType::Bf16 => float::bf16_row(src, &mut out),
        QType::Q4_0 => src.chunks_exact(32).for_each(|b| legacy::q4_0(b, &mut out)),
        QType::Q4_1 => src.chunks_exact(32).for_each(|b| legacy::q4_1(b, &mut out)),
        QType::Q5_0 => src.chunks_exact(32).for_each(|b| legacy::q5_0(b, &mut out)),
        QType::Q5_1 => src.chunks_exact(32).for_each(|b| legacy::q5_1(b, &mut out)),
        QType::Q8_0 => src.chunks_exact(32).for_each(|b| legacy::q8_0(b, &mut out)),
        QType::Q2K => src.chunks_exact(256).for_each(|b| kquants::q2_k(b, &mut out)),
        QType::Q3K => src.chunks_exact(256).for_each(|b| kquants::q3_k(b, &mut out)),
        QType::Q4K => src.chunks_exact(256).for_each(|b| kquants::q4_k(b, &mut out)),
        QType::Q5K => src.chunks_exact(256).for_each(|b| kquants::q5_k(b, &mut out)),
        QType::Q6K => src.chunks_exact(256).for_each(|b| kquants::q6_k(b, &mut out)),
    }
    debug_assert_eq!(out.len(), n);
    Ok(out)
}
