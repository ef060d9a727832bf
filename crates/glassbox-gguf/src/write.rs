use std::io::Write;

use crate::read::align_up;
use crate::{Array, DEFAULT_ALIGNMENT, Error, GgmlType, Gguf, MAGIC, Result, Value};

/// A tensor to write: its description and its bytes (opaque to this crate).
pub struct WriterTensor<'a> {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub data: &'a [u8],
}

/// Writes a GGUF file: header, metadata in the given order, tensor infos in the given order,
/// then each tensor's bytes at the next aligned offset, zero-padded to the alignment (the
/// layout llama.cpp's `gguf` writer produces). A file read and written back with no change is
/// byte-identical to the original when it was laid out this way.
pub struct GgufWriter<'a> {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<WriterTensor<'a>>,
}

impl<'a> GgufWriter<'a> {
    /// A writer holding everything `gguf` (parsed from `file`) holds, unchanged.
    pub fn from_gguf(gguf: &Gguf, file: &'a [u8]) -> Self {
        GgufWriter {
            version: gguf.version,
            metadata: gguf.metadata().to_vec(),
            tensors: gguf
                .tensors()
                .iter()
                .map(|t| WriterTensor {
                    name: t.name.clone(),
                    dims: t.dims.clone(),
                    ggml_type: t.ggml_type,
                    data: gguf.tensor_data(file, t),
                })
                .collect(),
        }
    }

    /// Set a metadata key: replaced where it stands, or appended.
    pub fn set(&mut self, key: &str, value: Value) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
    }

    fn alignment(&self) -> Result<u64> {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, Value::U32(a))) if *a != 0 && a.is_power_of_two() => Ok(*a as u64),
            Some(_) => Err(Error::key("general.alignment", "must be a power-of-two u32")),
        }
    }

    pub fn write(&self, w: &mut impl Write) -> Result<()> {
        let alignment = self.alignment()?;
        let mut out = Counting { w, pos: 0 };
        out.put(&MAGIC)?;
        out.put(&self.version.to_le_bytes())?;
        out.put(&(self.tensors.len() as u64).to_le_bytes())?;
        out.put(&(self.metadata.len() as u64).to_le_bytes())?;
        let mut buf = Vec::new();
        for (k, v) in &self.metadata {
            write_string(&mut buf, k);
            buf.extend_from_slice(&v.value_type().id().to_le_bytes());
            write_value(&mut buf, v);
            out.put(&buf)?;
            buf.clear();
        }
        let mut offset: u64 = 0;
        for t in &self.tensors {
            if let Some(expected) = t.ggml_type.block_layout().and_then(|_| {
                t.ggml_type.bytes_for(t.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?)
            }) && expected != t.data.len() as u64
            {
                return Err(Error::tensor(
                    &t.name,
                    format!("has {} bytes of data, its shape and type need {expected}", t.data.len()),
                ));
            }
            write_string(&mut buf, &t.name);
            buf.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                buf.extend_from_slice(&d.to_le_bytes());
            }
            buf.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            buf.extend_from_slice(&offset.to_le_bytes());
            out.put(&buf)?;
            buf.clear();
            offset = align_up(offset + t.data.len() as u64, alignment)
                .ok_or_else(|| Error::Overflow("tensor offset".into()))?;
        }
        let zeros = vec![0u8; alignment as usize];
        let pad = |pos: u64| (align_up(pos, alignment).unwrap_or(pos) - pos) as usize;
        let p = pad(out.pos);
        out.put(&zeros[..p])?;
        for t in &self.tensors {
            out.put(t.data)?;
            let p = pad(out.pos);
            out.put(&zeros[..p])?;
        }
        Ok(())
    }
}

struct Counting<'w, W: Write> {
    w: &'w mut W,
    pos: u64,
}

impl<W: Write> Counting<'_, W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }
}

fn write_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn write_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => buf.push(*x),
        Value::I8(x) => buf.push(*x as u8),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(b) => buf.push(*b as u8),
        Value::String(s) => write_string(buf, s),
        Value::Array(a) => write_array(buf, a),
    }
}

fn write_array(buf: &mut Vec<u8>, a: &Array) {
    buf.extend_from_slice(&a.elem_type().id().to_le_bytes());
    buf.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => buf.extend_from_slice(v),
        Array::I8(v) => buf.extend(v.iter().map(|&x| x as u8)),
        Array::Bool(v) => buf.extend(v.iter().map(|&x| x as u8)),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
        Array::String(v) => v.iter().for_each(|s| write_string(buf, s)),
        Array::Array(v) => v.iter().for_each(|a| write_array(buf, a)),
    }
}
