use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::value::expect_type;
use crate::{Array, DEFAULT_ALIGNMENT, Error, GgmlType, MAGIC, MAX_DIMS, Result, Value, ValueType};

/// Explicit limits applied while parsing untrusted files. The defaults accept every real model
/// we know of (262k-token vocabularies, 100k+ tensors) and refuse absurd counts before
/// allocating anything.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_kv_count: u64,
    pub max_tensor_count: u64,
    pub max_key_len: u64,
    pub max_string_len: u64,
    pub max_array_len: u64,
    pub max_array_depth: u32,
    pub max_tensor_name_len: u64,
    /// Upper bound on the total bytes of metadata strings (protects against many medium strings).
    pub max_metadata_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_kv_count: 1 << 16,
            max_tensor_count: 1 << 20,
            max_key_len: 1 << 16,
            max_string_len: 64 << 20,
            max_array_len: 1 << 26,
            max_array_depth: 4,
            max_tensor_name_len: 1 << 12,
            max_metadata_bytes: 1 << 30,
        }
    }
}

/// One tensor's description. `offset` is relative to the start of the data section.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order (`dims[0]` is the innermost, contiguous one).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub offset: u64,
    /// Size in bytes. For unknown types, the extent up to the next tensor (or end of file).
    pub size: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        // Checked at parse time: cannot overflow.
        self.dims.iter().product()
    }
}

/// A parsed GGUF header: metadata (in file order) and tensor infos (in file order).
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    metadata: Vec<(String, Value)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    pub alignment: u64,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                len: self.buf.len() as u64,
            });
        }
        let n = n as usize; // n <= remaining <= usize::MAX
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(what)?;
        if len > max {
            return Err(Error::Limit { what: format!("{} length", what()), value: len, limit: max });
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::Invalid(format!("{} is not valid utf-8: {e}", what())))
    }
}

struct Budget {
    left: u64,
}

impl Budget {
    fn spend(&mut self, n: u64, key: &str) -> Result<()> {
        self.left = self.left.checked_sub(n).ok_or_else(|| {
            Error::key(key, "metadata exceeds the total metadata size limit")
        })?;
        Ok(())
    }
}

/// Fail before allocating `count` items unless the file still holds at least that many.
fn check_count(cur: &Cursor, count: u64, min_size: u64, limit: u64, what: &str) -> Result<usize> {
    if count > limit {
        return Err(Error::Limit { what: what.to_owned(), value: count, limit });
    }
    let needed = count
        .checked_mul(min_size)
        .ok_or_else(|| Error::Overflow(format!("size of {what}")))?;
    if needed > cur.remaining() {
        return Err(Error::Truncated {
            what: what.to_owned(),
            offset: cur.pos as u64,
            needed,
            len: cur.buf.len() as u64,
        });
    }
    usize::try_from(count).map_err(|_| Error::Overflow(what.to_owned()))
}

fn read_value(
    cur: &mut Cursor,
    ty: ValueType,
    key: &str,
    limits: &Limits,
    depth: u32,
    budget: &mut Budget,
) -> Result<Value> {
    let w = || format!("value of key {key:?}");
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.array::<1>(&w)?[0]),
        ValueType::I8 => Value::I8(cur.array::<1>(&w)?[0] as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array(&w)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array(&w)?)),
        ValueType::U32 => Value::U32(cur.u32(&w)?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.array(&w)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.array(&w)?)),
        ValueType::U64 => Value::U64(cur.u64(&w)?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array(&w)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array(&w)?)),
        ValueType::Bool => match cur.array::<1>(&w)?[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => return Err(Error::key(key, format!("bool value must be 0 or 1, found {b}"))),
        },
        ValueType::String => {
            let s = cur.string(limits.max_string_len, &w)?;
            budget.spend(s.len() as u64, key)?;
            Value::String(s)
        }
        ValueType::Array => Value::Array(read_array(cur, key, limits, depth + 1, budget)?),
    })
}

