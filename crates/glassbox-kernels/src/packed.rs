//! Repacked weights: rows interleaved in groups of G (8 for 256-bit kernels, 16 for AVX-512) so
//! that one `dpbusd` computes partial sums for G rows at once (lane k = row k), with scales as
//! vectors — no horizontal sums, no per-block scalar work. Built once at load time from the
//! GGUF blocks; results equal the unpacked kernels up to float summation order (tested). The
//! packed copy is as compact as the file's blocks (within 3 % for the types models use), so
//! memory-bound decode reads no more bytes than the file holds.
//!
//! Element values q are stored unsigned (the type's offset added). Within a 32-element chunk,
//! "register" i (0..8) holds elements 4i..4i+4 of each row: lane k, byte t = q[k][4i + t].
//! - Nibbles: 4 × 4G bytes; stored register i (0..4), lane k, byte t holds register i in its
//!   low nibble and register i + 4 in its high nibble.
//! - High bit plane p (bit 4 + p of q): 4G bytes, byte 4k + t, bit i = that bit of register i.
//! - Bytes (Q8_0): 8 × 4G bytes, register i lane k = q[k][4i..4i+4] (value + 128).
//!
//! 32-element record: `d[G]` f16, `m[G]` f16 (Q4_1/Q5_1), nibbles, one high plane (Q5) or
//! bytes (Q8_0).
//!
//! K-quant record (256 elements, `nsub` sub-blocks of `sub` = 16 or 32 elements): `d[G]` f16,
//! `dmin[G]` f16 (types with mins), sub-block scales as i8 pairs `[nsub/2][G][2]`, mins as u8
//! pairs `[nsub/2][G][2]` (types with mins), then 8 chunks of nibbles and `high` planes per
//! chunk. Pairs let one `pmaddwd` apply two sub-blocks' mins (or offset corrections) per lane.

use crate::isa::Isa;
use crate::quant::{QK, QK_K, QType, decode_superblock, f16_at};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackFormat {
    /// Rows per record: 8 (256-bit kernels) or 16 (AVX-512).
    pub group: usize,
    /// Subtract `off × Σx` from the integer dot (unsigned storage of signed values).
    pub off: i32,
    pub has_min: bool,
    /// 4-bit storage (plus `high` planes); otherwise bytes (Q8_0).
    pub nibbles: bool,
    /// High bit planes above the nibble: 0, 1 (Q5_0, Q5_1, Q5_K) or 2 (Q6_K).
    pub high: usize,
    /// K-quant superblock (256 elements, Q8_K activations).
    pub k: bool,
    /// K-quants: elements per sub-block scale (16 or 32).
    pub sub: usize,
}

/// Rows per record the kernels of `isa` read.
pub(crate) fn group_for(isa: Isa) -> usize {
    if isa.kind() >= crate::IsaKind::Avx512 { 16 } else { 8 }
}

