//! A strict safetensors reader. The format is an 8-byte little-endian header length, a JSON object
//! header, then the tensors' bytes. The header is untrusted input, so it is read with limits and
//! checked arithmetic and refused — naming the key or tensor at fault — unless it is a JSON object
//! (starting with `{`, under [`MAX_HEADER`] bytes, no duplicate keys) whose every tensor has a known
//! dtype, a shape of at most [`MAX_DIMS`] non-negative integers and `data_offsets` `[begin, end]`
//! equal to dtype size × element count, and whose byte ranges tile the data section exactly: no
//! overlap, no gap, nothing past the end. (`glassbox scan` reports the same checks as findings.)

use std::fmt;

/// Largest header accepted (the reference implementation's limit).
pub const MAX_HEADER: u64 = 100 << 20;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{0}")]
    Header(String),
    #[error("tensor {name:?}: {msg}")]
    Tensor { name: String, msg: String },
}

fn header(msg: impl Into<String>) -> Error {
    Error::Header(msg.into())
}

fn tensor(name: &str, msg: impl Into<String>) -> Error {
    Error::Tensor { name: name.to_string(), msg: msg.into() }
}

/// Element types of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    U16,
    I16,
    F16,
    BF16,
    U32,
    I32,
    F32,
    U64,
    I64,
    F64,
}