fn read_array(
    cur: &mut Cursor,
    key: &str,
    limits: &Limits,
    depth: u32,
    budget: &mut Budget,
) -> Result<Array> {
    if depth > limits.max_array_depth {
        return Err(Error::key(key, format!("arrays nested deeper than {}", limits.max_array_depth)));
    }
    let w = || format!("array header of key {key:?}");
    let type_id = cur.u32(&w)?;
    let elem = ValueType::from_id(type_id)
        .ok_or_else(|| Error::key(key, format!("unknown array element type {type_id}")))?;
    let count = cur.u64(&w)?;
    let what = format!("array length of key {key:?}");
    let n = check_count(cur, count, elem.min_size(), limits.max_array_len, &what)?;
    // Each element's bookkeeping costs memory too: charge it to the metadata budget.
    budget.spend(count.saturating_mul(8), key)?;

    macro_rules! prim {
        ($variant:ident, $t:ty) => {{
            let bytes = cur.take(count * std::mem::size_of::<$t>() as u64, &w)?;
            Array::$variant(
                bytes
                    .chunks_exact(std::mem::size_of::<$t>())
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                    .collect(),
            )
        }};
    }
    Ok(match elem {
        ValueType::U8 => Array::U8(cur.take(count, &w)?.to_vec()),
        ValueType::I8 => Array::I8(cur.take(count, &w)?.iter().map(|&b| b as i8).collect()),
        ValueType::U16 => prim!(U16, u16),
        ValueType::I16 => prim!(I16, i16),
        ValueType::U32 => prim!(U32, u32),
        ValueType::I32 => prim!(I32, i32),
        ValueType::F32 => prim!(F32, f32),
        ValueType::U64 => prim!(U64, u64),
        ValueType::I64 => prim!(I64, i64),
        ValueType::F64 => prim!(F64, f64),
        ValueType::Bool => {
            let bytes = cur.take(count, &w)?;
            let mut v = Vec::with_capacity(n);
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    0 => v.push(false),
                    1 => v.push(true),
                    _ => return Err(Error::key(key, format!("bool element {i} is {b}, not 0 or 1"))),
                }
            }
            Array::Bool(v)
        }
        ValueType::String => {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                let ws = || format!("string element {i} of key {key:?}");
                let s = cur.string(limits.max_string_len, &ws)?;
                budget.spend(s.len() as u64, key)?;
                v.push(s);
            }
            Array::String(v)
        }
        ValueType::Array => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_array(cur, key, limits, depth + 1, budget)?);
            }
            Array::Array(v)
        }
    })
}

impl Gguf {
    /// Parse a GGUF file held entirely in `buf` (typically a memory map).
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Gguf> {
        let mut cur = Cursor { buf, pos: 0 };
        let magic: [u8; 4] = cur.array(&|| "magic".into())?;
        if magic != MAGIC {
            return Err(Error::BadMagic(magic));
        }
        let version = cur.u32(&|| "version".into())?;
        if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            return Err(Error::BigEndian);
        }
        if version != 2 && version != 3 {
            return Err(Error::UnsupportedVersion(version));
        }
        let n_tensors = cur.u64(&|| "tensor count".into())?;
        let n_kv = cur.u64(&|| "metadata count".into())?;
        // A key-value pair needs at least 8 (key length) + 4 (type) + 1 bytes.
        let n_kv = check_count(&cur, n_kv, 13, limits.max_kv_count, "metadata count")?;
        let mut budget = Budget { left: limits.max_metadata_bytes };

