//! The 256-element "K" block types, as ggml's reference quantisers make them: per 16- or
//! 32-element sub-block a scale (and a minimum) found by the same searches — `qx` (symmetric,
//! weighted least squares over 19 candidate scales), `q3` (symmetric, coordinate descent) and
//! `qkx2` (asymmetric, weighted, a grid of candidate scales) — then the sub-block scales
//! quantised against the block's largest, and every value re-quantised against the scale it will
//! be read back with. f32 arithmetic in ggml's order; `nearest_int` is its magic-number
//! rounding (ties to even).

use half::f16;

const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round to nearest, ties to even, for |x| ≤ 4194303.
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    ((v.to_bits() & 0x007f_ffff) as i32) - 0x0040_0000
}

fn f16_bits(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Symmetric scale by weighted least squares (`make_qx_quants`, `rmse_type` 1: weights x²);
/// writes levels 0..2·nmax into `l`.
fn make_qx_quants(x: &[f32; 16], nmax: i32, l: &mut [i8; 16]) -> f32 {
    let max = crate::legacy::signed_max(x);
    if max.abs() < GROUP_MAX_EPS {
        l.iter_mut().for_each(|q| *q = 0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (q, &v) in l.iter_mut().zip(x) {
        let li = level(iscale, v);
        *q = (li + nmax) as i8;
        let w = v * v;
        sumlx += w * v * li as f32;
        suml2 += w * li as f32 * li as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (mut slx, mut sl2) = (0.0f32, 0.0f32);
        for &v in x {
            let li = level(iscale, v);
            let w = v * v;
            slx += w * v * li as f32;
            sl2 += w * li as f32 * li as f32;
        }
        if sl2 > 0.0 && slx * slx > best * sl2 {
            for (q, &v) in l.iter_mut().zip(x) {
                *q = (level(iscale, v) + nmax) as i8;
            }
            scale = slx / sl2;
            best = scale * slx;
        }
    }
    scale
}

/// Symmetric scale by coordinate descent on the levels (`make_q3_quants` with `do_rmse`).
fn make_q3_quants(x: &[f32], nmax: i32, l: &mut [i8]) -> f32 {
    let max = crate::legacy::signed_max(x);
    if max.abs() < GROUP_MAX_EPS {
        l.iter_mut().for_each(|q| *q = 0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    let mut li = [0i32; 16];
    for (i, &v) in x.iter().enumerate() {
        li[i] = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        let w = v * v;
        sumlx += w * v * li[i] as f32;
        suml2 += w * li[i] as f32 * li[i] as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (i, &v) in x.iter().enumerate() {
            let w = v * v;
            let mut slx = sumlx - w * v * li[i] as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li[i] as f32 * li[i] as f32;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != li[i] {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        li[i] = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for (q, &v) in l.iter_mut().zip(&li) {
        *q = (v + nmax) as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Asymmetric scale and minimum over a grid of candidates (`make_qkx2_quants`); returns
/// (scale, −min) and writes levels 0..nmax.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants<const N: usize>(x: &[f32; N], w: &[f32; N], nmax: i32, l: &mut [u8; N], rmin: f32, rdelta: f32, nstep: i32, use_mad: bool) -> (f32, f32) {
    let n = N;
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.iter_mut().for_each(|q| *q = 0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        best += w[i] * err(scale * q as f32 + min - x[i]);
    }
    let mut aux = [0u8; N];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = q as u8;
            let qf = q as f32;
            sum_l += w[i] * qf;
            sum_l2 += w[i] * qf * qf;
            sum_xl += w[i] * qf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur = 0.0f32;
            for i in 0..n {
                cur += w[i] * err(this_scale * aux[i] as f32 + this_min - x[i]);
            }
            if cur < best {
                *l = aux;
                best = cur;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// The largest value above zero (0 if none), scanned as ggml's `if (x > max) max = x` loops do.
fn positive_max(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, &x| if x > m { x } else { m })
}

/// Packs 2-bit levels as ggml's Q2_K/Q3_K `qs`: for each half of the block, byte l holds the
/// levels l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7.
fn pack_2bit(levels: &[u8; 256], out: &mut Vec<u8>) {
    for j in (0..256).step_by(128) {
        for l in 0..32 {
            out.push(levels[j + l] | (levels[j + l + 32] << 2) | (levels[j + l + 64] << 4) | (levels[j + l + 96] << 6));
        }
    }
}

pub(crate) fn q2_k(x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0u8; 256];
    let (mut scales, mut mins) = ([0.0f32; 16], [0.0f32; 16]);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let mut w = [0.0f32; 16];
        w.iter_mut().zip(xs).for_each(|(w, v)| *w = v.abs());
        let (s, m) = make_qkx2_quants(xs.try_into().unwrap(), &w, 3, (&mut l[16 * j..16 * j + 16]).try_into().unwrap(), -0.5, 0.1, 15, true);
        scales[j] = s;
        mins[j] = m;
    }
    let (max_scale, max_min) = (positive_max(&scales), positive_max(&mins));
    let mut sc = [0u8; 16];
    let d = if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        max_scale / 15.0
    } else {
        0.0
    };
    let dmin = if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for j in 0..16 {
            sc[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
        }
        max_min / 15.0
    } else {
        0.0
    };
    let (dq, dmq) = (f16_round(d), f16_round(dmin));
    for j in 0..16 {
        let dj = dq * f32::from(sc[j] & 0xf);
        if dj == 0.0 {
            continue;
        }
        let dm = dmq * f32::from(sc[j] >> 4);
        for ii in 0..16 {
            l[16 * j + ii] = nearest_int((x[16 * j + ii] + dm) / dj).clamp(0, 3) as u8;
        }
    }
    out.extend_from_slice(&sc);
    pack_2bit(&l, out);
    out.extend_from_slice(&f16_bits(d));
    out.extend_from_slice(&f16_bits(dmin));
}

pub(crate) fn q3_k(x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0i8; 256];
    let mut scales = [0.0f32; 16];
    for j in 0..16 {
        scales[j] = make_q3_quants(&x[16 * j..16 * j + 16], 4, &mut l[16 * j..16 * j + 16]);
    }
    let max_scale = crate::legacy::signed_max(&scales);
    let mut sc = [0u8; 12];
    let d = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for j in 0..16 {
            let q = (nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32;
            if j < 8 {
                sc[j] = (q & 0xf) as u8;
            } else {
                sc[j - 8] |= ((q & 0xf) << 4) as u8;
            }
            sc[j % 4 + 8] |= ((q >> 4) << (2 * (j / 4))) as u8;
        }
        1.0 / iscale
    } else {
        0.0
    };
    let dq = f16_round(d);
    for j in 0..16 {
        let lo = if j < 8 { sc[j] & 0xf } else { sc[j - 8] >> 4 };
        let s = i32::from(lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        let dj = dq * s as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dj).clamp(-4, 3) + 4) as i8;
        }
    }
    let mut hmask = [0u8; 32];
    let mut low = [0u8; 256];
    for (j, &q) in l.iter().enumerate() {
        let mut q = q as u8;
        if q > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            q -= 4;
        }
        low[j] = q;
    }
    out.extend_from_slice(&hmask);
    pack_2bit(&low, out);
    out.extend_from_slice(&sc);
    out.extend_from_slice(&f16_bits(d));
}

/// The 12 bytes of Q4_K/Q5_K's eight 6-bit scales and minimums.
fn pack_scales_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 { (q[j] & 63, q[j + 4] & 63) } else { ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)) }
}

