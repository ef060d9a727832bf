//! Weight orthogonalisation ("abliteration", Arditi et al. 2024): every matrix that writes to
//! the residual stream — each layer's attention output and FFN down projection (a mixture-of-experts
//! layer's shared and every routed expert's), optionally the
//! token embedding — loses its component along a unit direction r: W ← W − w·r·(rᵀW) (for the
//! embedding, each token's vector e ← e − w·r·(rᵀe)). With w = 1 the model can no longer write r
//! into the stream; other w scale it down, or up when negative. The weight w is per matrix: per
//! layer and per kind (attention, FFN), as in Heretic's kernels ([`Kernel`]); the same
//! [`Steering`] applied at run time (`Engine::set_steering`) computes the edited model without
//! a file. Edited tensors are dequantised, edited in f32 and quantised back to their own type
//! with ggml's rounding (glassbox-quant); every other tensor — and every matrix whose weight is
//! 0 — is copied byte for byte.

use glassbox_engine::Steering;
use glassbox_gguf::{GgufFile, Value};
use glassbox_quant::QType;
use glassbox_quant::rewrite::dequantize_rows;

use crate::{Error, Result};

/// The weight `s` gives tensor `name`, or `None` when the tensor is not one that writes to the
/// residual stream (or its layer is outside `s`).
pub fn weight_of(name: &str, s: &Steering) -> Option<f32> {
    if name == "token_embd.weight" {
        return Some(s.embedding);
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, kind) = rest.split_once('.')?;
    let l: usize = layer.parse().ok()?;
    match kind {
        "attn_output.weight" => s.attn.get(l).copied(),
        // Mixture-of-experts layers write through their shared and routed experts' down
        // projections (each expert's matrix edited alike).
        "ffn_down.weight" | "ffn_down_shexp.weight" | "ffn_down_exps.weight" => s.ffn.get(l).copied(),
        _ => None,
    }
}

/// Heretic's per-layer weight kernel: `max` at layer `peak`, falling linearly to `min` at
/// `width` layers from it, 0 beyond.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kernel {
    pub peak: f32,
    pub max: f32,
    pub min: f32,
    pub width: f32,
}

impl Kernel {
    /// The same weight on every layer.
    pub fn flat(w: f32) -> Kernel {
        Kernel { peak: 0.0, max: w, min: w, width: f32::INFINITY }
    }

    /// Parse `PEAK:MAX:MIN:WIDTH` (layers and weights; WIDTH > 0).
    pub fn parse(s: &str) -> Result<Kernel> {
        let v: Vec<f32> = s.split(':').map(|x| x.trim().parse::<f32>()).collect::<Result<_, _>>().map_err(|e| Error::Usage(format!("kernel {s:?}: {e} (expected PEAK:MAX:MIN:WIDTH)")))?;
        let [peak, max, min, width] = v[..] else { return Err(Error::Usage(format!("kernel {s:?}: expected 4 numbers PEAK:MAX:MIN:WIDTH, got {}", v.len()))) };
        if v.iter().any(|x| !x.is_finite()) || width <= 0.0 || peak < 0.0 {
            return Err(Error::Usage(format!("kernel {s:?}: numbers must be finite, PEAK ≥ 0 and WIDTH > 0")));
        }
        Ok(Kernel { peak, max, min, width })
    }

    /// Weights for layers 0..n_layer.
    pub fn weights(&self, n_layer: usize) -> Vec<f32> {
        (0..n_layer)
            .map(|l| {
                let dist = (l as f32 - self.peak).abs();
                if dist > self.width {
                    0.0
                } else if self.width.is_infinite() {
                    self.max
                } else {
                    self.max + (self.min - self.max) * dist / self.width
                }
            })
            .collect()
    }
}

/// `direction` made unit length; refused when it is zero or not finite.
pub fn unit(direction: &[f32]) -> Result<Vec<f32>> {
    Steering::unit(direction).map_err(|_| Error::Usage("the direction is zero or not finite; it has no unit length".into()))
}