impl PackFormat {
    pub fn for_type(ty: QType, group: usize) -> Option<PackFormat> {
        let f = |off, has_min, nibbles, high| Some(PackFormat { group, off, has_min, nibbles, high, k: false, sub: 0 });
        let k = |off, has_min, high, sub| Some(PackFormat { group, off, has_min, nibbles: true, high, k: true, sub });
        match ty {
            QType::Q4_0 => f(8, false, true, 0),
            QType::Q4_1 => f(0, true, true, 0),
            QType::Q5_0 => f(16, false, true, 1),
            QType::Q5_1 => f(0, true, true, 1),
            QType::Q8_0 => f(128, false, false, 0),
            QType::Q2K => k(0, true, 0, 16),
            QType::Q3K => k(4, false, 0, 16),
            QType::Q4K => k(0, true, 0, 32),
            QType::Q5K => k(0, true, 1, 32),
            QType::Q6K => k(32, false, 2, 16),
            _ => None,
        }
    }
    /// Sub-blocks per superblock (K formats).
    pub fn nsub(self) -> usize {
        QK_K / self.sub
    }
    /// Byte offset of the mins (`m[G]` or `dmin[G]`).
    pub fn min_offset(self) -> usize {
        2 * self.group
    }
    /// K formats: byte offset of the scale pairs.
    pub fn sc_offset(self) -> usize {
        2 * self.group * if self.has_min { 2 } else { 1 }
    }
    /// K formats: byte offset of the min pairs.
    pub fn mn_offset(self) -> usize {
        self.sc_offset() + self.nsub() * self.group
    }
    /// Byte offset of the quants.
    pub fn quant_offset(self) -> usize {
        if self.k {
            // Rounded up to a vector (4G bytes): with chunks of whole vectors, every quant load
            // is then aligned and records are whole vectors.
            return (self.mn_offset() + if self.has_min { self.nsub() * self.group } else { 0 }).next_multiple_of(4 * self.group);
        }
        2 * self.group * if self.has_min { 2 } else { 1 }
    }
    /// Bytes of one chunk's quants (32 elements × G rows): nibbles and high planes, or bytes.
    pub fn chunk_bytes(self) -> usize {
        if self.nibbles { (16 + 4 * self.high) * self.group } else { 32 * self.group }
    }
    /// Bytes of one (group, block) record.
    pub fn record_bytes(self) -> usize {
        self.quant_offset() + self.chunk_bytes() * if self.k { QK_K / QK } else { 1 }
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

/// Writes the quants of one 32-element chunk of `fmt.group` rows (`qs[k]`: unsigned values of
/// row k) in the layout the module doc describes.
fn write_chunk(fmt: PackFormat, qs: &[[u8; QK]], out: &mut [u8]) {
    let g = fmt.group;
    if !fmt.nibbles {
        for i in 0..8 {
            for (k, q) in qs.iter().enumerate() {
                out[4 * g * i + 4 * k..4 * g * i + 4 * k + 4].copy_from_slice(&q[4 * i..4 * i + 4]);
            }
        }
        return;
    }
    for (k, q) in qs.iter().enumerate() {
        for t in 0..4 {
            for i in 0..4 {
                out[4 * g * i + 4 * k + t] = (q[4 * i + t] & 0xF) | ((q[4 * (i + 4) + t] & 0xF) << 4);
            }
            for p in 0..fmt.high {
                out[16 * g + 4 * g * p + 4 * k + t] = (0..8).fold(0u8, |byte, i| byte | (((q[4 * i + t] >> (4 + p)) & 1) << i));
            }
        }
    }
}

/// Element `e` (0..32) of row `k` in a chunk written by [`write_chunk`].
fn read_chunk(fmt: PackFormat, chunk: &[u8], k: usize, e: usize) -> i32 {
    let g = fmt.group;
    let (i, t) = (e / 4, e % 4);
    if !fmt.nibbles {
        return chunk[4 * g * i + 4 * k + t] as i32;
    }
    let byte = chunk[4 * g * (i % 4) + 4 * k + t];
    let mut v = if i < 4 { byte & 0xF } else { byte >> 4 } as i32;
    for p in 0..fmt.high {
        v |= (((chunk[16 * g + 4 * g * p + 4 * k + t] >> i) & 1) as i32) << (4 + p);
    }
    v
}

/// A weight matrix repacked for the SIMD kernels. Owns its memory (anonymous, huge-page
/// advised where the OS supports it).
///
/// Built only by [`PackedMatrix::pack`] / [`PackedMatrix::pack_releasing`], which establish
/// what the kernels read by offset: `data` holds `rows.div_ceil(fmt.group) × nb` records of
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
    /// Repack `rows × cols` weights of type `ty` from GGUF row-major blocks, in the layout the
    /// kernels of `isa` read fastest. `None` for types without a packed kernel.
    pub fn pack(isa: Isa, ty: QType, rows: usize, cols: usize, src: &[u8]) -> Option<PackedMatrix> {
        Self::pack_releasing(isa, ty, rows, cols, src, &mut |_| {})
    }

    /// As [`PackedMatrix::pack`], calling `release` with byte ranges of `src` that have been
    /// fully consumed (so a caller can drop them from memory while packing continues).
    pub fn pack_releasing(
        isa: Isa,
        ty: QType,
        rows: usize,
        cols: usize,
        src: &[u8],
        release: &mut dyn FnMut(std::ops::Range<usize>),
    ) -> Option<PackedMatrix> {
        let fmt = PackFormat::for_type(ty, group_for(isa))?;
        let group = fmt.group;
        let (bk, bs) = ty.block();
        let row_bytes = ty.row_bytes(cols)?;
        if src.len() < row_bytes.checked_mul(rows)? {
            return None;
        }
        let nb = cols / bk;
        let n_groups = rows.div_ceil(group);
        let rec = fmt.record_bytes();
        // The kernels read every record (g < n_groups, b < nb) by offset: this is their extent.
        let len = n_groups.checked_mul(nb)?.checked_mul(rec)?.max(1);
        let mut data = memmap2::MmapMut::map_anon(len).ok()?;
        #[cfg(target_os = "linux")]
        let _ = data.advise(memmap2::Advice::HugePage);
        debug_assert_eq!(row_bytes, nb * bs);
        let release_every = 4096 / group; // groups
        let zero_q = fmt.off as u8; // unsigned storage of the value 0
        let mut qs = vec![[zero_q; QK]; group];
        let mut sbs = Vec::with_capacity(group);
        for g in 0..n_groups {
            if g > 0 && g % release_every == 0 {
                release((g - release_every) * group * row_bytes..g * group * row_bytes);
            }
            for b in 0..nb {
                let out = &mut data[(g * nb + b) * rec..(g * nb + b + 1) * rec];
                let blk = |r: usize| &src[r * row_bytes + b * bs..r * row_bytes + (b + 1) * bs];
                if fmt.k {
                    sbs.clear();
                    for k in 0..group {
                        let r = g * group + k;
                        // Padding rows: zero scales and values → contribute nothing.
                        let Some(sb) = (r < rows).then(|| decode_superblock(ty, blk(r))) else {
                            sbs.push(None);
                            continue;
                        };
                        out[2 * k..2 * k + 2].copy_from_slice(&half::f16::from_f32(sb.d).to_le_bytes());
                        if fmt.has_min {
                            let o = fmt.min_offset() + 2 * k;
                            out[o..o + 2].copy_from_slice(&half::f16::from_f32(sb.dmin).to_le_bytes());
                        }
                        for j in 0..fmt.nsub() {
                            // `decode_superblock` gives per-16 scales; a 32-element sub-block's two are equal.
                            let s16 = j * fmt.sub / 16;
                            let at = (j / 2) * 2 * group + 2 * k + j % 2;
                            out[fmt.sc_offset() + at] = sb.sc[s16] as i8 as u8;
                            if fmt.has_min {
                                out[fmt.mn_offset() + at] = sb.mn[s16] as u8;
                            }
                        }
                        sbs.push(Some(sb));
                    }
                    for c in 0..QK_K / QK {
                        for (k, sb) in sbs.iter().enumerate() {
                            qs[k] = match sb {
                                Some(sb) => std::array::from_fn(|e| (sb.q[QK * c + e] as i32 + fmt.off) as u8),
                                None => [zero_q; QK],
                            };
                        }
                        let cb = fmt.chunk_bytes();
                        let o = fmt.quant_offset() + c * cb;
                        write_chunk(fmt, &qs, &mut out[o..o + cb]);
                    }
                    continue;
                }
                for k in 0..group {
                    let r = g * group + k;
                    if r >= rows {
                        qs[k] = [zero_q; QK];
                        continue;
                    }
                    let (q, d, m) = block_values(ty, blk(r));
                    qs[k] = q;
                    out[2 * k..2 * k + 2].copy_from_slice(&d.to_le_bytes());
                    if fmt.has_min {
                        let o = fmt.min_offset() + 2 * k;
                        out[o..o + 2].copy_from_slice(&m.to_le_bytes());
                    }
                }
                let qo = fmt.quant_offset();
                write_chunk(fmt, &qs, &mut out[qo..]);
            }
        }
        release(n_groups.saturating_sub(1) / release_every * release_every * group * row_bytes..rows * row_bytes);
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
    /// Rows per interleaved record (8 or 16): which kernels can read this copy.
    pub fn group(&self) -> usize {
        self.fmt.group
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
        let (g, k) = (r / self.fmt.group, r % self.fmt.group);
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
        let (f, r) = (self.fmt, self.record(g, b));
        let cb = f.chunk_bytes();
        let o = f.quant_offset() + (e / QK) * cb;
        read_chunk(f, &r[o..o + cb], k, e % QK)
    }

    /// K formats: (scale, min) of row k for the 16 elements from 16·`s16` on.
    pub(crate) fn sub_scales(&self, g: usize, b: usize, k: usize, s16: usize) -> (i32, i32) {
        let (f, r) = (self.fmt, self.record(g, b));
        let j = s16 * 16 / f.sub;
        let at = (j / 2) * 2 * f.group + 2 * k + j % 2;
        let mn = if f.has_min { r[f.mn_offset() + at] as i32 } else { 0 };
        (r[f.sc_offset() + at] as i8 as i32, mn)
    }

    pub(crate) fn scales(&self, g: usize, b: usize, k: usize) -> (f32, f32) {
        let r = self.record(g, b);
        let d = f16_at(r, 2 * k);
        let m = if self.fmt.has_min { f16_at(r, self.fmt.min_offset() + 2 * k) } else { 0.0 };
        (d, m)
    }
}

/// Calls `row(g, k, t)` for every real row (group `g`, lane `k`) of `groups` and every token
/// `t`, handing each result to `y(t, r, value)`; padding rows are skipped.
fn each_row(p: &PackedMatrix, groups: std::ops::Range<usize>, n_tok: usize, y: &mut dyn FnMut(usize, usize, f32), mut row: impl FnMut(usize, usize, usize) -> f32) {
    let group = p.fmt.group;
    for g in groups {
        for k in (0..group).take_while(|k| g * group + k < p.rows) {
            for t in 0..n_tok {
                y(t, g * group + k, row(g, k, t));
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
