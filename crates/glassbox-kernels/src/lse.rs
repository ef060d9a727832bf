//! log-sum-exp of a logits row, fast: scoring a vocabulary of 150k entries per continuation
//! token costs as much as a small matmul when `exp` is a scalar libm call. Cephes' `expf`
//! polynomial (relative error < 2e-7 over the range that matters) in a loop the compiler
//! vectorizes, partial sums in f32 lanes per block of 256 and in f64 across blocks.

use crate::Isa;

const LANES: usize = 16;
const BLOCK: usize = 256;

#[inline(always)]
pub(crate) fn exp_poly(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let fx = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - fx * 0.693_359_4 - fx * -2.121_944_4e-4;
    let y = (((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 0.5) * r * r + r + 1.0;
    y * f32::from_bits(((fx as i32 + 127) << 23) as u32)
}

#[inline(always)]
fn max_body(x: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            m[i] = m[i].max(c[i]);
        }
    }
    let mut best = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &v in chunks.remainder() {
        best = best.max(v);
    }
    best
}

#[inline(always)]
fn exp_sum_body(x: &[f32], shift: f32) -> f64 {
    let mut total = 0f64;
    for block in x.chunks(BLOCK) {
        let mut acc = [0f32; LANES];
        let mut chunks = block.chunks_exact(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                acc[i] += exp_poly(c[i] - shift);
            }
        }
        total += acc.iter().map(|&a| f64::from(a)).sum::<f64>();
        total += chunks.remainder().iter().map(|&v| f64::from(exp_poly(v - shift))).sum::<f64>();
    }
    total
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn lse_avx2(x: &[f32]) -> (f32, f64) {
    let m = max_body(x);
    (m, exp_sum_body(x, m))
}

/// Units (consecutive runs of `unit` entries; the last may be short) holding an entry ≥ `floor`.
#[inline(always)]
fn units_body(x: &[f32], unit: usize, floor: f32, out: &mut Vec<usize>) {
    for (u, c) in x.chunks(unit).enumerate() {
        if c.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) >= floor {
            out.push(u);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn max_avx2(x: &[f32]) -> f32 {
    max_body(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn units_avx2(x: &[f32], unit: usize, floor: f32, out: &mut Vec<usize>) {
    units_body(x, unit, floor, out)
}

/// The largest entry of a row (`-inf` when empty).
pub fn row_max(isa: Isa, x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if isa.avx2().is_some() {
        // SAFETY: an `Avx2` token exists only once detection found avx2 and fma (isa.rs).
        return unsafe { max_avx2(x) };
    }
    let _ = isa;
    max_body(x)
}

/// Appends to `out`, ascending, the index of every run of `unit` consecutive entries of `x`
/// (the last run may be shorter) that holds an entry ≥ `floor`.
///
/// Panics if `unit` is 0.
pub fn units_at_least(isa: Isa, x: &[f32], unit: usize, floor: f32, out: &mut Vec<usize>) {
    assert!(unit > 0, "a unit of 0 entries");
    #[cfg(target_arch = "x86_64")]
    if isa.avx2().is_some() {
        // SAFETY: as in `row_max`.
        return unsafe { units_avx2(x, unit, floor, out) };
    }
    let _ = isa;
    units_body(x, unit, floor, out)
}

/// `(max, Σ exp(x - max))` of a row: its log-sum-exp is `max + ln(sum)`.
pub fn max_exp_sum(isa: Isa, x: &[f32]) -> (f32, f64) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx2().is_some() {
        // SAFETY: an `Avx2` token exists only once detection found avx2 and fma (isa.rs).
        return unsafe { lse_avx2(x) };
    }
    let _ = isa;
    let m = max_body(x);
    (m, exp_sum_body(x, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_poly_is_close_to_exp() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp_poly(x));
            worst = worst.max(((got - want) / want).abs());
            x += 0.01171875;
        }
        assert!(worst < 3e-7, "{worst}");
    }

    #[test]
    fn max_exp_sum_matches_the_plain_sum_on_every_path() {
        let row: Vec<f32> = (0..151_936u32).map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) as f32 / 16_777_216.0) * 30.0 - 20.0).collect();
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let want: f64 = row.iter().map(|&v| (f64::from(v) - f64::from(max)).exp()).sum();
        for isa in Isa::supported() {
            let (m, s) = max_exp_sum(isa, &row);
            assert_eq!(m, max);
            assert!(((s - want) / want).abs() < 1e-6, "{isa:?}: {s} vs {want}");
        }
        let (m, s) = max_exp_sum(Isa::supported()[0], &[1.0, 2.0, 3.0]);
        for isa in Isa::supported() {
            assert_eq!(row_max(isa, &row), max);
            let mut got = Vec::new();
            units_at_least(isa, &row, 8, max - 0.01, &mut got);
            let want: Vec<usize> = (0..row.len().div_ceil(8)).filter(|&u| row[u * 8..(u * 8 + 8).min(row.len())].iter().any(|&v| v >= max - 0.01)).collect();
            assert!(!want.is_empty());
            assert_eq!(got, want, "{isa:?}");
        }
        assert_eq!(m, 3.0);
        assert!((s - (1.0 + (-1f64).exp() + (-2f64).exp())).abs() < 1e-6);
    }
}
