//! Weight orthogonalisation ("abliteration", Arditi et al. 2024): every matrix that writes to
//! the residual stream — each layer's attention output and FFN down projection, optionally the
//! token embedding — loses its component along a unit direction r: W ← W − s·r·(rᵀW) (for the
//! embedding, each token's vector e ← e − s·r·(rᵀe)). With s = 1 the model can no longer write r
//! into the stream; other s scale it down or up. Edited tensors are dequantised, edited in f32
//! and quantised back to their own type with ggml's rounding (glassbox-quant); every other
//! tensor is copied byte for byte.

use glassbox_gguf::{GgufFile, GgufWriter, Value, WriterTensor};
use glassbox_quant::{QType, quantize_row};

use crate::{Error, Result};

/// Which tensors are edited.
pub fn is_target(name: &str, embedding: bool) -> bool {
    (name.starts_with("blk.") && (name.ends_with(".attn_output.weight") || name.ends_with(".ffn_down.weight"))) || (embedding && name == "token_embd.weight")
}

/// `direction` made unit length; refused when it is zero or not finite.
pub fn unit(direction: &[f32]) -> Result<Vec<f32>> {
    let n = direction.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
    if !n.is_finite() || n == 0.0 {
        return Err(Error::Usage(format!("the direction's norm is {n}; it must be finite and non-zero")));
    }
    Ok(direction.iter().map(|&v| (f64::from(v) / n) as f32).collect())
}

/// Remove `scale` × the component along unit `r` from the outputs of a row-major matrix of
/// `rows` = r.len() output rows and `cols` inputs.
fn project_out_outputs(w: &mut [f32], r: &[f32], cols: usize, scale: f32) {
    let mut s = vec![0f64; cols];
    for (ri, row) in r.iter().zip(w.chunks_exact(cols)) {
        s.iter_mut().zip(row).for_each(|(a, &b)| *a += f64::from(*ri) * f64::from(b));
    }
    for (ri, row) in r.iter().zip(w.chunks_exact_mut(cols)) {
        row.iter_mut().zip(&s).for_each(|(v, &sj)| *v -= (f64::from(scale) * f64::from(*ri) * sj) as f32);
    }
}

/// Remove `scale` × the component along unit `r` from every row (each a vector of r.len()).
fn project_out_rows(w: &mut [f32], r: &[f32], scale: f32) {
    for row in w.chunks_exact_mut(r.len()) {
        let dot: f64 = row.iter().zip(r).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        row.iter_mut().zip(r).for_each(|(v, &ri)| *v -= (f64::from(scale) * dot * f64::from(ri)) as f32);
    }
}

/// What was edited.
#[derive(Clone, Debug, PartialEq)]
pub struct Edited {
    pub name: String,
    pub ty: String,
    /// Largest |change| of a weight (f32, before re-quantising).
    pub max_change: f32,
}

/// Orthogonalise `f`'s residual-writing matrices against `direction` and write the model to
/// `out` (metadata copied plus `extra`). Edited tensors keep their type, or become F16 with
/// `keep_f16` (no second rounding to the quantised grid).
pub fn orthogonalize(f: &GgufFile, direction: &[f32], scale: f32, embedding: bool, keep_f16: bool, extra: &[(String, Value)], out: &mut impl std::io::Write) -> Result<Vec<Edited>> {
    if !scale.is_finite() {
        return Err(Error::Usage(format!("scale {scale} is not finite")));
    }
    let r = unit(direction)?;
    let d = r.len();
    let g = f.gguf();
    let mut edited = Vec::new();
    let mut datas: Vec<Option<(Vec<u8>, QType)>> = Vec::with_capacity(g.tensors().len());
    for t in g.tensors() {
        if !is_target(&t.name, embedding) {
            datas.push(None);
            continue;
        }
        let ty = QType::from_name(&t.ggml_type.name()).ok_or_else(|| Error::Usage(format!("tensor {} has type {}, which cannot be edited and written back", t.name, t.ggml_type.name())))?;
        if t.dims.len() != 2 {
            return Err(Error::Usage(format!("tensor {} has {} dimensions; 2 expected", t.name, t.dims.len())));
        }
        let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
        if cols == 0 || rows == 0 {
            return Err(Error::Usage(format!("tensor {} is empty ({cols} × {rows})", t.name)));
        }
        let is_embd = t.name == "token_embd.weight";
        let width = if is_embd { cols } else { rows };
        if width != d {
            return Err(Error::Usage(format!("the direction has {d} values; tensor {} writes vectors of {width} (a direction from another model?)", t.name)));
        }
        let row_bytes = ty.row_bytes(cols).ok_or_else(|| Error::Usage(format!("tensor {}: rows of {cols} do not fit {}", t.name, ty.name())))?;
        let src = f.tensor_data(t);
        let mut w = vec![0f32; rows * cols];
        for (o, b) in w.chunks_exact_mut(cols).zip(src.chunks_exact(row_bytes)) {
            glassbox_kernels::dequantize_row(ty, b, o);
        }
        let before = w.clone();
        if is_embd {
            project_out_rows(&mut w, &r, scale);
        } else {
            project_out_outputs(&mut w, &r, cols, scale);
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(Error::Usage(format!("scale {scale} makes tensor {} non-finite (element {i})", t.name)));
        }
        let max_change = w.iter().zip(&before).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let out_ty = if keep_f16 { QType::F16 } else { ty };
        let mut bytes = Vec::with_capacity(out_ty.row_bytes(cols).unwrap_or(0) * rows);
        for row in w.chunks_exact(cols) {
            bytes.extend_from_slice(&quantize_row(out_ty, row).map_err(|e| Error::Usage(format!("tensor {}: {e}", t.name)))?);
        }
        edited.push(Edited { name: t.name.clone(), ty: out_ty.name().to_string(), max_change });
        datas.push(Some((bytes, out_ty)));
    }
    if edited.is_empty() {
        return Err(Error::Usage("no attention-output or FFN-down tensors found to edit".into()));
    }
    let tensors: Vec<WriterTensor> = g
        .tensors()
        .iter()
        .zip(&datas)
        .map(|(t, d)| match d {
            Some((bytes, ty)) => WriterTensor { name: t.name.clone(), dims: t.dims.clone(), ggml_type: glassbox_quant::ggml_type(*ty), data: bytes },
            None => WriterTensor { name: t.name.clone(), dims: t.dims.clone(), ggml_type: t.ggml_type, data: f.tensor_data(t) },
        })
        .collect();
    let mut w = GgufWriter { version: g.version, metadata: g.metadata().to_vec(), tensors };
    for (k, v) in extra {
        w.set(k, v.clone());
    }
    w.write(out).map_err(|e| Error::File { path: "(output)".into(), msg: e.to_string() })?;
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
        project_out_outputs(&mut w, &r, 2, 1.0);
        for j in 0..2 {
            let along: f32 = (0..3).map(|i| r[i] * w[i * 2 + j]).sum();
            assert!(along.abs() < 1e-6);
        }
        assert_eq!((w[4], w[5]), (0.5, 0.25)); // orthogonal output row untouched
        let mut e = vec![3.0, 1.0, 2.0];
        project_out_rows(&mut e, &r, 1.0);
        assert!((e[0] - 1.0).abs() < 1e-6 && (e[1] + 1.0).abs() < 1e-6 && e[2] == 2.0);
        assert!(unit(&[0.0, 0.0]).is_err());
        assert!(is_target("blk.3.attn_output.weight", false) && !is_target("token_embd.weight", false) && is_target("token_embd.weight", true));
    }
}