impl Dtype {
    pub fn from_name(s: &str) -> Option<Dtype> {
        Some(match s {
            "BOOL" => Dtype::Bool,
            "U8" => Dtype::U8,
            "I8" => Dtype::I8,
            "F8_E5M2" => Dtype::F8E5M2,
            "F8_E4M3" => Dtype::F8E4M3,
            "U16" => Dtype::U16,
            "I16" => Dtype::I16,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "U32" => Dtype::U32,
            "I32" => Dtype::I32,
            "F32" => Dtype::F32,
            "U64" => Dtype::U64,
            "I64" => Dtype::I64,
            "F64" => Dtype::F64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::U16 => "U16",
            Dtype::I16 => "I16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::U32 => "U32",
            Dtype::I32 => "I32",
            Dtype::F32 => "F32",
            Dtype::U64 => "U64",
            Dtype::I64 => "I64",
            Dtype::F64 => "F64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 => 1,
            Dtype::U16 | Dtype::I16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor: its name, element type, shape (outermost first, as PyTorch) and bytes.
#[derive(Clone, Debug)]
pub struct Tensor<'a> {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub data: &'a [u8],
}

impl Tensor<'_> {
    /// Number of elements (checked against the byte length when the file was read).
    pub fn elements(&self) -> usize {
        self.data.len() / self.dtype.size() as usize
    }

    /// The values widened to f32 (exactly, for F32, F16 and BF16); other dtypes are refused.
    pub fn to_f32(&self) -> Result<Vec<f32>, Error> {
        let d = self.data;
        Ok(match self.dtype {
            Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => d.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => return Err(tensor(&self.name, format!("dtype {other} is not a floating-point type this reader widens (F32, F16, BF16)"))),
        })
    }
}

/// A parsed file: its `__metadata__` (string to string, as the format defines it) and its
/// tensors in header order.
#[derive(Clone, Debug)]
pub struct SafeTensors<'a> {
    pub metadata: Vec<(String, String)>,
    pub tensors: Vec<Tensor<'a>>,
}

impl<'a> SafeTensors<'a> {
    pub fn get(&self, name: &str) -> Option<&Tensor<'a>> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

fn u64s(v: Option<&serde_json::Value>, name: &str, key: &str) -> Result<Vec<u64>, Error> {
    let Some(a) = v.and_then(|v| v.as_array()) else { return Err(tensor(name, format!("{key} is missing or not an array"))) };
    a.iter().map(|x| x.as_u64().ok_or_else(|| tensor(name, format!("{key} holds {x}, not a non-negative integer")))).collect()
}

/// Parse and check a whole file held in memory (see the crate documentation for the checks).
pub fn parse(data: &[u8]) -> Result<SafeTensors<'_>, Error> {
    let Some(len) = data.get(..8) else { return Err(header(format!("file of {} bytes is shorter than the 8-byte header length", data.len()))) };
    let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    if n > MAX_HEADER || n > (data.len() as u64).saturating_sub(8) {
        return Err(header(format!("header length {n} is over the limit or past the end of the file")));
    }
    let head = &data[8..8 + n as usize];
    if head.first() != Some(&b'{') {
        return Err(header("header does not start with '{'"));
    }
    let entries = serde_json::from_slice::<Entries>(head).map_err(|e| header(format!("header is not a JSON object: {e}")))?.0;
    let body = &data[8 + n as usize..];
    let mut seen = std::collections::HashSet::new();
    let mut metadata = Vec::new();
    let mut tensors = Vec::new();
    let mut ranges = Vec::new();
    for (name, v) in &entries {
        if !seen.insert(name.as_str()) {
            return Err(header(format!("duplicate key {name:?} in the header")));
        }
        if name == "__metadata__" {
            let Some(m) = v.as_object() else { return Err(header("__metadata__ is not an object")) };
            for (k, v) in m {
                let Some(s) = v.as_str() else { return Err(header(format!("__metadata__ key {k:?} is not a string"))) };
                metadata.push((k.clone(), s.to_string()));
            }
            continue;
        }
        let dtype_name = v.get("dtype").and_then(|d| d.as_str()).unwrap_or("");
        let Some(dtype) = Dtype::from_name(dtype_name) else { return Err(tensor(name, format!("unknown dtype {dtype_name:?}"))) };
        let shape = u64s(v.get("shape"), name, "shape")?;
        if shape.len() > MAX_DIMS {
            return Err(tensor(name, format!("{} dimensions, more than {MAX_DIMS}", shape.len())));
        }
        let offs = u64s(v.get("data_offsets"), name, "data_offsets")?;
        if offs.len() != 2 || offs[0] > offs[1] {
            return Err(tensor(name, format!("data_offsets {offs:?} are not [begin, end]")));
        }
        let bytes = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).and_then(|e| e.checked_mul(dtype.size()));
        if bytes != Some(offs[1] - offs[0]) {
            return Err(tensor(name, format!("{dtype_name} × {shape:?} does not equal its {} bytes", offs[1] - offs[0])));
        }
        if offs[1] > body.len() as u64 {
            return Err(tensor(name, format!("data ends at {}, past the {} bytes of the data section", offs[1], body.len())));
        }
        ranges.push((offs[0], offs[1], tensors.len()));
        tensors.push(Tensor { name: name.clone(), dtype, shape, data: &body[offs[0] as usize..offs[1] as usize] });
    }
    ranges.sort_unstable();
    let mut cursor = 0;
    for &(b, e, k) in &ranges {
        if b != cursor {
            return Err(tensor(&tensors[k].name, format!("data starts at {b}, expected {cursor} (gap or overlap)")));
        }
        cursor = e;
    }
    if cursor != body.len() as u64 {
        return Err(header(format!("tensors cover {cursor} bytes but the data section has {}", body.len())));
    }
    Ok(SafeTensors { metadata, tensors })
}

/// A JSON object read as an ordered list of entries, so duplicate keys are visible.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, serde_json::Value>()? {
                    v.push((k, val));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Build a file (tests, fixtures of our own): tensors in the given order, F32/F16/BF16 bytes as given.
pub fn serialize(tensors: &[(&str, Dtype, &[u64], &[u8])], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut head = serde_json::Map::new();
    if !metadata.is_empty() {
        head.insert("__metadata__".into(), serde_json::Value::Object(metadata.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect()));
    }
    let mut off = 0u64;
    for (name, dtype, shape, data) in tensors {
        head.insert(name.to_string(), serde_json::json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [off, off + data.len() as u64]}));
        off += data.len() as u64;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(head)).expect("json");
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    for (_, _, _, data) in tensors {
        out.extend_from_slice(data);
    }
    out
}

#[cfg(test)]
mod tests;
