//! The 32-element block types. Each follows ggml's reference quantiser step for step: the scale
//! from the block's extreme (signed, for the symmetric types) or its range, its reciprocal in
//! f32, values shifted and truncated as C's `(int8_t)` / `(uint8_t)` casts do, the scale stored
//! as f16.

use half::f16;

fn push_f16(out: &mut Vec<u8>, x: f32) {
    out.extend_from_slice(&f16::from_f32(x).to_le_bytes());
}

/// The value of largest magnitude, with its sign (the first one on ties, as ggml's `<` test).
pub(crate) fn signed_max(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn inv(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// C's `(int8_t)f` for the values these quantisers produce (within range): truncation.
fn trunc_i8(f: f32) -> i32 {
    f as i8 as i32
}

pub(crate) fn q4_0(x: &[f32], out: &mut Vec<u8>) {
    let d = signed_max(x) / -8.0;
    let id = inv(d);
    push_f16(out, d);
    for j in 0..16 {
        let x0 = x[j] * id;
        let x1 = x[16 + j] * id;
        let q0 = trunc_i8(x0 + 8.5).min(15) as u8;
        let q1 = trunc_i8(x1 + 8.5).min(15) as u8;
        out.push(q0 | (q1 << 4));
    }
}

pub(crate) fn q4_1(x: &[f32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inv(d);
    push_f16(out, d);
    push_f16(out, min);
    for j in 0..16 {
        let x0 = (x[j] - min) * id;
        let x1 = (x[16 + j] - min) * id;
        let q0 = trunc_i8(x0 + 0.5).min(15) as u8;
        let q1 = trunc_i8(x1 + 0.5).min(15) as u8;
        out.push(q0 | (q1 << 4));
    }
}

/// The low nibbles and the fifth bits (`qh`, bit j for element j) of 32 five-bit values.
fn push_q5(out: &mut Vec<u8>, q: &[u8; 32]) {
    let mut qh = 0u32;
    for (j, &v) in q.iter().enumerate() {
        qh |= u32::from((v & 0x10) >> 4) << j;
    }
    out.extend_from_slice(&qh.to_le_bytes());
    for j in 0..16 {
        out.push((q[j] & 0x0f) | ((q[16 + j] & 0x0f) << 4));
    }
}

pub(crate) fn q5_0(x: &[f32], out: &mut Vec<u8>) {
    let d = signed_max(x) / -16.0;
    let id = inv(d);
    push_f16(out, d);
    let mut q = [0u8; 32];
    for (j, v) in q.iter_mut().enumerate() {
        *v = trunc_i8(x[j] * id + 16.5).min(31) as u8;
    }
    push_q5(out, &q);
}

pub(crate) fn q5_1(x: &[f32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inv(d);
    push_f16(out, d);
    push_f16(out, min);
    let mut q = [0u8; 32];
    for (j, v) in q.iter_mut().enumerate() {
        // ggml: (uint8_t)(x0 + 0.5f), no clamp (the value is at most 31.5).
        *v = ((x[j] - min) * id + 0.5) as u8;
    }
    push_q5(out, &q);
}

pub(crate) fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = inv(d);
    push_f16(out, d);
    for &v in x {
        // C's roundf: halves away from zero, as Rust's f32::round.
        out.push((v * id).round() as i8 as u8);
    }
}
