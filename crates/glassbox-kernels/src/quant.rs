//! Block formats and scalar dequantisation, following ggml's reference code.

use half::{bf16, f16};

/// Tensor element types the kernels can multiply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QType {
    F32, F16, Bf16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K,
}

pub const QK: usize = 32;
pub const QK_K: usize = 256;

impl QType {
    /// (elements per block, bytes per block)
    pub fn block(self) -> (usize, usize) {
        match self {
            QType::F32 => (1, 4),
            QType::F16 | QType::Bf16 => (1, 2),
            QType::Q4_0 => (32, 18),
            QType::Q4_1 => (32, 20),
            QType::Q5_0 => (32, 22),
            QType::Q5_1 => (32, 24),
            QType::Q8_0 => (32, 34),
            QType::Q2K => (256, 84),
            QType::Q3K => (256, 110),
            QType::Q4K => (256, 144),
            QType::Q5K => (256, 176),
            QType::Q6K => (256, 210),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            QType::F32 => "F32", QType::F16 => "F16", QType::Bf16 => "BF16",
            QType::Q4_0 => "Q4_0", QType::Q4_1 => "Q4_1", QType::Q5_0 => "Q5_0",
            QType::Q5_1 => "Q5_1", QType::Q8_0 => "Q8_0", QType::Q2K => "Q2_K",
            QType::Q3K => "Q3_K", QType::Q4K => "Q4_K", QType::Q5K => "Q5_K", QType::Q6K => "Q6_K",
        }
    }

    pub fn from_name(s: &str) -> Option<QType> {
        [QType::F32, QType::F16, QType::Bf16, QType::Q4_0, QType::Q4_1, QType::Q5_0, QType::Q5_1,
         QType::Q8_0, QType::Q2K, QType::Q3K, QType::Q4K, QType::Q5K, QType::Q6K]
            .into_iter()
            .find(|t| t.name() == s)
    }

    /// Bytes of one row of `cols` elements; `None` if `cols` is not a whole number of blocks
    /// (or the size overflows).
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        let (b, s) = self.block();
        if cols.is_multiple_of(b) { (cols / b).checked_mul(s) } else { None }
    }
}

#[inline]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantise one row (`out.len()` elements) from its bytes.
pub fn dequantize_row(ty: QType, src: &[u8], out: &mut [f32]) {
    let (bk, bs) = ty.block();
    assert_eq!(out.len() % bk, 0);
    assert!(src.len() >= out.len() / bk * bs);
    for (blk, y) in src.chunks_exact(bs).zip(out.chunks_exact_mut(bk)) {
        dequantize_block(ty, blk, y);
    }
}

fn dequantize_block(ty: QType, b: &[u8], y: &mut [f32]) {
    match ty {
        QType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        QType::F16 => y[0] = f16_at(b, 0),
        QType::Bf16 => y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        QType::Q4_0 => {
            let d = f16_at(b, 0);
            for j in 0..16 {
                y[j] = ((b[2 + j] & 0xF) as i32 - 8) as f32 * d;
                y[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
            }
        }
        QType::Q4_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..16 {
                y[j] = (b[4 + j] & 0xF) as f32 * d + m;
                y[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
            }
        }
        QType::Q5_0 => {
            let d = f16_at(b, 0);
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            for j in 0..16 {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                y[j] = (((b[6 + j] & 0xF) as u32 | h0) as i32 - 16) as f32 * d;
                y[j + 16] = (((b[6 + j] >> 4) as u32 | h1) as i32 - 16) as f32 * d;
            }
        }
        QType::Q5_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            for j in 0..16 {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                y[j] = ((b[8 + j] & 0xF) as u32 | h0) as f32 * d + m;
                y[j + 16] = ((b[8 + j] >> 4) as u32 | h1) as f32 * d + m;
            }
        }
        QType::Q8_0 => {
            let d = f16_at(b, 0);
            for j in 0..32 {
                y[j] = b[2 + j] as i8 as f32 * d;
            }
        }
        QType::Q2K | QType::Q3K | QType::Q4K | QType::Q5K | QType::Q6K => {
            let sb = decode_superblock(ty, b);
            for (i, yi) in y.iter_mut().enumerate() {
                let s = i / 16;
                *yi = sb.d * sb.sc[s] as f32 * sb.q[i] as f32 - sb.dmin * sb.mn[s] as f32;
            }
        }
    }
}

/// A K-quant superblock in a uniform form: value[i] = d·sc[i/16]·q[i] − dmin·mn[i/16].
/// Every K-quant (Q2_K…Q6_K) decodes into this, so one integer dot product serves them all.
pub(crate) struct SuperBlock {
    pub d: f32,
    pub dmin: f32,
    pub q: [i8; QK_K],
    pub sc: [i32; 16],
    pub mn: [i32; 16],
}

fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

pub(crate) fn decode_superblock(ty: QType, b: &[u8]) -> SuperBlock {
    let mut s = SuperBlock { d: 0.0, dmin: 0.0, q: [0; QK_K], sc: [0; 16], mn: [0; 16] };
    match ty {
        QType::Q2K => {
            // scales[16] qs[64] d dmin
            let (scales, qs) = (&b[0..16], &b[16..80]);
            s.d = f16_at(b, 80);
            s.dmin = f16_at(b, 82);
            let mut yi = 0;
            let mut is = 0;
            for n in 0..2 {
                let q = &qs[n * 32..];
                for shift in [0u32, 2, 4, 6] {
                    for half in 0..2 {
                        let sc = scales[is];
                        s.sc[is] = (sc & 0xF) as i32;
                        s.mn[is] = (sc >> 4) as i32;
                        is += 1;
                        for l in 0..16 {
                            s.q[yi] = ((q[l + 16 * half] >> shift) & 3) as i8;
                            yi += 1;
                        }
                    }
                }
            }
        }
        QType::Q3K => {
            // hmask[32] qs[64] scales[12] d
            let (hm, qs, sc12) = (&b[0..32], &b[32..96], &b[96..108]);
            s.d = f16_at(b, 108);
            let mut aux = [0u32; 4];
            for k in 0..3 {
                aux[k] = u32::from_le_bytes([sc12[4 * k], sc12[4 * k + 1], sc12[4 * k + 2], sc12[4 * k + 3]]);
            }
            let (km1, km2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
            let tmp = aux[2];
            aux[2] = ((aux[0] >> 4) & km2) | (((tmp >> 4) & km1) << 4);
            aux[3] = ((aux[1] >> 4) & km2) | (((tmp >> 6) & km1) << 4);
            aux[0] = (aux[0] & km2) | ((tmp & km1) << 4);
            aux[1] = (aux[1] & km2) | (((tmp >> 2) & km1) << 4);
            let mut scales = [0i8; 16];
            for k in 0..4 {
                for (m, byte) in aux[k].to_le_bytes().into_iter().enumerate() {
                    scales[4 * k + m] = byte as i8;
                }
            }
            let mut m = 1u8;
            let mut yi = 0;
            let mut is = 0;
            for n in 0..2 {
                let q = &qs[n * 32..];
                for shift in [0u32, 2, 4, 6] {
                    for half in 0..2 {
                        s.sc[is] = scales[is] as i32 - 32;
                        is += 1;
                        for l in 0..16 {
                            let idx = l + 16 * half;
                            let v = ((q[idx] >> shift) & 3) as i8 - if hm[idx] & m != 0 { 0 } else { 4 };
                            s.q[yi] = v;
                            yi += 1;
                        }
                    }
                    m <<= 1;
                }
            }
        }
        QType::Q4K | QType::Q5K => {
            // d dmin scales[12] (qh[32] for Q5_K) qs[128]
            s.d = f16_at(b, 0);
            s.dmin = f16_at(b, 2);
            let scales = &b[4..16];
            let (qh, ql) = if ty == QType::Q5K { (Some(&b[16..48]), &b[48..176]) } else { (None, &b[16..144]) };
            let mut yi = 0;
            for j in 0..4 {
                let q = &ql[j * 32..j * 32 + 32];
                for half in 0..2 {
                    let (sc, mn) = scale_min_k4(2 * j + half, scales);
                    s.sc[4 * j + 2 * half] = sc as i32;
                    s.sc[4 * j + 2 * half + 1] = sc as i32;
                    s.mn[4 * j + 2 * half] = mn as i32;
                    s.mn[4 * j + 2 * half + 1] = mn as i32;
                    let bit = 1u8 << (2 * j + half);
                    for l in 0..32 {
                        let lo = if half == 0 { q[l] & 0xF } else { q[l] >> 4 };
                        let hi = qh.map_or(0, |qh| if qh[l] & bit != 0 { 16 } else { 0 });
                        s.q[yi] = (lo + hi) as i8;
                        yi += 1;
                    }
                }
            }
        }
        QType::Q6K => {
            // ql[128] qh[64] scales[16] d
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            s.d = f16_at(b, 208);
            for n in 0..2 {
                let (ql, qh, sc) = (&ql[n * 64..], &qh[n * 32..], &sc[n * 8..]);
                let base = n * 128;
                for l in 0..32 {
                    s.q[base + l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                    s.q[base + l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                    s.q[base + l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                    s.q[base + l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                }
                for (d, &v) in s.sc[n * 8..n * 8 + 8].iter_mut().zip(sc) {
                    *d = v as i8 as i32;
                }
            }
        }
        _ => unreachable!("decode_superblock on a non-K type"),
    }
    s
}