/// The component along unit `r` of what a matrix writes: for an output matrix (`r.len()` output
/// rows × `cols` inputs, row-major) rᵀW, one value per input column; for the embedding
/// (`vectors`: each row one vector of `r.len()`), each row's r·e.
fn component(w: &[f32], r: &[f32], cols: usize, vectors: bool) -> Vec<f64> {
    if vectors {
        return w.chunks_exact(r.len()).map(|row| row.iter().zip(r).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()).collect();
    }
    let mut c = vec![0f64; cols];
    for (ri, row) in r.iter().zip(w.chunks_exact(cols)) {
        c.iter_mut().zip(row).for_each(|(a, &b)| *a += f64::from(*ri) * f64::from(b));
    }
    c
}

/// W ← W − k·r ⊗ c: the component along `r` lowered by k·c (c as [`component`] returns it).
fn shift(w: &mut [f32], r: &[f32], cols: usize, vectors: bool, c: &[f64], k: f64) {
    if vectors {
        for (row, &cj) in w.chunks_exact_mut(r.len()).zip(c) {
            row.iter_mut().zip(r).for_each(|(v, &ri)| *v -= (k * cj * f64::from(ri)) as f32);
        }
        return;
    }
    for (ri, row) in r.iter().zip(w.chunks_exact_mut(cols)) {
        row.iter_mut().zip(c).for_each(|(v, &cj)| *v -= (k * f64::from(*ri) * cj) as f32);
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Rounds of re-quantising at most (see [`edit_tensor`]).
pub const MAX_ROUNDS: usize = 8;

/// Error feedback stops once the rows still to come hold less than this share of r's squared
/// norm (guards the division).
const FEEDBACK_FLOOR: f64 = 1e-9;

/// Stop once the component left differs from the one asked for by less than this share of the
/// original component.
pub const TOLERANCE: f64 = 0.01;

/// Edit one matrix (`w`, dequantised) with weight `scale` and quantise it to `ty`. Rounding a
/// rank-one edit back to a 4-bit grid undoes much of it — the change per weight is below half a
/// quantisation step, so most weights round back to where they were (measured on Qwen2.5 1.5B,
/// Q4_K: 57–69 % of the component survives one plain rounding). So the rounding is corrected:
/// - an output matrix is quantised one output row at a time, largest |r_i| first, and what each
///   row's rounding adds to the component along r is taken off the rows still to come, spread
///   in proportion to their r_i (the least change that cancels it: error feedback, as GPTQ
///   does across columns);
/// - embedding rows (each a vector of its own) are quantised again with the measured error taken
///   off, up to [`MAX_ROUNDS`] times, keeping the closest.
///
/// Neither is tried when one plain rounding already keeps the edit within [`TOLERANCE`] (F16,
/// Q8_0). Returns the bytes, |component written − component asked for| / |component before|,
/// the rounds of quantising (1: plain; 2: output matrix with error feedback), and the largest
/// |change| of a weight before quantising.
fn edit_tensor(w: &[f32], r: &[f32], cols: usize, vectors: bool, scale: f32, ty: QType, threads: usize) -> Result<(Vec<u8>, f64, usize, f32)> {
    let c0 = component(w, r, cols, vectors);
    // The change is rank one, scale·r_i·c_j: its largest entry needs no second pass.
    let max_abs = |v: &mut dyn Iterator<Item = f64>| v.fold(0f64, |m, x| m.max(x.abs()));
    let max_change = (f64::from(scale).abs() * max_abs(&mut r.iter().map(|&x| f64::from(x))) * max_abs(&mut c0.iter().copied())) as f32;
    let want: Vec<f64> = c0.iter().map(|c| c * (1.0 - f64::from(scale))).collect();
    let n0 = norm(&c0).max(1e-30);
    let mut target = w.to_vec();
    shift(&mut target, r, cols, vectors, &c0, f64::from(scale));
    if let Some(i) = target.iter().position(|v| !v.is_finite()) {
        return Err(Error::Usage(format!("scale {scale} makes element {i} non-finite")));
    }
    let row_bytes = ty.row_bytes(cols).ok_or_else(|| Error::Usage(format!("rows of {cols} do not fit {}", ty.name())))?;
    let quant = |e: glassbox_quant::Error| Error::Usage(e.to_string());
    let mut deq = vec![0f32; w.len()];
    let plain = glassbox_quant::quantize_rows(ty, &target, cols, threads).map_err(quant)?;
    dequantize_rows(ty, &plain, cols, &mut deq);
    let resid: Vec<f64> = component(&deq, r, cols, vectors).iter().zip(&want).map(|(c, w)| c - w).collect();
    let plain_err = norm(&resid) / n0;
    if plain_err < TOLERANCE {
        return Ok((plain, plain_err, 1, max_change)); // F16, Q8_0: one rounding keeps the edit
    }
    if !vectors {
        let mut order: Vec<usize> = (0..r.len()).collect();
        order.sort_by(|&a, &b| r[b].abs().total_cmp(&r[a].abs()));
        // Σ r² over the rows after each one in `order` (summed from the end: no cancellation).
        let mut after = vec![0f64; order.len()];
        for k in (0..order.len().saturating_sub(1)).rev() {
            let x = f64::from(r[order[k + 1]]);
            after[k] = after[k + 1] + x * x;
        }
        let mut lambda = vec![0f64; cols];
        let mut bytes = vec![0u8; row_bytes * r.len()];
        let mut row = vec![0f32; cols];
        for (&i, &remaining) in order.iter().zip(&after) {
            let ri = f64::from(r[i]);
            let t = &target[i * cols..(i + 1) * cols];
            row.iter_mut().zip(t).zip(&lambda).for_each(|((o, &x), &l)| *o = (f64::from(x) - ri * l) as f32);
            let q = glassbox_quant::quantize_row(ty, &row).map_err(quant)?;
            let d = &mut deq[i * cols..(i + 1) * cols];
            glassbox_kernels::dequantize_row(ty, &q, d);
            bytes[i * row_bytes..(i + 1) * row_bytes].copy_from_slice(&q);
            if remaining > FEEDBACK_FLOOR {
                // This row's error along r, spread over the rows still to come.
                lambda.iter_mut().zip(d.iter()).zip(&row).for_each(|((l, &qv), &tv)| *l += ri * (f64::from(qv) - f64::from(tv)) / remaining);
            }
        }
        let resid: Vec<f64> = component(&deq, r, cols, false).iter().zip(&want).map(|(c, w)| c - w).collect();
        let err = norm(&resid) / n0;
        return Ok(if err < plain_err { (bytes, err, 2, max_change) } else { (plain, plain_err, 1, max_change) });
    }
    shift(&mut target, r, cols, vectors, &resid, 1.0);
    let mut best: Option<(Vec<u8>, f64, usize)> = Some((plain, plain_err, 1));
    for round in 2..=MAX_ROUNDS {
        let bytes = glassbox_quant::quantize_rows(ty, &target, cols, threads).map_err(quant)?;
        dequantize_rows(ty, &bytes, cols, &mut deq);
        let resid: Vec<f64> = component(&deq, r, cols, vectors).iter().zip(&want).map(|(c, w)| c - w).collect();
        let err = norm(&resid) / n0;
        if best.as_ref().is_none_or(|b| err < b.1) {
            best = Some((bytes, err, round));
        }
        if err < TOLERANCE {
            break;
        }
        shift(&mut target, r, cols, vectors, &resid, 1.0);
    }
    best.map(|(b, e, n)| (b, e, n, max_change)).ok_or_else(|| Error::Usage("no rounds".into()))
}

/// What was edited.
#[derive(Clone, Debug, PartialEq)]
pub struct Edited {
    pub name: String,
    pub ty: String,
    /// Largest |change| of a weight (f32, before re-quantising).
    pub max_change: f32,
    /// |component written − component asked for| / |component before|, after quantising.
    pub residual: f64,
    /// Rounds of quantising it took (see [`edit_tensor`]).
    pub rounds: usize,
}

/// Orthogonalise `f`'s residual-writing matrices against `s.r` with `s`'s weights and write
/// the model to `out` (metadata copied plus `extra`). Edited tensors keep their type, or become
/// `as_type` (F16, Q8_0: a finer grid than the file's own, so no second coarse rounding).
/// Activation additions cannot be written into the weights of every architecture and are
/// refused.
pub fn orthogonalize(f: &GgufFile, s: &Steering, as_type: Option<QType>, threads: usize, extra: &[(String, Value)], out: &mut impl std::io::Write) -> Result<Vec<Edited>> {
    if !s.add.is_empty() {
        return Err(Error::Usage("an activation addition cannot be written into the weights; apply it at run time (run/serve --steer)".into()));
    }
    if let Some(w) = s.attn.iter().chain(&s.ffn).chain([&s.embedding]).find(|w| !w.is_finite()) {
        return Err(Error::Usage(format!("weight {w} is not finite")));
    }
    let r = unit(&s.r)?;
    let d = r.len();
    let g = f.gguf();
    // Check every tensor to edit first, then edit them on `threads` threads, one tensor each.
    let mut jobs = Vec::new();
    for (k, t) in g.tensors().iter().enumerate() {
        let scale = match weight_of(&t.name, s) {
            Some(w) if w != 0.0 => w,
            _ => continue,
        };
        let ty = QType::from_name(&t.ggml_type.name()).ok_or_else(|| Error::Usage(format!("tensor {} has type {}, which cannot be edited and written back", t.name, t.ggml_type.name())))?;
        // A stack of experts' matrices: each one edited on its own.
        let stacked = t.name.ends_with("_exps.weight");
        if t.dims.len() != 2 + usize::from(stacked) {
            return Err(Error::Usage(format!("tensor {} has {} dimensions; {} expected", t.name, t.dims.len(), 2 + usize::from(stacked))));
        }
        let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
        let slabs = if stacked { t.dims[2] as usize } else { 1 };
        if cols == 0 || rows == 0 || slabs == 0 {
            return Err(Error::Usage(format!("tensor {} is empty ({cols} × {rows})", t.name)));
        }
        let is_embd = t.name == "token_embd.weight";
        let width = if is_embd { cols } else { rows };
        if width != d {
            return Err(Error::Usage(format!("the direction has {d} values; tensor {} writes vectors of {width} (a direction from another model?)", t.name)));
        }
        ty.row_bytes(cols).ok_or_else(|| Error::Usage(format!("tensor {}: rows of {cols} do not fit {}", t.name, ty.name())))?;
        jobs.push((k, scale, ty, cols, rows, slabs, is_embd));
    }
    // (tensor index, weight, type, columns, rows, matrices, embedding?) → (index, bytes, type, record)
    type Job = (usize, f32, QType, usize, usize, usize, bool);
    type Done = (usize, Vec<u8>, QType, Edited);
    let one = |&(k, scale, ty, cols, rows, slabs, is_embd): &Job| -> Result<Done> {
        let t = &g.tensors()[k];
        let data = f.tensor_data(t);
        let slab = data.len() / slabs;
        let out_ty = as_type.unwrap_or(ty);
        let mut w = vec![0f32; rows * cols];
        let (mut bytes, mut residual, mut rounds, mut max_change) = (Vec::new(), 0f64, 0usize, 0f32);
        for m in data.chunks_exact(slab) {
            dequantize_rows(ty, m, cols, &mut w);
            let (b, res, n, ch) = edit_tensor(&w, &r, cols, is_embd, scale, out_ty, 1).map_err(|e| Error::Usage(format!("tensor {}: {e}", t.name)))?;
            bytes.extend_from_slice(&b);
            (residual, rounds, max_change) = (residual.max(res), rounds.max(n), max_change.max(ch));
        }
        Ok((k, bytes, out_ty, Edited { name: t.name.clone(), ty: out_ty.name().to_string(), max_change, residual, rounds }))
    };
    let results = glassbox_quant::rewrite::each_parallel(&jobs, threads, one, || Error::Usage("an editing thread panicked".into()));
    let mut datas: Vec<Option<(Vec<u8>, QType)>> = vec![None; g.tensors().len()];
    let mut edited = Vec::new();
    for r in results {
        let (k, bytes, ty, e) = r?;
        datas[k] = Some((bytes, ty));
        edited.push((k, e));
    }
    edited.sort_by_key(|(k, _)| *k);
    let edited: Vec<Edited> = edited.into_iter().map(|(_, e)| e).collect();
    if edited.is_empty() {
        return Err(Error::Usage("no attention-output or FFN-down tensor to edit (none found, or every weight is 0)".into()));
    }
    glassbox_quant::rewrite::write_replaced(f, &datas, extra, out).map_err(|e| Error::File { path: "(output)".into(), msg: e.to_string() })?;
    Ok(edited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direction_is_gone_from_every_output() {
        // W: 3 outputs × 2 inputs; r = e0 + e1 normalised.
        let r = unit(&[1.0, 1.0, 0.0]).unwrap();
        let mut w = vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.25];
        let c = component(&w, &r, 2, false);
        shift(&mut w, &r, 2, false, &c, 1.0);
        for j in 0..2 {
            let along: f32 = (0..3).map(|i| r[i] * w[i * 2 + j]).sum();
            assert!(along.abs() < 1e-6);
        }
        assert_eq!((w[4], w[5]), (0.5, 0.25)); // orthogonal output row untouched
        let mut e = vec![3.0, 1.0, 2.0];
        let c = component(&e, &r, 3, true);
        shift(&mut e, &r, 3, true, &c, 1.0);
        assert!((e[0] - 1.0).abs() < 1e-6 && (e[1] + 1.0).abs() < 1e-6 && e[2] == 2.0);
        assert!(unit(&[0.0, 0.0]).is_err());
        let s = Steering { r: r.clone(), embedding: 0.5, attn: vec![1.0, 2.0], ffn: vec![3.0, 4.0], add: vec![] };
        assert_eq!(weight_of("blk.1.attn_output.weight", &s), Some(2.0));
        assert_eq!(weight_of("blk.0.ffn_down.weight", &s), Some(3.0));
        assert_eq!(weight_of("token_embd.weight", &s), Some(0.5));
        assert_eq!(weight_of("blk.2.ffn_down.weight", &s), None);
        assert_eq!(weight_of("blk.0.ffn_up.weight", &s), None);
        assert_eq!(weight_of("blk.0.ffn_down_exps.weight", &s), Some(3.0));
        assert_eq!(weight_of("blk.0.ffn_down_shexp.weight", &s), Some(3.0));
        assert_eq!(weight_of("blk.0.ffn_gate_exps.weight", &s), None);
        assert_eq!(weight_of("output.weight", &s), None);
    }

    #[test]
    fn rounding_back_to_four_bits_is_corrected_until_the_component_is_gone() {
        // A 64-output × 256-input matrix on the Q4_K grid, as a real model's is.
        let (rows, cols) = (64, 256);
        let mut x = 12345u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let mut raw: Vec<f32> = (0..rows * cols).map(|_| rnd() * 0.1).collect();
        let r = unit(&(0..rows).map(|_| rnd()).collect::<Vec<_>>()).unwrap();
        // As in a real model, the matrix writes little along r: a tenth of what chance gives.
        let c = component(&raw, &r, cols, false);
        shift(&mut raw, &r, cols, false, &c, 0.9);
        let q = glassbox_quant::quantize_rows(QType::Q4K, &raw, cols, 1).unwrap();
        let mut w = vec![0f32; rows * cols];
        dequantize_rows(QType::Q4K, &q, cols, &mut w);
        let c0 = norm(&component(&w, &r, cols, false));
        // One plain rounding of the edited matrix leaves much of the component.
        let mut once = w.clone();
        let c = component(&w, &r, cols, false);
        shift(&mut once, &r, cols, false, &c, 1.0);
        let qo = glassbox_quant::quantize_rows(QType::Q4K, &once, cols, 1).unwrap();
        let mut d = vec![0f32; rows * cols];
        dequantize_rows(QType::Q4K, &qo, cols, &mut d);
        let plain = norm(&component(&d, &r, cols, false)) / c0;
        let (bytes, residual, rounds, _) = edit_tensor(&w, &r, cols, false, 1.0, QType::Q4K, 2).unwrap();
        assert_eq!(bytes.len(), qo.len());
        assert!(plain > 0.3, "plain rounding leaves {plain}");
        assert!(residual < plain / 10.0, "corrected {residual} in {rounds} rounds, plain {plain}");
        // Enhancing (weight −1: the component doubled) is corrected the same way.
        let (_, res2, _, _) = edit_tensor(&w, &r, cols, false, -1.0, QType::Q4K, 2).unwrap();
        assert!(res2 < 0.1, "{res2}");
    }

    #[test]
    fn kernels_peak_and_fall_off_as_heretic_s_do() {
        let k = Kernel::parse("2:1.0:0.5:2").unwrap();
        assert_eq!(k.weights(6), vec![0.5, 0.75, 1.0, 0.75, 0.5, 0.0]);
        assert_eq!(Kernel::flat(0.8).weights(3), vec![0.8; 3]);
        for bad in ["1:2:3", "a:1:1:1", "1:1:1:0", "-1:1:1:1", "1:inf:1:1"] {
            assert!(Kernel::parse(bad).is_err(), "{bad}");
        }
    }
}