        let mut metadata = Vec::with_capacity(n_kv);
        let mut index = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = cur.string(limits.max_key_len, &|| format!("key of metadata entry {i}"))?;
            if key.is_empty() {
                return Err(Error::Invalid(format!("metadata entry {i} has an empty key")));
            }
            let type_id = cur.u32(&|| format!("type of key {key:?}"))?;
            let ty = ValueType::from_id(type_id)
                .ok_or_else(|| Error::key(&key, format!("unknown value type {type_id}")))?;
            let value = read_value(&mut cur, ty, &key, limits, 0, &mut budget)?;
            if index.insert(key.clone(), metadata.len()).is_some() {
                return Err(Error::key(&key, "duplicate key"));
            }
            metadata.push((key, value));
        }

        let alignment = match index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if *a != 0 && a.is_power_of_two() => *a as u64,
            Some(Value::U32(a)) => {
                return Err(Error::key("general.alignment", format!("{a} is not a power of two")));
            }
            Some(v) => return Err(expect_type("general.alignment", v, "u32")),
        };

        // A tensor info needs at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
        let n_t = check_count(&cur, n_tensors, 24, limits.max_tensor_count, "tensor count")?;
        let mut tensors = Vec::with_capacity(n_t);
        let mut tensor_index = HashMap::with_capacity(n_t);
        let mut raw_types = Vec::with_capacity(n_t);
        for i in 0..n_t {
            let name =
                cur.string(limits.max_tensor_name_len, &|| format!("name of tensor {i}"))?;
            let wt = || format!("info of tensor {name:?}");
            let n_dims = cur.u32(&wt)?;
            if n_dims as usize > MAX_DIMS {
                return Err(Error::tensor(&name, format!("{n_dims} dimensions, at most {MAX_DIMS}")));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            let mut n_elements: u64 = 1;
            for _ in 0..n_dims {
                let d = cur.u64(&wt)?;
                if d > i64::MAX as u64 {
                    return Err(Error::tensor(&name, format!("dimension {d} is out of range")));
                }
                n_elements = n_elements
                    .checked_mul(d)
                    .filter(|&n| n <= i64::MAX as u64)
                    .ok_or_else(|| Error::tensor(&name, "element count overflows"))?;
                dims.push(d);
            }
            let type_id = cur.u32(&wt)?;
            let ggml_type = GgmlType::from_id(type_id);
            let offset = cur.u64(&wt)?;
            if offset % alignment != 0 {
                return Err(Error::tensor(
                    &name,
                    format!("data offset {offset} is not a multiple of the alignment {alignment}"),
                ));
            }
            let size = match ggml_type.block_layout() {
                Some((block, _)) => {
                    if dims.first().copied().unwrap_or(1) % block != 0 {
                        return Err(Error::tensor(
                            &name,
                            format!("first dimension {} is not a multiple of the {} block size {block}",
                                dims.first().copied().unwrap_or(1), ggml_type),
                        ));
                    }
                    ggml_type
                        .bytes_for(n_elements)
                        .ok_or_else(|| Error::tensor(&name, "data size overflows"))?
                }
                None => 0, // resolved below from the layout of the data section
            };
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(Error::tensor(&name, "duplicate tensor name"));
            }
            raw_types.push(ggml_type);
            tensors.push(TensorInfo { name, dims, ggml_type, offset, size });
        }

        let header_end = cur.pos as u64;
        let data_offset = align_up(header_end, alignment)
            .ok_or_else(|| Error::Overflow("data section offset".into()))?;
        let file_len = buf.len() as u64;
        if data_offset > file_len && !tensors.is_empty() {
            return Err(Error::Truncated {
                what: "tensor data section".into(),
                offset: header_end,
                needed: data_offset - header_end,
                len: file_len,
            });
        }
        let data_len = file_len.saturating_sub(data_offset);

        // Bounds and overlap: walk tensors in offset order.
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| (tensors[i].offset, i));
        for (k, &i) in order.iter().enumerate() {
            let next_offset = order.get(k + 1).map(|&j| tensors[j].offset).unwrap_or(data_len);
            let t = &mut tensors[i];
            if matches!(t.ggml_type, GgmlType::Unknown(_)) {
                // Unknown type: its extent is up to the next tensor, passed through as bytes.
                t.size = next_offset.checked_sub(t.offset).ok_or_else(|| {
                    Error::tensor(&t.name, "data offset is beyond the end of the file")
                })?;
            }
            let end = t
                .offset
                .checked_add(t.size)
                .ok_or_else(|| Error::tensor(&t.name, "data end overflows"))?;
            if end > data_len {
                return Err(Error::tensor(
                    &t.name,
                    format!(
                        "data [{}, {end}) extends past the end of the data section ({data_len} bytes)",
                        t.offset
                    ),
                ));
            }
            if end > next_offset && t.size > 0 {
                let other = &tensors[order[k + 1]].name;
                return Err(Error::tensor(
                    &tensors[i].name,
                    format!("data overlaps tensor {other:?}"),
                ));
            }
        }
        Ok(Gguf { version, metadata, index, tensors, tensor_index, alignment, data_offset })
    }

    /// Metadata entries in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Typed getters that name the key on a type mismatch.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| expect_type(key, v, "an unsigned integer")),
        }
    }
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| expect_type(key, v, "a number")),
        }
    }
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| expect_type(key, v, "a string")),
        }
    }
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| expect_type(key, v, "a bool")),
        }
    }
    pub fn get_array(&self, key: &str) -> Result<Option<&Array>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_array().map(Some).ok_or_else(|| expect_type(key, v, "an array")),
        }
    }

    /// The bytes of a tensor within `file` (the same buffer that was parsed).
    pub fn tensor_data<'a>(&self, file: &'a [u8], t: &TensorInfo) -> &'a [u8] {
        // Bounds were checked against this buffer's length at parse time.
        let start = (self.data_offset + t.offset) as usize;
        &file[start..start + t.size as usize]
    }
}

