//! F16 and BF16 as ggml converts: round to nearest, ties to even; BF16 keeps a NaN a quiet NaN
//! (inputs are finite here, refused otherwise before this point).

use half::f16;

pub(crate) fn f16_row(src: &[f32], out: &mut Vec<u8>) {
    for &x in src {
        out.extend_from_slice(&f16::from_f32(x).to_le_bytes());
    }
}

/// ggml's `ggml_compute_fp32_to_bf16`: the upper half of the bits, rounded to nearest even.
pub(crate) fn bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

pub(crate) fn bf16_row(src: &[f32], out: &mut Vec<u8>) {
    for &x in src {
        out.extend_from_slice(&bf16(x).to_le_bytes());
    }
}
