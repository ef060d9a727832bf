//! Scalar reference dot products: one weight row against one activation row.

use half::bf16;

use crate::act::{Q8Block, Q8KBlock};
use crate::quant::{QType, decode_superblock, f16_at};

/// Integer dot of one 32-element block, plus the weight block's scale terms.
/// Returns the block's contribution in f32 as ggml's reference kernels compute it.
#[inline]
fn block32(ty: QType, b: &[u8], x: &Q8Block) -> f32 {
    let mut q = [0i32; 32];
    let (d, m) = match ty {
        QType::Q4_0 | QType::Q4_1 => {
            let off = if ty == QType::Q4_0 { 2 } else { 4 };
            for j in 0..16 {
                q[j] = (b[off + j] & 0xF) as i32;
                q[j + 16] = (b[off + j] >> 4) as i32;
            }
            if ty == QType::Q4_0 {
                q.iter_mut().for_each(|v| *v -= 8);
                (f16_at(b, 0), None)
            } else {
                (f16_at(b, 0), Some(f16_at(b, 2)))
            }
        }
        QType::Q5_0 | QType::Q5_1 => {
            let (hoff, off) = if ty == QType::Q5_0 { (2, 6) } else { (4, 8) };
            let qh = u32::from_le_bytes([b[hoff], b[hoff + 1], b[hoff + 2], b[hoff + 3]]);
            for j in 0..16 {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                q[j] = ((b[off + j] & 0xF) as u32 | h0) as i32;
                q[j + 16] = ((b[off + j] >> 4) as u32 | h1) as i32;
            }
            if ty == QType::Q5_0 {
                q.iter_mut().for_each(|v| *v -= 16);
                (f16_at(b, 0), None)
            } else {
                (f16_at(b, 0), Some(f16_at(b, 2)))
            }
        }
        QType::Q8_0 => {
            for j in 0..32 {
                q[j] = b[2 + j] as i8 as i32;
            }
            (f16_at(b, 0), None)
        }
        _ => unreachable!(),
    };
    let isum: i32 = q.iter().zip(&x.qs).map(|(&a, &b)| a * b as i32).sum();
    let mut r = d * x.d * isum as f32;
    if let Some(m) = m {
        r += m * x.s;
    }
    r
}

pub(crate) fn dot_q8_scalar(ty: QType, row: &[u8], x: &[Q8Block]) -> f32 {
    let bs = ty.block().1;
    row.chunks_exact(bs).zip(x).map(|(b, xb)| block32(ty, b, xb)).sum()
}

pub(crate) fn dot_q8k_scalar(ty: QType, row: &[u8], x: &[Q8KBlock]) -> f32 {
    let bs = ty.block().1;
    let mut sum = 0f32;
    for (b, xb) in row.chunks_exact(bs).zip(x) {
        let sb = decode_superblock(ty, b);
        let (mut isc, mut imn) = (0i32, 0i32);
        for s in 0..16 {
            let qd: i32 = (0..16).map(|i| sb.q[s * 16 + i] as i32 * xb.qs[s * 16 + i] as i32).sum();
            isc += sb.sc[s] * qd;
            imn += sb.mn[s] * xb.bsums[s];
        }
        sum += xb.d * sb.d * isc as f32 - xb.d * sb.dmin * imn as f32;
    }
    sum
}

pub(crate) fn dot_f32_scalar(ty: QType, row: &[u8], x: &[f32]) -> f32 {
    match ty {
        QType::F32 => row
            .chunks_exact(4)
            .zip(x)
            .map(|(b, &xv)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * xv)
            .sum(),
        QType::F16 => row.chunks_exact(2).zip(x).map(|(b, &xv)| f16_at(b, 0) * xv).sum(),
        QType::Bf16 => row
            .chunks_exact(2)
            .zip(x)
            .map(|(b, &xv)| bf16::from_le_bytes([b[0], b[1]]).to_f32() * xv)
            .sum(),
        _ => unreachable!(),
    }
}