pub(crate) fn align_up(x: u64, alignment: u64) -> Option<u64> {
    let rem = x % alignment;
    if rem == 0 { Some(x) } else { x.checked_add(alignment - rem) }
}

/// A memory-mapped, parsed GGUF file.
pub struct GgufFile {
    path: PathBuf,
    map: memmap2::Mmap,
    gguf: Gguf,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<GgufFile> {
        Self::open_with_limits(path, &Limits::default())
    }

    pub fn open_with_limits(path: &Path, limits: &Limits) -> Result<GgufFile> {
        let io = |source| Error::Io { path: path.to_owned(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process; a concurrent writer
        // truncating the file is outside our threat model for a verified model file (its
        // digest is checked by the trust layer before use).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let gguf = Gguf::parse(&map, limits)?;
        Ok(GgufFile { path: path.to_owned(), map, gguf })
    }

    /// Parse bytes already in memory (e.g. the anonymous copy whose digest was just verified,
    /// so the bytes parsed are exactly the bytes hashed, and the file is never read again).
    pub fn from_map(path: &Path, map: memmap2::Mmap, limits: &Limits) -> Result<GgufFile> {
        let gguf = Gguf::parse(&map, limits)?;
        Ok(GgufFile { path: path.to_owned(), map, gguf })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        self.gguf.tensor_data(&self.map, t)
    }

    /// Tell the OS this process no longer needs the pages of `range` (e.g. a tensor that was
    /// copied into a repacked form), so they stop counting towards its memory. Only whole pages
    /// inside `range` are released: the pages it shares at either end with neighbouring bytes
    /// are kept, so nothing outside `range` is ever affected.
    ///
    /// # Safety
    /// The bytes of `range` must never be read again through this file: a verified file lives
    /// in anonymous memory, where released pages read back as zeros (only a file mapping, as
    /// [`GgufFile::open`] makes, re-reads them from disk).
    pub unsafe fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        {
            // SAFETY: sysconf has no preconditions.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
            if page == 0 || !page.is_power_of_two() || range.end > self.map.len() {
                return;
            }
            // The mapping starts on a page boundary, so offsets round like addresses.
            let start = range.start.next_multiple_of(page);
            let end = range.end & !(page - 1);
            if start >= end {
                return;
            }
            // SAFETY: [start, end) is whole pages inside `range`, itself inside the mapping
            // (checked above); the caller guarantees nothing reads `range` again, so discarding
            // those pages (file-backed: re-read on access; anonymous: zero-filled) cannot change
            // a value anyone observes.
            unsafe {
                let _ = self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start);
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}