/// Q4_K and Q5_K share everything but the level count and the search grid; returns the levels
/// and writes d, dmin and the scales.
fn k4_common(x: &[f32], nmax: i32, rmin: f32, nstep: i32, out: &mut Vec<u8>) -> [u8; 256] {
    let mut l = [0u8; 256];
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut w = [0.0f32; 32];
        w.iter_mut().zip(xs).for_each(|(w, v)| *w = av_x + v.abs());
        let (s, m) = make_qkx2_quants(xs.try_into().unwrap(), &w, nmax, (&mut l[32 * j..32 * j + 32]).try_into().unwrap(), rmin, 0.1, nstep, false);
        scales[j] = s;
        mins[j] = m;
    }
    let (max_scale, max_min) = (positive_max(&scales), positive_max(&mins));
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let sc = pack_scales_k4(&ls, &lm);
    let (d, dmin) = (max_scale / 63.0, max_min / 63.0);
    out.extend_from_slice(&f16_bits(d));
    out.extend_from_slice(&f16_bits(dmin));
    out.extend_from_slice(&sc);
    let (dq, dmq) = (f16_round(d), f16_round(dmin));
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, &sc);
        let dj = dq * f32::from(s);
        if dj == 0.0 {
            continue;
        }
        let dm = dmq * f32::from(m);
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    l
}

pub(crate) fn q4_k(x: &[f32], out: &mut Vec<u8>) {
    let l = k4_common(x, 15, -1.0, 20, out);
    for j in (0..256).step_by(64) {
        for i in 0..32 {
            out.push(l[j + i] | (l[j + i + 32] << 4));
        }
    }
}

pub(crate) fn q5_k(x: &[f32], out: &mut Vec<u8>) {
    let l = k4_common(x, 31, -0.5, 15, out);
    let mut qh = [0u8; 32];
    let mut ql = [0u8; 128];
    let mut k = 0;
    let (mut m1, mut m2) = (1u8, 2u8);
    for n in (0..256).step_by(64) {
        for j in 0..32 {
            let mut l1 = l[n + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = l[n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[k] = l1 | (l2 << 4);
            k += 1;
        }
        m1 <<= 2;
        m2 <<= 2;
    }
    out.extend_from_slice(&qh);
    out.extend_from_slice(&ql);
}

pub(crate) fn q6_k(x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0i8; 256];
    let mut scales = [0.0f32; 16];
    for ib in 0..16 {
        scales[ib] = make_qx_quants(x[16 * ib..16 * ib + 16].try_into().unwrap(), 32, (&mut l[16 * ib..16 * ib + 16]).try_into().unwrap());
    }
    let max_scale = crate::legacy::signed_max(&scales);
    if max_scale.abs() < GROUP_MAX_EPS {
        out.extend_from_slice(&[0u8; 210]);
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = 1.0 / iscale;
    let mut sc = [0i8; 16];
    for ib in 0..16 {
        sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
    }
    let dq = f16_round(d);
    for j in 0..16 {
        let dj = dq * f32::from(sc[j]);
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dj).clamp(-32, 31) + 32) as i8;
        }
    }
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for (half, j) in (0..256).step_by(128).enumerate() {
        for i in 0..32 {
            let q = |k: usize| l[j + i + k] as u8;
            ql[64 * half + i] = (q(0) & 0xf) | ((q(64) & 0xf) << 4);
            ql[64 * half + i + 32] = (q(32) & 0xf) | ((q(96) & 0xf) << 4);
            qh[32 * half + i] = (q(0) >> 4) | ((q(32) >> 4) << 2) | ((q(64) >> 4) << 4) | ((q(96) >> 4) << 6);
        }
    }
    out.extend_from_slice(&ql);
    out.extend_from_slice(&qh);
    out.extend_from_slice(&sc.map(|s| s as u8));
    out.extend_from_slice(&f16_bits(d));
}
