//! Low-rank (LoRA) products with llama.cpp's arithmetic, so that an adapter adds no divergence of
//! its own. ggml multiplies a batch by an F16 or F32 matrix whose rows are whole 16-blocks with
//! llamafile's tinyBLAS: per output, 16 lanes each accumulating a fused multiply-add chain over
//! the row (lane l takes elements l, l+16, …), then the lanes summed in the tree GCC emits for
//! `_mm512_reduce_add_ps` (upper 8 + lower 8, upper 4 + lower 4, then (0+2) + (1+3)). Matching it
//! bit for bit matters because the product A·x is rounded to f16 before B multiplies it: a last-bit
//! difference there becomes a whole f16 step. Rows that are not whole 16-blocks (B at ranks like 4
//! or 8) go through ggml's `vec_dot_f16`, which for fewer than 64 values sums the f32 products in
//! f64; that is what [`b_product`] computes for them (for F32 parts too, where the product is not
//! rounded afterwards and the difference is immaterial).
//!
//! Parts are F16 (as stored; values widened exactly) or F32. Inputs of an F16 part must already
//! be rounded to f16 (`ops::round_to_f16_inplace`), as ggml converts them.

use crate::Isa;

/// A part's values: F16 bits (little-endian bytes) or F32.
#[derive(Clone, Copy)]
pub enum Part<'a> {
    F16(&'a [u8]),
    F32(&'a [f32]),
}

impl Part<'_> {
    pub fn len(&self) -> usize {
        match self {
            Part::F16(b) => b.len() / 2,
            Part::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `r0..r1` of a part with rows of `cols` values.
    pub fn rows(&self, r0: usize, r1: usize, cols: usize) -> Part<'_> {
        match self {
            Part::F16(b) => Part::F16(&b[2 * r0 * cols..2 * r1 * cols]),
            Part::F32(v) => Part::F32(&v[r0 * cols..r1 * cols]),
        }
    }

    #[inline]
    fn at(&self, i: usize) -> f32 {
        match self {
            Part::F16(b) => half::f16::from_le_bytes([b[2 * i], b[2 * i + 1]]).to_f32(),
            Part::F32(v) => v[i],
        }
    }
}

/// GCC's `_mm512_reduce_add_ps` tree over 16 lanes.
#[inline(always)]
pub(crate) fn tree16(v: &[f32; 16]) -> f32 {
    let mut t3 = [0f32; 8];
    for i in 0..8 {
        t3[i] = v[8 + i] + v[i];
    }
    let t6 = [t3[4] + t3[0], t3[5] + t3[1], t3[6] + t3[2], t3[7] + t3[3]];
    (t6[0] + t6[2]) + (t6[1] + t6[3])
}

/// `t[r] = A[r]·x` for the `rank` rows of `a` (rank × cols, row-major): tinyBLAS's order when
/// `cols` is a multiple of 16, else a plain f32 sum.
pub fn a_product(isa: Isa, a: Part, rank: usize, cols: usize, x: &[f32], t: &mut [f32]) {
    assert!(a.len() == rank * cols && x.len() == cols && t.len() == rank, "low-rank A product: shapes disagree");
    if cols.is_multiple_of(16) {
        #[cfg(target_arch = "x86_64")]
        if let Some(tok) = isa.avx2() {
            return crate::simd::x86_lowrank::a_product(tok, a, cols, x, t);
        }
        for (r, t) in t.iter_mut().enumerate() {
            let mut acc = [0f32; 16];
            for c in (0..cols).step_by(16) {
                for (l, acc) in acc.iter_mut().enumerate() {
                    *acc = a.at(r * cols + c + l).mul_add(x[c + l], *acc);
                }
            }
            *t = tree16(&acc);
        }
    } else {
        let _ = isa;
        for (r, t) in t.iter_mut().enumerate() {
            *t = (0..cols).fold(0f32, |s, c| a.at(r * cols + c).mul_add(x[c], s));
        }
    }
}

/// `z[o − o0] = Σ_r B[o][r]·t[r]` for the outputs `o0..o0 + z.len()`, B given transposed (`bt`:
/// rank × out, row-major): tinyBLAS's order when `rank` is a multiple of 16, else f32 products
/// summed in f64 (ggml's `vec_dot_f16` below 64 values).
pub fn b_product(isa: Isa, bt: Part, rank: usize, out: usize, t: &[f32], o0: usize, z: &mut [f32]) {
    assert!(bt.len() == rank * out && t.len() == rank && o0 + z.len() <= out, "low-rank B product: shapes disagree");
    #[cfg(target_arch = "x86_64")]
    if let Some(tok) = isa.avx2() {
        return crate::simd::x86_lowrank::b_product(tok, bt, rank, out, t, o0, z);
    }
    let _ = isa;
    b_product_scalar(bt, rank, out, t, o0, z);
}

pub(crate) fn b_product_scalar(bt: Part, rank: usize, out: usize, t: &[f32], o0: usize, z: &mut [f32]) {
    for (k, z) in z.iter_mut().enumerate() {
        let o = o0 + k;
        if rank.is_multiple_of(16) {
            let mut acc = [0f32; 16];
            for c in (0..rank).step_by(16) {
                for (l, acc) in acc.iter_mut().enumerate() {
                    *acc = bt.at((c + l) * out + o).mul_add(t[c + l], *acc);
                }
            }
            *z = tree16(&acc);
        } else {
            *z = (0..rank).fold(0f64, |s, r| s + f64::from(bt.at(r * out + o) * t[r])) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
    }

    fn rounded(v: &[f32]) -> Vec<f32> {
        v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect()
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32 - 0.5) * 4.0
            })
            .collect()
    }

    /// Every ISA this CPU has gives the scalar reference's bits, F16 and F32 parts, ranks on and
    /// off the 16-lane path, output windows with tails.
    #[test]
    fn simd_paths_equal_the_reference_bit_for_bit() {
        let isas: Vec<Isa> = crate::IsaKind::ALL.into_iter().filter_map(Isa::new).collect();
        for (rank, cols, out) in [(4, 64, 40), (16, 96, 37), (32, 48, 16), (8, 20, 9), (48, 32, 70)] {
            let a = rounded(&values(rank * cols, 1));
            let x = rounded(&values(cols, 2));
            let bt = rounded(&values(rank * out, 3));
            let (a16, bt16) = (f16s(&a), f16s(&bt));
            for (pa, pb) in [(Part::F16(&a16), Part::F16(&bt16)), (Part::F32(&a), Part::F32(&bt))] {
                let mut want_t = vec![0f32; rank];
                a_product(Isa::scalar(), pa, rank, cols, &x, &mut want_t);
                let mut want_z = vec![0f32; out - 3];
                b_product(Isa::scalar(), pb, rank, out, &want_t, 3, &mut want_z);
                for &isa in &isas {
                    let mut t = vec![0f32; rank];
                    a_product(isa, pa, rank, cols, &x, &mut t);
                    assert_eq!(t.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want_t.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{isa} A rank {rank} cols {cols}");
                    let mut z = vec![0f32; out - 3];
                    b_product(isa, pb, rank, out, &want_t, 3, &mut z);
                    assert_eq!(z.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want_z.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{isa} B rank {rank} out {out}");
                }
            }
        }
    }

    /// The order is tinyBLAS's: lanes of 16 with FMA chains, then the reduction tree.
    #[test]
    fn the_order_is_tinyblas() {
        let a: Vec<f32> = (0..32).map(|i| if i == 0 { 1e8 } else if i == 16 { -1e8 } else { 1.0 }).collect();
        let x = vec![1f32; 32];
        let mut t = [0f32];
        a_product(Isa::scalar(), Part::F32(&a), 1, 32, &x, &mut t);
        // lane 0: fma(-1e8, 1, 1e8) = 0; other lanes 2 each: 15 × 2 = 30. A sequential sum loses the 1s.
        assert_eq!(t[0], 30.0);
        let seq: f32 = a.iter().sum();
        assert_ne!(seq, 30.0);
    }
}
