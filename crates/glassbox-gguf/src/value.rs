use crate::Error;

/// The type tag of a metadata value, as stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8, 1 => I8, 2 => U16, 3 => I16, 4 => U32, 5 => I32, 6 => F32, 7 => Bool,
            8 => String, 9 => Array, 10 => U64, 11 => I64, 12 => F64,
            _ => return None,
        })
    }
    pub fn id(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0, I8 => 1, U16 => 2, I16 => 3, U32 => 4, I32 => 5, F32 => 6, Bool => 7,
            String => 8, Array => 9, U64 => 10, I64 => 11, F64 => 12,
        }
    }
    /// Smallest number of bytes one value of this type occupies in a file.
    pub(crate) fn min_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// A metadata value. Floats keep their exact bits, so writing a file back is byte-exact.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8), I8(i8), U16(u16), I16(i16), U32(u32), I32(i32), F32(f32), Bool(bool),
    String(String), Array(Array), U64(u64), I64(i64), F64(f64),
}

/// A typed array. Arrays of arrays are allowed by the format (nesting is limited on read).
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>), I8(Vec<i8>), U16(Vec<u16>), I16(Vec<i16>), U32(Vec<u32>), I32(Vec<i32>),
    F32(Vec<f32>), Bool(Vec<bool>), String(Vec<String>), Array(Vec<Array>), U64(Vec<u64>),
    I64(Vec<i64>), F64(Vec<f64>),
}

impl Array {
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(), Array::I8(v) => v.len(), Array::U16(v) => v.len(),
            Array::I16(v) => v.len(), Array::U32(v) => v.len(), Array::I32(v) => v.len(),
            Array::F32(v) => v.len(), Array::Bool(v) => v.len(), Array::String(v) => v.len(),
            Array::Array(v) => v.len(), Array::U64(v) => v.len(), Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn elem_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8, Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16, Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32, Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32, Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String, Array::Array(_) => ValueType::Array,
            Array::U64(_) => ValueType::U64, Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }
    /// Elements as i64 when the array holds integers (any width, signedness).
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        Some(match self {
            Array::U8(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I8(v) => v.iter().map(|&x| x as i64).collect(),
            Array::U16(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I16(v) => v.iter().map(|&x| x as i64).collect(),
            Array::U32(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I32(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I64(v) => v.clone(),
            Array::U64(v) => v.iter().map(|&x| i64::try_from(x).ok()).collect::<Option<_>>()?,
            _ => return None,
        })
    }
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8, Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16, Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32, Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32, Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String, Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64, Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }
    /// Any integer value as u64 (negative → None).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64), Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64), Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(), Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(), Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short human rendering (long arrays are summarised).
    pub fn display_short(&self, max_chars: usize) -> String {
        let s = match self {
            Value::String(s) => format!("{s:?}"),
            Value::Array(a) => format!("[{:?}; {}]", a.elem_type(), a.len()),
            Value::Bool(b) => b.to_string(),
            Value::F32(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
            other => other.as_u64().map(|v| v.to_string()).unwrap_or_else(|| format!("{other:?}")),
        };
        if s.chars().count() > max_chars {
            let mut t: String = s.chars().take(max_chars).collect();
            t.push('…');
            t
        } else {
            s
        }
    }
}

pub(crate) fn expect_type(key: &str, v: &Value, want: &str) -> Error {
    Error::key(key, format!("expected {want}, found {:?}", v.value_type()))
}
