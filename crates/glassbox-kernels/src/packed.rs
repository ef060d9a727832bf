//! Repacked weights: rows interleaved in groups of 8 so that one VNNI `dpbusd` computes partial
//! sums for 8 rows at once (lane k = row k), with scales as vectors — no horizontal sums, no
//! per-block scalar work. Built once at load time from the GGUF blocks; results equal the
//! unpacked kernels up to float summation order (tested).
//!
//! Layout per (group of 8 rows, 32-element block), for element bytes q (unsigned after the
//! type's offset): `d[8]` f16, then `m[8]` f16 (Q4_1/Q5_1), then the quants:
//! - 4-bit types: 4 × 32 bytes; register i, lane k, byte t holds q[k][4i+t] in its low nibble and
//!   q[k][4(i+4)+t] in its high nibble;
//! - Q5 types additionally 32 bytes of high bits: byte 4k+t, bit i = bit 4 of q[k][4i+t];
//! - Q8_0: 8 × 32 bytes, register i lane k = q[k][4i..4i+4] as u8 (value + 128).

use crate::quant::{QK, QK_K, QType, decode_superblock, f16_at};

pub const GROUP: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackFormat {
    /// Subtract `off × Σx` from the integer dot (unsigned storage of signed values).
    pub off: i32,
    pub has_min: bool,
    pub nibbles: bool,
    pub high_bits: bool,
    /// K-quant superblock (256 elements, per-16 sub-block scales, Q8_K activations).
    pub k: bool,
}

impl PackFormat {
    pub fn for_type(ty: QType) -> Option<PackFormat> {
        let f = |off, has_min, nibbles, high_bits| Some(PackFormat { off, has_min, nibbles, high_bits, k: false });
        let k = |off, has_min| Some(PackFormat { off, has_min, nibbles: false, high_bits: false, k: true });
        match ty {
            QType::Q4_0 => f(8, false, true, false),
            QType::Q4_1 => f(0, true, true, false),
            QType::Q5_0 => f(16, false, true, true),
            QType::Q5_1 => f(0, true, true, true),
            QType::Q8_0 => f(128, false, false, false),
            QType::Q2K => k(0, true),
            QType::Q3K => k(4, false),
            QType::Q4K => k(0, true),
            QType::Q5K => k(0, true),
            QType::Q6K => k(32, false),
            _ => None,
        }
    }
    /// Bytes of one (group, block) record.
    pub fn record_bytes(self) -> usize {
        if self.k {
            // d[8] dmin[8] f16, sc[16][8] i8, mn[16][8] u8, q[64][8][4] u8
            return 32 + 128 + 128 + 2048;
        }
        16 + if self.has_min { 16 } else { 0 } + if self.nibbles { 128 } else { 256 } + if self.high_bits { 32 } else { 0 }
    }
    pub fn quant_offset(self) -> usize {
        if self.k {
            return 32 + 256;
        }
        16 + if self.has_min { 16 } else { 0 }
    }
}

