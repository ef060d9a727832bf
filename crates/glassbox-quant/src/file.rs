//! A whole GGUF file to another type, as llama-quantize does it: tensors in its order, each
//! given its type by the mixture ([`crate::mixture::plan`]), dequantised row by row to f32 and
//! quantised again (rows shared over threads); tensors that keep their type are copied byte for
//! byte; metadata copied with `general.file_type` and `general.quantization_version` set, plus
//! the caller's (lineage) keys.

use glassbox_gguf::{GgmlType, GgufFile, GgufWriter, Value, WriterTensor};

use crate::mixture::{FileType, ModelShape, TensorDesc, order_key, plan};
use crate::{Error, QType, quantize_row};

/// What was done to one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub from: String,
    pub to: String,
    pub bytes: u64,
}

fn qtype(t: GgmlType) -> Option<QType> {
    QType::from_name(&t.name())
}

/// The GGUF type id of a kernel type.
pub fn ggml_type(t: QType) -> GgmlType {
    GgmlType::from_id(match t {
        QType::F32 => 0,
        QType::F16 => 1,
        QType::Q4_0 => 2,
        QType::Q4_1 => 3,
        QType::Q5_0 => 6,
        QType::Q5_1 => 7,
        QType::Q8_0 => 8,
        QType::Q2K => 10,
        QType::Q3K => 11,
        QType::Q4K => 12,
        QType::Q5K => 13,
        QType::Q6K => 14,
        QType::Bf16 => 30,
    })
}

/// The shape facts the mixture needs, from the file's metadata.
pub fn model_shape(f: &GgufFile) -> Result<ModelShape, Error> {
    let g = f.gguf();
    let bad = |k: &str| Error::Metadata(format!("{k} is missing or not a number"));
    let arch = g.get_str("general.architecture").ok().flatten().ok_or_else(|| Error::Metadata("general.architecture is missing".into()))?.to_string();
    let num = |k: &str| g.get_u64(&format!("{arch}.{k}")).ok().flatten();
    let n_layer = num("block_count").ok_or_else(|| bad(&format!("{arch}.block_count")))? as usize;
    let n_head = num("attention.head_count").unwrap_or(0) as usize;
    let n_head_kv = num("attention.head_count_kv").map_or(n_head, |v| v as usize);
    let n_expert = num("expert_count").unwrap_or(0) as usize;
    Ok(ModelShape { arch, n_layer, n_head, n_head_kv, n_expert })
}

/// The plan for `f`: each tensor's name, source and target type, in llama-quantize's order.
pub fn file_plan(f: &GgufFile, ftype: FileType) -> Result<Vec<(usize, Option<QType>)>, Error> {
    let shape = model_shape(f)?;
    let mut idx: Vec<usize> = (0..f.gguf().tensors().len()).collect();
    idx.sort_by_key(|&i| order_key(&f.gguf().tensors()[i].name));
    let descs: Vec<TensorDesc> = idx
        .iter()
        .map(|&i| {
            let t = &f.gguf().tensors()[i];
            TensorDesc { name: t.name.clone(), n_dims: t.dims.len(), ne0: t.dims.first().copied().unwrap_or(0), ty: qtype(t.ggml_type) }
        })
        .collect();
    Ok(idx.into_iter().zip(plan(&descs, &shape, ftype)).collect())
}

