//! Merging adapters into a standalone model: each adapted matrix W becomes W + Σ s·B·A
//! (computed in f64 from the dequantised weights), written as F16 (F32 stays F32) as llama.cpp's
//! `export-lora` writes it, or in a type the caller names; every other tensor is copied byte for
//! byte. (Rounding a merged matrix back to a 4-bit grid undoes part of a small update, as it
//! undoes part of an abliteration: docs/editing.md.)

use glassbox_gguf::{GgufFile, Value};
use glassbox_kernels::QType;

use glassbox_quant::rewrite::dequantize_rows;

use crate::{Adapter, Error, Result};

/// What was merged into one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    pub name: String,
    /// The type written.
    pub ty: String,
    /// How many adapters updated it.
    pub adapters: usize,
    /// Largest |ΔW| of a weight, and the RMS of ΔW (before quantising).
    pub max_change: f32,
    pub rms_change: f32,
}


fn bad(msg: String) -> Error {
    Error::Adapter { path: "(merge)".into(), msg }
}

/// Merge `adapters` (each with its user scale, checked against `f` by the caller or here) into
/// `f` and write the model to `out` with `extra` metadata. Adapted tensors become `as_type`, by
/// default F16 (F32 when they were F32). Returns one record per adapted tensor, in file order.
pub fn merge(f: &GgufFile, adapters: &[(&Adapter, f32)], as_type: Option<QType>, threads: usize, extra: &[(String, Value)], out: &mut impl std::io::Write) -> Result<Vec<Merged>> {
    let g = f.gguf();
    let base_name = f.path().display().to_string();
    for (a, s) in adapters {
        a.check_base(g, &base_name)?;
        if !s.is_finite() {
            return Err(bad(format!("adapter {}: scale {s} is not finite", a.path.display())));
        }
    }
    // (tensor index, the pairs that update it with their scales)
    let mut jobs: Vec<(usize, Vec<(&crate::Pair, f32)>)> = Vec::new();
    for (k, t) in g.tensors().iter().enumerate() {
        let pairs: Vec<_> = adapters.iter().flat_map(|(a, s)| a.pairs.iter().filter(|p| p.target == t.name).map(move |p| (p, a.scale(p, *s)))).collect();
        if !pairs.is_empty() {
            jobs.push((k, pairs));
        }
    }
    if jobs.is_empty() {
        return Err(bad("no tensor of the model is updated by the adapters".into()));
    }
    type Done = (usize, Vec<u8>, QType, Merged);
    let one = |(k, pairs): &(usize, Vec<(&crate::Pair, f32)>)| -> Result<Done> {
        let t = &g.tensors()[*k];
        let ty = QType::from_name(&t.ggml_type.name()).ok_or_else(|| bad(format!("tensor {} has type {}, which cannot be merged into and written back", t.name, t.ggml_type.name())))?;
        let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
        let mut w = vec![0f32; rows * cols];
        dequantize_rows(ty, f.tensor_data(t), cols, &mut w);
        let mut delta = vec![0f64; rows * cols];
        let (mut a_row, mut bt) = (Vec::new(), Vec::new());
        for (p, s) in pairs {
            // A: rank × cols, B: rows × rank, dequantised.
            a_row.resize(p.rank * cols, 0f32);
            dequantize_rows(p.a.ty, &p.a.bytes, cols, &mut a_row);
            bt.resize(rows * p.rank, 0f32);
            dequantize_rows(p.b.ty, &p.b.bytes, p.rank, &mut bt);
            for i in 0..rows {
                let d = &mut delta[i * cols..(i + 1) * cols];
                for r in 0..p.rank {
                    let b = f64::from(*s) * f64::from(bt[i * p.rank + r]);
                    if b != 0.0 {
                        d.iter_mut().zip(&a_row[r * cols..(r + 1) * cols]).for_each(|(d, &a)| *d += b * f64::from(a));
                    }
                }
            }
        }
        let (mut max, mut sum2) = (0f64, 0f64);
        for (w, d) in w.iter_mut().zip(&delta) {
            max = max.max(d.abs());
            sum2 += d * d;
            *w = (f64::from(*w) + d) as f32;
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!("tensor {}: the merged value at element {i} is not finite", t.name)));
        }
        let out_ty = as_type.unwrap_or(if ty == QType::F32 { QType::F32 } else { QType::F16 });
        let bytes = glassbox_quant::quantize_rows(out_ty, &w, cols, 1).map_err(|e| bad(format!("tensor {}: {e}", t.name)))?;
        let rms = (sum2 / delta.len().max(1) as f64).sqrt();
        Ok((*k, bytes, out_ty, Merged { name: t.name.clone(), ty: out_ty.name().to_string(), adapters: pairs.len(), max_change: max as f32, rms_change: rms as f32 }))
    };
    let results = glassbox_quant::rewrite::each_parallel(&jobs, threads, one, || bad("a merging thread panicked".into()));
    let mut datas: Vec<Option<(Vec<u8>, QType)>> = vec![None; g.tensors().len()];
    let mut merged = Vec::new();
    for r in results {
        let (k, bytes, ty, m) = r?;
        datas[k] = Some((bytes, ty));
        merged.push((k, m));
    }
    merged.sort_by_key(|(k, _)| *k);
    glassbox_quant::rewrite::write_replaced(f, &datas, extra, out).map_err(|e| bad(format!("writing the merged model: {e}")))?;
    Ok(merged.into_iter().map(|(_, m)| m).collect())
}