/// Unsigned element values, d and m (as f16 bits) of one GGUF block.
fn block_values(ty: QType, b: &[u8]) -> ([u8; QK], u16, u16) {
    let mut q = [0u8; QK];
    let d = u16::from_le_bytes([b[0], b[1]]);
    let mut m = 0u16;
    match ty {
        QType::Q4_0 | QType::Q4_1 => {
            let off = if ty == QType::Q4_0 { 2 } else { 4 };
            if ty == QType::Q4_1 {
                m = u16::from_le_bytes([b[2], b[3]]);
            }
            for j in 0..16 {
                q[j] = b[off + j] & 0xF;
                q[j + 16] = b[off + j] >> 4;
            }
        }
        QType::Q5_0 | QType::Q5_1 => {
            let (hoff, off) = if ty == QType::Q5_0 { (2, 6) } else { (4, 8) };
            if ty == QType::Q5_1 {
                m = u16::from_le_bytes([b[2], b[3]]);
            }
            let qh = u32::from_le_bytes([b[hoff], b[hoff + 1], b[hoff + 2], b[hoff + 3]]);
            for j in 0..16 {
                q[j] = (b[off + j] & 0xF) | ((((qh >> j) & 1) as u8) << 4);
                q[j + 16] = (b[off + j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
            }
        }
        QType::Q8_0 => {
            for j in 0..32 {
                q[j] = (b[2 + j] as i8 as i16 + 128) as u8;
            }
        }
        _ => unreachable!("not a packable type"),
    }
    (q, d, m)
}

/// A weight matrix repacked for the SIMD kernels. Owns its memory (anonymous, huge-page
/// advised where the OS supports it).
///
/// Built only by [`PackedMatrix::pack`] / [`PackedMatrix::pack_releasing`], which establish
/// what the kernels read by offset: `data` holds `rows.div_ceil(8) × nb` records of
/// `fmt.record_bytes()` bytes, laid out as `fmt` says for `ty`.
pub struct PackedMatrix {
    pub(crate) ty: QType,
    pub(crate) fmt: PackFormat,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) nb: usize,
    pub(crate) data: memmap2::MmapMut,
}

impl PackedMatrix {
    /// Repack `rows × cols` weights of type `ty` from GGUF row-major blocks. `None` for types
    /// without a packed kernel.
    pub fn pack(ty: QType, rows: usize, cols: usize, src: &[u8]) -> Option<PackedMatrix> {
        Self::pack_releasing(ty, rows, cols, src, &mut |_| {})
    }

    /// As [`PackedMatrix::pack`], calling `release` with byte ranges of `src` that have been
    /// fully consumed (so a caller can drop them from memory while packing continues).
    pub fn pack_releasing(
        ty: QType,
        rows: usize,
        cols: usize,
        src: &[u8],
        release: &mut dyn FnMut(std::ops::Range<usize>),
    ) -> Option<PackedMatrix> {
        let fmt = PackFormat::for_type(ty)?;
        let (bk, bs) = ty.block();
        let row_bytes = ty.row_bytes(cols)?;
        if src.len() < row_bytes.checked_mul(rows)? {
            return None;
        }
        let nb = cols / bk;
        let n_groups = rows.div_ceil(GROUP);
        let rec = fmt.record_bytes();
        // The kernels read every record (g < n_groups, b < nb) by offset: this is their extent.
        let len = n_groups.checked_mul(nb)?.checked_mul(rec)?.max(1);
        let mut data = memmap2::MmapMut::map_anon(len).ok()?;
        #[cfg(target_os = "linux")]
        let _ = data.advise(memmap2::Advice::HugePage);
        debug_assert_eq!(row_bytes, nb * bs);
        const RELEASE_EVERY: usize = 512; // groups
        for g in 0..n_groups {
            if g > 0 && g % RELEASE_EVERY == 0 {
                release((g - RELEASE_EVERY) * GROUP * row_bytes..g * GROUP * row_bytes);
            }
            for b in 0..nb {
                let out = &mut data[(g * nb + b) * rec..(g * nb + b + 1) * rec];
                if fmt.k {
                    for k in 0..GROUP {
                        let r = g * GROUP + k;
                        let mut q = [fmt.off as u8; QK_K];
                        if r < rows {
                            let sb = decode_superblock(ty, &src[r * row_bytes + b * bs..r * row_bytes + (b + 1) * bs]);
                            out[2 * k..2 * k + 2].copy_from_slice(&half::f16::from_f32(sb.d).to_le_bytes());
                            out[16 + 2 * k..16 + 2 * k + 2].copy_from_slice(&half::f16::from_f32(sb.dmin).to_le_bytes());
                            for s in 0..16 {
                                out[32 + 8 * s + k] = sb.sc[s] as i8 as u8;
                                out[160 + 8 * s + k] = sb.mn[s] as u8;
                            }
                            for (e, v) in q.iter_mut().enumerate() {
                                *v = (sb.q[e] as i32 + fmt.off) as u8;
                            }
                        }
                        for j in 0..QK_K / 4 {
                            for t in 0..4 {
                                out[288 + 32 * j + 4 * k + t] = q[4 * j + t];
                            }
                        }
                    }
                    continue;
                }
                let mut qs = [[0u8; QK]; GROUP];
                for k in 0..GROUP {
                    let r = g * GROUP + k;
                    if r >= rows {
                        // Padding rows: zero scale, zero values → contribute nothing.
                        let zero_q = if fmt.off == 128 { 128 } else { 0 };
                        qs[k] = [zero_q; QK];
                        continue;
                    }
                    let blk = &src[r * row_bytes + b * bs..r * row_bytes + (b + 1) * bs];
                    let (q, d, m) = block_values(ty, blk);
                    qs[k] = q;
                    out[2 * k..2 * k + 2].copy_from_slice(&d.to_le_bytes());
                    if fmt.has_min {
                        out[16 + 2 * k..16 + 2 * k + 2].copy_from_slice(&m.to_le_bytes());
                    }
                }
                let qo = fmt.quant_offset();
                if fmt.nibbles {
                    for i in 0..4 {
                        for k in 0..GROUP {
                            for t in 0..4 {
                                let lo = qs[k][4 * i + t] & 0xF;
                                let hi = qs[k][4 * (i + 4) + t] & 0xF;
                                out[qo + 32 * i + 4 * k + t] = lo | (hi << 4);
                            }
                        }
                    }
                    if fmt.high_bits {
                        for k in 0..GROUP {
                            for t in 0..4 {
                                let mut byte = 0u8;
                                for i in 0..8 {
                                    byte |= ((qs[k][4 * i + t] >> 4) & 1) << i;
                                }
                                out[qo + 128 + 4 * k + t] = byte;
                            }
                        }
                    }
                } else {
                    for i in 0..8 {
                        for k in 0..GROUP {
                            for t in 0..4 {
                                out[qo + 32 * i + 4 * k + t] = qs[k][4 * i + t];
                            }
                        }
                    }
                }
            }
        }
        release(n_groups.saturating_sub(1) / RELEASE_EVERY * RELEASE_EVERY * GROUP * row_bytes..rows * row_bytes);
        Some(PackedMatrix { ty, fmt, rows, cols, nb, data })
    }

    pub fn ty(&self) -> QType {
        self.ty
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
    /// Row `r`, dequantized exactly as [`crate::dequantize_row`] dequantizes the GGUF blocks it
    /// was packed from (same values, same float operations in the same order: bit-identical),
    /// so a tensor that is both multiplied and looked up row by row — a token embedding tied to
    /// the output matrix — needs only this packed copy in memory.
    ///
    /// Panics if `r` is not a row or `out` is not one row long.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows, "row {r} of a {}-row matrix", self.rows);
        assert_eq!(out.len(), self.cols, "output is not one row");
        let (g, k) = (r / GROUP, r % GROUP);
        let bk = self.ty.block().0;
        for (b, y) in out.chunks_exact_mut(bk).enumerate() {
            let (d, m) = self.scales(g, b, k);
            if self.fmt.k {
                for (i, yi) in y.iter_mut().enumerate() {
                    let (sc, mn) = self.sub_scales(g, b, k, i / 16);
                    let q = self.value(g, b, k, i) - self.fmt.off;
                    *yi = d * sc as f32 * q as f32 - m * mn as f32;
                }
                continue;
            }
            for (e, yi) in y.iter_mut().enumerate() {
                let v = self.value(g, b, k, e);
                *yi = match self.ty {
                    QType::Q4_1 | QType::Q5_1 => v as f32 * d + m,
                    // Q4_0, Q5_0 and Q8_0: signed values stored with an offset.
                    _ => (v - self.fmt.off) as f32 * d,
                };
            }
        }
    }

    pub(crate) fn record(&self, g: usize, b: usize) -> &[u8] {
        let rec = self.fmt.record_bytes();
        &self.data[(g * self.nb + b) * rec..(g * self.nb + b + 1) * rec]
    }

    /// Element value (unsigned storage) of row k of group g, element e of block b — scalar
    /// reference for the layout.
    pub(crate) fn value(&self, g: usize, b: usize, k: usize, e: usize) -> i32 {
        let r = self.record(g, b);
        let qo = self.fmt.quant_offset();
        if self.fmt.k {
            return r[qo + 32 * (e / 4) + 4 * k + e % 4] as i32;
        }
        if self.fmt.nibbles {
            let (j, t) = (e / 4, e % 4);
            let (i, hi) = if j < 4 { (j, false) } else { (j - 4, true) };
            let byte = r[qo + 32 * i + 4 * k + t];
            let mut v = if hi { byte >> 4 } else { byte & 0xF } as i32;
            if self.fmt.high_bits {
                let hb = r[qo + 128 + 4 * k + t];
                v |= (((hb >> j) & 1) as i32) << 4;
            }
            v
        } else {
            r[qo + 32 * (e / 4) + 4 * k + e % 4] as i32
        }
    }

    /// K formats: (sub-block scale, sub-block min) of row k, sub-block s.
    pub(crate) fn sub_scales(&self, g: usize, b: usize, k: usize, s: usize) -> (i32, i32) {
        let r = self.record(g, b);
        (r[32 + 8 * s + k] as i8 as i32, r[160 + 8 * s + k] as i32)
    }

    pub(crate) fn scales(&self, g: usize, b: usize, k: usize) -> (f32, f32) {
        let r = self.record(g, b);
        let d = f16_at(r, 2 * k);
        let m = if self.fmt.has_min || self.fmt.k { f16_at(r, 16 + 2 * k) } else { 0.0 };
        (d, m)
    }
}

/// Calls `row(g, k, t)` for every real row (group `g`, lane `k`) of `groups` and every token
/// `t`, handing each result to `y(t, r, value)`; padding rows are skipped.
fn each_row(p: &PackedMatrix, groups: std::ops::Range<usize>, n_tok: usize, y: &mut dyn FnMut(usize, usize, f32), mut row: impl FnMut(usize, usize, usize) -> f32) {
    for g in groups {
        for k in (0..GROUP).take_while(|k| g * GROUP + k < p.rows) {
            for t in 0..n_tok {
                y(t, g * GROUP + k, row(g, k, t));
            }
        }
    }
}

/// Scalar reference over the packed layout: y[t·ldy + r] for rows of groups `groups`.
pub(crate) fn packed_rows_scalar(p: &PackedMatrix, groups: std::ops::Range<usize>, x: &[crate::act::Q8Block], n_tok: usize, y: &mut dyn FnMut(usize, usize, f32)) {
    each_row(p, groups, n_tok, y, |g, k, t| {
        let mut acc = 0f32;
        for b in 0..p.nb {
            let xb = &x[t * p.nb + b];
            let mut isum = 0i32;
            for e in 0..QK {
                isum += p.value(g, b, k, e) * xb.qs[e] as i32;
            }
            isum -= p.fmt.off * xb.isum;
            let (d, m) = p.scales(g, b, k);
            acc += d * xb.d * isum as f32 + m * xb.s;
        }
        acc
    });
}

/// Scalar reference for packed K-quants with Q8_K activations.
pub(crate) fn packed_k_rows_scalar(p: &PackedMatrix, groups: std::ops::Range<usize>, x: &[crate::act::Q8KBlock], n_tok: usize, y: &mut dyn FnMut(usize, usize, f32)) {
    each_row(p, groups, n_tok, y, |g, k, t| {
        let mut acc = 0f32;
        for b in 0..p.nb {
            let xb = &x[t * p.nb + b];
            let (mut isc, mut imn) = (0i32, 0i32);
            for s in 0..16 {
                let (sc, mn) = p.sub_scales(g, b, k, s);
                let mut qd = 0i32;
                for e in s * 16..s * 16 + 16 {
                    qd += (p.value(g, b, k, e) - p.fmt.off) * xb.qs[e] as i32;
                }
                isc += sc * qd;
                imn += mn * xb.bsums[s];
            }
            let (d, dmin) = p.scales(g, b, k);
            acc += xb.d * d * isc as f32 - xb.d * dmin * imn as f32;
        }
        acc
    });
}