/// Quantise `rows` rows of `cols` values into `ty`, rows shared over `threads`; `fill(i, row)`
/// writes row i's f32 values.
fn quantize_par(ty: QType, cols: usize, rows: usize, threads: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Result<Vec<u8>, Error> {
    let out_row = ty.row_bytes(cols).ok_or(Error::Shape { ty: ty.name(), block: ty.block().0, cols })?;
    if out_row == 0 || rows == 0 {
        return Ok(Vec::new()); // an empty tensor: nothing to convert
    }
    let mut out = vec![0u8; out_row * rows];
    let per = rows.div_ceil(threads.max(1)).max(1);
    let fill = &fill;
    std::thread::scope(|s| {
        let handles: Vec<_> = out
            .chunks_mut(out_row * per)
            .enumerate()
            .map(|(c, dst)| {
                s.spawn(move || -> Result<(), Error> {
                    let mut row = vec![0f32; cols];
                    for (k, d) in dst.chunks_exact_mut(out_row).enumerate() {
                        fill(c * per + k, &mut row);
                        d.copy_from_slice(&quantize_row(ty, &row)?);
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or(Err(Error::Metadata("a quantising thread panicked".into()))))
    })?;
    Ok(out)
}

/// Quantise `rows` rows of `cols` f32 values (row-major) into `ty`, rows shared over `threads`.
pub fn quantize_rows(ty: QType, src: &[f32], cols: usize, threads: usize) -> Result<Vec<u8>, Error> {
    let rows = src.len().checked_div(cols).unwrap_or(0);
    quantize_par(ty, cols, rows, threads, |i, row| row.copy_from_slice(&src[i * cols..(i + 1) * cols]))
}

fn requantize(ty_in: QType, ty_out: QType, data: &[u8], cols: usize, rows: usize, threads: usize) -> Result<Vec<u8>, Error> {
    let in_row = ty_in.row_bytes(cols).ok_or(Error::Shape { ty: ty_in.name(), block: ty_in.block().0, cols })?;
    if in_row == 0 {
        return Ok(Vec::new());
    }
    quantize_par(ty_out, cols, rows, threads, |i, row| glassbox_kernels::dequantize_row(ty_in, &data[i * in_row..(i + 1) * in_row], row))
}

/// Quantise `f` to `ftype` and write the result to `out`. Tensors whose source is already
/// quantised are re-quantised only with `allow_requantize` (each pass loses precision, as
/// llama-quantize warns); `extra` keys are added to (or replace) the metadata.
pub fn quantize_file(f: &GgufFile, ftype: FileType, threads: usize, allow_requantize: bool, extra: &[(String, Value)], out: &mut impl std::io::Write) -> Result<Vec<TensorPlan>, Error> {
    let g = f.gguf();
    let planned = file_plan(f, ftype)?;
    let mut datas: Vec<Option<Vec<u8>>> = Vec::with_capacity(planned.len());
    let mut report = Vec::with_capacity(planned.len());
    for &(i, target) in &planned {
        let t = &g.tensors()[i];
        let src = qtype(t.ggml_type);
        let name = &t.name;
        let convert = match (src, target) {
            (Some(s), Some(d)) if s != d => Some((s, d)),
            (None, Some(d)) if Some(d) != src => return Err(Error::Metadata(format!("tensor {name} has type {}, which cannot be read to quantise it", t.ggml_type.name()))),
            _ => None,
        };
        let data = match convert {
            None => None,
            Some((s, d)) => {
                if !matches!(s, QType::F32 | QType::F16 | QType::Bf16) && !allow_requantize {
                    return Err(Error::Requantize { tensor: name.clone(), from: s.name() });
                }
                let cols = t.dims.first().copied().unwrap_or(0) as usize;
                let rows = if cols == 0 { 0 } else { (t.n_elements() / cols as u64) as usize };
                Some(requantize(s, d, f.tensor_data(t), cols, rows, threads)?)
            }
        };
        let to = match (&data, target) {
            (Some(_), Some(d)) => d.name().to_string(),
            _ => t.ggml_type.name(),
        };
        report.push(TensorPlan { name: name.clone(), from: t.ggml_type.name(), to, bytes: data.as_ref().map_or(f.tensor_data(t).len(), Vec::len) as u64 });
        datas.push(data);
    }
    let tensors: Vec<WriterTensor> = planned
        .iter()
        .zip(&datas)
        .map(|(&(i, target), d)| {
            let t = &g.tensors()[i];
            match (d, target) {
                (Some(bytes), Some(ty)) => WriterTensor { name: t.name.clone(), dims: t.dims.clone(), ggml_type: ggml_type(ty), data: bytes },
                _ => WriterTensor { name: t.name.clone(), dims: t.dims.clone(), ggml_type: t.ggml_type, data: f.tensor_data(t) },
            }
        })
        .collect();
    let mut w = GgufWriter { version: g.version, metadata: g.metadata().to_vec(), tensors };
    w.set("general.quantization_version", Value::U32(2));
    w.set("general.file_type", Value::U32(ftype.id()));
    for (k, v) in extra {
        w.set(k, v.clone());
    }
    w.write(out).map_err(|e| Error::Metadata(e.to_string()))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tensors_convert_to_nothing_without_a_panic() {
        assert_eq!(requantize(QType::F32, QType::Q8_0, &[], 0, 0, 2).unwrap(), Vec::<u8>::new());
        assert_eq!(requantize(QType::F32, QType::Q8_0, &[], 32, 0, 2).unwrap(), Vec::<u8>::new());
        let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
        let row: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(requantize(QType::F32, QType::Q8_0, &row, 32, 1, 4).unwrap(), quantize_row(QType::Q8_0, &x).unwrap());
    }
}
